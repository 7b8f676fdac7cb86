#!/usr/bin/env bash
# Runs "$@" on a lent GPU machine from the folder bench/gpu-load/stage.sh filled (the device tool carries it; that
# machine has no Node): unpacks the carried node onto PATH (NODE names it), writes the host's shape, and gives the
# command OUT=$OUT/run; everything it writes there comes back packed as $OUT/run.tgz (the device tool brings back a
# handful of files per call, so a run's dozens of JSON files travel as one; RUN_LIMIT, default 570 s, stops the
# command in time for that). Exits with the command's status (124: stopped at RUN_LIMIT).
#
#   run: cd .dev/loader && bash device-run.sh bash test/device/snapshot-gpu.sh eager
set -uo pipefail
cd "$(dirname "$0")"
top="${OUT:?OUT: the output folder the device tool brings back}"
# a fresh folder: files an earlier run left there (seen once: another host's, hours older) must not travel as this one's
rm -rf "$top/run" && mkdir -p /tmp/nodebin "$top/run"
xz -dc node.xz >/tmp/nodebin/node && chmod +x /tmp/nodebin/node
export PATH=/tmp/nodebin:$PATH NODE=/tmp/nodebin/node OUT="$top/run"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current --format=csv,noheader
  nproc
  uname -r
  cat /sys/kernel/mm/transparent_hugepage/enabled
  # idle page tracking (a working set seen without paging anything out), where the kernel has it
  ls -d /sys/kernel/mm/page_idle/bitmap 2>&1
  # each disk's I/O scheduler (whether I/O priorities mean anything there) and readahead window
  for q in /sys/block/*/queue; do echo "$q: $(cat "$q/scheduler") ra=$(cat "$q/read_ahead_kb")KiB nr=$(cat "$q/nr_requests")"; done
} >"$OUT/host.txt" 2>&1
# the host's memory limits as coldstart's memoryRoom reads them (src/platform/system.ts): the process's cgroups, the
# cgroup mounts, and each memory controller file on the way up (a real sample for its tests)
{
  cat /proc/self/cgroup; grep cgroup /proc/self/mountinfo; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
  v2=$(sed -n 's/^0:://p' /proc/self/cgroup); v1=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
  for d in /sys/fs/cgroup /sys/fs/cgroup/memory "/sys/fs/cgroup${v2%/}" "/sys/fs/cgroup/memory${v1%/}"; do
    for f in memory.max memory.current memory.limit_in_bytes memory.usage_in_bytes; do
      [ -r "$d/$f" ] && echo "$d/$f: $(cat "$d/$f")"
    done
    [ -r "$d/memory.stat" ] && grep -E '^(file|inactive_file|active_file|total_inactive_file|total_active_file|cache) ' "$d/memory.stat" | sed "s|^|$d/memory.stat: |"
  done
} >"$OUT/cgroup.txt" 2>&1
# the character devices by major (platform/procfs.ts charDevices names a CRIU device error's major from this) and the
# driver's device files (a real sample for its tests)
{ cat /proc/devices; ls -l /dev/nvidia* 2>&1; } >"$OUT/devices.txt" 2>&1
# under the device tool's 600 s per call: stopped at RUN_LIMIT seconds so that what it wrote is still packed
timeout --kill-after=10 "${RUN_LIMIT:-570}" "$@" >"$OUT/stdout.txt" 2>"$OUT/stderr.txt"
rc=$?
echo "exit $rc" >>"$OUT/stderr.txt"
tail -n 30 "$OUT/stderr.txt"
tar czf "$top/run.tgz" -C "$OUT" . && rm -rf "$OUT"
exit $rc
