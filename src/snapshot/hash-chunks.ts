/**
 * The chunk hasher's one read-and-hash loop: sha256 of each [offset, length] range of one file, read through a reused
 * buffer with positioned reads. Regular files only (opened non-blocking: a FIFO put in an image never blocks).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';

/** One message to a hash worker: which byte ranges of one file to hash. */
export interface HashJob {
  id: number;
  path: string;
  /** Chunks to hash: [offset, length] pairs of one file. */
  chunks: Array<[number, number]>;
}

const READ = 4 << 20;
let buf: Buffer | null = null; // allocated on first use, then reused by this thread

/** Hashes a job's chunks on the calling thread: a worker's job (hash-worker.ts), or hash.ts's own for a few small files. */
export function hashChunks(job: Omit<HashJob, 'id'>): string[] {
  const fd = openSync(job.path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${job.path}: not a regular file`), { code: 'EINVAL' });
    const out: string[] = [];
    for (const [offset, length] of job.chunks) {
      const h = createHash('sha256');
      let done = 0;
      while (done < length) {
        const want = Math.min(READ, length - done);
        if (!buf || buf.length < want) buf = Buffer.allocUnsafe(Math.max(READ, want));
        const n = readSync(fd, buf, 0, want, offset + done);
        if (n === 0) throw Object.assign(new Error(`${job.path}: shorter than expected (ended at ${offset + done})`), { code: 'ESHORT' });
        h.update(buf.subarray(0, n));
        done += n;
      }
      out.push(h.digest('hex'));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
