/**
 * A plain host read of weight files: large sequential reads through whatever the page cache holds, timed. The
 * floor for files the native loader does not read (.bin), and how profile warms the page cache for a stack.
 */
import { closeSync, readSync } from 'node:fs';
import { openInput } from '../core/files.js';
import { Stopwatch } from '../core/clock.js';

export interface HostReadResult {
  bytes: number;
  seconds: number;
  bytesPerSecond: number;
  files: Array<{ path: string; bytes: number; seconds: number }>;
}

/**
 * A plain host read of the weight files with large sequential reads (whatever the page cache holds), timed:
 * the floor for files the native loader does not read (.bin).
 */
export function hostRead(files: readonly string[], chunkBytes = 16 << 20, signal?: AbortSignal): HostReadResult {
  const buf = Buffer.allocUnsafe(chunkBytes);
  const out: HostReadResult['files'] = [];
  const total = new Stopwatch();
  let bytes = 0;
  for (const path of files) {
    const sw = new Stopwatch();
    // Regular files only, opened non-blocking: a FIFO or device named like a weights file is refused, never read.
    const { fd, size } = openInput(path, 'is a directory, expected a weights file');
    let n = 0;
    try {
      while (n < size) {
        signal?.throwIfAborted();
        const r = readSync(fd, buf, 0, Math.min(chunkBytes, size - n), n);
        if (r === 0) break;
        n += r;
      }
    } finally {
      closeSync(fd);
    }
    bytes += n;
    out.push({ path, bytes: n, seconds: sw.elapsed() });
  }
  const seconds = total.elapsed();
  return { bytes, seconds, bytesPerSecond: seconds > 0 ? bytes / seconds : 0, files: out };
}
