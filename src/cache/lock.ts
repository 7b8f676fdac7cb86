/**
 * A per-blob lock between coldstart processes. It only avoids duplicate work: the cache stays correct without
 * it (each process writes its own partial file and a blob enters the cache only verified, by a link that
 * never overwrites one; see download.ts), so a lock that is wrongly broken costs bandwidth, never bytes.
 *
 * - Created atomically with its content: a temp file holding the owner's identity is written, then
 *   link()ed to the lock name (EEXIST: held). No reader ever sees an empty or half-written lock.
 * - The identity: host, PID-namespace inode (/proc/self/ns/pid), pid, process start time (/proc/self/stat
 *   field 22), and a random token that says "mine" on release.
 * - A heartbeat: the owner refreshes the lock's mtime every HEARTBEAT while alive. A lock is stale when its
 *   heartbeat is older than the bound (COLDSTART_LOCK_STALE_SECONDS, default 30 s), whatever host or PID
 *   namespace wrote it. Same host and same PID namespace and the pid is gone (or reused: start time
 *   differs) is stale at once. A lock from another PID namespace with the same hostname (containers of one
 *   pod, `unshare -p`) is never judged by pid: its pid means nothing here.
 * - Breaking a stale lock renames it to a unique name first (one breaker wins), then removes it.
 *
 * Python's huggingface_hub locks with flock on `.locks/<repo>/<etag>.lock`; Node has no flock, so ours is
 * a sibling file (`<etag>.coldstart.lock`) and never touches Python's lock file.
 */
import { closeSync, linkSync, openSync, readlinkSync, renameSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { fromSystemError } from '../core/errors.js';
import { epochSeconds, sleep } from '../core/clock.js';
import { makeDirs } from '../core/paths.js';
import { readInputText } from '../core/files.js';
import { procStartTicks } from '../platform/procfs.js';

export interface LockOwner {
  v: 1;
  host: string;
  /** Inode of /proc/self/ns/pid ("pid:[4026531836]" → "4026531836"), or null where /proc is absent. */
  pidns: string | null;
  pid: number;
  /** /proc/<pid>/stat starttime (clock ticks since boot), or null. */
  start: string | null;
  token: string;
  created: string;
}

export function pidNamespace(): string | null {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** A process's start time (field 22 of /proc/<pid>/stat) as the lock file records it, or null. */
export function processStart(pid: number | 'self'): string | null {
  const t = procStartTicks(pid);
  return t === null ? null : String(t);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function staleSeconds(env: Record<string, string | undefined> = process.env): number {
  const n = Number(env.COLDSTART_LOCK_STALE_SECONDS);
  return Number.isFinite(n) && n > 0 ? n : 30;
}

export function readOwner(path: string): LockOwner | null {
  try {
    // Regular files only, size-capped: a FIFO planted as a lock in a shared cache is refused, never blocks.
    const o = JSON.parse(readInputText(path, 'lock', 64 << 10)) as LockOwner;
    return o && o.v === 1 && typeof o.pid === 'number' ? o : null;
  } catch {
    return null;
  }
}

export type LockState =
  | { state: 'free' }
  | { state: 'live'; owner: LockOwner | null; heartbeatAge: number; why: string }
  | { state: 'stale'; owner: LockOwner | null; heartbeatAge: number; why: string };

/** What a lock file says about its owner: live, stale (with why), or free. */
export function inspectLock(path: string, staleAfter = staleSeconds()): LockState {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(path).mtimeMs;
  } catch {
    return { state: 'free' };
  }
  const age = Math.max(0, (epochSeconds() * 1000 - mtimeMs) / 1000);
  const owner = readOwner(path);
  if (age > staleAfter) return { state: 'stale', owner, heartbeatAge: age, why: `no heartbeat for ${Math.round(age)} s (bound ${staleAfter} s)` };
  if (owner && owner.host === hostname() && owner.pidns !== null && owner.pidns === pidNamespace()) {
    if (!alive(owner.pid)) return { state: 'stale', owner, heartbeatAge: age, why: `process ${owner.pid} on this host is gone` };
    const st = processStart(owner.pid);
    if (owner.start && st && st !== owner.start) return { state: 'stale', owner, heartbeatAge: age, why: `process ${owner.pid} on this host is gone (its pid was reused)` };
  }
  return { state: 'live', owner, heartbeatAge: age, why: owner ? `held by pid ${owner.pid} on ${owner.host}${owner.pidns && owner.pidns !== pidNamespace() ? ` (PID namespace ${owner.pidns})` : ''}, heartbeat ${age.toFixed(1)} s ago` : `heartbeat ${age.toFixed(1)} s ago` };
}

/** Removes a stale lock: rename to a unique name (one breaker wins the rename), then delete. */
export function breakLock(path: string): void {
  const doomed = `${path}.${randomBytes(4).toString('hex')}.broken`;
  try {
    renameSync(path, doomed);
  } catch {
    return;
  }
  rmSync(doomed, { force: true });
}

export interface Lock {
  release(): void;
}

/** Locks this process holds, released when it exits (a Ctrl-C exits at once, before any `finally` runs). */
const held = new Set<Lock>();
let exitHook = false;
function holdUntilExit(lock: Lock): void {
  held.add(lock);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const l of [...held]) l.release();
  });
}

/**
 * Acquires `path`, polling while another live process holds it; `onWait` is told once that we wait. The
 * returned lock refreshes its heartbeat until released.
 */
export async function acquireLock(path: string, opts: { signal?: AbortSignal; onWait?: () => void; pollMs?: number; env?: Record<string, string | undefined> } = {}): Promise<Lock> {
  makeDirs(dirname(path));
  const staleAfter = staleSeconds(opts.env);
  const token = randomBytes(12).toString('hex');
  const owner: LockOwner = { v: 1, host: hostname(), pidns: pidNamespace(), pid: process.pid, start: processStart('self'), token, created: new Date().toISOString() };
  const tmp = `${path}.${token}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, `${JSON.stringify(owner)}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw fromSystemError(e, tmp, 'lock');
  }
  let told = false;
  try {
    for (;;) {
      try {
        linkSync(tmp, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(e, path, 'lock');
      }
      if (inspectLock(path, staleAfter).state === 'stale') {
        breakLock(path);
        continue;
      }
      if (!told) {
        opts.onWait?.();
        told = true;
      }
      await sleep(opts.pollMs ?? 200, opts.signal);
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  const mine = () => readOwner(path)?.token === token;
  const beat = setInterval(
    () => {
      try {
        if (mine()) {
          const t = new Date();
          utimesSync(path, t, t);
        }
      } catch {
        /* gone: the next holder's problem, never ours */
      }
    },
    Math.max(50, (staleAfter * 1000) / 4),
  );
  beat.unref();
  let holding = true;
  const lock: Lock = {
    release() {
      if (!holding) return;
      holding = false;
      held.delete(lock);
      clearInterval(beat);
      if (mine()) rmSync(path, { force: true });
    },
  };
  holdUntilExit(lock);
  return lock;
}
