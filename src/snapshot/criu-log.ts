/**
 * What a failed `criu dump` / `criu restore` says in its own log (IMAGE.dump.log, the restore's restore.log), read
 * instead of guessed: CRIU writes every problem as `Error (criu/FILE.c:LINE): …` (log.h's pr_err/pr_perror), some of
 * them not fatal, and ends with `Dumping FAILED.` / `Restoring FAILED.`. Each known cause is one rule here, its
 * pattern taken from the format string in CRIU's source (named in `source`) and tested against real logs
 * (test/fixtures-criu/). The cause is the first error line that is neither known-harmless nor the closing line.
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
    source: 'criu/files-ext.c:dump_unsupp_fd',
    explain: 'a process of the server holds a device file CRIU cannot save (a GPU device /dev/nvidia* held by a process the CUDA checkpoint did not cover, e.g. a compile worker that initialised CUDA).',
    fix: 'Make every process that opened the GPU hold a CUDA context coldstart checkpoints, or end such helpers before the snapshot (for torch Inductor: TORCHINDUCTOR_COMPILE_THREADS=1, or shut its compile workers down in a --before-snapshot hook).',
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
    id: 'unsupported-socket',
    match: /Unsupported (proto|socket family|socket type|type \(\d+\) on socket)|Can't dump \d+ inet socket/,
    source: 'criu/sk-inet.c, criu/sk-unix.c',
    explain: 'a process of the server holds a socket of a kind CRIU cannot save.',
    fix: 'Close that socket before the snapshot (a --before-snapshot hook).',
  },
];

const ERROR_LINE = /^(?:\(\s*[\d.]+\)\s*)?Error \(([^)]*)\):\s*(.*)$/;
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
}

/** Reads CRIU's log text: the failing line, the rule that explains it, the harmless lines beside it. */
export function diagnoseCriuLog(text: string): CriuDiagnosis {
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
  return { cause: shown?.msg ?? null, at: shown?.at ?? null, rule, harmless, errors: errors.slice(0, 20).map((e) => `Error (${e.at}): ${e.msg}`) };
}

/** The hint for a diagnosis: the known cause and its fix, or (unknown) where to look; harmless lines said as such. */
export function criuHint(d: CriuDiagnosis, log: string | null): string {
  const parts: string[] = [];
  if (d.rule) parts.push(`CRIU says ${d.rule.explain} ${d.rule.fix}`);
  else parts.push(`This CRIU error is not one coldstart knows; \`criu check\` (as root) tells what this kernel lacks.`);
  for (const h of d.harmless) parts.push(`(Also logged, not the cause: "${h.line}": ${h.rule.explain})`);
  if (log) parts.push(`Full log: ${log}.`);
  return parts.join(' ');
}
