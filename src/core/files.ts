import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ColdstartError, fromSystemError } from './errors.js';

/**
 * Opens an input file read-only (system errors mapped with their hint) and refuses a directory with
 * `${path}: ${ifDirectory}`. Returns the descriptor and size; the caller closes it (closeInput).
 */
export function openInput(path: string, ifDirectory: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw fromSystemError(e, path, 'read');
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ColdstartError('BAD_INPUT', `${path}: ${ifDirectory}`);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

export function closeInput(fd: number): void {
  closeSync(fd);
}

/** Reads `len` bytes at `pos`; fewer only at the end of the file. */
export function readUpTo(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === len ? buf : buf.subarray(0, got);
}
