/**
 * Everything that talks to CRIU (through its documented command line) and reads /proc for `snapshot` /
 * `restore`: finding a usable criu, the process tree of a server, its listening ports, its memory size, the
 * image's file list with sizes, the processes holding GPU device files. No CUDA here: the driver calls live in the native addon.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { shippedPath } from '../core/version.js';
import { charDevices, fdTargets, processCommand, processTree } from '../platform/procfs.js';
import { criuHint, diagnoseCriuLog } from './criu-log.js';

type Env = Record<string, string | undefined>;

export interface CriuInfo {
  path: string;
  version: string;
}

/**
 * Runs a program, collects its output; never throws for a non-zero exit. `fds`: open descriptors handed to the
 * program as its fds 3, 4, …
 */
export function runCapture(cmd: string, args: string[], opts: { timeoutMs?: number; env?: Env; fds?: number[] } = {}): Promise<{ code: number | null; stdout: string; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let child;
    try {
      child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe', ...(opts.fds ?? [])], env: (opts.env ?? process.env) as NodeJS.ProcessEnv });
    } catch (e) {
      resolve({ code: null, stdout, stderr, error: (e as Error).message });
      return;
    }
    // On timeout the program and everything it started die (a stuck `criu restore` leaves half-restored tasks).
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          for (const p of child.pid !== undefined ? processTree(child.pid).reverse() : []) {
            try {
              process.kill(p, 'SIGKILL');
            } catch {
              /* gone */
            }
          }
        }, opts.timeoutMs)
      : undefined;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      resolve({ code: null, stdout, stderr, error: e.message });
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `COLDSTART_CRIU`, else `criu` on PATH; null (with why) when neither runs. */
export async function findCriu(env: Env): Promise<{ ok: true; criu: CriuInfo } | { ok: false; reason: string }> {
  const path = env.COLDSTART_CRIU || 'criu';
  const r = await runCapture(path, ['--version'], { timeoutMs: 10_000, env });
  if (r.code !== 0) {
    return { ok: false, reason: r.error?.includes('ENOENT') ? `${path} not found` : `${path} --version failed: ${(r.error ?? r.stderr).trim().split('\n')[0] ?? ''}` };
  }
  const m = /Version:\s*(\S+)/.exec(r.stdout);
  return { ok: true, criu: { path, version: m?.[1] ?? r.stdout.trim().split('\n')[0] ?? 'unknown' } };
}

export async function requireCriu(env: Env): Promise<CriuInfo> {
  const f = await findCriu(env);
  if (f.ok) return f.criu;
  throw new ColdstartError('MISSING_DEPENDENCY', `CRIU is needed to snapshot and restore processes, but ${f.reason}`, {
    hint: `Install CRIU 4.2 or newer (Debian: \`eval "$(${shippedPath('scripts/ci-criu.sh')})"\` fetches Debian forky's criu and sets COLDSTART_CRIU), or put criu on PATH.`,
  });
}

/** `criu check` (as root): 'ok', or the first line that says what this kernel lacks. */
export async function criuCheck(criu: CriuInfo, env: Env): Promise<{ ok: boolean; detail: string }> {
  const r = await runCapture(criu.path, ['check'], { timeoutMs: 30_000, env });
  if (r.code === 0) return { ok: true, detail: 'ok' };
  return { ok: false, detail: (r.stderr + r.stdout).split('\n').filter((l) => /Error|fail/i.test(l))[0] ?? `exit ${r.code}` };
}

/** Common flags: TCP connections are restored closed (clients reconnect), file locks kept, unix sockets to outside allowed. */
const COMMON = ['--tcp-close', '--file-locks', '--ext-unix-sk'];

/**
 * `criu dump` of the tree rooted at `pid` into `dir`; the tree is killed when the dump succeeds. `keepLogAt`: where
 * CRIU's dump.log is moved when the dump fails, so the error names a log that outlives `dir` (which the caller
 * removes); it must be on the same filesystem as `dir` (a rename).
 */
export async function criuDump(criu: CriuInfo, pid: number, dir: string, env: Env, opts: { timeoutMs?: number; keepLogAt?: string } = {}): Promise<void> {
  const r = await runCapture(criu.path, ['dump', '-t', String(pid), '-D', dir, ...COMMON, '-v2', '-o', 'dump.log'], { env, timeoutMs: opts.timeoutMs ?? 1_800_000 });
  if (r.code === 0) return;
  let log: string | null = join(dir, 'dump.log');
  if (opts.keepLogAt) {
    try {
      renameSync(log, opts.keepLogAt);
      log = opts.keepLogAt;
    } catch {
      log = null; // CRIU wrote none (it did not start), or it cannot be kept: quote stderr, name no file
    }
  }
  throw criuFailure('dump', log, r.stderr);
}

/**
 * `criu restore --restore-detached` from `dir`; the work dir (logs, pidfile) is kept out of the image.
 * `leaveStopped`: the tasks stay stopped (`--leave-stopped`) until the caller sends SIGCONT (restore verifies first).
 * `inherit`: an open file that replaces the file the image had open at `inherit.path` (the server's log), through
 * CRIU's `--inherit-fd`, so the restored tasks write there and nothing is opened at the image's recorded path.
 * `filesChecked`: the caller has checked every file the image maps (size and mtime as at snapshot time), so CRIU checks
 * their sizes only (`--file-validation filesize`) instead of its default, which maps the first MiB of each mapped ELF
 * file and reads its build-ID note, file after file on CRIU's one thread: on a cold node each is a read from the disk
 * (a whole readahead window around it) before CRIU goes on.
 */
