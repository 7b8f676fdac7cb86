import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { epochSeconds } from './clock.js';
import { fromSystemError } from './errors.js';
import { makeDirs } from './paths.js';

/** Temporary paths still open, removed on SIGINT/SIGTERM/exit so an interrupted run leaves nothing behind. */
const pending = new Set<string>();
/** Partial work kept on purpose for the next run to resume, each with the synchronous step that puts it in place. */
const resumable = new Map<string, () => boolean>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    settleInterrupted();
  });
}

/** A temp name in the same directory as `target` (so the final rename is atomic on one filesystem). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.coldstart-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

/** The names tempPathFor makes: `.<name>.coldstart-<pid>-<8 hex>.tmp`. */
const TEMP_NAME = /^\.(.+)\.coldstart-(\d+)-[0-9a-f]{8}\.tmp$/;

/**
 * How long a leftover temp must have been left unmodified (its newest file) before another run removes it: a live
 * run in another PID namespace (a pod, another host on NFS) that shares the folder keeps writing into its temp, so
 * an idle hour means it is dead. Correctness never depends on this: a run whose temp was taken fails its rename
 * and leaves nothing half-written.
 */
export const LEFTOVER_IDLE_SECONDS = 3600;

/** Whether `pid` is a live process on this host (EPERM: alive, someone else's). */
function pidAlive(pid: number): boolean {
  if (pid === process.pid) return false; // our own temps are in `pending`; another with our pid is a dead incarnation's
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The newest mtime (ms) in a leftover, walking at most `budget` entries, and its size in bytes. */
function newestAndSize(path: string): { newest: number; bytes: number } {
  let newest = 0;
  let bytes = 0;
  let budget = 10_000;
  const walk = (p: string, depth: number) => {
    if (budget-- <= 0) return;
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    newest = Math.max(newest, st.mtimeMs);
    if (st.isFile()) bytes += st.size;
    if (st.isDirectory() && depth < 8) for (const n of readdirSync(p)) walk(join(p, n), depth + 1);
  };
  walk(path, 0);
  return { newest, bytes };
}

/**
 * Removes what killed runs left in `dir`: temps named by tempPathFor whose run is
 * not alive on this host, owned by this user, plain files or real folders (never a link), and unmodified for
 * LEFTOVER_IDLE_SECONDS. Returns what was removed, for the caller to say once.
 */
export function sweepLeftovers(dir: string, now = epochSeconds() * 1000): { removed: string[]; bytes: number } {
  const removed: string[] = [];
  let bytes = 0;
  const abs = resolve(dir);
  let names: string[];
  try {
    names = readdirSync(abs);
  } catch {
    return { removed, bytes };
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const p = join(abs, name);
    try {
      const st = lstatSync(p);
      if (!(st.isFile() || st.isDirectory()) || pending.has(p)) continue;
      if (typeof process.getuid === 'function' && st.uid !== process.getuid()) continue;
      if (pidAlive(Number(m[2]))) continue;
      const t = newestAndSize(p);
      if (now - t.newest < LEFTOVER_IDLE_SECONDS * 1000) continue;
      rmSync(p, { recursive: st.isDirectory(), force: true });
      removed.push(name);
      bytes += t.bytes;
    } catch {
      // gone meanwhile, or not ours to read: leave it
    }
  }
  return { removed, bytes };
}

export function trackTemp(path: string): void {
  hookExit();
  pending.add(path);
}
export function untrackTemp(path: string): void {
  pending.delete(path);
}
/** Removes a tracked temporary path (file or directory) and stops tracking it. */
export function removeTemp(path: string): void {
  rmSync(path, { recursive: true, force: true });
  pending.delete(path);
}
/** Removes every tracked temporary path now (used by signal handlers before exiting). */
export function cleanupTemps(): number {
  const n = pending.size;
  for (const p of pending) rmSync(p, { force: true, recursive: true });
  pending.clear();
  return n;
}

/**
 * Tracks partial work an interrupted run keeps on purpose (a download's partial blob, resumed by the next run):
 * on SIGINT/SIGTERM/EPIPE and at exit, `keep()` runs synchronously to put it where the next run looks, and
 * returns whether anything was kept (an empty partial is removed instead).
 */
export function trackResumable(path: string, keep: () => boolean): void {
  hookExit();
  resumable.set(path, keep);
}
export function untrackResumable(path: string): void {
  resumable.delete(path);
}

/**
 * Settles an interrupted run before it exits: tracked temporaries are removed, tracked resumable partials are
 * kept for the next run. Returns how many of each, so the interruption message says what really happened.
 */
export function settleInterrupted(): { removed: number; kept: number } {
  const removed = cleanupTemps();
  let kept = 0;
  for (const [path, keep] of [...resumable]) {
    resumable.delete(path);
    try {
      if (keep()) kept++;
    } catch {
      /* best effort: whatever was not put in place is found by the next run (or shown by `cache ls`) */
    }
  }
  return { removed, kept };
}

/** Writes `data` to `target` atomically: temp file in the same dir, fsync, rename. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  makeDirs(dirname(target));
  const tmp = tempPathFor(target);
  trackTemp(tmp);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, target);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw fromSystemError(e, target, 'write');
  } finally {
    untrackTemp(tmp);
  }
}
