import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, read, readdirSync, readSync, statSync, writeSync, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import { abortReason } from './clock.js';
import { ColdstartError, fromSystemError } from './errors.js';

function notRegular(path: string, st: { isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): ColdstartError {
  const what = st.isFIFO() ? 'a FIFO (named pipe)' : st.isSocket() ? 'a socket' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : 'not a regular file';
  return new ColdstartError('BAD_INPUT', `${path}: is ${what}, not a regular file; refused before opening it`, { hint: 'Pass the real file (a pipe or device would block or never end).' });
}

/**
 * Opens an input file read-only (system errors mapped with their hint) and refuses a directory with
 * `${path}: ${ifDirectory}`, and anything that is not a regular file (FIFO, socket, device) before opening it —
 * open() on a FIFO blocks the whole process, signals included. O_NONBLOCK closes the stat→open race (a FIFO
 * swapped in opens at once and is refused by fstat). Returns the descriptor and size; the caller closes it.
 */
export function openInput(path: string, ifDirectory: string): { fd: number; size: number } {
  let fd: number;
  try {
    const pre = statSync(path);
    if (pre.isDirectory()) throw new ColdstartError('BAD_INPUT', `${path}: ${ifDirectory}`);
    if (!pre.isFile()) throw notRegular(path, pre);
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if (e instanceof ColdstartError) throw e;
    throw fromSystemError(e, path, 'read');
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ColdstartError('BAD_INPUT', `${path}: ${ifDirectory}`);
    if (!st.isFile()) throw notRegular(path, st);
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

/** The most an input we read whole (a report, a config, an index, a manifest) may be: past it, it is refused unread. */
export const SMALL_INPUT_MAX = 64 << 20;

/**
 * The one reader of a small untrusted file read whole: regular files only (a FIFO or device is refused before it
 * could block), opened non-blocking, its size checked against `maxBytes` before a byte is read, so `/dev/zero` or
 * a 20 GB file named as a report never fills memory. `what` names the file in the message ("report", "config").
 */
export function readInputFile(path: string, what: string, maxBytes = SMALL_INPUT_MAX): Buffer {
  const { fd, size } = openInput(path, `is a directory, expected a ${what} file`);
  try {
    if (size > maxBytes) {
      throw new ColdstartError('BAD_INPUT', `${path}: ${what} is ${size} bytes, more than the ${maxBytes}-byte limit; refused unread`, { hint: `Pass the ${what} file itself; a file this large is not one.` });
    }
    const buf = readUpTo(fd, 0, size);
    // The file grew while we read it: read no further than the size we checked.
    return buf;
  } catch (e) {
    throw e instanceof ColdstartError ? e : fromSystemError(e, path, 'read');
  } finally {
    closeSync(fd);
  }
}

/** `readInputFile` as UTF-8 text. */
export function readInputText(path: string, what: string, maxBytes = SMALL_INPUT_MAX): string {
  return readInputFile(path, what, maxBytes).toString('utf8');
}

/**
 * Whether anything is at `path` — a file, a folder, a FIFO, or a symlink even when it dangles or loops (lstat):
 * the test for "the user named a path" before a name is taken for something else (a Hub repo id, no config), so
 * that a broken path is refused naming it rather than silently reinterpreted. A missing path or one under a
 * non-folder is `false`; a parent loop or an over-long name is refused (BAD_INPUT, exit 2).
 */
export function pathEntryExists(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EACCES') return false;
    throw fromSystemError(e, path, 'read');
  }
}

/**
 * stat() of an input path, following symlinks; a loop, dangling link or unreadable parent is a ColdstartError naming
 * `shown` (the path as the user gave it, by default `path`).
 */
export function statInput(path: string, shown = path): Stats {
  try {
    return statSync(path);
  } catch (e) {
    throw fromSystemError(e, shown, 'read');
  }
}

const HASH_READ = 1 << 20;
const readAsync = promisify(read);

/**
 * SHA-256 of a regular file in 1 MiB reads (bounded memory whatever its size), hex. A FIFO, socket, device or folder
 * is refused before it is read (openInput), never waited on; `signal` stops it between reads.
 */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const { fd } = openInput(path, 'is a directory, expected a file');
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_READ);
  try {
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      let n: number;
      try {
        n = (await readAsync(fd, buf, 0, buf.length, null)).bytesRead;
      } catch (e) {
        throw fromSystemError(e, path, 'read');
      }
      if (n === 0) return h.digest('hex');
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}

/** Reads the input `fd` (opened from `path`) to its end in 1 MiB reads, handing each to `take` (a reused buffer). */
function eachChunkSync(fd: number, path: string, take: (b: Buffer) => void): void {
  const buf = Buffer.allocUnsafe(HASH_READ);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      throw fromSystemError(e, path, 'read');
    }
    if (n === 0) return;
    take(buf.subarray(0, n));
  }
}

/**
 * Copies the regular file `src` to a new file `dst` (created, never replaced: O_EXCL) and returns the sha256 of the
 * bytes written — the digest is of the copy itself, so a check against it leaves no window between check and use. A
 * FIFO, socket, device or folder at `src` is refused before it is read (openInput), never waited on.
 */
export function copyInputFile(src: string, dst: string): string {
  const { fd } = openInput(src, 'is a directory, expected a file');
  try {
    let out: number;
    try {
      out = openSync(dst, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (e) {
      throw fromSystemError(e, dst, 'write');
    }
    const h = createHash('sha256');
    try {
      eachChunkSync(fd, src, (b) => {
        h.update(b);
        for (let off = 0; off < b.length; ) {
          try {
            off += writeSync(out, b, off, b.length - off);
          } catch (e) {
            throw fromSystemError(e, dst, 'write');
          }
        }
      });
      return h.digest('hex');
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(fd);
  }
}

/** sha256File for a synchronous caller (no signal): the same checks, the same digest. */
export function sha256FileSync(path: string): string {
  const { fd } = openInput(path, 'is a directory, expected a file');
  try {
    const h = createHash('sha256');
    eachChunkSync(fd, path, (b) => h.update(b));
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** stat() of an input that must be a regular file (symlinks followed): a FIFO, socket or device is refused unopened (BAD_INPUT). */
export function statRegularFile(path: string): Stats {
  const st = statInput(path);
  if (!st.isFile()) throw st.isDirectory() ? new ColdstartError('BAD_INPUT', `${path}: is a directory, expected a file`) : notRegular(path, st);
  return st;
}

/** The names in an input folder, sorted; system errors (EACCES, ELOOP, ENOTDIR) as ColdstartErrors naming `shown`. */
export function listInputDir(dir: string, shown = dir): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (e) {
    throw fromSystemError(e, shown, 'list');
  }
}

/** The bytes of these files, links followed (a cached repo's snapshot files are links to its blobs); one gone counts nothing. */
export function filesBytes(files: readonly string[]): number {
  let n = 0;
  for (const f of files) {
    try {
      n += statSync(f).size;
    } catch {
      /* gone: nothing */
    }
  }
  return n;
}
