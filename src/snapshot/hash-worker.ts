/**
 * One worker of the chunk hasher (hash.ts): hashes the byte ranges it is sent, each with sha256 (hash-chunks.ts).
 * Posts `{ id, digests }` or `{ id, error: { code, message } }`.
 */
import { parentPort } from 'node:worker_threads';
import { hashChunks, type HashJob } from './hash-chunks.js';

parentPort?.on('message', (job: HashJob) => {
  try {
    parentPort!.postMessage({ id: job.id, digests: hashChunks(job) });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    parentPort!.postMessage({ id: job.id, error: { code: err.code ?? 'EIO', message: err.message } });
  }
});
