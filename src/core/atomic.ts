import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fromSystemError } from './errors.js';
import { makeDirs } from './paths.js';

/** Temporary paths still open, removed on SIGINT/SIGTERM/exit so an interrupted run leaves nothing behind. */
const pending = new Set<string>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const p of pending) rmSync(p, { force: true, recursive: true });
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
