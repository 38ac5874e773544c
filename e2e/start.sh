#!/usr/bin/env bash
# Starts what the e2e tests need, from what e2e/install.sh installed, as root: dockerd 20.10 on its
# own socket, a distribution v3 registry on 127.0.0.1:5000, buildkitd v0.34.2 behind a buildx
# "remote" builder, the keyless signing services (Fulcio and a timestamp authority: e2e/sigstore.sh),
# an offline busybox base image in the registry, and the env file the tests source.
# Idempotent: a service already running is left alone. Stop them with e2e/teardown.sh.
#
# Environment: TRUSTCACHE_E2E_DIR (state: pid files, logs, data, sockets, env; default
# /tmp/trustcache-e2e), TRUSTCACHE_TOOLS (the Go-built tools; default ~/.cache/trustcache-e2e/bin).
set -euo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=e2e/sigstore.sh
. "$(dirname "${BASH_SOURCE[0]}")/sigstore.sh"

[[ $(id -u) == 0 ]] || die "start.sh must run as root (dockerd and buildkitd need it)"

TOTAL_START=$SECONDS
mkdir -p "$STATE"/{logs,run,data}
STATE=$(cd "$STATE" && pwd)
[[ -d $TOOLS ]] || die "$TOOLS does not exist: run e2e/install.sh first"
TOOLS=$(cd "$TOOLS" && pwd)
export PATH="$TOOLS:$PATH"

DOCKER_SOCK=$STATE/run/docker.sock
BUILDKIT_SOCK=$STATE/run/buildkitd.sock
export DOCKER_HOST=unix://$DOCKER_SOCK
DOCKER_CONFIG_DIR=$STATE/docker-config
TRUSTED_ROOT=$STATE/trusted_root.json
KEYLESS_DIR=$STATE/keyless
KEYLESS_TRUSTED_ROOT=$KEYLESS_DIR/trusted_root.json
KEYLESS_SIGNING_CONFIG=$KEYLESS_DIR/signing_config.json

# ---------------------------------------------------------------- services
dockerd_ready() { "$DOCKER" info; }

start_dockerd() {
	# dockerd writes --pidfile itself (and refuses to start if it names a live process), so the
	# launcher records the same PID in dockerd.launch.pid until dockerd's own file appears.
	local pidfile=$STATE/run/dockerd.pid launch=$STATE/run/dockerd.launch.pid
	local logfile=$STATE/logs/dockerd.log
	if pid_alive "$pidfile" dockerd && dockerd_ready >/dev/null 2>&1; then
		note "skipped (running, pid $(<"$pidfile"))"
		return
	fi
	command -v dockerd >/dev/null || die "dockerd not found (is docker.io installed?)"
	if pid_alive "$pidfile" dockerd; then
		cp "$pidfile" "$launch"
	elif ! pid_alive "$launch" dockerd; then
		rm -f "$pidfile" "$DOCKER_SOCK"
		mkdir -p "$STATE/data/docker" "$STATE/run/docker-exec"
		# Own daemon.json so nothing from /etc/docker leaks in.
		echo '{}' >"$STATE/data/daemon.json"
		start_bg dockerd "$logfile" "$launch" \
			dockerd \
			--config-file "$STATE/data/daemon.json" \
			--data-root "$STATE/data/docker" \
			--exec-root "$STATE/run/docker-exec" \
			--pidfile "$pidfile" \
			-H "unix://$DOCKER_SOCK" \
			--iptables=false --ip-masq=false --bridge=none
	fi
	wait_ready dockerd "$launch" dockerd "$logfile" 60 dockerd_ready
	[[ $(<"$pidfile") == "$(<"$launch")" ]] || die "dockerd pid file $pidfile does not match the started process"
	rm -f "$launch"
	note "started (pid $(<"$pidfile"), engine $("$DOCKER" version -f '{{.Server.Version}}'))"
}

