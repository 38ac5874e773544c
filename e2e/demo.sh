#!/usr/bin/env bash
# The headline scenario, narrated: a trusted builder signs the cache it exports, a fresh builder
# reuses it, and an attacker who can push the cache tag cannot poison the next build.
# Run through `make demo` (which runs e2e/setup.sh and installs the plugin first).
set -euo pipefail

: "${E2E_REGISTRY:?source \$TRUSTCACHE_E2E_DIR/env first (make demo does)}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
docker=${E2E_DOCKER:-docker}
work=$(mktemp -d /tmp/trustcache-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The demo's own docker config: the installed plugin, buildx and the remote builder.
export DOCKER_CONFIG=$work/docker-config
mkdir -p "$DOCKER_CONFIG/cli-plugins"
plugin=${TRUSTCACHE_PLUGIN:-${HOME}/.docker/cli-plugins/docker-trustcache}
cp "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-trustcache"
bash "$here/builder.sh" "$DOCKER_CONFIG" >/dev/null
export TRUSTCACHE_PASSWORD=demo BUILDKIT_PROGRESS=plain DOCKER_CLI_HINTS=false
cd "$work"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
log() { printf '   %s\n' "$*"; }
build_flags=(--builder "$E2E_BUILDER" --network "$E2E_NETWORK" --provenance=false)
repo=$E2E_REGISTRY/demo/app-cache-$RANDOM$RANDOM
cache=$repo:main
prune() { "$docker" buildx prune --builder "$E2E_BUILDER" --all --force >/dev/null; }
result() { cat "$1/result.txt"; }

mkdir project
cat >project/Dockerfile <<DOCKERFILE
FROM $E2E_BASE_IMAGE
RUN echo trustcache-demo > /step1.txt
RUN sleep 3 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /expensive.txt
RUN cp /expensive.txt /result.txt
DOCKERFILE

say "Keys: the trusted CI builder and an attacker each make a key pair"
"$docker" trustcache keys generate --name builder-a 2>/dev/null | sed 's/^/   builder-a key id: /'
"$docker" trustcache keys generate --name attacker 2>/dev/null | sed 's/^/   attacker key id:  /'
cat >.trustcache.yaml <<POLICY
version: 1
builders:
  - name: builder-a
    key: builder-a.pub
scopes:
  - repositories: ["$repo"]
    builders: [builder-a]
    onUntrusted: drop
POLICY
sed "s/onUntrusted: drop/onUntrusted: fail/" .trustcache.yaml >fail-policy.yaml
log "policy: only builder-a may sign caches in $repo"

say "Builder A builds (the expensive step takes 3 s), exports its cache to $cache and signs it"
prune
start=$SECONDS
"$docker" trustcache build "${build_flags[@]}" --sign --key builder-a.key --trust-report a.json \
	--cache-to "type=registry,ref=$cache,mode=max" -o type=local,dest=out-a project >a.log 2>&1 ||
	{ tail -n 30 a.log; exit 1; }
signed=$(sed -n 's/.*"reference": "\(.*\)",/\1/p' a.json | head -n1)
log "built in $((SECONDS - start)) s; its expensive step wrote $(result out-a)"
log "signed the exported cache by the digest the build reported: $signed"

consume() { # POLICY OUT -> runs a consumer build on a pruned builder
	# --no-ledger: as on another machine. This one's ledger holds what builder A signed here, and
	# would spare the signature fetch.
	prune
	"$docker" trustcache build "${build_flags[@]}" --no-ledger --trust-policy "$1" --cache-from "$cache" \
		-o "type=local,dest=$2" project >"$2.log" 2>&1
}
why() { sed -n 's/^WARNING: trustcache: //p' "$1.log" | head -n1; }

say "A fresh builder (pruned) builds the same Dockerfile with --cache-from $cache"
start=$SECONDS
consume .trustcache.yaml out-1 || { tail -n 30 out-1.log; exit 1; }
log "$(grep -c ' CACHED$' out-1.log) steps CACHED, built in $((SECONDS - start)) s"
log "its result: $(result out-1) — builder A's: $([[ $(result out-1) == $(result out-a) ]] && echo yes || echo NO)"
log "trustcache pinned the import to $(sed -n 's/.*pinned to \([^,]*\).*/\1/p' out-1.log | head -n1)"

say "The attacker builds on its own machine and pushes its cache to the same tag, signed with its own key"
prune
"$docker" buildx build "${build_flags[@]}" --cache-to "type=registry,ref=$cache,mode=max" \
	-o type=local,dest=out-x project >x.log 2>&1 || { tail -n 30 x.log; exit 1; }
"$docker" trustcache sign --key attacker.key "$cache" >/dev/null 2>&1
log "the tag now holds the attacker's cache, whose result is $(result out-x)"

say "The next build verifies the cache first"
consume .trustcache.yaml out-2 || { tail -n 30 out-2.log; exit 1; }
log "trustcache $(why out-2)"
log "its result: $(result out-2) — the attacker's: $([[ $(result out-2) == $(result out-x) ]] && echo YES || echo no) (it built from scratch)"

say "With onUntrusted: fail the build does not even start"
if consume fail-policy.yaml out-3; then
	log "UNEXPECTED: it built"
	exit 1
else
	log "exit status $? — $(grep -m1 'not building' out-3.log || true)"
fi

say "The tag is moved back to builder A's signed digest"
"$E2E_CRANE" tag "$signed" main >/dev/null 2>&1
consume .trustcache.yaml out-4 || { tail -n 30 out-4.log; exit 1; }
log "its result: $(result out-4) — builder A's: $([[ $(result out-4) == $(result out-a) ]] && echo yes || echo NO), $(grep -c ' CACHED$' out-4.log) steps CACHED"

say "What happened"
log "builder A's cache was trusted (signed by an allowed key, for this repository and digest) and reused;"
log "the attacker's cache was refused (its key is not in the policy), dropped or failing the build as the"
log "policy said; no build ever contained the attacker's output."
