/**
 * What a failed `criu dump` / `criu restore` says in its own log (IMAGE.dump.log, the restore's restore.log), read
 * instead of guessed: CRIU writes every problem as `Error (criu/FILE.c:LINE): …` (log.h's pr_err/pr_perror), some of
 * them not fatal, and ends with `Dumping FAILED.` / `Restoring FAILED.`. Each known cause is one rule here, its
 * pattern taken from the format string in CRIU's source (named in `source`) and tested against real logs: our own
 * (test/fixtures-criu/) and what users posted to CRIU's, cuda-checkpoint's and others' trackers
 * (test/fixtures-criu/public/). The cause is the first error line that is neither known-harmless nor the closing
 * line. A line may carry a timestamp (-v4), the pid of the restored task that logged it (`  1374: Error (…)`) and the
 * restorer's `pie:` tag before `Error`.
 */

export interface CriuRule {
  /** Stable name of the cause (JSON `details.cause`). */
  id: string;
  /** Matches the text of one error line (after `Error (criu/…): `). */
  match: RegExp;
  /** CRIU's source of the message (file:function or file:line at the commit the rule was written from). */
  source: string;
  /** What it means and what to do, one sentence each. */
  explain: string;
  fix: string;
  /** Logged as an error but CRIU carries on: never the cause of a failure by itself. */
  harmless?: boolean;
}

const NOFILE_FIX =
  'Give coldstart (and so CRIU) a hard open-files limit of fs.nr_open: `ulimit -Hn $(cat /proc/sys/fs/nr_open)` as root, or in a container `--ulimit nofile=1048576:1048576` (or --cap-add SYS_RESOURCE).';

const GPU_FIX =
  'A GPU device: make every process that opened the GPU hold a CUDA context coldstart checkpoints, or end such helpers before the snapshot (for torch Inductor: TORCHINDUCTOR_COMPILE_THREADS=1, or shut its compile workers down in a --before-snapshot hook).';

