#!/usr/bin/env bash
# shellcheck shell=bash
# The keyless signing services of the e2e tests, on 127.0.0.1 only: a real Fulcio (ephemeral CA,
# no CT log) and a real RFC 3161 timestamp authority (in-memory signer), plus the trust files made
# from what they serve (a sigstore trusted root and a signing config, both written by cosign v3).
# The OIDC issuers Fulcio trusts run inside the e2e test binary (e2e/oidc_test.go), on the fixed
# loopback ports below, which Fulcio's config must name when it starts.
#
# Sourced by e2e/install.sh (which builds the tools in its lanes) and e2e/start.sh (which calls start_fulcio, start_tsa and
# sigstore_trust_files); run directly (bash e2e/sigstore.sh) it installs what is missing, starts
# both services, writes the trust files and $STATE/sigstore.env, and touches nothing else.
# The CA and TSA keys live in memory: after a restart the trust files are made again, and
# signatures made before it no longer verify.

FULCIO_VERSION=v1.8.8
TSA_VERSION=v2.1.3

FULCIO_ADDR=127.0.0.1:5555
FULCIO_GRPC_PORT=5554
FULCIO_METRICS_PORT=5553 # the default 2112 is the timestamp server's fixed metrics port
TSA_ADDR=127.0.0.1:5560
OIDC_GITHUB_ISSUER=http://127.0.0.1:5556 # Fulcio type github-workflow
OIDC_GITLAB_ISSUER=http://127.0.0.1:5557 # Fulcio type gitlab-pipeline

KEYLESS_DIR=$STATE/keyless
KEYLESS_TRUSTED_ROOT=$KEYLESS_DIR/trusted_root.json
KEYLESS_SIGNING_CONFIG=$KEYLESS_DIR/signing_config.json

install_fulcio() { GOBIN=$TOOLS go install "github.com/sigstore/fulcio@$FULCIO_VERSION"; }
install_tsa() {
	GOBIN=$TOOLS go install "github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server@$TSA_VERSION"
}
fulcio_ok() { [[ $(mod_version "$TOOLS/fulcio" github.com/sigstore/fulcio) == "$FULCIO_VERSION" ]]; }
tsa_ok() {
	[[ $(mod_version "$TOOLS/timestamp-server" github.com/sigstore/timestamp-authority/v2) == "$TSA_VERSION" ]]
}

# http_get ADDR PATH: the body of a 200 answer to GET PATH (plain bash: a bare Debian has no curl).
http_get() {
	local addr=$1 path=$2
	(
		exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$addr" >&3
		IFS= read -r -t 5 status <&3 || exit 1
		[[ $status == "HTTP/1."?" 200"* ]] || exit 1
		while IFS= read -r -t 5 line <&3; do
			[[ $line == $'\r' || -z $line ]] && break
		done
		cat <&3
	) 2>/dev/null
}

fulcio_ready() { http_get "$FULCIO_ADDR" /api/v1/rootCert | grep -q 'BEGIN CERTIFICATE'; }
tsa_ready() { http_get "$TSA_ADDR" /api/v1/timestamp/certchain | grep -q 'BEGIN CERTIFICATE'; }

start_fulcio() {
	local pidfile=$STATE/run/fulcio.pid logfile=$STATE/logs/fulcio.log
	if pid_alive "$pidfile" fulcio && fulcio_ready; then
		note "skipped (running, pid $(<"$pidfile"), http://$FULCIO_ADDR)"
		return
	fi
	if ! pid_alive "$pidfile" fulcio && fulcio_ready; then
		die "something else already answers on $FULCIO_ADDR (not started by this script); stop it first"
	fi
	mkdir -p "$KEYLESS_DIR"
	cat >"$KEYLESS_DIR/fulcio-config.json" <<JSON
{
  "OIDCIssuers": {
    "$OIDC_GITHUB_ISSUER": {"IssuerURL": "$OIDC_GITHUB_ISSUER", "ClientID": "sigstore", "Type": "github-workflow"},
    "$OIDC_GITLAB_ISSUER": {"IssuerURL": "$OIDC_GITLAB_ISSUER", "ClientID": "sigstore", "Type": "gitlab-pipeline"}
  }
}
JSON
	if ! pid_alive "$pidfile" fulcio; then
		start_bg fulcio "$logfile" "$pidfile" \
			"$TOOLS/fulcio" serve --ca=ephemeralca --ct-log-url= \
			--config-path="$KEYLESS_DIR/fulcio-config.json" \
			--host="${FULCIO_ADDR%:*}" --port="${FULCIO_ADDR##*:}" \
			--grpc-host=127.0.0.1 --grpc-port="$FULCIO_GRPC_PORT" --metrics-port="$FULCIO_METRICS_PORT" \
			--legacy-unix-domain-socket=@trustcache-e2e-fulcio
	fi
	wait_ready fulcio "$pidfile" fulcio "$logfile" 60 fulcio_ready
	note "started (pid $(<"$pidfile"), http://$FULCIO_ADDR, issuers $OIDC_GITHUB_ISSUER $OIDC_GITLAB_ISSUER)"
}

