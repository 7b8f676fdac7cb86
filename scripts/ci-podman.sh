#!/usr/bin/env bash
# CI helper for the `container` phase: installs Debian's podman + runc + busybox-static (about 20 s), imports
# a busybox rootfs as the image localhost/coldstart-busybox:latest (no registry involved), and writes a
# containers.conf with the two settings this VM needs (runc instead of crun: crun refuses the hybrid cgroup
# layout; default ulimits at or below the hard limits). Prints `export` lines for the test environment:
#   eval "$(scripts/ci-podman.sh)"
set -euo pipefail
log() { echo "ci-podman: $*" >&2; }
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || [ ! -x /bin/busybox ]; then
  log "installing podman runc busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends podman runc busybox-static >&2
fi
image=localhost/coldstart-busybox:latest
conf_dir="${COLDSTART_PODMAN_DIR:-/tmp/coldstart-podman}"
mkdir -p "$conf_dir"
nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=32768
[ "$nofile" -gt 20000 ] && nofile=20000
[ "$nproc" -gt 32768 ] && nproc=32768
cat > "$conf_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
[engine]
runtime = "runc"
CONF
if ! podman image exists "$image"; then
  root="$(mktemp -d)"
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for a in sh true echo sleep cat ls env; do ln -s busybox "$root/bin/$a"; done
  tar -C "$root" -cf "$conf_dir/rootfs.tar" .
  rm -rf "$root"
  podman import "$conf_dir/rootfs.tar" "$image" >&2
  rm -f "$conf_dir/rootfs.tar"
fi
CONTAINERS_CONF="$conf_dir/containers.conf" podman run --rm --pull never "$image" true >&2
log "image $image ready; containers.conf at $conf_dir/containers.conf"
echo "export COLDSTART_PODMAN_IMAGE=$image"
echo "export COLDSTART_PODMAN_CONF=$conf_dir/containers.conf"
