#!/usr/bin/env bash
# Usage: e2e/builder.sh DOCKER_CONFIG_DIR
# Makes DOCKER_CONFIG_DIR usable for the e2e builds: links the buildx binary as the
# docker-buildx CLI plugin and creates (or re-points) the buildx "remote" builder $E2E_BUILDER
# at buildkitd $E2E_BUILDKIT_ADDR. Builders live in the docker config dir, so every test that
# uses its own DOCKER_CONFIG runs this (or the equivalent). Idempotent.
# Reads E2E_BUILDX, E2E_BUILDER, E2E_BUILDKIT_ADDR, E2E_DOCKER from the environment, sourcing
# ${TRUSTCACHE_E2E_DIR:-/tmp/trustcache-e2e}/env when they are not set.
set -euo pipefail

[[ $# == 1 ]] || {
	echo "usage: $0 DOCKER_CONFIG_DIR" >&2
	exit 2
}
dir=$1

if [[ -z ${E2E_BUILDX:-} || -z ${E2E_BUILDER:-} || -z ${E2E_BUILDKIT_ADDR:-} ]]; then
	envfile=${TRUSTCACHE_E2E_DIR:-/tmp/trustcache-e2e}/env
	[[ -r $envfile ]] || {
		echo "builder.sh: E2E_* variables unset and no $envfile; run e2e/setup.sh" >&2
		exit 1
	}
	# shellcheck disable=SC1090
	. "$envfile"
fi
docker=${E2E_DOCKER:-docker}

mkdir -p "$dir/cli-plugins"
if [[ $(readlink "$dir/cli-plugins/docker-buildx" || true) != "$E2E_BUILDX" ]]; then
	ln -sfn "$E2E_BUILDX" "$dir/cli-plugins/docker-buildx"
fi

export DOCKER_CONFIG=$dir
if inspect=$("$docker" buildx inspect "$E2E_BUILDER" 2>/dev/null); then
	if grep -qE "^Endpoint:[[:space:]]+$E2E_BUILDKIT_ADDR\$" <<<"$inspect"; then
		exit 0
	fi
	"$docker" buildx rm "$E2E_BUILDER" >/dev/null
fi
"$docker" buildx create --driver remote --name "$E2E_BUILDER" "$E2E_BUILDKIT_ADDR" >/dev/null
