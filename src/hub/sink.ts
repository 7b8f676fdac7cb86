/**
 * Big files are fetched, hashed and written entirely on worker threads. At loopback/datacenter rates one event
 * loop cannot read every socket, hash (sha256 ≈1.7 GB/s per core) and write, so each big file's HTTP GET (Range
 * offset, redirects, token, connect and idle deadlines), its hash and its writes (through ~4 MiB buffers) run on one worker;
 * several files use several cores. The main thread only orchestrates: it assigns files, turns the worker's
 * outcome of each attempt into retries/backoff or errors, and reports progress (the worker posts its byte
 * offset every ~100 ms).
 * The worker is the compiled TypeScript module src/hub/worker.ts (dist/hub/worker.js, loaded by URL); it
 * shares the redirect/credential rule with http.ts through hop.ts.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { fromSystemError } from '../core/errors.js';
import { compiledWorker } from '../core/version.js';

const workerUrl = () => compiledWorker('hub/worker.js', 'the download worker');

/**
 * How one worker-side attempt at a file ended; `offset` is the byte reached (bytes written, hashed), `written` the
 * bytes whose write completed (less than `offset` only when a write failed).
 */
export type FetchOutcome = { offset: number; written?: number } & (
  | { kind: 'ok' | 'short' | '416' | 'toolong' | 'aborted' | 'norange' }
  | { kind: 'net'; code?: string; message: string; url: string }
  | { kind: 'fs'; code?: string; message: string }
  | { kind: 'status'; status: number; headers: Record<string, string | undefined> }
  | { kind: 'range'; contentRange: string }
  | { kind: 'redirects'; url: string }
);

export interface FetchRequest {
  url: string;
  /** The Hub endpoint: the token goes only to its origin, on every hop (hop.ts). */
  endpoint: string;
  token?: string;
  timeoutMs: number;
  /** The file's size: bytes past it end the attempt as `toolong`. */
  size: number;
  maxRedirects?: number;
  /** A Range part starting at this byte of the file (see worker.ts); `size` is then the part's length. */
  base?: number;
}

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  once: Map<string, Waiter>;
  onProgress?: (offset: number, written: number) => void;
  error?: Error;
}

type WorkerMsg = { id: number; op: string; hex?: string; code?: string; message?: string; offset?: number; written?: number };

class SinkWorker {
  readonly worker = new Worker(workerUrl());
  load = 0;
  private waiters = new Map<number, Slot>();
  constructor() {
    this.worker.on('message', (m: WorkerMsg) => {
      const w = this.waiters.get(m.id);
      if (!w) return;
      if (m.op === 'progress') w.onProgress?.(m.offset!, m.written ?? 0);
      else if (m.op === 'error') {
        const e = Object.assign(new Error(m.message), { code: m.code });
        w.error = e;
        for (const o of w.once.values()) o.reject(e);
        w.once.clear();
      } else {
        const o = w.once.get(m.op);
        w.once.delete(m.op);
        o?.resolve(m.op === 'digest' ? m.hex : m);
      }
    });
    this.worker.on('error', (e) => {
      for (const w of this.waiters.values()) {
        w.error = e;
        for (const o of w.once.values()) o.reject(e);
        w.once.clear();
      }
    });
    // Unref after the listener is attached (attaching re-refs the port); busy workers are ref'd in `use`.
    this.worker.unref();
  }
  use(): void {
    if (this.load++ === 0) this.worker.ref();
  }
  release(): void {
    if (--this.load === 0) this.worker.unref();
  }
  register(id: number): Slot {
    const w: Slot = { once: new Map() };
    this.waiters.set(id, w);
    return w;
  }
  unregister(id: number) {
    this.waiters.delete(id);
  }
}

let pool: SinkWorker[] = [];
let nextId = 1;

/** Workers are shared by every download in the process; unref'd, so they never keep it alive. */
function pickWorker(max: number): SinkWorker {
  if (pool.length < max) {
    const w = new SinkWorker();
    pool.push(w);
    return w;
  }
  return pool.reduce((a, b) => (b.load < a.load ? b : a));
}

export function sinkParallelism(concurrency: number): number {
  return Math.max(1, Math.min(concurrency, availableParallelism()));
}

/** One big file on a worker: its GETs, its hash and its writes to the (process-wide) descriptor `fd`. */
export class WorkerFetch {
  private readonly id = nextId++;
  private readonly w: SinkWorker;
  private readonly slot: Slot;

  constructor(
    private readonly fd: number,
    private readonly path: string,
    private readonly algo: 'sha256' | 'sha1',
    private readonly prefix: string | undefined,
    maxWorkers: number,
  ) {
    this.w = pickWorker(maxWorkers);
    this.w.use();
    this.slot = this.w.register(this.id);
  }

  private call(op: string, reply: string, msg: Record<string, unknown> = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.slot.error) return reject(this.slot.error);
      this.slot.once.set(reply, { resolve, reject });
      this.w.worker.postMessage({ id: this.id, op, ...msg });
    });
  }

  /** Starts the hash; `hashExisting` bytes already in the file are hashed first (resume). */
  async open(hashExisting: number): Promise<void> {
    await this.call('open', 'opened', { fd: this.fd, algo: this.algo, prefix: this.prefix, hashExisting }).catch((e) => {
      throw fromSystemError(e, this.path, 'read');
    });
  }

  /**
   * One attempt: GET `req.url` from the byte the file has reached (Range), hashing and appending the body.
   * Resolves once the worker has written every byte it hashed (no write is in flight), however it ended.
   * `onProgress` gets the byte offset reached and the bytes written (both from the start of the file, or of the part)
   * about every `progressMs`; an abort of `signal` ends the attempt as `aborted`.
   */
  async fetch(req: FetchRequest, onProgress: (offset: number, written: number) => void, signal?: AbortSignal, progressMs = 100): Promise<FetchOutcome> {
    this.slot.onProgress = onProgress;
    const done = this.call('fetch', 'fetched', { ...req, maxRedirects: req.maxRedirects ?? 5, progressMs });
    const onAbort = () => this.w.worker.postMessage({ id: this.id, op: 'abort' });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return (await done) as FetchOutcome;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.slot.onProgress = undefined;
    }
  }

  /** Feeds the file's bytes up to `to` into the hash, read back from the file (parts: the written prefix). */
  async hashTo(to: number): Promise<void> {
    await this.call('hashTo', 'hashed', { to }).catch((e) => {
      throw fromSystemError(e, this.path, 'read');
    });
  }

  async digest(): Promise<string> {
    return (await this.call('digest', 'digest')) as string;
  }

  /**
   * Resolves once the worker has processed every message for this file (they run in order, and an attempt
   * reports only after its writes), so the caller may close the descriptor: no write can land on a closed fd.
   */
  async close(): Promise<void> {
    const done = new Promise((resolve) => this.slot.once.set('drop', { resolve, reject: resolve }));
    this.w.worker.postMessage({ id: this.id, op: 'drop' });
    await done;
    this.w.unregister(this.id);
    this.w.release();
  }
}

/** Ends the shared workers (tests, or a process that wants to exit promptly). */
export async function stopSinkWorkers(): Promise<void> {
  const p = pool;
  pool = [];
  await Promise.all(p.map((w) => w.worker.terminate()));
}
