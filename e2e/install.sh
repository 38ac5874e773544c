#!/usr/bin/env bash
# Installs what the e2e tests and checks need on a Debian 12 machine, as root, and starts nothing:
# Debian's docker.io (dockerd 20.10, runc), busybox-static (the offline base image) and shellcheck;
# and, built from the Go module proxy into $TRUSTCACHE_TOOLS, buildkitd/buildctl v0.34.2, buildx,
# docker compose v5 (a CLI plugin), distribution's registry v3, crane, cosign v2 and v3, Fulcio and a
# timestamp authority.
# Idempotent: what is installed at the pinned version is skipped. e2e/start.sh starts the services.
#
#   bash e2e/install.sh          everything
#   bash e2e/install.sh --apt    Debian's packages only (what `make vet` needs: shellcheck)
#
# Environment: TRUSTCACHE_E2E_DIR (logs; default /tmp/trustcache-e2e), TRUSTCACHE_TOOLS (where the
# Go-built tools go; default ~/.cache/trustcache-e2e/bin).
set -euo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=e2e/sigstore.sh
. "$(dirname "${BASH_SOURCE[0]}")/sigstore.sh"

[[ $(id -u) == 0 ]] || die "install.sh must run as root (apt-get)"

APT_PACKAGES=(docker.io busybox-static shellcheck)
TOTAL_START=$SECONDS
mkdir -p "$STATE"/logs "$TOOLS"
STATE=$(cd "$STATE" && pwd)
TOOLS=$(cd "$TOOLS" && pwd)
export PATH="$TOOLS:$PATH"

# ---------------------------------------------------------------- apt
apt_packages() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		note "skipped (${APT_PACKAGES[*]} already installed)"
		return
	fi
	# No init system here, but never let a postinst start a second dockerd.
	local made_policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local rc=0
	{
		DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	} >"$STATE/logs/apt.log" 2>&1 || rc=$?
	if [[ -n $made_policy ]]; then
		rm -f /usr/sbin/policy-rc.d
	fi
	if ((rc != 0)); then
		tail -n 30 "$STATE/logs/apt.log" >&2
		die "apt-get failed (log: $STATE/logs/apt.log)"
	fi
	note "installed ${missing[*]}"
}

# ---------------------------------------------------------------- Go-built tools
go_install_to() { # GOBIN_DIR PKG@VERSION
	GOBIN=$1 go install "$2"
}

install_cosign3() {
	local tmp
	tmp=$(mktemp -d)
	GOBIN=$tmp go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN3_VERSION"
	mv -f "$tmp/cosign" "$TOOLS/cosign3"
	rm -rf "$tmp"
}

install_buildkit() {
	# `go install github.com/moby/buildkit/cmd/buildkitd@…` is refused: buildkit's go.mod has
	# exclude directives. Build inside a writable copy of the downloaded module instead.
	local tmp dir
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && go mod download -json "github.com/moby/buildkit@$BUILDKIT_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n $dir && -d $dir ]] || die "go mod download of buildkit $BUILDKIT_VERSION gave no Dir"
	cp -r "$dir" "$tmp/src"
	chmod -R u+w "$tmp/src"
	local ldflags="-X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION"
	ldflags+=" -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
	(cd "$tmp/src" && CGO_ENABLED=0 go build -mod=mod -ldflags "$ldflags" -o "$tmp/out/" ./cmd/buildkitd ./cmd/buildctl)
	mv -f "$tmp/out/buildkitd" "$tmp/out/buildctl" "$TOOLS/"
	rm -rf "$tmp"
}

# docker compose v5 as a CLI plugin ($TOOLS/docker-compose). `go install …@version` is refused
# (compose's go.mod has exclude directives): build inside a writable copy of the module, as for
# buildkit, with the version stamped (compose reports it, and docker lists the plugin by it).
install_compose() {
	local tmp dir
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && go mod download -json "github.com/docker/compose/v5@$COMPOSE_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n $dir && -d $dir ]] || die "go mod download of compose $COMPOSE_VERSION gave no Dir"
	cp -r "$dir" "$tmp/src"
	chmod -R u+w "$tmp/src"
	(cd "$tmp/src" && CGO_ENABLED=0 go build -mod=mod -trimpath \
		-ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION" \
		-o "$tmp/docker-compose" ./cmd)
	mv -f "$tmp/docker-compose" "$TOOLS/docker-compose"
	rm -rf "$tmp"
}

# tool_ok NAME: the pinned version of NAME is installed in $TOOLS.
tool_ok() {
	case $1 in
	# buildx must also report its version (compose refuses a buildx that says v0.0.0+unknown).
	buildx)
		[[ $(mod_version "$TOOLS/buildx" github.com/docker/buildx) == "$BUILDX_VERSION" ]] &&
			"$TOOLS/buildx" version 2>/dev/null | grep -qE " $BUILDX_VERSION( |$)"
		;;
	compose) [[ -x $TOOLS/docker-compose ]] && "$TOOLS/docker-compose" version 2>/dev/null | grep -qF " $COMPOSE_VERSION" ;;
	buildkit)
		[[ -x $TOOLS/buildkitd && -x $TOOLS/buildctl ]] &&
			"$TOOLS/buildkitd" --version 2>/dev/null | grep -qF " $BUILDKIT_VERSION" &&
			"$TOOLS/buildctl" --version 2>/dev/null | grep -qF " $BUILDKIT_VERSION"
		;;
	registry) [[ $(mod_version "$TOOLS/registry" github.com/distribution/distribution/v3) == "$REGISTRY_VERSION" ]] ;;
	cosign) [[ $(mod_version "$TOOLS/cosign" github.com/sigstore/cosign/v2) == "$COSIGN_VERSION" ]] ;;
	cosign3) [[ $(mod_version "$TOOLS/cosign3" github.com/sigstore/cosign/v3) == "$COSIGN3_VERSION" ]] ;;
	crane) [[ $(mod_version "$TOOLS/crane" github.com/google/go-containerregistry) == "$CRANE_VERSION" ]] ;;
	fulcio) fulcio_ok ;;
	timestamp-server) tsa_ok ;;
	*) die "unknown tool $1" ;;
	esac
}

