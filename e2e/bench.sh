#!/usr/bin/env bash
# make bench: one run, one table. Measures docker trustcache against its baselines in the same run
# (cosign verify --key on the same ref; plain docker buildx build with the same cache), medians of
# several runs, and prints a Markdown table (also written to $TRUSTCACHE_E2E_DIR/bench.md).
# Needs the e2e services (make e2e-setup) and hyperfine (installed from Debian when absent).
# BENCH_ONLY=startup measures only the start-up rows (cold verify against cosign v2, v3 and the
# minimal Go verifier, interleaved, with the goals; metadata, --help, completion; no build);
# BENCH_STARTUP_BASELINE=BINARY also runs another docker-trustcache build's cold verify (an earlier
# commit's) in the same interleaved rounds. BENCH_ONLY=gateway measures only the gateway (docker
# trustcache serve) rows; BENCH_ONLY=provenance
# only the provenance record's; BENCH_ONLY=fallback only the attacked-vs-unattacked build (the
# extra registry requests of a fallback are BenchmarkFallback's, in make bench's Go benchmarks).
# BENCH_GATEWAY_BASELINE=BINARY also measures another docker-trustcache build's gateway (an earlier
# commit's) in the same runs, interleaved: a row comparing the two.
# BENCH_PROVENANCE_BASELINE=BINARY also measures another docker-trustcache build's signing build
# with a new record (an earlier commit's) in the same rounds, interleaved: a row comparing the two.
set -euo pipefail

: "${E2E_REGISTRY:?source \$TRUSTCACHE_E2E_DIR/env first (make bench does)}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
docker=${E2E_DOCKER:-docker}
runs=${BENCH_RUNS:-15}
only=${BENCH_ONLY:-}
command -v hyperfine >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine >/dev/null

