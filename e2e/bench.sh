#!/usr/bin/env bash
# make bench: one run, one table. Measures docker trustcache against its baselines in the same run
# (cosign verify --key on the same ref; plain docker buildx build with the same cache), medians of
# several runs, and prints a Markdown table (also written to $TRUSTCACHE_E2E_DIR/bench.md).
# Needs the e2e services (make e2e-setup) and hyperfine (installed from Debian when absent).
set -euo pipefail

: "${E2E_REGISTRY:?source \$TRUSTCACHE_E2E_DIR/env first (make bench does)}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
docker=${E2E_DOCKER:-docker}
runs=${BENCH_RUNS:-15}
command -v hyperfine >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine >/dev/null

work=$(mktemp -d /tmp/trustcache-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/docker-config/cli-plugins" "$work/home"
# Build with the caller's Go caches, before HOME moves.
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/docker-config/cli-plugins/docker-trustcache" ./cmd/docker-trustcache)
# The start-up floor of a Go program on this machine: one that prints and exits.
mkdir "$work/hello"
printf 'module hello\n\ngo 1.21\n' >"$work/hello/go.mod"
printf 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("{}\\n") }\n' >"$work/hello/main.go"
(cd "$work/hello" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$work/hello-go" .)
export DOCKER_CONFIG=$work/docker-config HOME=$work/home
plugin=$DOCKER_CONFIG/cli-plugins/docker-trustcache
bash "$here/builder.sh" "$DOCKER_CONFIG" >/dev/null
export TRUSTCACHE_PASSWORD=bench COSIGN_PASSWORD=bench BUILDKIT_PROGRESS=plain DOCKER_CLI_HINTS=false
# cosign must not reach the public sigstore services: fail fast on loopback.
deadproxy=(env HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost)
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

echo "measuring (medians of $runs runs)..." >&2
t_cosign=$(hf cosign "${deadproxy[*]} $E2E_COSIGN verify --key ci.pub --insecure-ignore-tlog=true --trusted-root $E2E_TRUSTED_ROOT $repo@$digest")
t_cold=$(hf cold "$plugin trustcache verify --no-ledger $ref")
"$plugin" trustcache verify "$ref" >/dev/null
t_warm=$(hf warm "$plugin trustcache verify $ref")
t_docker=$(hf viadocker "$docker trustcache verify --no-ledger $ref")
t_50=$(hf fifty "$plugin trustcache verify --no-ledger ${refs[*]}")
t_meta=$(hf metadata "$plugin docker-cli-plugin-metadata")
t_help=$(hf help "$plugin trustcache --help")
t_hello=$(hf hello "$work/hello-go")
t_bxmeta=$(hf bxmeta "$DOCKER_CONFIG/cli-plugins/docker-buildx docker-cli-plugin-metadata")
m_cold=$(peak "$plugin" trustcache verify --no-ledger "$ref")
m_cosign=$(peak "${deadproxy[@]}" "$E2E_COSIGN" verify --key ci.pub --insecure-ignore-tlog=true --trusted-root "$E2E_TRUSTED_ROOT" "$repo@$digest")

# Build overhead on a fully cached build: trustcache build vs plain buildx build, same cache.
mkdir project
printf 'FROM %s\nRUN echo bench > /bench.txt\n' "$E2E_BASE_IMAGE" >project/Dockerfile
flags="--builder $E2E_BUILDER --network $E2E_NETWORK --provenance=false"
"$docker" trustcache build $flags --sign --key ci.key --cache-to "type=registry,ref=$repo:buildcache,mode=max" -o type=local,dest=out project >/dev/null 2>&1
cdigest=$("$E2E_CRANE" digest "$repo:buildcache")
# BuildKit's state drifts over a run (its cache metadata grows), which skews commands measured one
# after the other: the three builds are run in turn, round after round, and each one's median taken.
plain=("$docker" buildx build $flags --cache-from "type=registry,ref=$repo@$cdigest" -o type=local,dest=out project)
tcbuild=("$docker" trustcache build $flags --cache-from "$repo:buildcache" -o type=local,dest=out project)
# The floor: the buildx plugin run directly, as the docker CLI runs it (trustcache build runs it so).
direct=(env "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND=$docker" "$DOCKER_CONFIG/cli-plugins/docker-buildx" buildx build $flags --cache-from "type=registry,ref=$repo@$cdigest" -o type=local,dest=out project)
timed() { # COMMAND... -> seconds, to stdout; the command's output is discarded
	local start end
	start=$(date +%s%N)
	"$@" >/dev/null 2>&1 </dev/null
	end=$(date +%s%N)
	awk -v a="$start" -v b="$end" 'BEGIN{printf "%.6f\n", (b-a)/1e9}'
}
median() { sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
for _ in 1 2; do "${plain[@]}" >/dev/null 2>&1 && "${tcbuild[@]}" >/dev/null 2>&1 && "${direct[@]}" >/dev/null 2>&1; done # warm-up
: >plain.times >tcbuild.times >direct.times
for _ in $(seq 1 "$runs"); do
	timed "${plain[@]}" >>plain.times
	timed "${tcbuild[@]}" >>tcbuild.times
	timed "${direct[@]}" >>direct.times
done
t_plain=$(median <plain.times)
t_tc=$(median <tcbuild.times)
t_direct=$(median <direct.times)

table=$(
	cat <<TABLE
| measurement | trustcache | baseline | ratio |
|---|---|---|---|
| verify 1 signed ref, cold (no ledger) vs \`cosign verify --key\` | $(ms "$t_cold") | $(ms "$t_cosign") | cosign is $(ratio "$t_cosign" "$t_cold")× slower |
| verify 1 ref, warm (ledger) vs cold | $(ms "$t_warm") | $(ms "$t_cold") | $(ratio "$t_warm" "$t_cold") |
| verify 1 ref through the docker CLI (\`docker trustcache verify\`) | $(ms "$t_docker") | $(ms "$t_cold") | $(ratio "$t_docker" "$t_cold") |
| verify 50 refs vs 1 ref (cold) | $(ms "$t_50") | $(ms "$t_cold") | $(ratio "$t_50" "$t_cold") |
| \`docker-cli-plugin-metadata\` vs buildx's (the docker CLI runs it before every plugin command) | $(ms "$t_meta") | $(ms "$t_bxmeta") | buildx's is $(ratio "$t_bxmeta" "$t_meta")× slower |
| \`docker-cli-plugin-metadata\` vs a Go program that prints and exits (start-up floor) | $(ms "$t_meta") | $(ms "$t_hello") | $(ratio "$t_meta" "$t_hello") |
| \`docker trustcache --help\` (plugin binary) | $(ms "$t_help") | | |
| fully cached build: \`docker trustcache build\` vs \`docker buildx build\` (same cache) | $(ms "$t_tc") | $(ms "$t_plain") | overhead $(awk -v a="$t_tc" -v b="$t_plain" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}') |
| same, vs the buildx plugin run directly (no docker CLI) | $(ms "$t_tc") | $(ms "$t_direct") | overhead $(awk -v a="$t_tc" -v b="$t_direct" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}') |
| peak memory, verify 1 ref (cold) vs cosign | $((m_cold / 1024)) MiB | $((m_cosign / 1024)) MiB | $(ratio "$m_cosign" "$m_cold") |
TABLE
)
echo "$table" | tee "${TRUSTCACHE_E2E_DIR:-/tmp/trustcache-e2e}/bench.md"
