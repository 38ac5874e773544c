#!/usr/bin/env bash
# The script of action.yml (the "docker trustcache trusted builder" GitHub Action), runnable
# outside GitHub: it reads the environment a runner gives a composite action's step.
#
#   RUNNER_OS (Linux, macOS, Windows), RUNNER_ARCH (X64, ARM64), GITHUB_OUTPUT (a file)
#   INPUT_RELEASE        release files: a directory, or a base URL
#                        (default https://github.com/docker-trustcache/docker-trustcache/releases/download/$INPUT_VERSION)
#   INPUT_VERSION        release tag (default: latest, i.e. …/releases/latest/download)
#   INPUT_POLICY         policy file (default .trustcache.yaml)
#   INPUT_NAME           builder name (default trustcache)
#   INPUT_BUILDKIT_IMAGE BuildKit image (default: the plugin's, moby/buildkit:v0.34.2; pin by digest)
#   INPUT_GATEWAY_IMAGE  gateway image (default: built here from the verified binary)
#
# It downloads docker-trustcache-<os>-<arch> and checksums.txt (what `make release` writes),
# checks the binary against its line in checksums.txt, installs it as a docker CLI plugin, builds
# the gateway image from that same binary (docker import, as `make image`: no registry), runs
# `docker trustcache builder create --use`, and writes name=NAME to $GITHUB_OUTPUT (and
# BUILDX_BUILDER=NAME to $GITHUB_ENV, when set, so that docker build uses it too).
set -euo pipefail

die() { echo "::error::trustcache action: $*" >&2; exit 1; }

case ${RUNNER_OS:-} in
Linux) os=linux ;;
macOS) os=darwin ;;
Windows) os=windows ;;
*) die "RUNNER_OS=${RUNNER_OS:-} is not Linux, macOS or Windows" ;;
esac
case ${RUNNER_ARCH:-} in
X64) arch=amd64 ;;
ARM64) arch=arm64 ;;
*) die "RUNNER_ARCH=${RUNNER_ARCH:-} is not X64 or ARM64 (the release has amd64 and arm64 binaries)" ;;
esac
[[ -n ${GITHUB_OUTPUT:-} ]] || die "GITHUB_OUTPUT is not set"
[[ $os == linux ]] || die "a trusted builder runs BuildKit and the gateway as Linux containers: use a Linux runner (RUNNER_OS=$RUNNER_OS)"

file=docker-trustcache-$os-$arch
version=${INPUT_VERSION:-latest}
release=${INPUT_RELEASE:-}
if [[ -z $release ]]; then
	if [[ $version == latest ]]; then
		release=https://github.com/docker-trustcache/docker-trustcache/releases/latest/download
	else
		release=https://github.com/docker-trustcache/docker-trustcache/releases/download/$version
	fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() {
	if [[ -d $release ]]; then
		cp "$release/$1" "$tmp/$1" || die "$release/$1: missing"
	else
		curl -fsSL --retry 3 -o "$tmp/$1" "$release/$1" || die "downloading $release/$1 failed"
	fi
}
fetch checksums.txt
fetch "$file"
# The binary's own line, checked exactly: a checksums.txt that does not name it fails.
line=$(awk -v f="$file" '$2 == f || $2 == "*" f' "$tmp/checksums.txt")
[[ -n $line ]] || die "checksums.txt of $release has no line for $file"
(cd "$tmp" && printf '%s\n' "$line" | sha256sum --strict -c - >/dev/null) ||
	die "$file does not match its checksum in $release/checksums.txt: not installing it"

plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
mkdir -p "$plugins"
install -m 0755 "$tmp/$file" "$plugins/docker-trustcache"
echo "installed $plugins/docker-trustcache ($(docker trustcache --version))"

gateway=${INPUT_GATEWAY_IMAGE:-}
if [[ -z $gateway ]]; then
	# The gateway image from the verified binary, as `make image` builds it.
	sum=$(cut -d' ' -f1 <<<"$line")
	gateway=docker-trustcache:action-${sum:0:12}
	if ! docker image inspect "$gateway" >/dev/null 2>&1; then
		root=$tmp/rootfs
		mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/run/trustcache" "$root/var/lib/trustcache"
		chmod 1777 "$root/tmp" "$root/run/trustcache" "$root/var/lib/trustcache"
		install -m 0755 "$tmp/$file" "$root/usr/local/bin/docker-trustcache"
		[[ ! -f /etc/ssl/certs/ca-certificates.crt ]] || cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
		printf 'root:x:0:0:root:/:/nonexistent\nnonroot:x:65532:65532:nonroot:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
		printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
		tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c . | docker import \
			--change 'USER 65532:65532' \
			--change 'ENV DOCKER_CONFIG=/var/lib/trustcache' \
			--change 'ENTRYPOINT ["/usr/local/bin/docker-trustcache", "trustcache"]' \
			--change 'CMD ["serve", "--help"]' \
			- "$gateway" >/dev/null
	fi
fi

args=(builder create --use --registry-auth --name "${INPUT_NAME:-trustcache}" --trust-policy "${INPUT_POLICY:-.trustcache.yaml}" --gateway-image "$gateway")
[[ -z ${INPUT_BUILDKIT_IMAGE:-} ]] || args+=(--buildkit-image "$INPUT_BUILDKIT_IMAGE")
name=$(docker trustcache "${args[@]}")
echo "name=$name" >>"$GITHUB_OUTPUT"
# Later steps' docker build runs on the builder BUILDX_BUILDER names (the docker CLI otherwise
# takes the docker context's), as docker/setup-buildx-action does.
if [[ -n ${GITHUB_ENV:-} ]]; then
	echo "BUILDX_BUILDER=$name" >>"$GITHUB_ENV"
fi
echo "trusted builder $name is buildx's current builder"
