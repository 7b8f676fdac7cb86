/**
 * A big file as up to MAX_PARTS parallel Range parts, each on a worker writing at its own position through a
 * non-append descriptor, each retried from the byte it reached, hashed in file order while they run: one more
 * worker-side hash follows the contiguous prefix the parts have written (read back from the page cache, `hashTo`
 * in hub/worker.ts), so when the last part lands only the bytes past the prefix are left to hash, not the file.
 * A part journal (journal.ts) records what each part has on disk, so an interrupted file resumes only its missing
 * parts. A server that does not answer a part's Range with a 206 at the byte asked for makes the file fall back to
 * one stream (the bytes kept are counted as refetched).
 *
 * How many parts (partsFor): by default a file of at least 2 × 32 MiB gets up to one part per core left over by the
 * other big files of the run (cores ÷ files fetched at once, at most 4), so parts add streams only where cores
 * would otherwise idle: on the 2-core dev VM 4 big files stay one stream each (parts measured no faster there,
 * bench/cache/RESULTS.md). COLDSTART_PART_MIN_BYTES (≥ 64 KiB) and COLDSTART_PARTS (the count; 1 = never) force it.
 */
import { availableParallelism } from 'node:os';
import { closeSync, fstatSync, ftruncateSync } from 'node:fs';
import { abortReason, nowSeconds } from '../core/clock.js';
import { ColdstartError } from '../core/errors.js';
import { withRetries } from '../hub/http.js';
import { outcomeError, retrying, type Accounting, type FetchDeps, type FileJob } from './outcome.js';
import { WorkerFetch, sinkParallelism } from '../hub/sink.js';
import { dropJournal, writeJournal, type PartsJournal } from './journal.js';
import { openOwnPartial } from './partials.js';
import type { Env } from './types.js';

const MAX_PARTS = 4;
const DEFAULT_PART_MIN_BYTES = 32 << 20;
/** The journal is rewritten at most this often while parts progress (and at every attempt's end). */
const JOURNAL_EVERY_MS = 1000;

function envInt(env: Env, name: string): number | null {
  const v = env[name];
  if (v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * How many Range parts a file of `size` bytes fetched from byte 0 gets; 1 means one stream. `filesAtOnce` is how many
 * big files the run fetches at the same time (each one stream at least).
 */
export function partsFor(size: number, env: Env, filesAtOnce: number): number {
  const forcedCount = envInt(env, 'COLDSTART_PARTS');
  const forcedMin = envInt(env, 'COLDSTART_PART_MIN_BYTES');
  const min = forcedMin !== null && forcedMin >= 1 << 16 ? forcedMin : DEFAULT_PART_MIN_BYTES;
  const bySize = Math.floor(size / min);
  if (forcedCount !== null && forcedCount >= 1) return Math.max(1, Math.min(forcedCount, 16, bySize));
  if (forcedMin !== null && forcedMin >= 1 << 16) return Math.max(1, Math.min(MAX_PARTS, bySize));
  const byCores = Math.floor(availableParallelism() / Math.max(1, filesAtOnce));
  const k = Math.min(MAX_PARTS, bySize, byCores);
  return k >= 2 ? k : 1;
}

interface Part {
  base: number;
  len: number;
  /** Bytes of the part received (the wire count), from its start. */
  offset: number;
  /** Bytes of the part whose write completed: what the journal and the hash may rely on. */
  written: number;
}

/**
 * Fetches `job` (`size` bytes) as `k` parts of `partLen` bytes, continuing each from `kept[i]` when resuming from a
 * journal. Returns the hex digest of the whole file in order once every byte is on disk, or null when the server does
 * not serve ranges (the file is then emptied and its journal removed; the caller streams it whole). On a failure
 * every part keeps what it wrote and the journal says so: the next run fetches only what is missing.
 */
export async function fetchParts(d: FetchDeps, job: FileJob, acct: Accounting, size: number, partLen: number, kept: number[] | null): Promise<string | null> {
  const k = Math.ceil(size / partLen);
  const fd = openOwnPartial(job.partial, false);
  const ino = fstatSync(fd).ino;
  const parts: Part[] = Array.from({ length: k }, (_, i) => {
    const w = kept?.[i] ?? 0;
    return { base: i * partLen, len: Math.min(partLen, size - i * partLen), offset: w, written: w };
  });
  const journal = new JournalWriter(job.partial, ino, size, partLen, parts);
  const signal = d.opts.signal;
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let norange = false;
  const noRange = () => {
    norange = true;
    ac.abort(new ColdstartError('INTERRUPTED', 'no Range support'));
  };
  const hasher = new WorkerFetch(fd, job.partial, job.file.lfs ? 'sha256' : 'sha1', job.file.lfs ? undefined : `blob ${size}\0`, sinkParallelism(d.opts.concurrency ?? 8));
  const follow = new PrefixHash(hasher, parts, (e) => ac.abort(e));
  try {
    journal.write();
    const resumed = parts.reduce((a, p) => a + p.written, 0);
    if (resumed > 0) {
      acct.resumed(resumed);
      d.opts.onEvent?.({ type: 'resume', file: job.display, fromByte: resumed });
      acct.progress(resumed);
    }
    await hasher.open(0);
    follow.advance();
    const onWritten = () => {
      follow.advance();
      journal.maybeWrite();
    };
    const results = await Promise.allSettled(parts.map((p) => fetchPart(d, job, acct, fd, p, ac.signal, noRange, onWritten)));
    if (norange && !signal?.aborted) {
      await follow.settle();
      const got = parts.reduce((a, p) => a + p.offset, 0);
      ftruncateSync(fd, 0);
      journal.drop();
      acct.progress(-got);
      acct.discarded(got);
      return null;
    }
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      journal.write();
      journal.close();
      throw signal?.aborted ? abortReason(signal) : (follow.error ?? failed.reason);
    }
    // Every part is whole: the file is a complete prefix, no journal needed; the hash finishes what is left.
    journal.drop();
    await follow.finish(size);
    return await hasher.digest();
  } finally {
    journal.close();
    await follow.settle();
    await hasher.close();
    signal?.removeEventListener('abort', onAbort);
    closeSync(fd);
  }
}

/** The in-order hash following the parts' contiguous written prefix: one `hashTo` in flight at a time. */
class PrefixHash {
  private requested = 0;
  private inflight: Promise<void> | null = null;
  error: Error | null = null;
  constructor(
    private readonly hasher: WorkerFetch,
    private readonly parts: Part[],
    private readonly onError: (e: Error) => void,
  ) {}

  /** The bytes [0, n) on disk without a gap: every whole part, then what the first unfinished one has written. */
  private prefix(): number {
    let n = 0;
    for (const p of this.parts) {
      n += p.written;
      if (p.written < p.len) break;
    }
    return n;
  }

  advance(): void {
    if (this.inflight || this.error) return;
    const to = this.prefix();
    if (to <= this.requested) return;
    this.requested = to;
    this.inflight = this.hasher.hashTo(to).then(
      () => {
        this.inflight = null;
        this.advance();
      },
      (e: Error) => {
        this.inflight = null;
        this.error = e;
        this.onError(e);
      },
    );
  }

  /** Hashes up to `size` (every part whole) and waits for it. */
  async finish(size: number): Promise<void> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.inflight) await this.inflight;
      else if (this.requested < size) this.advance();
      else return;
    }
  }

  /** Waits for the read in flight (the descriptor is closed after it). */
  async settle(): Promise<void> {
    while (this.inflight) await this.inflight;
  }
}