export const CRIU_RULES: readonly CriuRule[] = [
  {
    id: 'rlimit-nofile',
    match: /rlimit: Can't setup RLIMIT_NOFILE for self/,
    source: 'criu/util.c:rlimit_unlimit_nofile',
    harmless: true,
    explain:
      "CRIU raises its own open-files limit to fs.nr_open before it starts; raising the hard limit needs CAP_SYS_RESOURCE (often dropped in containers), so it logs EPERM and carries on with the limit it inherited — not the cause of a failure by itself.",
    fix: NOFILE_FIX,
  },
  {
    id: 'service-fd-base',
    match: /Can't chose service_fd_base|Too big FD number to restore/,
    source: 'criu/servicefd.c:choose_service_fd_base, criu/files.c:prepare_fd_pid',
    explain: "a process of the server uses file descriptor numbers above CRIU's open-files limit, which CRIU could not raise (see the rlimit line).",
    fix: NOFILE_FIX,
  },
  {
    id: 'ext-unix-stream',
    match: /Can't dump half of stream unix connection|External socket is used|Can't dump name-less external socket/,
    source: 'criu/sk-unix.c:dump_external_sockets',
    explain: 'a process of the server holds a unix stream socket connected to a process outside its tree (a daemon, an agent, a container runtime socket); CRIU cannot take half of a connection.',
    fix: 'Close that connection before the snapshot (a --before-snapshot hook) or start its peer as part of the server command.',
  },
  {
    id: 'device-file',
    match: /Can't dump file \d+ of that type/,
    source: 'criu/files-ext.c:dump_unsupp_fd (criu/files.c:dump_chrdev names it "chr MAJOR:MINOR")',
    explain: "a process of the server holds an open device file CRIU cannot save: CRIU saves ttys and a few devices it knows, and a GPU's /dev/nvidia* only once the CUDA checkpoint has released it.",
    fix: `${GPU_FIX} Another device (gdrcopy's /dev/gdrdrv, a DRM node): close it before the snapshot (a --before-snapshot hook) or run the server without it.`,
  },
  {
    id: 'device-mapping',
    match: /handle_device_vma plugin failed|Can't handle non-regular mapping on/,
    source: 'criu/proc_parse.c:handle_vma',
    explain: "a process of the server maps a device into its memory (the line gives the pid and the mapping's address; /proc/PID/maps names the file) and no CRIU plugin saves that mapping: a GPU's /dev/nvidia* mappings go only once the CUDA checkpoint has released them.",
    fix: `${GPU_FIX} Another driver's device (gdrcopy's /dev/gdrdrv, a DRM node): close and unmap it before the snapshot (a --before-snapshot hook) or run the server without it.`,
  },
  {
    id: 'socket-options-kernel',
    match: /Can't get 1:(16|34) opt/,
    source: 'criu/sockets.c:dump_opt (SO_PASSCRED=16 / SO_PASSSEC=34 on inet sockets, Linux 6.16+)',
    explain: 'this CRIU asks inet sockets for options Linux 6.16+ no longer has (criu#2705).',
    fix: 'Install CRIU 4.2 or newer (scripts/ci-criu.sh).',
  },
  {
    id: 'pid-in-use',
    match: /Can't fork for \d+: File exists/,
    source: 'criu/cr-restore.c:fork_with_pid',
    explain: 'a pid the server had is taken on this machine (an earlier restore of this image still running?); CRIU restores processes with their original pids.',
    fix: 'Stop the process holding that pid and restore again.',
  },
  {
    id: 'seize',
    match: /SEIZE \d+:|Unable to freeze cgroup|Can't freeze/,
    source: 'compel/src/lib/infect.c:compel_wait_task, criu/seize.c:freeze_processes',
    explain: 'CRIU could not stop the processes of the server (another tracer attached, ptrace restricted, or a process stuck in the kernel).',
    fix: 'Detach debuggers/tracers, check kernel.yama.ptrace_scope, and try again.',
  },
  {
    id: 'namespace-mount',
    match: /Can't setns|Can't open ns file|Unable to find suitable mount point|No root found for tree|No parent found for mountpoint|mnt: /,
    source: 'criu/namespaces.c, criu/mount.c',
    explain: "CRIU could not handle a namespace or mount of the server (it runs in other namespaces than coldstart, or uses mounts CRIU cannot restore here).",
    fix: 'Run coldstart in the same namespaces as the server (inside its container), or snapshot the whole container with its runtime.',
  },
  {
    id: 'file-locks',
    match: /Some file locks are hold by dumping tasks|Unresolved lock found|Dump file lock failed/,
    source: 'criu/file-lock.c',
    explain: 'a process of the server holds a file lock CRIU cannot attribute (shared with a process outside the tree).',
    fix: 'Release the lock before the snapshot (a --before-snapshot hook), or keep every holder inside the server tree.',
  },
  {
    id: 'too-many-open-files',
    match: /Too many open files/,
    source: 'criu/page-pipe.c:ppb_alloc (and any pr_perror with EMFILE)',
    explain: "CRIU ran out of file descriptors: it holds pipes and images open per process and memory area, and its open-files limit is too low for this tree.",
    fix: NOFILE_FIX,
  },
  {
    id: 'seccomp-suspend',
    match: /suspending seccomp failed/,
    source: 'compel/src/lib/ptrace.c:ptrace_suspend_seccomp',
    explain: "CRIU must suspend the server's seccomp filters (PTRACE_O_SUSPEND_SECCOMP) to save it, and the kernel refused: that needs CAP_SYS_ADMIN in the machine's first user namespace (\"Operation not permitted\": a container or a user namespace) and Linux 4.3+ (\"Invalid argument\").",
    fix: 'Run coldstart as real root with CAP_SYS_ADMIN, outside a user namespace (a container: --privileged, or --cap-add SYS_ADMIN --security-opt seccomp=unconfined).',
  },
  {
    id: 'criu-in-tree',
    match: /The criu itself is within dumped tree/,
    source: 'compel/src/lib/infect.c:compel_wait_task',
    explain: 'CRIU (and so coldstart) runs inside the process tree it was asked to save, and cannot stop itself.',
    fix: 'Run coldstart from outside the server: not from a shell or process the server started; snapshot the server by a pid that is not an ancestor of coldstart.',
  },
  {
    id: 'sysvipc-ns',
    match: /with SysVIPC shmem map @[0-9a-f]+ doesn't live in IPC ns/,
    source: 'criu/cr-dump.c:check_sysvipc_map_dump',
    explain: 'a process of the server maps SysV shared memory (shmget), which CRIU saves only with an IPC namespace of the server\'s own.',
    fix: 'Start the server in its own IPC namespace (prefix its command with `unshare --ipc`), then snapshot it.',
  },
  {
    id: 'kerndat',
    match: /Could not initialize kernel features detection|failed when initializing kerndat/,
    source: 'criu/crtools.c:main, criu/kerndat.c:kerndat_init',
    explain: "CRIU could not probe this kernel's features before it started; the error before this line names the probe (CRIU before 3.19 failed here on a kernel without IPv6, criu#2222).",
    fix: 'Run `criu check` as root for what this kernel lacks, and use a current CRIU (scripts/ci-criu.sh installs 4.2).',
  },
  {
    id: 'port-in-use',
    match: /Can't bind inet socket \(id \d+\): Address already in use/,
    source: 'criu/sk-inet.c:inet_bind',
    explain: 'a port the server listened on is taken on this machine now (restore checks the image\'s ports before it starts: something took it since, or a service restarted in the meantime).',
    fix: "Stop what listens there (`ss -ltnp` names it) and restore again.",
  },
  {
    id: 'address-not-here',
    match: /Can't bind inet socket \(id \d+\): Cannot assign requested address/,
    source: 'criu/sk-inet.c:inet_bind',
    explain: 'the server listened on an IP address this machine does not have (a restore on another host, or in a container with another address).',
    fix: 'Have the server listen on 0.0.0.0 or :: (or 127.0.0.1) and snapshot it again, or restore where that address exists.',
  },
  {
    id: 'restore-out-of-memory',
    match: /Can't restore (?:0x)?[0-9a-f]+ mapping with (?:0x)?fffffffffffffff4\b/,
    source: 'criu/pie/restorer.c:__export_restore_task (-12, ENOMEM)',
    explain: "the restorer could not map the server's memory back: the kernel answered ENOMEM (-12), the machine or its cgroup short of memory (or of address space: vm.max_map_count, overcommit).",
    fix: "Free memory to at least the image's size (or raise the cgroup's memory.max) and restore again; `coldstart prefetch IMAGE --hold` keeps an image resident only where it fits.",
  },
  {
    id: 'unsupported-socket',
    match: /Unsupported (proto|socket family|socket type|type \(\d+\) on socket)|Can't dump \d+ inet socket/,
    source: 'criu/sk-inet.c, criu/sk-unix.c',
    explain: 'a process of the server holds a socket of a kind CRIU cannot save.',
    fix: 'Close that socket before the snapshot (a --before-snapshot hook).',
  },
];

