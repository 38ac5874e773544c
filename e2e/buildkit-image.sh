#!/usr/bin/env bash
# Builds a BuildKit image offline, for `docker trustcache builder create --buildkit-image` in the
# e2e tests: the buildkitd and buildctl that e2e/setup.sh builds into $TRUSTCACHE_TOOLS, and this
# machine's runc with the shared libraries `ldd` names (Debian's runc is dynamically linked), in a
# rootfs imported with `docker import` (no base image, no registry, no network).
#
#   bash e2e/buildkit-image.sh [IMAGE]      # default trustcache-e2e/buildkit:v0.34.2
#
# Production builders use the upstream image pinned by digest instead
# (--buildkit-image moby/buildkit:v0.34.2@sha256:…, docs/builder.md); this image only has what
# the tests need: buildkitd with the OCI worker (runc, overlayfs), buildctl, and a config file.
# Idempotent: an image already there with the same binaries is kept.
set -euo pipefail

IMAGE=${1:-trustcache-e2e/buildkit:v0.34.2}
TOOLS=${TRUSTCACHE_TOOLS:-$HOME/.cache/trustcache-e2e/bin}
DOCKER=${E2E_DOCKER:-docker}

die() { echo "buildkit-image.sh: $*" >&2; exit 1; }

for bin in buildkitd buildctl; do
	[[ -x $TOOLS/$bin ]] || die "$TOOLS/$bin missing: run e2e/setup.sh first (it builds buildkit into \$TRUSTCACHE_TOOLS)"
done
runc=$(command -v runc) || die "runc not found (apt-get install runc, or docker.io which depends on it)"
runc=$(readlink -f "$runc")

# The image is tagged with a digest of what went into it as well: a rebuilt buildkitd gives a new
# image, an unchanged one is not imported again.
sum=$(cat "$TOOLS/buildkitd" "$TOOLS/buildctl" "$runc" "$0" | sha256sum | cut -c1-12)
if id=$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE-$sum" 2>/dev/null); then
	"$DOCKER" tag "$id" "$IMAGE"
	echo "$IMAGE: up to date ($id)"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/rootfs
mkdir -p "$root"/{usr/bin,etc/buildkit,tmp,var/lib/buildkit,run/buildkit,proc,sys,dev}
chmod 1777 "$root/tmp"
install -m 0755 "$TOOLS/buildkitd" "$TOOLS/buildctl" "$root/usr/bin/"
install -m 0755 "$runc" "$root/usr/bin/runc"
# runc's libraries and loader at the paths ldd gives (the loader path is compiled into runc).
while read -r lib; do
	[[ -n $lib ]] || continue
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done < <(ldd "$runc" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
echo 'root:x:0:0:root:/:/usr/sbin/nologin' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
# The OCI worker with this image's runc; the containerd worker off (no containerd in the image).
# RUN steps get the host's network by default: the container runs with --network host (the e2e
# dockerd has no bridge), and builds pass --network=none where they want none.
cat >"$root/etc/buildkit/buildkitd.toml" <<'TOML'
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  binary = "/usr/bin/runc"
  networkMode = "host"
  gc = true

[worker.containerd]
  enabled = false
TOML

id=$(tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c . |
	"$DOCKER" import \
		--change 'ENV PATH=/usr/bin' \
		--change 'VOLUME /var/lib/buildkit' \
		--change 'ENTRYPOINT ["buildkitd"]' \
		- "$IMAGE-$sum")
"$DOCKER" tag "$id" "$IMAGE"
echo "$IMAGE: imported ($id)"