install_tool() {
	case $1 in
	buildx)
		GOBIN=$TOOLS go install -ldflags "-X github.com/docker/buildx/version.Version=$BUILDX_VERSION" \
			"github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION"
		;;
	compose) install_compose ;;
	buildkit) install_buildkit ;;
	registry) go_install_to "$TOOLS" "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" ;;
	cosign) go_install_to "$TOOLS" "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" ;;
	cosign3) install_cosign3 ;;
	crane) go_install_to "$TOOLS" "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" ;;
	fulcio) install_fulcio ;;
	timestamp-server) install_tsa ;;
	esac
}

# Two build lanes run in parallel; each builds its tools one after the other, so a tool reuses
# the build cache of the one before it (buildx after buildkit, cosign v3 after v2). Concurrent
# go commands compiling the same dependencies would each compile them: on 2 cores that made
# six parallel installs slower than two lanes.
LANES=("buildkit buildx compose registry fulcio" "crane cosign cosign3 timestamp-server")
LANE_PIDS=()
TOOLS_WANT=()
TOOLS_START=0

# lane NAME...: builds each NAME (logging one line per tool); fails if any failed.
lane() {
	local name rc failed=0 start
	for name in "$@"; do
		start=$SECONDS
		rc=0
		# A plain background job, so `set -e` holds inside the installer functions.
		(install_tool "$name") >"$STATE/logs/install-$name.log" 2>&1 &
		wait "$!" || rc=$?
		if ((rc == 0)) && tool_ok "$name"; then
			log "tool $name: built ($((SECONDS - start))s)"
		else
			log "tool $name: FAILED (exit $rc) after $((SECONDS - start))s; last lines of $STATE/logs/install-$name.log:"
			tail -n 25 "$STATE/logs/install-$name.log" >&2
			failed=1
		fi
	done
	return "$failed"
}

# tools_start starts the lanes for the tools that are missing, in the background.
tools_start() {
	command -v go >/dev/null || die "go is not on PATH"
	TOOLS_START=$SECONDS
	local spec name todo
	for spec in "${LANES[@]}"; do
		todo=()
		for name in $spec; do
			tool_ok "$name" || todo+=("$name")
		done
		((${#todo[@]} > 0)) || continue
		TOOLS_WANT+=("${todo[@]}")
		lane "${todo[@]}" &
		LANE_PIDS+=("$!")
	done
	if ((${#TOOLS_WANT[@]} > 0)); then
		log "tools: building ${TOOLS_WANT[*]} into $TOOLS (logs: $STATE/logs/install-*.log)"
	fi
}

tools_wait() {
	STEP_START=$TOOLS_START
	if ((${#TOOLS_WANT[@]} == 0)); then
		note "skipped (pinned versions present in $TOOLS)"
		return
	fi
	local pid failed=0
	for pid in "${LANE_PIDS[@]}"; do
		wait "$pid" || failed=1
	done
	((failed == 0)) || die "tool builds failed (logs: $STATE/logs/install-*.log)"
	note "built ${TOOLS_WANT[*]}"
}


if [[ ${1:-} == --apt ]]; then
	step "apt (${APT_PACKAGES[*]})" apt_packages
	exit 0
fi
[[ $# == 0 ]] || die "usage: install.sh [--apt]"
DOCKER=$(docker_cli)
tools_start
step "apt (${APT_PACKAGES[*]})" apt_packages
[[ $(docker_cli) == "$DOCKER" ]] || die "docker CLI changed after apt install: $(docker_cli)"
log "docker CLI: $DOCKER ($("$DOCKER" --version))"
step "tools (buildkit, buildx, compose, registry, crane, cosign, cosign3, fulcio, timestamp-server)" tools_wait
log "install complete in $((SECONDS - TOTAL_START))s"
