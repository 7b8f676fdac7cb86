import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
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