# registry_ready: GET /v2/ answers 200 (plain bash: a bare Debian has no curl).
registry_ready() {
	(
		exec 3<>"/dev/tcp/${REGISTRY_ADDR%:*}/${REGISTRY_ADDR##*:}" || exit 1
		printf 'GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n' "$REGISTRY_ADDR" >&3
		IFS= read -r -t 5 status <&3 && [[ $status == "HTTP/1."?" 200"* ]]
	) 2>/dev/null
}

start_registry() {
	local pidfile=$STATE/run/registry.pid logfile=$STATE/logs/registry.log
	if pid_alive "$pidfile" registry && registry_ready; then
		note "skipped (running, pid $(<"$pidfile"))"
		return
	fi
	if ! pid_alive "$pidfile" registry && registry_ready; then
		die "something else already answers on $REGISTRY_ADDR (not started by this script); stop it first"
	fi
	mkdir -p "$STATE/data/registry"
	cat >"$STATE/data/registry.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STATE/data/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  secret: trustcache-e2e-loopback-only
EOF
	if ! pid_alive "$pidfile" registry; then
		# OTEL_TRACES_EXPORTER=none: distribution v3 otherwise tries to export traces.
		start_bg registry "$logfile" "$pidfile" \
			env OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true \
			"$TOOLS/registry" serve "$STATE/data/registry.yml"
	fi
	wait_ready registry "$pidfile" registry "$logfile" 30 registry_ready
	note "started (pid $(<"$pidfile"), $REGISTRY_ADDR)"
}

buildkitd_ready() { "$TOOLS/buildctl" --addr "unix://$BUILDKIT_SOCK" debug workers; }