start_tsa() {
	local pidfile=$STATE/run/timestamp-server.pid logfile=$STATE/logs/timestamp-server.log
	if pid_alive "$pidfile" timestamp-server && tsa_ready; then
		note "skipped (running, pid $(<"$pidfile"), http://$TSA_ADDR)"
		return
	fi
	if ! pid_alive "$pidfile" timestamp-server && tsa_ready; then
		die "something else already answers on $TSA_ADDR (not started by this script); stop it first"
	fi
	if ! pid_alive "$pidfile" timestamp-server; then
		start_bg timestamp-server "$logfile" "$pidfile" \
			"$TOOLS/timestamp-server" serve --timestamp-signer=memory --disable-ntp-monitoring \
			--host="${TSA_ADDR%:*}" --port="${TSA_ADDR##*:}"
	fi
	wait_ready timestamp-server "$pidfile" timestamp-server "$logfile" 60 tsa_ready
	note "started (pid $(<"$pidfile"), http://$TSA_ADDR)"
}

# sigstore_trust_files writes the trusted root (Fulcio's CA chain and the TSA's chain, as served
# now) and the signing config (the CA and TSA URLs, no transparency log) with cosign v3.
sigstore_trust_files() {
	mkdir -p "$KEYLESS_DIR"
	http_get "$FULCIO_ADDR" /api/v1/rootCert >"$KEYLESS_DIR/fulcio-chain.pem"
	http_get "$TSA_ADDR" /api/v1/timestamp/certchain >"$KEYLESS_DIR/tsa-chain.pem"
	grep -q 'BEGIN CERTIFICATE' "$KEYLESS_DIR/fulcio-chain.pem" || die "no CA chain from Fulcio at $FULCIO_ADDR"
	grep -q 'BEGIN CERTIFICATE' "$KEYLESS_DIR/tsa-chain.pem" || die "no certificate chain from the TSA at $TSA_ADDR"
	local start=2020-01-01T00:00:00Z
	"$TOOLS/cosign3" trusted-root create \
		--fulcio="url=http://$FULCIO_ADDR,certificate-chain=$KEYLESS_DIR/fulcio-chain.pem,start-time=$start" \
		--tsa="url=http://$TSA_ADDR/api/v1/timestamp,certificate-chain=$KEYLESS_DIR/tsa-chain.pem,start-time=$start" \
		--out "$KEYLESS_TRUSTED_ROOT.tmp" >"$STATE/logs/keyless-trust.log" 2>&1 ||
		{ cat "$STATE/logs/keyless-trust.log" >&2 && die "cosign trusted-root create failed"; }
	"$TOOLS/cosign3" signing-config create \
		--fulcio="url=http://$FULCIO_ADDR,api-version=1,start-time=$start,operator=trustcache-e2e" \
		--tsa="url=http://$TSA_ADDR/api/v1/timestamp,api-version=1,start-time=$start,operator=trustcache-e2e" \
		--tsa-config=ANY \
		--out "$KEYLESS_SIGNING_CONFIG.tmp" >>"$STATE/logs/keyless-trust.log" 2>&1 ||
		{ cat "$STATE/logs/keyless-trust.log" >&2 && die "cosign signing-config create failed"; }
	mv -f "$KEYLESS_TRUSTED_ROOT.tmp" "$KEYLESS_TRUSTED_ROOT"
	mv -f "$KEYLESS_SIGNING_CONFIG.tmp" "$KEYLESS_SIGNING_CONFIG"
	note "$KEYLESS_TRUSTED_ROOT, $KEYLESS_SIGNING_CONFIG"
}

# sigstore_env: the env file lines for the keyless services.
sigstore_env() {
	printf 'export %s=%q\n' \
		E2E_FULCIO_URL "http://$FULCIO_ADDR" \
		E2E_TSA_URL "http://$TSA_ADDR/api/v1/timestamp" \
		E2E_OIDC_GITHUB_ISSUER "$OIDC_GITHUB_ISSUER" \
		E2E_OIDC_GITLAB_ISSUER "$OIDC_GITLAB_ISSUER" \
		E2E_KEYLESS_TRUSTED_ROOT "$KEYLESS_TRUSTED_ROOT" \
		E2E_SIGNING_CONFIG "$KEYLESS_SIGNING_CONFIG"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	# shellcheck source=e2e/lib.sh
	. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
	mkdir -p "$STATE"/{logs,run} "$TOOLS"
	STATE=$(cd "$STATE" && pwd)
	TOOLS=$(cd "$TOOLS" && pwd)
	KEYLESS_DIR=$STATE/keyless
	KEYLESS_TRUSTED_ROOT=$KEYLESS_DIR/trusted_root.json
	KEYLESS_SIGNING_CONFIG=$KEYLESS_DIR/signing_config.json
	[[ -x $TOOLS/cosign3 ]] || die "cosign v3 is not installed in $TOOLS (run e2e/setup.sh)"
	fulcio_ok || step "tool fulcio" install_fulcio
	tsa_ok || step "tool timestamp-server" install_tsa
	step "fulcio" start_fulcio
	step "timestamp authority" start_tsa
	step "sigstore trust files" sigstore_trust_files
	sigstore_env >"$STATE/sigstore.env"
	log "keyless services ready; source $STATE/sigstore.env"
fi
