#!/usr/bin/env bash
# Stops what e2e/setup.sh started (timestamp authority, Fulcio, buildkitd, registry, dockerd), by the PIDs in its pid files,
# and waits for each to exit. Leaves the tools, the data and the env file in place, so the next
# setup.sh only restarts the services. Idempotent.
set -euo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# stop NAME PIDFILE [TIMEOUT]: SIGTERM, wait up to TIMEOUT seconds, then SIGKILL.
stop() {
	local name=$1 pidfile=$2 timeout=${3:-20}
	local start=$SECONDS
	if ! pid_alive "$pidfile" "$name"; then
		rm -f "$pidfile"
		log "$name: not running (0s)"
		return
	fi
	local pid
	pid=$(<"$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + timeout)) killed=
	while pid_alive "$pidfile" "$name"; do
		if ((SECONDS >= deadline)); then
			[[ -z $killed ]] || die "$name: pid $pid survived SIGKILL for 10s"
			log "$name: pid $pid still running after ${timeout}s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			killed=1
			deadline=$((SECONDS + 10))
		fi
		sleep 0.1
	done
	rm -f "$pidfile"
	log "$name: stopped pid $pid ($((SECONDS - start))s)"
}

[[ -d $STATE ]] || {
	log "no state dir $STATE; nothing to stop"
	exit 0
}
stop timestamp-server "$STATE/run/timestamp-server.pid"
stop fulcio "$STATE/run/fulcio.pid"
stop buildkitd "$STATE/run/buildkitd.pid"
stop registry "$STATE/run/registry.pid"
# dockerd's own pid file, or the launcher's if setup.sh stopped before dockerd wrote its own.
if [[ -e $STATE/run/dockerd.launch.pid ]]; then
	stop dockerd "$STATE/run/dockerd.launch.pid" 30
fi
stop dockerd "$STATE/run/dockerd.pid" 30
