/**
 * /proc, read once: THE `/proc/<pid>/stat` parser (pid, comm, state, parent, start time), the clock its start
 * times are on (/proc/uptime), and process trees (a pid and its descendants). Every reader of another process's
 * identity — the cache lock's owner check, the container phase, CRIU's process tree — goes through here; what its
 * descriptors point at (/proc/<pid>/fd); the CPU's feature flags (/proc/cpuinfo); the character devices' names
 * (/proc/devices); and which pages of its files a process has mapped (/proc/<pid>/maps + pagemap).
 * (The server shim is a standalone script with its own copy: it runs without coldstart's modules.)
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, readlinkSync } from 'node:fs';

/** USER_HZ: the unit of /proc/<pid>/stat start times; 100 on every mainstream Linux architecture. */
export const CLK_TCK = 100;

/** The fields of /proc/<pid>/stat coldstart reads (proc(5)). */
export interface ProcStat {
  pid: number;
  /** The command name (field 2) without its parentheses; it may itself hold spaces and parentheses. */
  comm: string;
  /** Field 3: R running, S sleeping, D disk sleep, Z zombie, T stopped, … */
  state: string;
  /** Field 4. */
  ppid: number;
  /** Field 22: start time in clock ticks since boot; the same value for the same process, so with the pid an identity. */
  startTicks: number;
  /** startTicks in seconds since boot (the clock of uptimeSeconds). */
  startSeconds: number;
  /** Field 52 (Linux 3.5+): the exit status as waitpid(2) reports it — meaningful for a zombie (state Z); null if absent. */
  exitStatus: number | null;
}

/**
 * Parses the text of a /proc/<pid>/stat file. The comm field ends at the LAST `)` (a process may call itself
 * `a) (b`); the fields after it are space-separated. Null when the text is not a stat line.
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const rest = text.slice(close + 2).trim().split(' ');
  const state = rest[0] ?? '';
  const ppid = Number(rest[4 - 3]);
  const startTicks = Number(rest[22 - 3]);
  if (!Number.isSafeInteger(pid) || !state || !Number.isSafeInteger(ppid) || !Number.isSafeInteger(startTicks)) return null;
  const exit = rest.length >= 52 - 2 ? Number(rest[52 - 3]) : NaN;
  return { pid, comm: text.slice(open + 1, close), state, ppid, startTicks, startSeconds: startTicks / CLK_TCK, exitStatus: Number.isSafeInteger(exit) ? exit : null };
}

/**
 * Whether a process has ended — gone, or a zombie nobody has reaped yet — and, for a zombie, the signal that ended it
 * (from its exit status; null when it exited by itself, is alive, or was reaped).
 */
export function processEnded(pid: number, procRoot = '/proc'): { ended: boolean; signal: number | null } {
  const st = readProcStat(pid, procRoot);
  if (st === null) return { ended: !existsSync(`${procRoot}/${pid}`), signal: null };
  if (st.state !== 'Z') return { ended: false, signal: null };
  const sig = st.exitStatus === null ? 0 : st.exitStatus & 0x7f;
  return { ended: true, signal: sig === 0 ? null : sig };
}

/** /proc/<pid>/stat of a process (or `self`), or null when it is gone or unreadable. `procRoot`: a fake /proc (tests). */
export function readProcStat(pid: number | 'self', procRoot = '/proc'): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return parseProcStat(text);
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or null. */
export function procStartTicks(pid: number | 'self', procRoot = '/proc'): number | null {
  return readProcStat(pid, procRoot)?.startTicks ?? null;
}