export async function criuRestore(criu: CriuInfo, dir: string, workDir: string, env: Env, timeoutMs = 600_000, inherit?: { fd: number; path: string }, opts: { leaveStopped?: boolean; filesChecked?: boolean } = {}): Promise<number> {
  const pidfile = join(workDir, 'restored.pid');
  // CRIU names a regular file by its path without the leading slash; the fd is the child's fd 3.
  const inheritArgs = inherit ? ['--inherit-fd', `fd[3]:${inherit.path.replace(/^\/+/, '')}`] : [];
  const r = await runCapture(criu.path, ['restore', '-D', dir, '-W', workDir, ...COMMON, ...inheritArgs, ...(opts.leaveStopped ? ['--leave-stopped'] : []), ...(opts.filesChecked ? ['--file-validation', 'filesize'] : []), '--restore-detached', '--pidfile', pidfile, '-v2', '-o', 'restore.log'], {
    env,
    timeoutMs,
    fds: inherit ? [inherit.fd] : [],
  });
  if (r.code === null && !r.error) {
    const log = join(workDir, 'restore.log');
    throw new ColdstartError('TIMEOUT', `criu restore did not finish within ${timeoutMs / 1000} s; it and the tasks it started were killed`, { hint: `Log: ${log}`, details: { log } });
  }
  if (r.code !== 0) throw criuFailure('restore', join(workDir, 'restore.log'), r.stderr);
  return Number(readFileSync(pidfile, 'utf8').trim());
}

/**
 * A failed dump/restore, explained from CRIU's own log (criu-log.ts): the line it failed on (not a harmless one
 * logged before it), the known cause and its fix; the hint names `log` only when it exists. Without a log, stderr.
 */
function criuFailure(what: string, log: string | null, stderr: string): ColdstartError {
  let text = stderr;
  try {
    if (log !== null) text = readFileSync(log, 'utf8');
  } catch {
    /* no log: CRIU did not start; stderr it is */
  }
  const d = diagnoseCriuLog(text, charDevices());
  const first = d.cause ?? stderr.split('\n').find(Boolean) ?? 'no log';
  const kept = log !== null && existsSync(log) ? log : null;
  return new ColdstartError('ENV', `criu ${what} failed: ${first.trim()}${d.at ? ` (${d.at})` : ''}`, {
    hint: criuHint(d, kept),
    details: { log: kept, cause: d.rule?.id ?? null, errors: d.errors, harmless: d.harmless.map((h) => h.line), device: d.device },
  });
}

// ---------------------------------------------------------------------------------------------- /proc

/** Resident plus swapped bytes of the tree: an upper bound for the CRIU image's page data. */
export function treeMemoryBytes(pids: readonly number[]): number {
  let total = 0;
  for (const p of pids) {
    try {
      const t = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      for (const key of ['Rss', 'Swap']) {
        const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(t);
        if (m) total += Number(m[1]) * 1024;
      }
    } catch {
      try {
        const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
        if (m) total += Number(m[1]) * 1024;
      } catch {
        /* exited */
      }
    }
  }
  return total;
}

/** True when something on this machine already listens on (address, port): binding it fails with EADDRINUSE. */
export function portInUse(port: number, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE'));
    srv.listen({ port, host: address === '0.0.0.0' || address === '::' ? undefined : address, exclusive: true }, () => srv.close(() => resolve(false)));
  });
}

export function kernelRelease(): string {
  try {
    return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------- image files

/** Files CRIU itself may add to an image directory after the dump (restore statistics); never verified. */
export const VOLATILE_IMAGE_FILES = /^stats-(dump|restore)$/;

/** The regular files of an image directory CRIU wrote (names sorted, with their sizes); hashing is hash.ts's. */
export function listImageFiles(dir: string, exclude: readonly string[] = []): Array<{ name: string; bytes: number }> {
  const out: Array<{ name: string; bytes: number }> = [];
  for (const name of readdirSync(dir).sort()) {
    if (exclude.includes(name) || VOLATILE_IMAGE_FILES.test(name)) continue;
    const st = statSync(join(dir, name));
    if (!st.isFile()) continue;
    out.push({ name, bytes: st.size });
  }
  return out;
}

/**
 * Processes of `pids` holding an NVIDIA device file open (/dev/nvidia*), from /proc/PID/fd: CRIU cannot save a
 * device file, so every such process must be one whose CUDA state the driver checkpoints (it then closes them).
 */
export function gpuDeviceHolders(pids: readonly number[]): Array<{ pid: number; devices: string[]; command: string }> {
  const out: Array<{ pid: number; devices: string[]; command: string }> = [];
  for (const pid of pids) {
    const devices = new Set(fdTargets(pid).filter((t) => /^\/dev\/nvidia/.test(t)));
    if (!devices.size) continue;
    out.push({ pid, devices: [...devices].sort(), command: processCommand(pid) });
  }
  return out;
}
