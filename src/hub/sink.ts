/**
 * Big files are fetched, hashed and written entirely on worker threads. At loopback/datacenter rates one event
 * loop cannot read every socket, hash (sha256 ≈1.7 GB/s per core) and write, so each big file's HTTP GET (Range
 * offset, redirects, token, idle timeout), its hash and its writes (through ~4 MiB buffers) run on one worker;
 * several files use several cores. The main thread only orchestrates: it assigns files, turns the worker's
 * outcome of each attempt into retries/backoff or errors, and reports progress (the worker posts its byte
 * offset every ~100 ms).
 * The worker source is a string (eval) so it runs the same from dist/ and from the TypeScript sources under test.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { fromSystemError } from '../core/errors.js';

const WORKER_SRC = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const http = require('node:http');
const https = require('node:https');
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
// Each write(2) is 1023 KiB, so it never covers an aligned 1 MiB range of the file: a write that does makes
// the page cache allocate a large folio (up to 2 MiB), and on the VMs measured (Linux 6.18, Firecracker) that
// multiplies the kernel's copy time: 2 GiB with 4 MiB writes took 5.2 s of sys CPU, with 4095 KiB or 1023 KiB
// ones 0.5 s; in a whole download 4 MiB writes cost 4.9-6.2 s of sys CPU, 1023 KiB ones 1.7-1.9 s.
const SYSCALL_BYTES = 1023 << 10;
const WRITE_BYTES = 4 * SYSCALL_BYTES;
const BUFFERS = 3;
const files = new Map();
function newHash(m) { const h = crypto.createHash(m.algo); if (m.prefix) h.update(m.prefix); return h; }
function post(f, msg) { parentPort.postMessage(Object.assign({ id: f.id }, msg)); }

function writeAll(fd, buf, len) {
  return new Promise((resolve, reject) => {
    const step = (off) => fs.write(fd, buf, off, Math.min(SYSCALL_BYTES, len - off), null, (err, n) => {
      if (err) return reject(err);
      if (off + n < len) return step(off + n);
      resolve();
    });
    step(0);
  });
}

// Bytes are copied from the socket's chunks into a few reused WRITE_BYTES buffers (fresh 64 KiB chunks held
// until a big write would cost page faults), hashed a buffer at a time, and written one at a time, in order;
// the socket is paused while no buffer is free (backpressure).
function take(f) {
  return f.free.pop() || Buffer.allocUnsafeSlow(WRITE_BYTES);
}
function seal(f) {
  if (!f.cur || !f.curLen) return;
  const b = f.curLen === f.cur.length ? f.cur : f.cur.subarray(0, f.curLen);
  f.h.update(b);
  f.queue.push({ buf: f.cur, len: f.curLen });
  f.cur = null;
  f.curLen = 0;
  kick(f);
}
function kick(f) {
  if (f.writing || !f.queue.length || f.writeErr) return;
  const w = f.queue.shift();
  f.writing = writeAll(f.fd, w.buf, w.len).then(() => {
    f.writing = null;
    if (f.free.length < BUFFERS) f.free.push(w.buf);
    if (f.paused && f.res && !f.fin) { f.paused = false; f.res.resume(); }
    kick(f);
  }, (e) => {
    f.writing = null;
    f.writeErr = e;
    f.queue = [];
    finish(f, { kind: 'fs' });
  });
}

async function drain(f) {
  if (!f.writeErr) seal(f);
  for (;;) {
    if (f.writeErr) throw f.writeErr;
    if (f.writing) { await f.writing; continue; }
    if (!f.queue.length) return;
    kick(f);
  }
}

// Ends one attempt: stops the request (unless it completed), writes every byte already hashed, then reports.
function finish(f, msg) {
  if (f.fin) return;
  f.fin = true;
  clearInterval(f.timer);
  if (msg.kind !== 'ok' && f.req) f.req.destroy();
  f.req = null;
  f.res = null;
  drain(f).then(
    () => post(f, Object.assign({ op: 'fetched', offset: f.offset }, msg)),
    (e) => post(f, { op: 'fetched', offset: f.offset, kind: 'fs', code: e.code, message: e.message }),
  );
}

function request(f, m, url, redirectsLeft, firstOrigin) {
  let u;
  try { u = new URL(url); } catch (e) { return finish(f, { kind: 'net', code: 'EINVAL', message: e.message, url }); }
  const mod = u.protocol === 'https:' ? https : http;
  const headers = { 'user-agent': 'coldstart', 'accept-encoding': 'identity' };
  if (f.offset > 0) headers.range = 'bytes=' + f.offset + '-';
  // Credentials never leave the Hub's origin (the CDN gets a signed URL instead).
  if (m.token && u.origin === firstOrigin) headers.authorization = 'Bearer ' + m.token;
  const req = mod.request(u, { method: 'GET', headers, agent: agents[u.protocol] }, (res) => {
    if (f.fin) return res.resume();
    const status = res.statusCode || 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (redirectsLeft <= 0) return finish(f, { kind: 'redirects', url });
      return request(f, m, new URL(res.headers.location, u).toString(), redirectsLeft - 1, firstOrigin);
    }
    if (status === 416 || (status === 200 && f.offset > 0)) {
      // The server will not resume this file: start it over (a 200 already carries the whole body).
      try { fs.ftruncateSync(f.fd, 0); } catch (e) { res.resume(); return finish(f, { kind: 'fs', code: e.code, message: e.message }); }
      f.offset = 0;
      f.h = newHash(f.m);
      // Tell the main thread at once: bytes it counted as resumed are being fetched again (exact accounting).
      post(f, { op: 'progress', offset: 0 });
      if (status === 416) { res.resume(); return finish(f, { kind: '416' }); }
    } else if (status !== 200 && status !== 206) {
      res.resume();
      const h = res.headers;
      return finish(f, { kind: 'status', status, headers: { 'x-error-code': h['x-error-code'], 'x-error-message': h['x-error-message'], 'retry-after': h['retry-after'] } });
    } else if (status === 206) {
      const cr = String(res.headers['content-range'] || '');
      const mm = /^bytes (\\d+)-/.exec(cr);
      if (!mm || Number(mm[1]) !== f.offset) { res.resume(); return finish(f, { kind: 'range', contentRange: cr }); }
    }
    f.res = res;
    res.on('data', (c) => {
      if (f.fin) return;
      if (f.offset + c.length > m.size) return finish(f, { kind: 'toolong' });
      f.offset += c.length;
      let off = 0;
      while (off < c.length) {
        if (!f.cur) { f.cur = take(f); f.curLen = 0; }
        const n = c.copy(f.cur, f.curLen, off);
        f.curLen += n;
        off += n;
        if (f.curLen === f.cur.length) seal(f);
      }
      if (!f.free.length && !f.paused && f.queue.length) { f.paused = true; res.pause(); }
    });
    res.on('end', () => finish(f, { kind: f.offset < m.size ? 'short' : 'ok' }));
    res.on('error', (e) => finish(f, { kind: 'net', code: e.code, message: e.message, url }));
    res.on('close', () => finish(f, { kind: 'short' }));
  });
  f.req = req;
  req.setTimeout(m.timeoutMs, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
  req.on('error', (e) => finish(f, { kind: 'net', code: e.code, message: e.message, url }));
  req.end();
}

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
      files.set(m.id, { id: m.id, fd: m.fd, h, m, offset: m.hashExisting, fin: true, free: [], cur: null, curLen: 0, queue: [], writing: null, writeErr: null, req: null, res: null, paused: false, timer: null });
      parentPort.postMessage({ id: m.id, op: 'opened' });
    } else if (m.op === 'fetch') {
      f.fin = false;
      f.paused = false;
      f.timer = setInterval(() => post(f, { op: 'progress', offset: f.offset }), m.progressMs);
      request(f, m, m.url, m.maxRedirects, new URL(m.url).origin);
    } else if (m.op === 'abort') {
      if (f && !f.fin) finish(f, { kind: 'aborted' });
    } else if (m.op === 'digest') {
      files.delete(m.id);
      parentPort.postMessage({ id: m.id, op: 'digest', hex: f.h.digest('hex') });
    } else if (m.op === 'drop') {
      files.delete(m.id);
      parentPort.postMessage({ id: m.id, op: 'drop' });
    }
  } catch (e) {
    if (m.op === 'fetch' && f) return finish(f, { kind: 'net', code: e.code, message: e.message, url: m.url });
    parentPort.postMessage({ id: m.id, op: 'error', code: e.code, message: e.message });
  }
});
`;

/** How one worker-side attempt at a file ended; `offset` is the byte reached (bytes written, hashed). */
export type FetchOutcome = { offset: number } & (
  | { kind: 'ok' | 'short' | '416' | 'toolong' | 'aborted' }
  | { kind: 'net'; code?: string; message: string; url: string }
  | { kind: 'fs'; code?: string; message: string }
  | { kind: 'status'; status: number; headers: Record<string, string | undefined> }
  | { kind: 'range'; contentRange: string }
  | { kind: 'redirects'; url: string }
);

export interface FetchRequest {
  url: string;
  token?: string;
  timeoutMs: number;
  /** The file's size: bytes past it end the attempt as `toolong`. */
  size: number;
  maxRedirects?: number;
}

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  once: Map<string, Waiter>;
  onProgress?: (offset: number) => void;
  error?: Error;
}

type WorkerMsg = { id: number; op: string; hex?: string; code?: string; message?: string; offset?: number };

class SinkWorker {
  readonly worker = new Worker(WORKER_SRC, { eval: true });
  load = 0;
  private waiters = new Map<number, Slot>();
  constructor() {
    this.worker.on('message', (m: WorkerMsg) => {
      const w = this.waiters.get(m.id);
      if (!w) return;
      if (m.op === 'progress') w.onProgress?.(m.offset!);
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
   * `onProgress` gets the byte offset about every `progressMs`; an abort of `signal` ends the attempt as `aborted`.
   */
  async fetch(req: FetchRequest, onProgress: (offset: number) => void, signal?: AbortSignal, progressMs = 100): Promise<FetchOutcome> {
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
