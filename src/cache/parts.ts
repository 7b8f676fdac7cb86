/**
 * A big file from byte 0 as up to MAX_PARTS parallel Range parts, each on a worker writing at its own position
 * through a non-append descriptor, each retried from the byte it reached. Only when COLDSTART_PART_MIN_BYTES is set:
 * the parts finish before the in-order hash re-reads the file, where one stream per file hashes as it writes, and
 * parts were slower on both machines measured — 2-core VM 1.24× vs 1.41× Python (bench/cache/RESULTS.md), 16-core
 * H200 host 0.66 GB/s with parts where the single-stream path had reached 2.12 GB/s (BENCHMARKS.md, 2026-11-28).
 */
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { abortReason } from '../core/clock.js';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { withRetries } from '../hub/http.js';
import { outcomeError, retrying, type Accounting, type FetchDeps, type FileJob } from './outcome.js';
import { WorkerFetch, sinkParallelism } from '../hub/sink.js';
import type { Env } from './types.js';

const MAX_PARTS = 4;

/** Files of at least twice COLDSTART_PART_MIN_BYTES (≥ 64 KiB) come in parts; unset: never. */
export function partMinBytes(env: Env): number {
  const n = Number(env.COLDSTART_PART_MIN_BYTES);
  if (Number.isSafeInteger(n) && n >= 1 << 16) return n;
  return Number.POSITIVE_INFINITY;
}

interface Part {
  base: number;
  len: number;
  /** Bytes of the part on disk. */
  offset: number;
}

/**
 * Fetches `job` in parts. Returns true when every byte is on disk (the caller hashes the file in order), false when
 * the server does not serve ranges (the file is emptied; the caller streams it whole). On a failure the file is cut
 * to its contiguous prefix, so what is parked for resume is exactly the bytes [0, n).
 */
export async function fetchParts(d: FetchDeps, job: FileJob, acct: Accounting, size: number): Promise<boolean> {
  const k = Math.min(MAX_PARTS, Math.floor(size / partMinBytes(d.opts.env)));
  const partLen = Math.ceil(size / k);
  let fd: number;
  try {
    fd = openSync(job.partial, 'r+');
  } catch (e) {
    throw fromSystemError(e, job.partial, 'write');
  }
  const signal = d.opts.signal;
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const parts: Part[] = Array.from({ length: k }, (_, i) => ({ base: i * partLen, len: Math.min(partLen, size - i * partLen), offset: 0 }));
  let norange = false;
  const noRange = () => {
    norange = true;
    ac.abort(new ColdstartError('INTERRUPTED', 'no Range support'));
  };
  try {
    const results = await Promise.allSettled(parts.map((p) => fetchPart(d, job, acct, fd, p, ac.signal, noRange)));
    if (norange && !signal?.aborted) {
      const got = parts.reduce((a, p) => a + p.offset, 0);
      ftruncateSync(fd, 0);
      acct.progress(-got);
      acct.discarded(got);
      return false;
    }
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      ftruncateSync(fd, contiguousPrefix(parts));
      throw signal?.aborted ? abortReason(signal) : failed.reason;
    }
    return true;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    closeSync(fd);
  }
}

/** The bytes [0, n) on disk without a gap: every whole part, then what the first unfinished one holds. */
function contiguousPrefix(parts: Part[]): number {
  let prefix = 0;
  for (const p of parts) {
    prefix += p.offset;
    if (p.offset < p.len) break;
  }
  return prefix;
}

/** One part on its worker, retried from the byte it reached; a server without ranges calls `noRange`. */
async function fetchPart(d: FetchDeps, job: FileJob, acct: Accounting, fd: number, p: Part, signal: AbortSignal, noRange: () => void): Promise<void> {
  const c = d.c;
  const wf = new WorkerFetch(fd, job.partial, job.file.lfs ? 'sha256' : 'sha1', undefined, sinkParallelism(d.opts.concurrency ?? 8));
  try {
    await wf.open(0);
    await withRetries(async () => {
      if (p.offset >= p.len) return;
      const from = p.offset;
      let reported = p.offset;
      const progress = (o: number) => {
        if (o > reported) {
          acct.wire(o - reported);
          acct.progress(o - reported);
        }
        reported = Math.max(reported, o);
      };
      const r = await wf.fetch({ url: job.url, endpoint: c.endpoint, token: c.token, timeoutMs: c.timeoutMs, size: p.len, base: p.base }, progress, signal);
      progress(r.offset);
      p.offset = r.offset;
      if (r.kind === 'norange') noRange();
      const err = outcomeError(r, { job, base: p.base, length: p.len, from, part: true, signal }, d);
      if (err) throw err;
    }, retrying(d, job, signal));
  } finally {
    await wf.close();
  }
}