work=$(mktemp -d /tmp/trustcache-bench.XXXXXX)
gwpid=
trap '[[ -z $gwpid ]] || { kill "$gwpid" 2>/dev/null; wait "$gwpid" 2>/dev/null; }; rm -rf "$work"' EXIT
mkdir -p "$work/docker-config/cli-plugins" "$work/home"
# Build with the caller's Go caches, before HOME moves.
# As make build builds it (its tags: gRPC without x/net/trace).
(cd "$root" && CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags '-s -w' -o "$work/docker-config/cli-plugins/docker-trustcache" ./cmd/docker-trustcache)
# The start-up floor of a Go program on this machine: one that prints and exits.
mkdir "$work/hello"
printf 'module hello\n\ngo 1.21\n' >"$work/hello/go.mod"
printf 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("{}\\n") }\n' >"$work/hello/main.go"
(cd "$work/hello" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$work/hello-go" .)
# The verification floor: the least a Go program does to verify one key signature (e2e/minverify).
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/minverify" ./e2e/minverify)
export DOCKER_CONFIG=$work/docker-config HOME=$work/home
plugin=$DOCKER_CONFIG/cli-plugins/docker-trustcache
bash "$here/builder.sh" "$DOCKER_CONFIG" >/dev/null
export TRUSTCACHE_PASSWORD=bench COSIGN_PASSWORD=bench BUILDKIT_PROGRESS=plain DOCKER_CLI_HINTS=false
# cosign must not reach the public sigstore services: fail fast on loopback.
deadproxy=(env HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 "NO_PROXY=127.0.0.1,localhost")
cd "$work"

"$docker" trustcache keys generate --name ci >/dev/null 2>&1
repo=$E2E_REGISTRY/bench/cache-$RANDOM$RANDOM
cat >policy.yaml <<POLICY
version: 1
builders:
  - name: ci
    key: ci.pub
scopes:
  - repositories: ["$E2E_REGISTRY/bench/**"]
    builders: [ci]
POLICY
export TRUSTCACHE_POLICY=$work/policy.yaml

hf() { # NAME COMMAND... -> median seconds
	local name=$1
	shift
	hyperfine --style none --runs "$runs" --warmup 2 -N --export-json "$name.json" -- "$*" >/dev/null 2>&1 ||
		hyperfine --style none --runs "$runs" --warmup 2 --export-json "$name.json" -- "$*" >/dev/null
	jq -r '.results[0].median' "$name.json"
}
peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1; } # KiB
ms() { awk -v s="$1" 'BEGIN{printf "%.1f ms", s*1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

timed() { # COMMAND... -> seconds, to stdout; the command's output is discarded
	local start end
	start=$(date +%s%N)
	"$@" >/dev/null 2>&1 </dev/null || echo "$*" >>"$work/failures"
	end=$(date +%s%N)
	awk -v a="$start" -v b="$end" 'BEGIN{printf "%.6f\n", (b-a)/1e9}'
}
median() { sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
table=
if [[ -z $only || $only == startup ]]; then
# 50 signed refs.
refs=()
for i in $(seq 1 50); do
	head -c 64 /dev/urandom >"layer$i"
	tar cf "layer$i.tar" "layer$i"
	"$E2E_CRANE" append --base "$E2E_BASE_IMAGE" --new_layer "layer$i.tar" --new_tag "$repo:r$i" >/dev/null 2>&1
	refs+=("$repo:r$i")
done
"$docker" trustcache sign --key ci.key "${refs[@]}" >/dev/null 2>&1
ref=${refs[0]}
digest=$("$E2E_CRANE" digest "$ref")

echo "measuring (medians of $runs runs)..." >&2
# The start-up goals: cold verify, whole process, against cosign v2 and v3 and the minimal Go
# verifier (e2e/minverify, which reads the tag's head record too, as a cold verify does:
# docs/performance.md), run in turn round after round (the order rotating), so that the load of
# a shared machine falls on all of them alike; each one's median, and the median of the per-round
# ratios. With perf (linux-perf), each run's wall time, CPU time (task-clock) and page faults as
# perf stat counts them; without it, the wall time bash measures around the run.
startup_rounds=${BENCH_STARTUP_ROUNDS:-$((runs * 2 + 1))}
sbase=${BENCH_STARTUP_BASELINE:-}
useperf=
if command -v perf >/dev/null && perf stat -x, -e task-clock -o /dev/null -- true >/dev/null 2>&1; then useperf=1; fi
# shellcheck disable=SC2034 # sc_NAME: the command measure NAME runs (through a nameref)
{
	sc_cosign2=("${deadproxy[@]}" "$E2E_COSIGN" verify --key ci.pub --insecure-ignore-tlog=true --trusted-root "$E2E_TRUSTED_ROOT" "$repo@$digest")
	sc_cosign3=("${deadproxy[@]}" "$E2E_COSIGN3" verify --key ci.pub --insecure-ignore-tlog=true --trusted-root "$E2E_TRUSTED_ROOT" "$repo@$digest")
	sc_cold=("$plugin" trustcache verify --no-ledger "$ref")
	sc_min=("$work/minverify" ci.pub "$ref")
	sc_min3=("$work/minverify" -no-head ci.pub "$ref")
	sc_base=("$sbase" trustcache verify --no-ledger "$ref")
	sc_hello=("$work/hello-go")
}
snames=(cosign2 cosign3 cold min min3 hello)
[[ -z $sbase ]] || snames+=(base)
measure() { # NAME: one run of sc_NAME; "wall-s cpu-s faults" appended to s_NAME.times
	local -n c="sc_$1"
	local t0 t1
	if [[ -n $useperf ]]; then
		perf stat -x, -e duration_time,task-clock,page-faults -o "$work/perf.out" -- "${c[@]}" >/dev/null 2>&1 </dev/null || echo "$1: ${c[*]}" >>"$work/failures"
		awk -F, '/duration_time/{w=$1/1e9} /task-clock/{t=$1/1e3} /page-faults/{f=$1} END{printf "%.6f %.6f %d\n", w, t, f}' "$work/perf.out" >>"s_$1.times"
	else
		t0=$EPOCHREALTIME
		"${c[@]}" >/dev/null 2>&1 </dev/null || echo "$1: ${c[*]}" >>"$work/failures"
		t1=$EPOCHREALTIME
		awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f 0 0\n", b-a}' >>"s_$1.times"
	fi
}
for n in "${snames[@]}"; do
	measure "$n" # warm-up
	: >"s_$n.times"
done
for ((i = 0; i < startup_rounds; i++)); do
	for ((j = 0; j < ${#snames[@]}; j++)); do
		measure "${snames[(i + j) % ${#snames[@]}]}"
	done
done
smed() { cut -d' ' -f"${2:-1}" "s_$1.times" | median; }                                               # NAME [COLUMN: 1 wall, 2 CPU, 3 faults]
pairmed() { paste -d' ' "s_$1.times" "s_$2.times" | awk '{printf "%.6f\n", $1/$4}' | median; } # median of A/B per round (wall)
goal() { # DESCRIPTION A B OP LIMIT -> a table row for the ratio of A's median to B's
	local r met
	r=$(ratio "$(smed "$2")" "$(smed "$3")")
	met=$(awk -v v="$r" -v l="$5" -v op="$4" 'BEGIN{print ((op == ">=" && v >= l) || (op == "<=" && v <= l)) ? "**met**" : "**not met**"}')
	printf '| %s | %s %s | %s× (per round %.2f×)%s | %s |\n' "$1" "$4" "$5" "$r" "$(pairmed "$2" "$3")" \
		"$([[ -z $useperf ]] || echo "; CPU $(ratio "$(smed "$2" 2)" "$(smed "$3" 2)")×")" "$met"
}
srow() { # DESCRIPTION NAME
	printf '| %s | %s |' "$1" "$(ms "$(smed "$2")")"
	[[ -z $useperf ]] || printf ' %s | %s |' "$(ms "$(smed "$2" 2)")" "$(smed "$2" 3)"
	echo
}
startuptable=$(
	cat <<TABLE
| start-up: cold \`verify --no-ledger\` of a signed tag ($startup_rounds interleaved rounds, medians) | wall |$([[ -z $useperf ]] || echo " CPU | page faults |")
|---|---|$([[ -z $useperf ]] || echo "---|---|")
$(srow "\`docker-trustcache trustcache verify --no-ledger REF\`" cold)
$(srow "\`cosign verify --key\` v2 (REF@DIGEST: no tag to resolve)" cosign2)
$(srow "\`cosign verify --key\` v3 (same)" cosign3)
$(srow "minimal Go verifier (e2e/minverify: ping, tag, \`.sig\`, and the head record alongside the tag, as a cold verify)" min)
$(srow "same without the head record (\`minverify -no-head\`)" min3)
$(srow "a Go program that prints and exits (the start-up floor)" hello)
$([[ -z $sbase ]] || srow "baseline: $(basename "$sbase") \`verify --no-ledger\` (BENCH_STARTUP_BASELINE)" base)

| start-up goal | target | measured (wall; CPU) | status |
|---|---|---|---|
$(goal "cosign v2 / cold verify" cosign2 cold ">=" 5)
$(goal "cosign v3 / cold verify" cosign3 cold ">=" 5)
$(goal "cold verify / minimal Go verifier (same requests)" cold min "<=" 1.5)
| for reference: cold verify / minimal Go verifier without the head record | | $(ratio "$(smed cold)" "$(smed min3)")× | |
$([[ -z $sbase ]] || echo "| for reference: this build / the baseline build | | $(ratio "$(smed cold)" "$(smed base)")× (per round $(printf %.2f "$(pairmed cold base)"))$([[ -z $useperf ]] || echo "; CPU $(ratio "$(smed cold 2)" "$(smed base 2)")×, faults $(ratio "$(smed cold 3)" "$(smed base 3)")×") | |")
TABLE
)
echo "$startuptable" >&2
t_cosign=$(hf cosign "${deadproxy[*]} $E2E_COSIGN verify --key ci.pub --insecure-ignore-tlog=true --trusted-root $E2E_TRUSTED_ROOT $repo@$digest")
t_cosign3=$(hf cosign3 "${deadproxy[*]} $E2E_COSIGN3 verify --key ci.pub --insecure-ignore-tlog=true --trusted-root $E2E_TRUSTED_ROOT $repo@$digest")
t_cold=$(hf cold "$plugin trustcache verify --no-ledger $ref")
t_min=$(hf minverify "$work/minverify ci.pub $ref")
"$plugin" trustcache verify "$ref" >/dev/null
t_warm=$(hf warm "$plugin trustcache verify $ref")
t_docker=$(hf viadocker "$docker trustcache verify --no-ledger $ref")
t_50=$(hf fifty "$plugin trustcache verify --no-ledger ${refs[*]}")
t_meta=$(hf metadata "$plugin docker-cli-plugin-metadata")
t_help=$(hf help "$plugin trustcache --help")
t_complete=$(hf complete "$plugin __complete trustcache v")
t_hello=$(hf hello "$work/hello-go")
t_bxmeta=$(hf bxmeta "$DOCKER_CONFIG/cli-plugins/docker-buildx docker-cli-plugin-metadata")
m_cold=$(peak "$plugin" trustcache verify --no-ledger "$ref")
m_cosign=$(peak "${deadproxy[@]}" "$E2E_COSIGN" verify --key ci.pub --insecure-ignore-tlog=true --trusted-root "$E2E_TRUSTED_ROOT" "$repo@$digest")

# Build overhead on a fully cached build: trustcache build vs plain buildx build, same cache.
if [[ -z $only ]]; then
mkdir project
printf 'FROM %s\nRUN echo bench > /bench.txt\n' "$E2E_BASE_IMAGE" >project/Dockerfile
flags=(--builder "$E2E_BUILDER" --network "$E2E_NETWORK" --provenance=false)
"$docker" trustcache build "${flags[@]}" --sign --key ci.key --cache-to "type=registry,ref=$repo:buildcache,mode=max" -o type=local,dest=out project >/dev/null 2>&1
cdigest=$("$E2E_CRANE" digest "$repo:buildcache")
# BuildKit's state drifts over a run (its cache metadata grows), which skews commands measured one
# after the other: the three builds are run in turn, round after round, and each one's median taken.
plain=("$docker" buildx build "${flags[@]}" --cache-from "type=registry,ref=$repo@$cdigest" -o "type=local,dest=out" project)
tcbuild=("$docker" trustcache build "${flags[@]}" --cache-from "$repo:buildcache" -o "type=local,dest=out" project)
# The floor: the buildx plugin run directly, as the docker CLI runs it (trustcache build runs it so).
direct=(env "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND=$docker" "$DOCKER_CONFIG/cli-plugins/docker-buildx" buildx build "${flags[@]}" --cache-from "type=registry,ref=$repo@$cdigest" -o "type=local,dest=out" project)
for _ in 1 2; do "${plain[@]}" >/dev/null 2>&1 && "${tcbuild[@]}" >/dev/null 2>&1 && "${direct[@]}" >/dev/null 2>&1; done # warm-up
for f in plain.times tcbuild.times direct.times; do : >"$f"; done
for _ in $(seq 1 "$runs"); do
	timed "${plain[@]}" >>plain.times
	timed "${tcbuild[@]}" >>tcbuild.times
	timed "${direct[@]}" >>direct.times
done
t_plain=$(median <plain.times)
t_tc=$(median <tcbuild.times)
t_direct=$(median <direct.times)
buildrows=$(
	cat <<TABLE
| fully cached build: \`docker trustcache build\` vs \`docker buildx build\` (same cache) | $(ms "$t_tc") | $(ms "$t_plain") | overhead $(awk -v a="$t_tc" -v b="$t_plain" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}') |
| same, vs the buildx plugin run directly (no docker CLI) | $(ms "$t_tc") | $(ms "$t_direct") | overhead $(awk -v a="$t_tc" -v b="$t_direct" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}') |
TABLE
)
fi

table=$(
	cat <<TABLE
$startuptable

| measurement | trustcache | baseline | ratio |
|---|---|---|---|
| verify 1 signed ref, cold (no ledger) vs \`cosign verify --key\` (v2) | $(ms "$t_cold") | $(ms "$t_cosign") | cosign is $(ratio "$t_cosign" "$t_cold")× slower |
| verify 1 signed ref, cold (no ledger) vs \`cosign verify --key\` (v3) | $(ms "$t_cold") | $(ms "$t_cosign3") | cosign v3 is $(ratio "$t_cosign3" "$t_cold")× slower |
| verify 1 signed ref, cold (no ledger) vs a minimal Go verifier (e2e/minverify) | $(ms "$t_cold") | $(ms "$t_min") | $(ratio "$t_cold" "$t_min") |
| verify 1 ref, warm (ledger) vs cold | $(ms "$t_warm") | $(ms "$t_cold") | $(ratio "$t_warm" "$t_cold") |
| verify 1 ref through the docker CLI (\`docker trustcache verify\`) | $(ms "$t_docker") | $(ms "$t_cold") | $(ratio "$t_docker" "$t_cold") |
| verify 50 refs vs 1 ref (cold) | $(ms "$t_50") | $(ms "$t_cold") | $(ratio "$t_50" "$t_cold") |
| \`docker-cli-plugin-metadata\` vs buildx's (the docker CLI runs it before every plugin command) | $(ms "$t_meta") | $(ms "$t_bxmeta") | buildx's is $(ratio "$t_bxmeta" "$t_meta")× slower |
| \`docker-cli-plugin-metadata\` vs a Go program that prints and exits (start-up floor) | $(ms "$t_meta") | $(ms "$t_hello") | $(ratio "$t_meta" "$t_hello") |
| \`docker trustcache --help\` (plugin binary) vs the start-up floor | $(ms "$t_help") | $(ms "$t_hello") | $(ratio "$t_help" "$t_hello") |
| completion (\`__complete trustcache v\`, what the docker CLI's completion runs) vs the start-up floor | $(ms "$t_complete") | $(ms "$t_hello") | $(ratio "$t_complete" "$t_hello") |
${buildrows:-| fully cached build | (not measured: BENCH_ONLY=$only) | | |}
| peak memory, verify 1 ref (cold) vs cosign | $((m_cold / 1024)) MiB | $((m_cosign / 1024)) MiB | $(ratio "$m_cosign" "$m_cold") |
TABLE
)
# CPU time (user + system, hyperfine's mean) is steadier than wall time on a shared, loaded machine.
cpums() { jq -r '.results[0] | (.user + .system) * 1000' "$1.json"; }
c_cold=$(cpums cold) c_cosign=$(cpums cosign) c_cosign3=$(cpums cosign3) c_min=$(cpums minverify)
c_50=$(cpums fifty) c_meta=$(cpums metadata) c_hello=$(cpums hello)
cms() { awk -v s="$1" 'BEGIN{printf "%.1f ms", s}'; }
table=$(
	cat <<TABLE
$table

| CPU time per run (user + system, mean) | trustcache | baseline | ratio |
|---|---|---|---|
| verify 1 ref, cold, vs \`cosign verify --key\` (v2) | $(cms "$c_cold") | $(cms "$c_cosign") | cosign is $(ratio "$c_cosign" "$c_cold")× slower |
| same vs cosign v3 | $(cms "$c_cold") | $(cms "$c_cosign3") | cosign v3 is $(ratio "$c_cosign3" "$c_cold")× slower |
| same vs the minimal Go verifier (e2e/minverify) | $(cms "$c_cold") | $(cms "$c_min") | $(ratio "$c_cold" "$c_min") |
| verify 50 refs vs 1 ref (cold) | $(cms "$c_50") | $(cms "$c_cold") | $(ratio "$c_50" "$c_cold") |
| \`docker-cli-plugin-metadata\` vs the start-up floor | $(cms "$c_meta") | $(cms "$c_hello") | $(ratio "$c_meta" "$c_hello") |
TABLE
)
fi

if [[ -z $only || $only == provenance ]]; then
	# What the provenance record costs a build: a fully cached signing build (cache imported,
	# exported again — the same digest — and signed: its signature already there) with the record
	# attached vs with TRUSTCACHE_PROVENANCE_ATTACH=off; the record either the same as the last
	# build's (a rebuild: no write) or a new one (one referrer written, on this registry through
	# the referrers tag). Run in turn, round
	# after round, each one's median taken.
	mkdir -p provproject
	printf 'FROM %s\nRUN echo bench-provenance > /bench.txt\n' "$E2E_BASE_IMAGE" >provproject/Dockerfile
	pflags=(--builder "$E2E_BUILDER" --network "$E2E_NETWORK" --provenance=false)
	prepo=$E2E_REGISTRY/bench/prov-$RANDOM$RANDOM
	"$docker" trustcache build "${pflags[@]}" --sign --key ci.key --cache-to "type=registry,ref=$prepo:c,mode=max" -o type=local,dest=pout provproject >/dev/null 2>&1
	signed=("$docker" trustcache build "${pflags[@]}" --no-ledger --sign --key ci.key --cache-from "$prepo:c" --cache-to "type=registry,ref=$prepo:c,mode=max" -o "type=local,dest=pout" provproject)
	norec=(env TRUSTCACHE_PROVENANCE_ATTACH=off "${signed[@]}")
	# A new record each build without a new signature: another policy file each time (a comment
	# apart: another policy digest in the record, the same signed annotations).
	newrec() { "$docker" trustcache build --trust-policy "$work/policy-$1.yaml" "${signed[@]:3}"; }
	for i in w1 w2 $(seq 1 "$runs"); do { cat policy.yaml; echo "# $i"; } >"policy-$i.yaml"; done
	# The baseline binary, if any, in a copy of the docker config (the same builder), with policy
	# files of its own (a new record each build for it too).
	pbase=${BENCH_PROVENANCE_BASELINE:-}
	if [[ -n $pbase ]]; then
		cp -r "$DOCKER_CONFIG" "$work/base-config"
		cp "$pbase" "$work/base-config/cli-plugins/docker-trustcache"
		for i in w1 w2 $(seq 1 "$runs"); do { cat policy.yaml; echo "# base $i"; } >"policy-b$i.yaml"; done
	fi
	basenew() { env DOCKER_CONFIG="$work/base-config" "$docker" trustcache build --trust-policy "$work/policy-b$1.yaml" "${signed[@]:3}"; }
	# A new signature each build too (another signed annotation): what a build of a new commit
	# writes, a signature and a record, with the record and (BENCH_PROVENANCE_BASELINE) in the
	# baseline binary, against the same without the record.
	newsig() { env TRUSTCACHE_PROVENANCE_ATTACH=off "$docker" trustcache build --sign-annotation "bench=n$1" "${signed[@]:3}"; }
	newboth() { "$docker" trustcache build --trust-policy "$work/policy-$1.yaml" --sign-annotation "bench=s$1" "${signed[@]:3}"; }
	basenewboth() { env DOCKER_CONFIG="$work/base-config" "$docker" trustcache build --trust-policy "$work/policy-b$1.yaml" --sign-annotation "bench=b$1" "${signed[@]:3}"; }
	for i in w1 w2; do
		"${norec[@]}" >/dev/null 2>&1 && "${signed[@]}" >/dev/null 2>&1 && newrec $i >/dev/null 2>&1 # warm-up
		[[ -z $pbase ]] || basenew $i >/dev/null 2>&1
	done
	for f in norec.times samerec.times newrec.times basenew.times newsig.times newboth.times basenewboth.times; do : >"$f"; done
	for i in $(seq 1 "$runs"); do
		timed "${norec[@]}" >>norec.times
		timed "${signed[@]}" >>samerec.times
		timed newrec "$i" >>newrec.times
		[[ -z $pbase ]] || timed basenew "$i" >>basenew.times
		timed newsig "$i" >>newsig.times
		timed newboth "$i" >>newboth.times
		[[ -z $pbase ]] || timed basenewboth "$i" >>basenewboth.times
	done
	t_newsig=$(median <newsig.times)
	t_newboth=$(median <newboth.times)
	t_norec=$(median <norec.times)
	t_samerec=$(median <samerec.times)
	t_newrec=$(median <newrec.times)
	# (exit 3 is expected: the cache digest was first exported by a build without a record, and
	# every record since says it imported itself, which proves nothing)
	nrec=$({ "$plugin" trustcache provenance --no-ledger --format json "$prepo:c" 2>/dev/null || true; } | jq '.records | length')
	provtable=$(
		cat <<TABLE
| provenance measurement | with the record | without (\`TRUSTCACHE_PROVENANCE_ATTACH=off\`) | overhead |
|---|---|---|---|
| fully cached signing build, a new record each build (another policy digest: one referrer written); medians of $runs | $(ms "$t_newrec") | $(ms "$t_norec") | $(awk -v a="$t_newrec" -v b="$t_norec" 'BEGIN{printf "%+.1f %% (%+.0f ms)", (a/b-1)*100, (a-b)*1000}') |
| same, the record the same as the last build's (a rebuild: read, not written again) | $(ms "$t_samerec") | $(ms "$t_norec") | $(awk -v a="$t_samerec" -v b="$t_norec" 'BEGIN{printf "%+.1f %% (%+.0f ms)", (a/b-1)*100, (a-b)*1000}') |
| a new signature and a new record each build (another signed annotation and policy digest) | $(ms "$t_newboth") | $(ms "$t_newsig") (a new signature each build) | $(awk -v a="$t_newboth" -v b="$t_newsig" 'BEGIN{printf "%+.1f %% (%+.0f ms)", (a/b-1)*100, (a-b)*1000}') |
| records on the cache digest after the run (\`docker trustcache provenance\`) | $nrec | | |
TABLE
	)
	if [[ -n $pbase ]]; then
		t_basenew=$(median <basenew.times)
		provtable=$(printf '%s\n| baseline %s, a new record each build; medians of %s | %s | %s | %s |' "$provtable" "$(basename "$pbase")" "$runs" \
			"$(ms "$t_basenew")" "$(ms "$t_norec")" "$(awk -v a="$t_basenew" -v b="$t_norec" 'BEGIN{printf "%+.1f %% (%+.0f ms)", (a/b-1)*100, (a-b)*1000}')")
		t_basenewboth=$(median <basenewboth.times)
		provtable=$(printf '%s\n| baseline %s, a new signature and a new record each build | %s | %s | %s |' "$provtable" "$(basename "$pbase")" \
			"$(ms "$t_basenewboth")" "$(ms "$t_newsig")" "$(awk -v a="$t_basenewboth" -v b="$t_newsig" 'BEGIN{printf "%+.1f %% (%+.0f ms)", (a/b-1)*100, (a-b)*1000}')")
	fi
	table=$(printf '%s\n\n%s' "$table" "$provtable")
fi

if [[ -z $only || $only == gateway ]]; then
	# The gateway (docker trustcache serve) in front of the same buildkitd: a fully cached build
	# through it vs directly against buildkitd, same cache; then 20 such builds at once.
	mkdir gwproject
	printf 'FROM %s\nRUN echo bench-gateway > /bench.txt\n' "$E2E_BASE_IMAGE" >gwproject/Dockerfile
	flags=(--builder "$E2E_BUILDER" --network "$E2E_NETWORK" --provenance=false)
	"$docker" trustcache build "${flags[@]}" --sign --key ci.key --cache-to "type=registry,ref=$repo:gwcache,mode=max" -o type=local,dest=gwout gwproject >/dev/null 2>&1
	gdigest=$("$E2E_CRANE" digest "$repo:gwcache")
	"$plugin" trustcache serve --buildkit "$E2E_BUILDKIT_ADDR" --listen "unix://$work/gw/buildkitd.sock" \
		--policy "$work/policy.yaml" --log-format json >gateway.log 2>&1 &
	gwpid=$!
	for _ in $(seq 1 100); do grep -q '"msg":"serving"' gateway.log && break; sleep 0.1; done
	grep -q '"msg":"serving"' gateway.log || { cat gateway.log >&2; exit 1; }
	"$docker" buildx create --name tc-bench-gw --driver remote "unix://$work/gw/buildkitd.sock" >/dev/null
	gwflags=(--builder tc-bench-gw --network "$E2E_NETWORK" --provenance=false)
	baseline=${BENCH_GATEWAY_BASELINE:-}
	if [[ -n $baseline ]]; then
		"$baseline" trustcache serve --buildkit "$E2E_BUILDKIT_ADDR" --listen "unix://$work/gwb/buildkitd.sock" \
			--policy "$work/policy.yaml" --log-format json >gateway-baseline.log 2>&1 &
		gwbpid=$!
		trap '[[ -z $gwpid ]] || { kill "$gwpid" 2>/dev/null; wait "$gwpid" 2>/dev/null; }; kill "$gwbpid" 2>/dev/null; rm -rf "$work"' EXIT
		for _ in $(seq 1 100); do grep -q '"msg":"serving"' gateway-baseline.log && break; sleep 0.1; done
		grep -q '"msg":"serving"' gateway-baseline.log || { cat gateway-baseline.log >&2; exit 1; }
		"$docker" buildx create --name tc-bench-gwb --driver remote "unix://$work/gwb/buildkitd.sock" >/dev/null
	fi
	ggwb0() { "$docker" buildx build --builder tc-bench-gwb --network "$E2E_NETWORK" --provenance=false -o "type=local,dest=$1" gwproject; }
	# Direct: the cache by its digest, from the registry. Through the gateway: by tag, verified and
	# rewritten to the verified content endpoint.
	gdirect() { "$docker" buildx build "${flags[@]}" --cache-from "type=registry,ref=$repo@$gdigest" -o "type=local,dest=$1" gwproject; }
	ggw() { "$docker" buildx build "${gwflags[@]}" --cache-from "type=registry,ref=$repo:gwcache" -o "type=local,dest=$1" gwproject; }
	# The same build without a cache import: what forwarding alone costs.
	gdirect0() { "$docker" buildx build "${flags[@]}" -o "type=local,dest=$1" gwproject; }
	ggw0() { "$docker" buildx build "${gwflags[@]}" -o "type=local,dest=$1" gwproject; }
	echo "measuring the gateway (medians of $runs runs)..." >&2
	for _ in 1 2; do gdirect gwout >/dev/null 2>&1 && ggw gwout >/dev/null 2>&1; done # warm-up
	[[ -z $baseline ]] || for _ in 1 2; do ggwb0 gwout >/dev/null 2>&1; done
	for f in gdirect.times ggw.times gdirect0.times ggw0.times; do : >"$f"; done
	cpu() { awk '{print $14 + $15}' "/proc/$gwpid/stat"; } # the gateway's CPU time, in clock ticks
	cpu0=$(cpu)
	for _ in $(seq 1 "$runs"); do
		timed gdirect gwout >>gdirect.times
		timed ggw gwout >>ggw.times
		timed gdirect0 gwout >>gdirect0.times
		timed ggw0 gwout >>ggw0.times
		[[ -z $baseline ]] || timed ggwb0 gwout >>ggwb0.times
	done
	cpu_build=$(awk -v a="$cpu0" -v b="$(cpu)" -v hz="$(getconf CLK_TCK)" -v n="$((2 * runs))" 'BEGIN{printf "%.1f ms", (b-a)/hz/n*1000}')
	t_gdirect=$(median <gdirect.times)
	t_ggw=$(median <ggw.times)
	t_gdirect0=$(median <gdirect0.times)
	t_ggw0=$(median <ggw0.times)
	[[ -z $baseline ]] || t_ggwb0=$(median <ggwb0.times)
	# 20 builds at once, through the gateway and directly, rounds in turn: each build's median
	# over the rounds, then per build the ratio gateway / direct.
	conc=${BENCH_CONCURRENT:-20}
	rounds=${BENCH_ROUNDS:-5}
	batch() { # MODE ROUND: $conc builds of MODE at once; times in MODE.I.times
		local i pids=()
		for i in $(seq 1 "$conc"); do
			timed "$1" "gwout-$1-$i" >>"$1.$i.times" &
			pids+=($!)
		done
		wait "${pids[@]}" # not the gateway
	}
	for r in $(seq 1 "$rounds"); do
		batch gdirect "$r"
		batch ggw "$r"
	done
	for f in cratios cdirect.all cgw.all; do : >"$f"; done
	for i in $(seq 1 "$conc"); do
		d=$(median <"gdirect.$i.times")
		g=$(median <"ggw.$i.times")
		echo "$d" >>cdirect.all
		echo "$g" >>cgw.all
		awk -v a="$g" -v b="$d" 'BEGIN{printf "%.4f\n", a/b}' >>cratios
	done
	t_cdirect=$(median <cdirect.all)
	t_cgw=$(median <cgw.all)
	max_cdirect=$(sort -n cdirect.all | tail -n1)
	max_cgw=$(sort -n cgw.all | tail -n1)
	worst=$(sort -n cratios | tail -n1)
	med_ratio=$(median <cratios)
	over=$(awk '$1 > 1.1' cratios | wc -l)
	hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$gwpid/status") # KiB
	rss=$(awk '/^VmRSS:/{print $2}' "/proc/$gwpid/status")
	used=$(grep -c '"action":"used"' gateway.log || true)
	gwtable=$(
		cat <<TABLE
| gateway measurement | through the gateway | directly against buildkitd | ratio |
|---|---|---|---|
| fully cached build (\`docker buildx build\`, same signed cache; medians of $runs) | $(ms "$t_ggw") | $(ms "$t_gdirect") | overhead $(awk -v a="$t_ggw" -v b="$t_gdirect" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}') |
| same build without a cache import (forwarding alone) | $(ms "$t_ggw0") | $(ms "$t_gdirect0") | overhead $(awk -v a="$t_ggw0" -v b="$t_gdirect0" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}') |
| the gateway's CPU time per build (user + system, over the $((2 * runs)) builds above) | $cpu_build | | |
| $conc fully cached builds at once: median build ($rounds rounds, each build's median) | $(ms "$t_cgw") | $(ms "$t_cdirect") | $(ratio "$t_cgw" "$t_cdirect") |
| same: slowest build | $(ms "$max_cgw") | $(ms "$max_cdirect") | $(ratio "$max_cgw" "$max_cdirect") |
| same: per build, gateway / direct | median $(awk -v r="$med_ratio" 'BEGIN{printf "%.2f", r}'), worst $(awk -v r="$worst" 'BEGIN{printf "%.2f", r}') | | $over of $conc builds over 1.1× |
| gateway peak RSS (VmHWM) after $((4 * runs + 4 + 2 * rounds * conc)) builds (half through it), $used imports used | $((hwm / 1024)) MiB (now $((rss / 1024)) MiB) | | |
TABLE
	)
	if [[ -n $baseline ]]; then
		gwtable+=$'\n'"| same, through the baseline gateway ($(basename "$baseline")) | $(ms "$t_ggwb0") | $(ms "$t_gdirect0") | overhead $(awk -v a="$t_ggwb0" -v b="$t_gdirect0" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}'); this build vs baseline $(ratio "$t_ggw0" "$t_ggwb0") |"
	fi
	table=$(printf '%s\n\n%s' "$table" "$gwtable")
fi
if [[ -z $only || $only == fallback ]]; then
	# An attack costs nothing (docs/fallback.md): a fresh agent (pruned builder, no ledger) builds a
	# multi-stage Dockerfile with --cache-from :main, once with :main the trusted builder's signed
	# cache, once with someone's own cache pushed under :main (the fallback imports the tag's last
	# trusted digest, found through its signed head record). Turn by turn, each build's output
	# checked against the trusted builder's; and the same build without a cache, which is what the
	# attack cost every agent before the fallback.
	mkdir fbproject
	cat >fbproject/Dockerfile <<DOCKERFILE
FROM $E2E_BASE_IMAGE AS deps
RUN for i in \$(seq 1 32); do head -c 1048576 /dev/urandom >/dep\$i; done && sleep 2
FROM $E2E_BASE_IMAGE AS build
COPY --from=deps / /deps/
RUN sha256sum /deps/dep* >/sums && sleep 2 && head -c 16 /dev/urandom | od -An -tx1 >/result.txt
FROM $E2E_BASE_IMAGE
COPY --from=build /sums /result.txt /
DOCKERFILE
	fbrepo=$E2E_REGISTRY/bench/fallback-$RANDOM$RANDOM
	fbflags=(--builder "$E2E_BUILDER" --network "$E2E_NETWORK" --provenance=false)
	"$docker" trustcache build "${fbflags[@]}" --sign --key ci.key \
		--cache-to "type=registry,ref=$fbrepo:main,mode=max" -o "type=local,dest=fbtrusted" fbproject >/dev/null 2>&1
	trusted=$("$E2E_CRANE" digest "$fbrepo:main")
	"$docker" buildx build "${fbflags[@]}" --no-cache \
		--cache-to "type=registry,ref=$fbrepo:main,mode=max" -o "type=local,dest=fbforged" fbproject >/dev/null 2>&1
	forged=$("$E2E_CRANE" digest "$fbrepo:main")
	fbprune() { "$docker" buildx prune --builder "$E2E_BUILDER" --all --force >/dev/null 2>&1; }
	fbbuild=("$docker" trustcache build "${fbflags[@]}" --no-ledger --cache-from "$fbrepo:main" -o "type=local,dest=fbout" fbproject)
	fbnocache=("$docker" buildx build "${fbflags[@]}" -o "type=local,dest=fbout" fbproject)
	fbrun() { # TAG-DIGEST TIMES-FILE COMMAND...: points :main at the digest, prunes, times the build
		local digest=$1 times=$2
		shift 2
		"$E2E_CRANE" tag "$fbrepo@$digest" main >/dev/null 2>&1
		fbprune
		rm -rf fbout
		timed "$@" >>"$times"
	}
	for f in fbplain.times fbattacked.times fbnocache.times; do : >"$f"; done
	for i in $(seq 1 "$runs"); do
		fbrun "$trusted" fbplain.times "${fbbuild[@]}"
		cmp -s fbout/result.txt fbtrusted/result.txt || echo "fallback bench: unattacked build $i: not the trusted output" >>"$work/failures"
		fbrun "$forged" fbattacked.times "${fbbuild[@]}"
		cmp -s fbout/result.txt fbtrusted/result.txt || echo "fallback bench: attacked build $i: not the trusted output" >>"$work/failures"
		if ((i <= 3)); then
			fbrun "$forged" fbnocache.times "${fbnocache[@]}"
		fi
	done
	t_fbplain=$(median <fbplain.times)
	t_fbatt=$(median <fbattacked.times)
	t_fbcold=$(median <fbnocache.times)
	fbtable=$(
		cat <<TABLE
| fallback measurement (fresh agent: pruned builder, no ledger) | attacked | not attacked | ratio |
|---|---|---|---|
| fully cached multi-stage build, \`--cache-from :main\`, someone's cache pushed as \`:main\` (fallback to the last trusted digest; medians of $runs, in turn) | $(ms "$t_fbatt") | $(ms "$t_fbplain") | $(ratio "$t_fbatt" "$t_fbplain")× (target ≤ 1.1×) |
| same build without a cache: what the attack cost before the fallback (median of 3) | $(ms "$t_fbcold") | $(ms "$t_fbplain") | $(ratio "$t_fbcold" "$t_fbplain")× |
TABLE
	)
	table=$(printf '%s\n\n%s' "$table" "$fbtable")
fi
if [[ -s $work/failures ]]; then
	echo "bench: $(wc -l <"$work/failures") measured commands failed, e.g.: $(head -n1 "$work/failures")" >&2
	exit 1
fi
echo "$table" | tee "${TRUSTCACHE_E2E_DIR:-/tmp/trustcache-e2e}/bench.md"
