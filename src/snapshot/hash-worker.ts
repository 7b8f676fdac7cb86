/**
 * One worker of the chunk hasher (hash.ts): hashes the byte ranges it is sent, each with sha256, reading through
 * a reused buffer with positioned reads. Regular files only (opened non-blocking: a FIFO put in an image never
 * blocks). Posts `{ id, digests }` or `{ id, error: { code, message } }`.
 */
import { parentPort } from 'node:worker_threads';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';

export interface HashJob {
  id: number;
  path: string;
  /** Chunks to hash: [offset, length] pairs of one file. */
  chunks: Array<[number, number]>;
}

const READ = 4 << 20;
let buf = Buffer.allocUnsafe(READ);

function hashChunks(job: HashJob): string[] {
  const fd = openSync(job.path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${job.path}: not a regular file`), { code: 'EINVAL' });
    const out: string[] = [];
    for (const [offset, length] of job.chunks) {
      const h = createHash('sha256');
      let done = 0;
      while (done < length) {
        const want = Math.min(READ, length - done);
        if (buf.length < want) buf = Buffer.allocUnsafe(want);
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

parentPort?.on('message', (job: HashJob) => {
  try {
    parentPort!.postMessage({ id: job.id, digests: hashChunks(job) });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    parentPort!.postMessage({ id: job.id, error: { code: err.code ?? 'EIO', message: err.message } });
  }
});