/**
 * The part journal of one file, rewritten atomically from the parts' written counts: at the start, at most every
 * JOURNAL_EVERY_MS while bytes land (a trailing write catches the last ones), when a part fails, and at process exit
 * (Ctrl-C ends the CLI at once: the journal, named by the file's inode, is right whatever name the partial is parked
 * under).
 */
class JournalWriter {
  private last = 0;
  private dirty = false;
  private done = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly onExit = () => this.flush();
  constructor(
    private readonly partial: string,
    private readonly ino: number,
    private readonly size: number,
    private readonly partLen: number,
    private readonly parts: Part[],
  ) {
    process.on('exit', this.onExit);
  }
  write(): void {
    if (this.done) return;
    this.last = nowSeconds() * 1000;
    this.dirty = false;
    const j: PartsJournal = { size: this.size, partLen: this.partLen, written: this.parts.map((p) => p.written) };
    writeJournal(this.partial, this.ino, j);
  }
  /** Bytes landed: written now, or once the interval since the last write has passed. */
  maybeWrite(): void {
    this.dirty = true;
    const wait = JOURNAL_EVERY_MS - (nowSeconds() * 1000 - this.last);
    if (wait <= 0) return this.write();
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.flush();
    }, wait).unref();
  }
  private flush(): void {
    try {
      if (this.dirty) this.write();
    } catch {
      /* best effort: a stale journal claims fewer bytes than are on disk, never more */
    }
  }
  /** Stops writing (the journal stays on disk for the next run). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    process.removeListener('exit', this.onExit);
  }
  /** The file is whole (or emptied): no journal any more. */
  drop(): void {
    this.close();
    this.done = true;
    dropJournal(this.partial, this.ino);
  }
}

/**
 * One part on its worker, retried from the byte it reached; a server without ranges calls `noRange`. A part resumed
 * from the journal asks only for its bytes past what it kept: the worker sees [base + kept, base + len) as its range.
 */
async function fetchPart(d: FetchDeps, job: FileJob, acct: Accounting, fd: number, p: Part, signal: AbortSignal, noRange: () => void, onWritten: () => void): Promise<void> {
  if (p.written >= p.len) return;
  const c = d.c;
  const kept = p.written;
  const base = p.base + kept;
  const length = p.len - kept;
  const wf = new WorkerFetch(fd, job.partial, job.file.lfs ? 'sha256' : 'sha1', undefined, sinkParallelism(d.opts.concurrency ?? 8));
  try {
    await wf.open(0);
    await withRetries(async () => {
      if (p.offset >= p.len) return;
      const from = p.offset - kept;
      // The worker's offsets count from `base`; a retry continues from what is on disk (its `fetched` offset).
      const progress = (o: number, w: number) => {
        if (kept + o > p.offset) {
          acct.wire(kept + o - p.offset);
          acct.progress(kept + o - p.offset);
          p.offset = kept + o;
        }
        if (kept + w > p.written) {
          p.written = kept + w;
          onWritten();
        }
      };
      const r = await wf.fetch({ url: job.url, endpoint: c.endpoint, token: c.token, timeoutMs: c.timeoutMs, size: length, base }, progress, signal);
      progress(r.offset, r.written ?? r.offset);
      if (r.kind === 'norange') noRange();
      const err = outcomeError(r, { job, base, length, from, part: true, signal }, d);
      if (err) throw err;
    }, retrying(d, job, signal));
  } finally {
    await wf.close();
  }
}
