#!/usr/bin/env bash
# CI (and device-machine) helper for `coldstart snapshot` / `restore`: makes a CRIU >= 4 runnable and prints
#   export COLDSTART_CRIU=<path>
# on stdout (progress on stderr), so:  eval "$(scripts/ci-criu.sh)"
#
# Debian bookworm's criu is 3.17 and fails on newer kernels' vDSO, so this fetches Debian trixie's criu 4.x and
# its library closure with `apt-get download` (a private apt state under the prefix: the system's sources and
# package database are never touched), unpacks the .debs with `dpkg -x` into a private root and writes a
# wrapper that runs trixie's criu through trixie's own loader:
#   <root>/usr/lib64/ld-linux-x86-64.so.2 --library-path <root libs> <root>/usr/sbin/criu "$@"
# Offline (the GPU machine): point COLDSTART_CRIU_DEBS at a folder of those .debs (`scripts/ci-criu.sh --download DIR`
# fills one here). Idempotent: a working wrapper is reused at once. Needs root to dump/restore, not to install.
#   COLDSTART_CRIU_PREFIX  install prefix (default /opt/coldstart-criu)
#   COLDSTART_CRIU_DEBS    folder of trixie .debs to use instead of the network
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
for d in "$debs"/*.deb; do dpkg -x "$d" "$tmp"; done
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
# trixie's criu through trixie's loader (written by scripts/ci-criu.sh)
exec "$root/$loader" --library-path "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" "$root/$bin" "\$@"
WRAP
chmod 755 "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
works "$wrapper" || { log "installed $wrapper but it does not run: $("$wrapper" --version 2>&1 | head -n 3)"; exit 3; }
log "installed $("$wrapper" --version | head -n 1) at $wrapper"
echo "export COLDSTART_CRIU=$wrapper"