/** A process's command line, arguments joined by spaces and cut at `max` characters; '' when it is gone or unreadable. */
export function processCommand(pid: number, max = 200, procRoot = '/proc'): string {
  try {
    return readFileSync(`${procRoot}/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, max);
  } catch {
    return '';
  }
}

/**
 * What a process's open descriptors point at (/proc/<pid>/fd links: a path, `socket:[inode]`, `pipe:[…]`, …); empty
 * when it is gone or not ours to read; a descriptor closed while reading is left out.
 */
export function fdTargets(pid: number, procRoot = '/proc'): string[] {
  let fds: string[];
  try {
    fds = readdirSync(`${procRoot}/${pid}/fd`);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const fd of fds) {
    try {
      out.push(readlinkSync(`${procRoot}/${pid}/fd/${fd}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** Seconds since boot now (/proc/uptime), the clock /proc/<pid>/stat start times are on. */
export function uptimeSeconds(procRoot = '/proc'): number | null {
  try {
    const v = Number(readFileSync(`${procRoot}/uptime`, 'utf8').split(' ')[0]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** The direct children of a process, from /proc/<pid>/task/<tid>/children (every thread's; a thread may fork). */
export function childPids(pid: number, procRoot = '/proc'): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`${procRoot}/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`${procRoot}/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      /* the thread exited */
    }
  }
  return out;
}

/** Whether any of `pids` maps a file whose path contains `needle` (/proc/PID/maps; unreadable or gone: no). */
export function mapsFile(pids: readonly number[], needle: string, procRoot = '/proc'): boolean {
  for (const pid of pids) {
    try {
      if (readFileSync(`${procRoot}/${pid}/maps`, 'utf8').includes(needle)) return true;
    } catch {
      /* gone, or not ours to read */
    }
  }
  return false;
}

/** The CPU's feature flags (the first `flags` line of /proc/cpuinfo, x86); empty where there is none or it is unreadable. */
export function cpuFlags(procRoot = '/proc'): ReadonlySet<string> {
  try {
    const line = readFileSync(`${procRoot}/cpuinfo`, 'utf8').split('\n').find((l) => /^flags\s*:/.test(l));
    return new Set(line ? line.slice(line.indexOf(':') + 1).trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}

/**
 * Character-device majors by name from /proc/devices (`195 nvidia`, `506 gdrdrv`: the dynamic ones differ per host);
 * a major listed twice keeps its first name. Empty where it is unreadable.
 */
export function charDevices(procRoot = '/proc'): ReadonlyMap<number, string> {
  const out = new Map<number, string>();
  try {
    let inChar = false;
    for (const line of readFileSync(`${procRoot}/devices`, 'utf8').split('\n')) {
      if (/^Character devices:/.test(line)) inChar = true;
      else if (/^Block devices:/.test(line)) inChar = false;
      const m = inChar ? /^\s*(\d+)\s+(\S+)\s*$/.exec(line) : null;
      if (m && !out.has(Number(m[1]))) out.set(Number(m[1]), m[2]!);
    }
  } catch {
    /* no /proc/devices: nothing named */
  }
  return out;
}

/** Whether `pid` exists on this machine (a zombie counts until it is reaped: its /proc entry stays). */
export function pidAlive(pid: number, procRoot = '/proc'): boolean {
  return existsSync(`${procRoot}/${pid}`);
}

/** The pid and every descendant (children before grandchildren, breadth first). */
export function processTree(root: number, procRoot = '/proc'): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    // A pid is listed once even if /proc changes under the walk (a pid reused while it runs).
    if (seen.has(p)) continue;
    seen.add(p);
    out.push(p);
    queue.push(...childPids(p, procRoot));
  }
  return out;
}

/** One line of /proc/<pid>/maps that maps a regular file: its address range and the file offset it starts at. */
export interface FileMapping {
  start: number;
  end: number;
  /** Byte offset in the file of `start`. */
  offset: number;
  path: string;
}

/**
 * The mappings of files in a /proc/<pid>/maps text: a path that starts with `/`, not a device (/dev/…), not shared
 * memory (/SYSV…, /memfd:…) and not deleted (`(deleted)` after the path: the name no longer reaches those pages).
 */
export function parseFileMappings(text: string): FileMapping[] {
  const out: FileMapping[] = [];
  for (const line of text.split('\n')) {
    // start-end perms offset dev inode [path]; the path is the rest of the line and may hold spaces
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ \d+ +(\/.*)$/.exec(line);
    if (!m) continue;
    const path = m[4]!;
    if (path.startsWith('/dev/') || path.startsWith('/SYSV') || path.startsWith('/memfd:') || path.endsWith(' (deleted)')) continue;
    const start = parseInt(m[1]!, 16);
    const end = parseInt(m[2]!, 16);
    const offset = parseInt(m[3]!, 16);
    if (![start, end, offset].every(Number.isSafeInteger) || end <= start) continue;
    out.push({ start, end, offset, path });
  }
  return out;
}

/** pagemap entries read at once (8 bytes each: 512 KiB). */
const PAGEMAP_BATCH = 65536;
/** Bits of a /proc/<pid>/pagemap entry's last byte: 63 present in memory, 61 a file page (or shared anonymous). */
const PRESENT = 0x80;
const FILE_PAGE = 0x20;

/**
 * Walks /proc/<pid>/pagemap over every file mapping of /proc/<pid>/maps: `forMapping(mapping)` once per mapping, then
 * the visitor it returns with (page index in the mapping, last byte of the entry) for each page present in memory.
 * Reading pagemap needs the right to ptrace the process (root here). false when maps or pagemap is unreadable.
 */
function walkPresentFilePages(pid: number, procRoot: string, pageSize: number, forMapping: (m: FileMapping) => (page: number, flags: number) => void): boolean {
  let maps: string;
  let fd: number;
  try {
    maps = readFileSync(`${procRoot}/${pid}/maps`, 'utf8');
    fd = openSync(`${procRoot}/${pid}/pagemap`, 'r');
  } catch {
    return false;
  }
  const buf = Buffer.alloc(PAGEMAP_BATCH * 8);
  try {
    for (const m of parseFileMappings(maps)) {
      const visit = forMapping(m);
      const first = Math.floor(m.start / pageSize);
      const pages = Math.ceil((m.end - m.start) / pageSize);
      for (let done = 0; done < pages; ) {
        const want = Math.min(PAGEMAP_BATCH, pages - done);
        const got = Math.floor(readSync(fd, buf, 0, want * 8, (first + done) * 8) / 8);
        if (got <= 0) break;
        for (let i = 0; i < got; i++) {
          const flags = buf[i * 8 + 7]!;
          if (flags & PRESENT) visit(done + i, flags);
        }
        done += got;
      }
    }
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Appends one page to [start, length) runs, growing the last run where it is adjacent. */
function addPage(runs: Array<[number, number]>, at: number, pageSize: number): void {
  const last = runs[runs.length - 1];
  if (last && last[0] + last[1] === at) last[1] += pageSize;
  else runs.push([at, pageSize]);
}

/**
 * Which pages of its files `pid` has mapped now: per file mapping, the byte offsets in the file of its present pages,
 * as [offset, length) runs — every file mapping, also one with no page present (empty runs). Null when maps or
 * pagemap is unreadable.
 */
export function mappedFilePages(pid: number, procRoot = '/proc', pageSize = 4096): Array<{ path: string; runs: Array<[number, number]> }> | null {
  const out: Array<{ path: string; runs: Array<[number, number]> }> = [];
  const ok = walkPresentFilePages(pid, procRoot, pageSize, (m) => {
    const runs: Array<[number, number]> = [];
    out.push({ path: m.path, runs });
    return (page) => addPage(runs, m.offset + page * pageSize, pageSize);
  });
  return ok ? out : null;
}

/**
 * The address ranges of `pid`'s file mappings whose pages are file pages present in memory (not the copies a process
 * wrote into a private mapping: those are anonymous memory), as address, length, address, length…: what snapshot
 * pages out to learn which of them the server touches again (src/native pageOut). Null when unreadable.
 */
export function filePagesPresent(pid: number, procRoot = '/proc', pageSize = 4096): number[] | null {
  const runs: Array<[number, number]> = [];
  const ok = walkPresentFilePages(pid, procRoot, pageSize, (m) => (page, flags) => {
    if (flags & FILE_PAGE) addPage(runs, m.start + page * pageSize, pageSize);
  });
  return ok ? runs.flat() : null;
}

/** Linux capability numbers coldstart asks about (include/uapi/linux/capability.h). */
export const CAP_SYS_PTRACE = 19;
export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_NICE = 23;

/** The value of line `key:` of /proc/<pid>/status, when it matches `value` (one capture group); null otherwise or unreadable. */
function statusValue(pid: number | 'self', key: string, value: RegExp, procRoot: string): string | null {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  return new RegExp(`^${key}:\\s*${value.source}\\s*$`, 'm').exec(text)?.[1] ?? null;
}

/** `pid`'s seccomp mode (`Seccomp:` of /proc/<pid>/status: 0 none, 1 strict, 2 a filter); null when unreadable. */
export function seccompMode(pid: number | 'self' = 'self', procRoot = '/proc'): number | null {
  const v = statusValue(pid, 'Seccomp', /(\d+)/, procRoot);
  return v === null ? null : Number(v);
}

/**
 * What this process may do as a tracer of a process it starts (CRIU, its child, seizing the server): CAP_SYS_PTRACE,
 * CAP_SYS_ADMIN, its own seccomp mode (which the server inherits), Yama's ptrace scope. null: not read.
 */
export interface TracerPermissions {
  sysPtrace: boolean | null;
  sysAdmin: boolean | null;
  seccomp: number | null;
  ptraceScope: number | null;
}

export function tracerPermissions(procRoot = '/proc'): TracerPermissions {
  return { sysPtrace: hasCapability(CAP_SYS_PTRACE, 'self', procRoot), sysAdmin: hasCapability(CAP_SYS_ADMIN, 'self', procRoot), seccomp: seccompMode('self', procRoot), ptraceScope: ptraceScope(procRoot) };
}

/** Yama's ptrace scope (/proc/sys/kernel/yama/ptrace_scope: 0–3, 3 = no attaching at all); null without Yama. */
export function ptraceScope(procRoot = '/proc'): number | null {
  try {
    const v = Number(readFileSync(`${procRoot}/sys/kernel/yama/ptrace_scope`, 'utf8').trim());
    return Number.isInteger(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Whether `pid` (default: this process) holds capability `cap` in its effective set (`CapEff:` of
 * /proc/<pid>/status, a hex mask); null when the status cannot be read or has no such line.
 */
export function hasCapability(cap: number, pid: number | 'self' = 'self', procRoot = '/proc'): boolean | null {
  const mask = statusValue(pid, 'CapEff', /([0-9a-fA-F]+)/, procRoot);
  return mask === null ? null : ((BigInt(`0x${mask}`) >> BigInt(cap)) & 1n) === 1n;
}
