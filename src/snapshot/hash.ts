/**
 * Every byte of an image, hashed at the disk's rate or faster: each file is cut into fixed chunks (16 MiB), the
 * chunks are hashed with sha256 on a pool of worker threads (≈1.5 GB/s a core with SHA-NI, so a 16-core node
 * hashes far faster than its disk reads), and a file's digest is the sha256 of its chunk digests in order. A
 * flipped byte anywhere changes its chunk's digest, so the check names the file and the byte range.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { compiledWorker } from '../core/version.js';
import { hashChunks, type HashJob } from './hash-chunks.js';

/** The chunk every digest is taken over; recorded in the manifest with the digests. */
export const CHUNK_BYTES = 16 << 20;
/** The name of the scheme, as the manifest records it. */
export const CHUNK_HASH = 'sha256-chunks-16MiB';

export interface FileDigest {
  bytes: number;
  /** sha256 over the chunk digests (hex), in order. */
  digest: string;
  /** One sha256 (hex) per CHUNK_BYTES of the file, the last one shorter. */
  chunks: string[];
}

const workerUrl = () => compiledWorker('snapshot/hash-worker.js', 'the hash workers');

/** The digest of a file from its chunk digests. */
export function rootDigest(chunks: readonly string[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(Buffer.from(c, 'hex'));
  return h.digest('hex');
}

/** hashFiles' options. */
export interface HashOptions {
  threads?: number;
  signal?: AbortSignal;
  /** Called with the bytes hashed so far (for progress). */
  onBytes?: (n: number) => void;
  /**
   * Hash behind a reader: how many bytes of the files, counted from the first one's start in `paths` order, have been
   * read into the page cache by someone else (one stream, restore.ts); a chunk is handed to a worker only once it is
   * wholly below that mark, so the workers read the page cache and never the disk beside the stream. Infinity (the
   * reader finished or failed): hash the rest at once.
   */
  readBytes?: () => number;
}

/** How often an idle worker looks again whether the reader has passed its next chunk. */
const BEHIND_POLL_MS = 2;

/**
 * Hashes `paths` whole, chunk by chunk, on `threads` workers (default: the cores). Returns one digest per path, in
 * order. A file that changes size while hashed, or is not a regular file, fails the call (a ColdstartError naming it).
 */
export async function hashFiles(paths: readonly string[], opts: HashOptions = {}): Promise<FileDigest[]> {
  const sizes = paths.map((p) => {
    try {
      const st = statSync(p);
      if (!st.isFile()) throw new ColdstartError('HOSTILE_FILE', `${p}: not a regular file`, { hint: 'An image holds regular files only.' });
      return st.size;
    } catch (e) {
      throw fromSystemError(e, p, 'hash');
    }
  });
  // Work items: a few chunks each, so small files do not cost a message per chunk and big ones spread over workers;
  // one chunk each behind a reader, so the hash keeps close behind it. `end`: where the item ends, counted over the
  // files one after another (the reader's order).
  const per = opts.readBytes ? 1 : 4;
  const items: Array<{ file: number; first: number; end: number; job: Omit<HashJob, 'id'> }> = [];
  let before = 0;
  sizes.forEach((size, file) => {
    const n = Math.max(1, Math.ceil(size / CHUNK_BYTES));
    for (let first = 0; first < n; first += per) {
      const chunks: Array<[number, number]> = [];
      for (let c = first; c < Math.min(n, first + per); c++) chunks.push([c * CHUNK_BYTES, Math.min(CHUNK_BYTES, size - c * CHUNK_BYTES)]);
      items.push({ file, first, end: before + Math.min(size, (first + per) * CHUNK_BYTES), job: { path: paths[file]!, chunks } });
    }
    before += size;
  });
  const out: string[][] = sizes.map((size) => new Array<string>(Math.max(1, Math.ceil(size / CHUNK_BYTES))));
  let hashed = 0;
  // One item's digests into place, and the progress: the same for the inline path and the workers'.
  const record = (it: (typeof items)[number], digests: readonly string[]) => {
    digests.forEach((d, k) => (out[it.file]![it.first + k] = d));
    hashed += it.job.chunks.reduce((a, [, len]) => a + len, 0);
    opts.onBytes?.(hashed);
  };
  const done = (): FileDigest[] =>
    out.map((chunks, i) => {
      // An empty file has one (empty) chunk: the digest of no bytes.
      if (sizes[i] === 0) chunks[0] = createHash('sha256').digest('hex');
      return { bytes: sizes[i]!, digest: rootDigest(chunks), chunks };
    });
  // A few MiB in all (an image's metadata: process tree, mappings, descriptors) hash faster here than workers start:
  // each worker costs this thread milliseconds to create (80–100 ms for 15 on the 2-core dev VM).
  if (sizes.reduce((a, b) => a + b, 0) <= INLINE_BYTES) {
    for (const it of items) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      let digests: string[];
      try {
        digests = hashChunks(it.job);
      } catch (e) {
        throw hashError(e as NodeJS.ErrnoException, it.job.path);
      }
      record(it, digests);
    }
    return done();
  }
  const threads = Math.max(1, Math.min(opts.threads ?? availableParallelism(), items.length));
  const workers = Array.from({ length: threads }, () => new Worker(workerUrl()));
  let over = false; // set once the pool is torn down: a worker still waiting on the reader stops looking
  try {
    let next = 0;
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const send = (): void => {
              if (over) return resolve();
              if (opts.signal?.aborted) return reject(opts.signal.reason);
              if (next >= items.length) return resolve();
              if (opts.readBytes && items[next]!.end > opts.readBytes()) {
                setTimeout(send, BEHIND_POLL_MS);
                return;
              }
              const id = next++;
              w.postMessage({ id, ...items[id]!.job });
            };
            w.on('message', (m: { id: number; digests?: string[]; error?: { code: string; message: string } }) => {
              const it = items[m.id]!;
              if (m.error) return reject(hashError(Object.assign(new Error(m.error.message), { code: m.error.code }), it.job.path));
              record(it, m.digests!);
              send();
            });
            w.on('error', reject);
            send();
          }),
      ),
    );
  } finally {
    over = true;
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return done();
}

/** Files up to this many bytes in all are hashed on the calling thread (hashFiles). */
const INLINE_BYTES = 32 << 20;

/** A read error of a hashed file, as hashFiles reports it: a file that ended early changed while it was hashed. */
function hashError(e: NodeJS.ErrnoException, path: string): Error {
  return e.code === 'ESHORT' ? new ColdstartError('CORRUPT_FILE', e.message, { hint: 'The file changed while it was hashed.' }) : fromSystemError(e, path, 'hash');
}

/** The byte range of the first chunk whose digest differs from `want`'s, or null when every chunk matches. */
export function firstMismatch(got: FileDigest, want: { bytes: number; chunks: readonly string[] }): { from: number; to: number } | null {
  if (got.bytes !== want.bytes) return { from: Math.min(got.bytes, want.bytes), to: Math.max(got.bytes, want.bytes) };
  for (let i = 0; i < got.chunks.length; i++) {
    if (got.chunks[i] !== want.chunks[i]) return { from: i * CHUNK_BYTES, to: Math.min(got.bytes, (i + 1) * CHUNK_BYTES) };
  }
  return null;
}
