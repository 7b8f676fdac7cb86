/**
 * Hash-and-write off the main thread. At loopback/datacenter rates sha256 (≈1.7 GB/s per core) on the
 * event loop is the bottleneck, so a big file's bytes go, in ~1 MiB batches transferred without a second
 * copy, to a worker thread that hashes and writes them to the (process-wide) file descriptor. Each file
 * stays on one worker, so the hash sees the bytes in order; several files use several cores.
 * The worker source is a string (eval) so it runs the same from dist/ and from the TypeScript sources under test.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { fromSystemError } from '../core/errors.js';

const WORKER_SRC = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const files = new Map();
function newHash(m) { const h = crypto.createHash(m.algo); if (m.prefix) h.update(m.prefix); return h; }
parentPort.on('message', (m) => {
  const f = files.get(m.id);
  try {
    if (m.op === 'open') {
      const h = newHash(m);
      if (m.hashExisting > 0) {
        const buf = Buffer.allocUnsafe(Math.min(8 << 20, m.hashExisting));
        let pos = 0;
        while (pos < m.hashExisting) {
          const n = fs.readSync(m.fd, buf, 0, Math.min(buf.length, m.hashExisting - pos), pos);
          if (n <= 0) throw Object.assign(new Error('short read while hashing the partial file'), { code: 'EIO' });
          h.update(n === buf.length ? buf : buf.subarray(0, n));
          pos += n;
        }
      }
      files.set(m.id, { fd: m.fd, h, m });
      parentPort.postMessage({ id: m.id, op: 'opened' });
    } else if (m.op === 'reset') {
      f.h = newHash(f.m);
    } else if (m.op === 'data') {
      const b = Buffer.from(m.buf);
      f.h.update(b);
      let off = 0;
      while (off < b.length) off += fs.writeSync(f.fd, b, off, b.length - off);
      parentPort.postMessage({ id: m.id, op: 'ack' });
    } else if (m.op === 'digest') {
      files.delete(m.id);
      parentPort.postMessage({ id: m.id, op: 'digest', hex: f.h.digest('hex') });
    } else if (m.op === 'drop') {
      files.delete(m.id);
      parentPort.postMessage({ id: m.id, op: 'drop' });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, op: 'error', code: e.code, message: e.message });
  }
});
`;

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  acks: Waiter[];
  once: Map<string, Waiter>;
  error?: Error;
}

class SinkWorker {
  readonly worker = new Worker(WORKER_SRC, { eval: true });
  load = 0;
  private waiters = new Map<number, Slot>();
  constructor() {
    this.worker.on('message', (m: { id: number; op: string; hex?: string; code?: string; message?: string }) => {
      const w = this.waiters.get(m.id);
      if (!w) return;
      if (m.op === 'ack') w.acks.shift()?.resolve(undefined);
      else if (m.op === 'error') {
        const e = Object.assign(new Error(m.message), { code: m.code });
        w.error = e;
        for (const a of w.acks.splice(0)) a.reject(e);
        for (const o of w.once.values()) o.reject(e);
        w.once.clear();
      } else {
        const o = w.once.get(m.op);
        w.once.delete(m.op);
        o?.resolve(m.hex);
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
    const w: Slot = { acks: [], once: new Map() };
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

/** One file's hashing writer on a worker. `write` resolves when the batch may be reused (backpressure). */
export class WorkerSink {
  private readonly id = nextId++;
  private readonly w: SinkWorker;
  private readonly slot: Slot;
  private inflight: Array<Promise<unknown>> = [];

  constructor(
    private readonly fd: number,
    private readonly path: string,
    algo: 'sha256' | 'sha1',
    prefix: string | undefined,
    maxWorkers: number,
  ) {
    this.w = pickWorker(maxWorkers);
    this.w.use();
    this.slot = this.w.register(this.id);
    this.algo = algo;
    this.prefix = prefix;
  }
  private algo: string;
  private prefix?: string;

  private call(op: string, msg: Record<string, unknown> = {}, transfer: ArrayBuffer[] = []): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.slot.error) return reject(this.slot.error);
      this.slot.once.set(op === 'open' ? 'opened' : op, { resolve, reject });
      this.w.worker.postMessage({ id: this.id, op, ...msg }, transfer);
    });
  }

  /** Starts the hash; `hashExisting` bytes already in the file are hashed first (resume). */
  async open(hashExisting: number): Promise<void> {
    await this.call('open', { fd: this.fd, algo: this.algo, prefix: this.prefix, hashExisting }).catch((e) => {
      throw fromSystemError(e, this.path, 'read');
    });
  }

  reset(): void {
    this.w.worker.postMessage({ id: this.id, op: 'reset' });
  }

  /** Queues `bufs` (copied once into a transferable buffer); waits while more than 4 batches are in flight. */
  async write(bufs: Buffer[], bytes: number): Promise<void> {
    const ab = new ArrayBuffer(bytes);
    const view = new Uint8Array(ab);
    let off = 0;
    for (const b of bufs) {
      view.set(b, off);
      off += b.length;
    }
    const ack = new Promise((resolve, reject) => {
      if (this.slot.error) return reject(this.slot.error);
      this.slot.acks.push({ resolve, reject });
    });
    ack.catch(() => {});
    this.inflight.push(ack);
    this.w.worker.postMessage({ id: this.id, op: 'data', buf: ab }, [ab]);
    while (this.inflight.length > 4) await this.drainOne();
  }

  private async drainOne(): Promise<void> {
    const p = this.inflight.shift();
    try {
      await p;
    } catch (e) {
      throw fromSystemError(e, this.path, 'write');
    }
  }

  /** Waits for every queued write. */
  async flush(): Promise<void> {
    while (this.inflight.length) await this.drainOne();
  }

  async digest(): Promise<string> {
    await this.flush();
    return (await this.call('digest')) as string;
  }

  /**
   * Resolves once the worker has processed every message for this file (they run in order), so the caller
   * may close the descriptor: no write can land on a closed (or reused) fd.
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
