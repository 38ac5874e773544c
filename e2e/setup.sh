#!/usr/bin/env bash
# Installs and starts everything the e2e tests need on a Debian 12 machine, as root:
# e2e/install.sh (Debian's packages and the Go-built tools), then e2e/start.sh (dockerd, the
# registry, buildkitd and its buildx builder, Fulcio and the timestamp authority, the base image,
# the env file). Idempotent. Stop the services with e2e/teardown.sh.
#
# Environment:
#   TRUSTCACHE_E2E_DIR  state dir: pid files, logs, data, sockets, env (default /tmp/trustcache-e2e)
#   TRUSTCACHE_TOOLS    where the Go-built tools go (default ~/.cache/trustcache-e2e/bin)
#
# Afterwards: source "$TRUSTCACHE_E2E_DIR/env" && go test -tags e2e ./e2e/...
set -euo pipefail

here=$(dirname "${BASH_SOURCE[0]}")
start=$SECONDS
bash "$here/install.sh"
bash "$here/start.sh"
printf '[e2e %s] setup complete in %ss\n' "$(date +%H:%M:%S)" "$((SECONDS - start))" >&2
