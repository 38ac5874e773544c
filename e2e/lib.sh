# shellcheck shell=bash
# Shared settings and helpers for e2e/install.sh, e2e/start.sh, e2e/teardown.sh and e2e/builder.sh.
# Sourced, never executed.

# shellcheck disable=SC2034
E2E_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${TRUSTCACHE_E2E_DIR:-/tmp/trustcache-e2e}
TOOLS=${TRUSTCACHE_TOOLS:-$HOME/.cache/trustcache-e2e/bin}

# The settings below are read by the scripts that source this file.
# shellcheck disable=SC2034
REGISTRY_ADDR=127.0.0.1:5000
# shellcheck disable=SC2034
BUILDER_NAME=trustcache-e2e
# shellcheck disable=SC2034
BASE_IMAGE=$REGISTRY_ADDR/e2e/busybox:latest

# Pinned tool versions (read by install.sh).
# shellcheck disable=SC2034
BUILDX_VERSION=v0.38.2
# shellcheck disable=SC2034
COMPOSE_VERSION=v5.6.0
# shellcheck disable=SC2034
BUILDKIT_VERSION=v0.34.2
# shellcheck disable=SC2034
REGISTRY_VERSION=v3.0.0
# shellcheck disable=SC2034
COSIGN_VERSION=v2.6.5
# shellcheck disable=SC2034
COSIGN3_VERSION=v3.1.3
# shellcheck disable=SC2034
CRANE_VERSION=v0.22.1

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# step NAME FUNC [ARGS...]: runs FUNC and logs one line with its duration. FUNC may describe
# what it did with `note` (e.g. "skipped (...)") and move the start time back via STEP_START.
step() {
	local name=$1
	shift
	STEP_START=$SECONDS
	STEP_NOTE="done"
	"$@"
	log "$name: $STEP_NOTE ($((SECONDS - STEP_START))s)"
}
note() { STEP_NOTE=$*; }

# The docker CLI the tests use: the one in /usr/local/bin (28.x), never apt's 20.10 client.
docker_cli() {
	if [[ -x /usr/local/bin/docker ]]; then
		echo /usr/local/bin/docker
	else
		command -v docker || die "no docker CLI found"
	fi
}

# pid_alive PIDFILE NAME: true when PIDFILE names a live process whose command is NAME.
pid_alive() {
	local pidfile=$1 name=$2 pid comm
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	comm=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)
	[[ $(basename "$comm") == "$name" ]]
}

# mod_version BIN MODULE: the version of MODULE that BIN was built from ("" if none).
mod_version() {
	[[ -x $1 ]] || return 0
	go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

# start_bg NAME LOGFILE PIDFILE CMD...: starts CMD in its own session, detached from this
# script (so it outlives it), and records its PID (the exec'd process, not a wrapper).
start_bg() {
	local name=$1 logfile=$2 pidfile=$3
	shift 3
	rm -f "$pidfile"
	# shellcheck disable=SC2016 # $$ and $@ are the child shell's
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
	for _ in $(seq 50); do
		[[ -s $pidfile ]] && return 0
		sleep 0.1
	done
	die "$name: no pid file after 5s"
}

# wait_ready NAME PIDFILE PROCNAME LOGFILE SECONDS CHECK...: polls CHECK until it succeeds.
wait_ready() {
	local name=$1 pidfile=$2 proc=$3 logfile=$4 secs=$5
	shift 5
	local deadline=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		if ! pid_alive "$pidfile" "$proc"; then
			log "$name exited during start-up; last lines of $logfile:"
			tail -n 30 "$logfile" >&2
			die "$name did not start"
		fi
		if ((SECONDS >= deadline)); then
			log "$name not ready after ${secs}s; last lines of $logfile:"
			tail -n 30 "$logfile" >&2
			die "$name did not become ready"
		fi
		sleep 0.2
	done
}