// [(timestamp)] [pie: ] [pid: ] Error (file:line): text — CRIU's log.c and compel's std log put these before pr_err's.
const ERROR_LINE = /^(?:\(\s*[\d.]+\)\s*)?(?:pie:\s*)?(?:\d+:\s*)?Error \(([^)]*)\):\s*(.*)$/;
// The device in dump_unsupp_fd's line: `(chr 195:255)`, CRIU 4.x also the path: `(chr 195:255 /dev/nvidiactl)`.
const DEVICE = /\(chr (\d+):(\d+)(?: ([^)]*))?\)/;
const CLOSING = /^(Pre-dumping|Dumping|Restoring) FAILED\.?$/;

export interface CriuDiagnosis {
  /** The error line CRIU failed on (its text), or null when the log holds none. */
  cause: string | null;
  /** Where in CRIU it was logged (`criu/sk-unix.c:881`). */
  at: string | null;
  /** The known rule that matched the cause, if any. */
  rule: CriuRule | null;
  /** Known-harmless error lines also present (e.g. the rlimit one), with their rule. */
  harmless: Array<{ rule: CriuRule; line: string }>;
  /** Every error line, in order (at most 20). */
  errors: string[];
  /** The device file of a `device-file` cause: its numbers, its path where CRIU wrote one, its name in /proc/devices. */
  device: { major: number; minor: number; path: string | null; name: string | null } | null;
}

