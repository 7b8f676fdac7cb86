#!/usr/bin/env bash
# CI (and device-machine) helper for `coldstart snapshot` / `restore`: makes a CRIU >= 4 runnable and prints
#   export COLDSTART_CRIU=<path>
# on stdout (progress on stderr), so:  eval "$(scripts/ci-criu.sh)"
#
# Debian bookworm's criu is 3.17 and fails on newer kernels' vDSO; trixie's 4.1.1 cannot dump TCP sockets on
# Linux 6.16+ (criu#2705: SO_PASSCRED/SO_PASSSEC now fail on inet sockets). So this fetches Debian forky's criu
# (4.2.x) and its library closure with `apt-get download` (a private apt state under the prefix: the system's
# sources and package database are never touched), unpacks the .debs with `dpkg -x` (or a Python ar/tar reader
# where dpkg is missing) into a private root and writes a wrapper that runs that criu through that libc's loader:
#   <root>/usr/lib64/ld-linux-x86-64.so.2 --library-path <root libs> <root>/usr/sbin/criu "$@"
# Offline (the GPU machine): point COLDSTART_CRIU_DEBS at a folder of those .debs (`scripts/ci-criu.sh --download DIR`
# fills one here). Idempotent: a working wrapper is reused at once. Needs root to dump/restore, not to install.
#   COLDSTART_CRIU_PREFIX  install prefix (default /opt/coldstart-criu)
#   COLDSTART_CRIU_DEBS    folder of .debs to use instead of the network
#   COLDSTART_CRIU_SUITE   Debian suite to fetch from (default forky)
set -euo pipefail
log() { echo "ci-criu: $*" >&2; }
prefix="${COLDSTART_CRIU_PREFIX:-/opt/coldstart-criu}"
suite="${COLDSTART_CRIU_SUITE:-forky}"
mirror="${COLDSTART_CRIU_MIRROR:-http://deb.debian.org/debian}"
wrapper="$prefix/criu"

apt_download() { # $1: destination folder
  local dest="$1" state="$prefix/apt"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dest"
  echo "deb $mirror $suite main" >"$state/sources.list"
  : >"$state/status"
  local opts=(-o "Dir::Etc::sourcelist=$state/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$state/lists"
    -o "Dir::Cache=$state/cache" -o "Dir::State::status=$state/status" -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  log "apt-get update ($suite only, private state in $state)"
  apt-get "${opts[@]}" -qq update >&2
  # criu's whole dependency closure, libc6 included on purpose: the new criu needs a newer glibc than the host's
  # and runs through that libc's own loader, never the host's.
  local pkgs
  pkgs="$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances criu | grep -E '^[a-z0-9]' | sort -u | tr '\n' ' ')"
  log "downloading: $pkgs"
  # shellcheck disable=SC2086
  (cd "$dest" && apt-get "${opts[@]}" -qq download $pkgs >&2)
}

if [ "${1:-}" = "--download" ]; then # fill a folder with the .debs (to carry them to a machine with no network)
  dest="$(realpath -m "${2:?usage: ci-criu.sh --download DIR}")"
  prefix="$(mktemp -d)"
  apt_download "$dest"
  rm -rf "$prefix"
  log "$(find "$dest" -name '*.deb' | wc -l) .debs, $(du -sh "$dest" | cut -f1) in $dest"
  exit 0
fi

works() { "$1" --version 2>/dev/null | grep -Eq 'Version: ([4-9]|[1-9][0-9])\.'; }

if [ -n "${COLDSTART_CRIU:-}" ] && works "$COLDSTART_CRIU"; then
  echo "export COLDSTART_CRIU=$COLDSTART_CRIU"; exit 0
fi
if [ -x "$wrapper" ] && works "$wrapper"; then
  log "reusing $wrapper ($("$wrapper" --version | head -n 1))"
  echo "export COLDSTART_CRIU=$wrapper"; exit 0
fi
if command -v criu >/dev/null && works "$(command -v criu)"; then
  log "system criu is new enough: $(command -v criu)"
  echo "export COLDSTART_CRIU=$(command -v criu)"; exit 0
fi

mkdir -p "$prefix"
debs="${COLDSTART_CRIU_DEBS:-}"
if [ -z "$debs" ]; then
  debs="$prefix/debs"
  rm -rf "$debs"
  apt_download "$debs"
fi
[ -n "$(find "$debs" -maxdepth 1 -name 'criu_*.deb' -print -quit)" ] || { log "no criu_*.deb in $debs"; exit 3; }

tmp="$(mktemp -d "$prefix/.root.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
unpack() { # $1: .deb, $2: destination
  if command -v dpkg >/dev/null; then dpkg -x "$1" "$2"; return; fi
  python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb (ar) file"
off = 8
while off + 60 <= len(data):
    name = data[off:off + 16].decode().strip().rstrip("/")
    size = int(data[off + 48:off + 58].decode().strip())
    body = data[off + 60:off + 60 + size]
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            t.extractall(sys.argv[2], filter="tar") if hasattr(tarfile, "data_filter") else t.extractall(sys.argv[2])
        break
    off += 60 + size + (size & 1)
else:
    sys.exit("no data.tar member in " + sys.argv[1])
PY
}
for d in "$debs"/*.deb; do unpack "$d" "$tmp"; done
loader=""
for c in usr/lib64/ld-linux-x86-64.so.2 lib64/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
  if [ -e "$tmp/$c" ]; then loader="$c"; break; fi
done
[ -n "$loader" ] || { log "no ld-linux-x86-64.so.2 in the unpacked libc6"; exit 3; }
bin=usr/sbin/criu
[ -x "$tmp/$bin" ] || bin=sbin/criu
rm -rf "$prefix/root"
mv "$tmp" "$prefix/root"
trap - EXIT
root="$prefix/root"
cat >"$wrapper.tmp" <<WRAP
#!/bin/sh
# Debian's criu through its own libc's loader (written by scripts/ci-criu.sh)
exec "$root/$loader" --library-path "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" "$root/$bin" "\$@"
WRAP
chmod 755 "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
works "$wrapper" || { log "installed $wrapper but it does not run: $("$wrapper" --version 2>&1 | head -n 3)"; exit 3; }
log "installed $("$wrapper" --version | head -n 1) at $wrapper"
echo "export COLDSTART_CRIU=$wrapper"