start_buildkitd() {
	local pidfile=$STATE/run/buildkitd.pid logfile=$STATE/logs/buildkitd.log
	if pid_alive "$pidfile" buildkitd && buildkitd_ready >/dev/null 2>&1; then
		note "skipped (running, pid $(<"$pidfile"))"
		return
	fi
	local runc
	runc=$(command -v runc) || die "runc not found (is docker.io installed?)"
	mkdir -p "$STATE/data/buildkit"
	cat >"$STATE/data/buildkitd.toml" <<EOF
root = "$STATE/data/buildkit"
# Lets builds ask for --network=host; the default for RUN is host too (networkMode below).
insecure-entitlements = ["network.host"]

[grpc]
  address = ["unix://$BUILDKIT_SOCK"]

[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  binary = "$runc"
  networkMode = "host"
  gc = true

[worker.containerd]
  enabled = false

[registry."$REGISTRY_ADDR"]
  http = true
  insecure = true
EOF
	if ! pid_alive "$pidfile" buildkitd; then
		rm -f "$BUILDKIT_SOCK"
		start_bg buildkitd "$logfile" "$pidfile" \
			"$TOOLS/buildkitd" --config "$STATE/data/buildkitd.toml"
	fi
	wait_ready buildkitd "$pidfile" buildkitd "$logfile" 60 buildkitd_ready
	note "started (pid $(<"$pidfile"), unix://$BUILDKIT_SOCK)"
}

# ---------------------------------------------------------------- buildx plugin and builder
install_buildx_plugin() {
	local dir
	for dir in "$DOCKER_CONFIG_DIR" "${DOCKER_CONFIG:-$HOME/.docker}"; do
		E2E_BUILDX="$TOOLS/buildx" E2E_BUILDER="$BUILDER_NAME" E2E_BUILDKIT_ADDR="unix://$BUILDKIT_SOCK" \
			E2E_DOCKER="$DOCKER" bash "$E2E_SCRIPTS/builder.sh" "$dir"
	done
	note "docker-buildx linked and builder $BUILDER_NAME ensured in $DOCKER_CONFIG_DIR and ${DOCKER_CONFIG:-$HOME/.docker}"
}

# ---------------------------------------------------------------- base image
base_image() {
	if crane digest "$BASE_IMAGE" >/dev/null 2>&1; then
		note "skipped ($BASE_IMAGE already in the registry)"
		return
	fi
	[[ -x /bin/busybox ]] || die "/bin/busybox missing (is busybox-static installed?)"
	local tmp
	tmp=$(mktemp -d)
	local root=$tmp/rootfs
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var/tmp}
	chmod 1777 "$root/tmp" "$root/var/tmp"
	cp /bin/busybox "$root/bin/busybox"
	local applet
	for applet in $(/bin/busybox --list); do
		[[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c . |
		"$DOCKER" import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'CMD ["/bin/sh"]' \
			- "$BASE_IMAGE" >/dev/null
	rm -rf "$tmp"
	"$DOCKER" push -q "$BASE_IMAGE" >"$STATE/logs/base-image-push.log" 2>&1 ||
		{ cat "$STATE/logs/base-image-push.log" >&2 && die "pushing $BASE_IMAGE failed"; }
	note "imported and pushed $BASE_IMAGE@$(crane digest "$BASE_IMAGE")"
}

# ---------------------------------------------------------------- env file
write_env() {
	echo '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}' >"$TRUSTED_ROOT"
	local tmp=$STATE/env.tmp
	{
		echo "# Written by e2e/start.sh; source it before go test -tags e2e ./e2e/..."
		printf 'export %s=%q\n' \
			TRUSTCACHE_E2E_DIR "$STATE" \
			TRUSTCACHE_TOOLS "$TOOLS" \
			DOCKER_HOST "unix://$DOCKER_SOCK" \
			E2E_DOCKER "$DOCKER" \
			E2E_DOCKER_CONFIG "$DOCKER_CONFIG_DIR" \
			E2E_REGISTRY "$REGISTRY_ADDR" \
			E2E_BUILDKIT_ADDR "unix://$BUILDKIT_SOCK" \
			E2E_BUILDER "$BUILDER_NAME" \
			E2E_BUILDER_CREATE "bash $E2E_SCRIPTS/builder.sh" \
			E2E_BASE_IMAGE "$BASE_IMAGE" \
			E2E_NETWORK none \
			E2E_BUILDX "$TOOLS/buildx" \
			E2E_COSIGN "$TOOLS/cosign" \
			E2E_COSIGN3 "$TOOLS/cosign3" \
			E2E_CRANE "$TOOLS/crane" \
			E2E_TRUSTED_ROOT "$TRUSTED_ROOT"
		sigstore_env
		# Tools first, then /usr/local/bin so the docker CLI 28.x wins over apt's /usr/bin/docker.
		# shellcheck disable=SC2016 # $PATH is expanded where the env file is sourced
		printf 'export PATH=%q:/usr/local/bin:"$PATH"\n' "$TOOLS"
	} >"$tmp"
	mv -f "$tmp" "$STATE/env"
	note "$STATE/env"
}

# ---------------------------------------------------------------- smoke
smoke() {
	local tmp
	tmp=$(mktemp -d)
	printf 'FROM %s\nRUN echo hi > /x && cat /x\n' "$BASE_IMAGE" >"$tmp/Dockerfile"
	DOCKER_CONFIG=$DOCKER_CONFIG_DIR "$DOCKER" buildx build --builder "$BUILDER_NAME" \
		--network=none --no-cache --progress=plain "$tmp" >"$STATE/logs/smoke-remote.log" 2>&1 ||
		{ tail -n 30 "$STATE/logs/smoke-remote.log" >&2 && die "smoke build on the remote builder failed"; }
	DOCKER_CONFIG=$DOCKER_CONFIG_DIR "$DOCKER" buildx build --builder default \
		--network=none --no-cache --progress=plain "$tmp" >"$STATE/logs/smoke-docker.log" 2>&1 ||
		{ tail -n 30 "$STATE/logs/smoke-docker.log" >&2 && die "smoke build on the docker driver failed"; }
	rm -rf "$tmp"
	note "OK (RUN with --network=none on $BUILDER_NAME and on the docker driver)"
}

DOCKER=$(docker_cli)
step "env file" write_env
step "dockerd" start_dockerd
step "registry" start_registry
step "buildkitd" start_buildkitd
step "fulcio" start_fulcio
step "timestamp authority" start_tsa
step "sigstore trust files" sigstore_trust_files
step "buildx plugin and remote builder" install_buildx_plugin
step "base image" base_image
step "smoke builds" smoke
log "start complete in $((SECONDS - TOTAL_START))s; source $STATE/env"