/**
 * Reads CRIU's log text: the failing line, the rule that explains it, the harmless lines beside it. `devices`: this
 * machine's character-device names (platform/procfs.ts `charDevices`), to name the device of a device-file cause.
 */
export function diagnoseCriuLog(text: string, devices: ReadonlyMap<number, string> = new Map()): CriuDiagnosis {
  const errors: Array<{ at: string; msg: string }> = [];
  for (const line of text.split('\n')) {
    const m = ERROR_LINE.exec(line.trim());
    if (m) errors.push({ at: m[1]!, msg: m[2]!.trim() });
  }
  const ruleOf = (msg: string) => CRIU_RULES.find((r) => r.match.test(msg)) ?? null;
  const harmless: CriuDiagnosis['harmless'] = [];
  let cause: { at: string; msg: string } | null = null;
  for (const e of errors) {
    const r = ruleOf(e.msg);
    if (r?.harmless) {
      if (!harmless.some((h) => h.rule === r)) harmless.push({ rule: r, line: e.msg });
      continue;
    }
    if (CLOSING.test(e.msg)) continue;
    cause ??= e;
  }
  // Only the closing line (or only harmless ones): name the last line CRIU wrote as an error.
  const shown = cause ?? errors.filter((e) => !ruleOf(e.msg)?.harmless).at(-1) ?? errors.at(-1) ?? null;
  // A known cause anywhere in the log explains a generic first line (e.g. "Can't dump thread" after a socket error).
  const rule = (cause && ruleOf(cause.msg)) ?? errors.map((e) => ruleOf(e.msg)).find((r) => r && !r.harmless) ?? null;
  const dm = rule?.id === 'device-file' ? errors.map((e) => (rule.match.test(e.msg) ? DEVICE.exec(e.msg) : null)).find(Boolean) : null;
  const device = dm ? { major: Number(dm[1]), minor: Number(dm[2]), path: dm[3]?.trim() || null, name: devices.get(Number(dm[1])) ?? null } : null;
  return { cause: shown?.msg ?? null, at: shown?.at ?? null, rule, harmless, errors: errors.slice(0, 20).map((e) => `Error (${e.at}): ${e.msg}`), device };
}

/** The hint for a diagnosis: the known cause and its fix, or (unknown) where to look; harmless lines said as such. */
export function criuHint(d: CriuDiagnosis, log: string | null): string {
  const parts: string[] = [];
  if (d.rule) parts.push(`CRIU says ${d.rule.explain} ${d.rule.fix}`);
  else parts.push(`This CRIU error is not one coldstart knows; \`criu check\` (as root) tells what this kernel lacks.`);
  if (d.device) {
    const { major, minor, path, name } = d.device;
    parts.push(`The device: chr ${major}:${minor}${path ? ` (${path})` : ''}, ${name ? `"${name}" in this machine's /proc/devices` : "a major this machine's /proc/devices does not list"}.`);
  }
  for (const h of d.harmless) parts.push(`(Also logged, not the cause: "${h.line}": ${h.rule.explain})`);
  if (log) parts.push(`Full log: ${log}.`);
  return parts.join(' ');
}
