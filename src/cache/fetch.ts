/**
 * One file's bytes into its partial, verified: streamed on the event loop (small files) or on a worker thread
 * (from 1 MiB, hub/sink.ts), resumed from the partial's length with HTTP Range, retried from the byte reached, or —
 * a big file where cores allow, or a partial with a part journal — fetched as parallel Range parts (parts.ts). Each attempt ends as a
 * FetchOutcome that outcomeError (outcome.ts) turns into what happens next; the hash of every byte is checked last.
 */
import type { Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { closeSync, fstatSync, ftruncateSync, writev } from 'node:fs';
import { dirname } from 'node:path';
import { fromSystemError } from '../core/errors.js';
import { makeDirs } from '../core/paths.js';
import type { RepoFile } from '../hub/api.js';
import { bodyError, hubRequest, withRetries } from '../hub/http.js';
import { hashMismatch, hashPrefix, newHasher } from './commit.js';
import { etagOf, sizeOf } from './layout.js';
import { errorHeaders, outcomeError, retrying, type Accounting, type FetchDeps, type FetchOutcome, type FileJob } from './outcome.js';
import { fetchParts, partsFor } from './parts.js';
import { dropJournal, readJournal } from './journal.js';
import { openOwnPartial } from './partials.js';
import { WorkerFetch, sinkParallelism } from '../hub/sink.js';

/** Files from this size on are fetched, hashed and written on worker threads (hub/sink.ts). */
const WORKER_SINK_MIN_BYTES = 1 << 20;

/**
 * Fetches `job` into `job.partial` (resuming from its length) and checks its hash. On a mismatch the partial is
 * deleted (its bytes are wrong, resuming from them is pointless), the rejection reported and CORRUPT_FILE thrown.
 */
export async function fetchVerified(d: FetchDeps, job: FileJob, acct: Accounting): Promise<void> {
  makeDirs(dirname(job.partial));
  const fd = openOwnPartial(job.partial, true);
  let got: string;
  try {
    got = await fetchDigest(d, job, acct, fd);
  } finally {
    closeSync(fd);
  }
  if (got !== etagOf(job.file)) {
    const err = hashMismatch(job.file, job.partial, job.display, got);
    d.opts.onEvent?.({ type: 'rejected', file: job.display, reason: `${job.file.lfs ? 'sha256' : 'git blob sha1'} mismatch` });
    throw err;
  }
}

/** Every byte of the file on disk, and the hex digest of them in file order. */
async function fetchDigest(d: FetchDeps, job: FileJob, acct: Accounting, fd: number): Promise<string> {
  const size = sizeOf(job.file);
  // A partial with a part journal resumes its missing parts; a big file from byte 0 may come in parallel Range parts
  // (parts.ts decides how many). A server without ranges makes fetchParts return null (the file emptied): one stream.
  const journal = readJournal(job.partial, fd, size);
  if (journal) {
    const got = await fetchParts(d, job, acct, size, journal.partLen, journal.written);
    if (got !== null) return got;
  } else dropJournal(job.partial, fstatSync(fd).ino); // one that does not hold (or none): the file is a prefix
  let offset = fstatSync(fd).size;
  if (offset > size) {
    ftruncateSync(fd, 0);
    offset = 0;
  }
  const k = offset === 0 && size >= WORKER_SINK_MIN_BYTES ? partsFor(size, d.opts.env, d.filesAtOnce ?? 1) : 1;
  if (k > 1) {
    const got = await fetchParts(d, job, acct, size, Math.ceil(size / k), null);
    if (got !== null) return got;
  }
  const s = new FileStream(d, job, acct, fd, offset);
  try {
    await s.run();
    return await s.sink.digest();
  } finally {
    await s.sink.close();
  }
}

/** Where a streamed file's bytes go: hashed and appended to the partial, in order. */
interface Sink {
  open(hashExisting: number): Promise<void>;
  digest(): Promise<string>;
  /** Waits until no write is pending, so the descriptor can be closed. */
  close(): Promise<void>;
}

/** One file streamed into its partial from `offset`, attempt after attempt, on a worker (big) or inline (small). */
class FileStream {
  readonly sink: Sink;
  private readonly worker: WorkerFetch | null;
  private readonly inline: InlineSink | null;
  private readonly size: number;

  constructor(
    private readonly d: FetchDeps,
    private readonly job: FileJob,
    private readonly acct: Accounting,
    private readonly fd: number,
    private offset: number,
  ) {
    this.size = sizeOf(job.file);
    const f = job.file;
    this.worker = this.size >= WORKER_SINK_MIN_BYTES ? new WorkerFetch(fd, job.partial, f.lfs ? 'sha256' : 'sha1', f.lfs ? undefined : `blob ${f.size}\0`, sinkParallelism(d.opts.concurrency ?? 8)) : null;
    this.inline = this.worker ? null : new InlineSink(fd, job.partial, f, d.opts.signal);
    this.sink = (this.worker ?? this.inline)!;
  }

  /** Hashes the resumed prefix, then attempts until every byte is there (or an attempt's outcome is an error). */
  async run(): Promise<void> {
    await this.sink.open(this.offset);
    if (this.offset > 0) {
      this.acct.resumed(this.offset);
      this.d.opts.onEvent?.({ type: 'resume', file: this.job.display, fromByte: this.offset });
      this.acct.progress(this.offset);
    }
    const signal = this.d.opts.signal;
    await withRetries(async () => {
      if (this.offset >= this.size) return;
      const from = this.offset;
      const r = this.worker ? await this.workerAttempt(this.worker) : await this.inlineAttempt(this.inline!);
      const err = outcomeError(r, { job: this.job, base: 0, length: this.size, from, part: false, signal }, this.d);
      if (err) throw err;
    }, retrying(this.d, this.job, signal));
  }

  /**
   * One attempt on the worker: it makes the request and restarts the file itself on a 416 / 200-on-resume; its byte
   * offset is the progress (a restart shows as a negative step).
   */
  private async workerAttempt(w: WorkerFetch): Promise<FetchOutcome> {
    const c = this.d.c;
    let reported = this.offset;
    const progress = (o: number) => {
      if (o > reported) this.acct.wire(o - reported);
      else if (o < reported) this.acct.discarded(reported - o); // the worker restarted the file (416 / 200)
      if (o !== reported) this.acct.progress(o - reported);
      reported = o;
    };
    const r = await w.fetch({ url: this.job.url, endpoint: c.endpoint, token: c.token, timeoutMs: c.timeoutMs, size: this.size }, progress, this.d.opts.signal);
    this.offset = r.offset;
    progress(r.offset);
    return r;
  }

  /** One attempt on the event loop, through the Hub client (hub/http.ts). */
  private async inlineAttempt(sink: InlineSink): Promise<FetchOutcome> {
    const c = this.d.c;
    const res = await hubRequest(this.job.url, { endpoint: c.endpoint, token: c.token, signal: c.signal, timeoutMs: c.timeoutMs, headers: this.offset > 0 ? { range: `bytes=${this.offset}-` } : {} });
    const status = res.statusCode ?? 0;
    if (status === 416 || (status === 200 && this.offset > 0)) {
      // The server will not resume this file: start it over (a 200 already carries the whole body).
      this.restart(sink);
      if (status === 200) return this.body(sink, res);
      res.resume();
      return { kind: '416', offset: 0 };
    }
    if (status !== 200 && status !== 206) {
      res.resume();
      return { kind: 'status', status, headers: errorHeaders(res), offset: this.offset };
    }
    const cr = String(res.headers['content-range'] ?? '');
    if (status === 206 && Number(/^bytes (\d+)-/.exec(cr)?.[1] ?? -1) !== this.offset) {
      res.resume();
      return { kind: 'range', contentRange: cr, offset: this.offset };
    }
    return this.body(sink, res);
  }

  /** The bytes kept so far are thrown away: the file starts over from byte 0. */
  private restart(sink: InlineSink): void {
    ftruncateSync(this.fd, 0);
    this.acct.progress(-this.offset);
    this.acct.discarded(this.offset);
    this.offset = 0;
    sink.reset();
  }

  /** A response body into the sink in ~1 MiB batches; ends `ok`, `short` (cut) or `toolong`. */
  private async body(sink: InlineSink, res: IncomingMessage): Promise<FetchOutcome> {
    let batch: Buffer[] = [];
    let n = 0;
    const flush = async (): Promise<boolean> => {
      if (!n) return true;
      if (this.offset + n > this.size) return false;
      const bufs = batch;
      const len = n;
      batch = [];
      n = 0;
      this.offset += len;
      await sink.write(bufs);
      this.acct.wire(len);
      this.acct.progress(len);
      return true;
    };
    const tooLong = (): FetchOutcome => ({ kind: 'toolong', offset: this.offset });
    try {
      for await (const chunk of res) {
        batch.push(chunk as Buffer);
        n += (chunk as Buffer).length;
        if (n >= 1 << 20 && !(await flush())) return tooLong();
      }
    } catch (e) {
      if (!(await flush())) return tooLong();
      throw bodyError(e, res, this.job.url, this.d.opts.signal);
    }
    if (!(await flush())) return tooLong();
    return { kind: this.offset < this.size ? 'short' : 'ok', offset: this.offset };
  }
}

/** Small files: hash on the event loop, write through the libuv pool (one write in flight). */
class InlineSink implements Sink {
  private h: Hash;
  private inflight: Promise<void> = Promise.resolve();
  constructor(
    private readonly fd: number,
    private readonly path: string,
    private readonly file: RepoFile,
    private readonly signal?: AbortSignal,
  ) {
    this.h = newHasher(file);
  }
  async open(hashExisting: number): Promise<void> {
    await hashPrefix(this.h, this.path, hashExisting, this.signal);
  }
  reset(): void {
    this.h = newHasher(this.file);
  }
  async write(bufs: Buffer[]): Promise<void> {
    for (const b of bufs) this.h.update(b);
    await this.inflight;
    this.inflight = writevAll(this.fd, bufs).catch((e) => {
      throw fromSystemError(e, this.path, 'write');
    });
  }
  async digest(): Promise<string> {
    await this.inflight;
    return this.h.digest('hex');
  }
  async close(): Promise<void> {
    await this.inflight.catch(() => {});
  }
}

/** writev(2) until every byte of `bufs` is written (a short write continues with what is left). */
function writevAll(fd: number, bufs: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    writev(fd, bufs, (err, n) => {
      if (err) return reject(err);
      let skip = n;
      const rest: Buffer[] = [];
      for (const b of bufs) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      if (!rest.length) return resolve();
      writevAll(fd, rest).then(resolve, reject);
    });
  });
}
