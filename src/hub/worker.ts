/**
 * The download worker (loaded by sink.ts from dist/hub/worker.js): one big file's HTTP GET (Range offset,
 * redirects, token and deadlines — by hop.ts's rules, shared with http.ts), its hash and its writes run here,
 * so several files use several cores. Protocol (every message carries the file's `id`):
 *   main → worker: open {fd, algo, prefix, hashExisting} | fetch {url, endpoint, token, timeoutMs, size, maxRedirects,
 *                  progressMs, base?} | hashTo {to} | abort | digest | drop
 *   worker → main: opened | progress {offset, written} | fetched {offset, kind, …} (FetchOutcome) | hashed {offset} |
 *                  digest {hex} | drop | error {code, message}
 * `hashTo` feeds the file's bytes [hashed, to) into its hash, read back from the page cache: the in-order hash of a
 * file fetched in Range parts follows the contiguous prefix the parts have written (cache/parts.ts).
 */
import { parentPort } from 'node:worker_threads';
import fs from 'node:fs';
import crypto, { type Hash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { armDeadlines, hopHeaders, hopTimeout, redirectTarget, tokenOriginOf } from './hop.js';

if (!parentPort) throw new Error('src/hub/worker.ts runs only as a worker thread (sink.ts starts it)');
const port = parentPort;

const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
// Each write(2) is 1023 KiB, so it never covers an aligned 1 MiB range of the file: a write that does makes
// the page cache allocate a large folio (up to 2 MiB), and on the VMs measured (Linux 6.18, Firecracker) that
// multiplies the kernel's copy time: 2 GiB with 4 MiB writes took 5.2 s of sys CPU, with 4095 KiB or 1023 KiB
// ones 0.5 s; in a whole download 4 MiB writes cost 4.9-6.2 s of sys CPU, 1023 KiB ones 1.7-1.9 s.
const SYSCALL_BYTES = 1023 << 10;
const WRITE_BYTES = 4 * SYSCALL_BYTES;
const BUFFERS = 3;

interface OpenMsg {
  id: number;
  op: 'open';
  fd: number;
  algo: 'sha256' | 'sha1';
  prefix?: string;
  hashExisting: number;
}
interface FetchMsg {
  id: number;
  op: 'fetch';
  url: string;
  /** The Hub endpoint: the token goes only to its origin. */
  endpoint: string;
  token?: string;
  /** Connect and idle deadline of each hop. */
  timeoutMs: number;
  size: number;
  maxRedirects: number;
  progressMs: number;
  /**
   * A Range part: the bytes [base, base + size) of the file, written at their position (pwrite; the fd must not
   * be O_APPEND) and not hashed here (the caller hashes the whole file in order). Any answer but a 206 at the
   * requested byte ends the attempt as `norange`. Absent: the classic whole-file stream, appended and hashed.
   */
  base?: number;
}
type InMsg = OpenMsg | FetchMsg | { id: number; op: 'hashTo'; to: number } | { id: number; op: 'abort' | 'digest' | 'drop' };
type Outcome = { kind: string; [k: string]: unknown };

interface FileState {
  id: number;
  fd: number;
  h: Hash;
  open: OpenMsg;
  m: FetchMsg | null;
  offset: number;
  fin: boolean;
  free: Buffer[];
  cur: Buffer | null;
  curLen: number;
  queue: Array<{ buf: Buffer; len: number }>;
  writing: Promise<void> | null;
  writeErr: NodeJS.ErrnoException | null;
  req: http.ClientRequest | null;
  res: http.IncomingMessage | null;
  paused: boolean;
  timer: NodeJS.Timeout | null;
  /** Range part: where its next buffer goes in the file (null: append). */
  wpos: number | null;
  /** Bytes of this attempt's range whose write completed (same frame as `offset`): what is on disk. */
  written: number;
  /** Bytes of the file fed to the hash by `hashTo` (read back). */
  hashed: number;
}

const files = new Map<number, FileState>();

function newHash(m: OpenMsg): Hash {
  const h = crypto.createHash(m.algo);
  if (m.prefix) h.update(m.prefix);
  return h;
}
function post(f: FileState, msg: Record<string, unknown>): void {
  port.postMessage({ id: f.id, ...msg });
}

function writeAll(fd: number, buf: Buffer, len: number, pos: number | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) =>
      fs.write(fd, buf, off, Math.min(SYSCALL_BYTES, len - off), pos === null ? null : pos + off, (err, n) => {
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
function take(f: FileState): Buffer {
  return f.free.pop() ?? Buffer.allocUnsafeSlow(WRITE_BYTES);
}
function seal(f: FileState): void {
  if (!f.cur || !f.curLen) return;
  const b = f.curLen === f.cur.length ? f.cur : f.cur.subarray(0, f.curLen);
  if (f.wpos === null) f.h.update(b);
  f.queue.push({ buf: f.cur, len: f.curLen });
  f.cur = null;
  f.curLen = 0;
  kick(f);
}
function kick(f: FileState): void {
  if (f.writing || !f.queue.length || f.writeErr) return;
  const w = f.queue.shift()!;
  const pos = f.wpos;
  if (f.wpos !== null) f.wpos += w.len;
  f.writing = writeAll(f.fd, w.buf, w.len, pos).then(
    () => {
      f.writing = null;
      f.written += w.len;
      if (f.free.length < BUFFERS) f.free.push(w.buf);
      if (f.paused && f.res && !f.fin) {
        f.paused = false;
        f.res.resume();
      }
      kick(f);
    },
    (e: NodeJS.ErrnoException) => {
      f.writing = null;
      f.writeErr = e;
      f.queue = [];
      finish(f, { kind: 'fs' });
    },
  );
}

async function drain(f: FileState): Promise<void> {
  if (!f.writeErr) seal(f);
  for (;;) {
    if (f.writeErr) throw f.writeErr;
    if (f.writing) {
      await f.writing;
      continue;
    }
    if (!f.queue.length) return;
    kick(f);
  }
}

// Ends one attempt: stops the request (unless it completed), writes every byte already hashed, then reports.
function finish(f: FileState, msg: Outcome): void {
  if (f.fin) return;
  f.fin = true;
  if (f.timer) clearInterval(f.timer);
  if (msg.kind !== 'ok' && f.req) f.req.destroy();
  f.req = null;
  f.res = null;
  drain(f).then(
    () => post(f, { op: 'fetched', offset: f.offset, written: f.written, ...msg }),
    (e: NodeJS.ErrnoException) => post(f, { op: 'fetched', offset: f.offset, written: f.written, kind: 'fs', code: e.code, message: e.message }),
  );
}

const READBACK_BYTES = 4 << 20;
/** Read-back buffers, one per hashTo in flight (files hashed at once on this worker), reused. */
const spare: Buffer[] = [];

/**
 * Feeds the file's bytes [f.hashed, to) into its hash, read back (from the page cache: they were just written) in
 * 4 MiB reads through the libuv pool, so the worker's event loop keeps serving its sockets between reads.
 */
async function hashTo(f: FileState, to: number): Promise<void> {
  const buf = spare.pop() ?? Buffer.allocUnsafeSlow(READBACK_BYTES);
  try {
    while (f.hashed < to) {
      if (!files.has(f.id)) return; // dropped meanwhile
      const n = await new Promise<number>((resolve, reject) => fs.read(f.fd, buf, 0, Math.min(buf.length, to - f.hashed), f.hashed, (e, k) => (e ? reject(e) : resolve(k))));
      if (n <= 0) throw Object.assign(new Error('short read while hashing the downloaded parts'), { code: 'EIO' });
      f.h.update(n === buf.length ? buf : buf.subarray(0, n));
      f.hashed += n;
    }
  } finally {
    spare.push(buf);
  }
}

function request(f: FileState, m: FetchMsg, url: string, redirectsLeft: number, tokenOrigin: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    return finish(f, { kind: 'net', code: 'EINVAL', message: (e as Error).message, url });
  }
  const mod = u.protocol === 'https:' ? https : http;
  const part = m.base !== undefined;
  const start = (m.base ?? 0) + f.offset;
  const range: Record<string, string> = part ? { range: `bytes=${start}-${(m.base ?? 0) + m.size - 1}` } : f.offset > 0 ? { range: `bytes=${f.offset}-` } : {};
  const headers = hopHeaders(u, tokenOrigin, m.token, range);
  const req = mod.request(u, { method: 'GET', headers, agent: agents[u.protocol === 'https:' ? 'https:' : 'http:'] }, (res) => {
    if (f.fin) return res.resume();
    const status = res.statusCode ?? 0;
    const next = redirectTarget(status, res.headers, u);
    if (next) {
      res.resume();
      if (redirectsLeft <= 0) return finish(f, { kind: 'redirects', url });
      return request(f, m, next, redirectsLeft - 1, tokenOrigin);
    }
    if (part && (status === 200 || status === 416)) {
      // The server does not serve ranges: the caller falls back to one stream.
      res.resume();
      return finish(f, { kind: 'norange' });
    }
    if (status === 416 || (status === 200 && f.offset > 0)) {
      // The server will not resume this file: start it over (a 200 already carries the whole body).
      try {
        fs.ftruncateSync(f.fd, 0);
      } catch (e) {
        res.resume();
        return finish(f, { kind: 'fs', code: (e as NodeJS.ErrnoException).code, message: (e as Error).message });
      }
      f.offset = 0;
      f.written = 0;
      f.h = newHash(f.open);
      // Tell the main thread at once: bytes it counted as resumed are being fetched again (exact accounting).
      post(f, { op: 'progress', offset: 0 });
      if (status === 416) {
        res.resume();
        return finish(f, { kind: '416' });
      }
    } else if (status !== 200 && status !== 206) {
      res.resume();
      const h = res.headers;
      return finish(f, { kind: 'status', status, headers: { 'x-error-code': h['x-error-code'], 'x-error-message': h['x-error-message'], 'retry-after': h['retry-after'] } });
    } else if (status === 206) {
      const cr = String(res.headers['content-range'] ?? '');
      const mm = /^bytes (\d+)-/.exec(cr);
      if (!mm || Number(mm[1]) !== start) {
        res.resume();
        return finish(f, { kind: 'range', contentRange: cr });
      }
    }
    f.res = res;
    res.on('data', (c: Buffer) => {
      if (f.fin) return;
      if (f.offset + c.length > m.size) return finish(f, { kind: 'toolong' });
      f.offset += c.length;
      let off = 0;
      while (off < c.length) {
        if (!f.cur) {
          f.cur = take(f);
          f.curLen = 0;
        }
        const n = c.copy(f.cur, f.curLen, off);
        f.curLen += n;
        off += n;
        if (f.curLen === f.cur.length) seal(f);
      }
      if (!f.free.length && !f.paused && f.queue.length) {
        f.paused = true;
        res.pause();
      }
    });
    res.on('end', () => finish(f, { kind: f.offset < m.size ? 'short' : 'ok' }));
    // A deadline that cut the body surfaces as a reset or close of the response: report it as the timeout it was.
    const cut = (): Outcome | undefined => {
      const t = hopTimeout(req);
      return t ? { kind: 'net', code: 'ETIMEDOUT', message: `no data within ${t.ms / 1000} s`, url } : undefined;
    };
    res.on('error', (e: NodeJS.ErrnoException) => finish(f, cut() ?? { kind: 'net', code: e.code, message: e.message, url }));
    res.on('close', () => finish(f, cut() ?? { kind: 'short' }));
  });
  f.req = req;
  armDeadlines(req, { connectMs: m.timeoutMs, idleMs: m.timeoutMs });
  req.on('error', (e: NodeJS.ErrnoException) => finish(f, { kind: 'net', code: e.code, message: e.message, url }));
  req.end();
}

port.on('message', (m: InMsg) => {
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
      files.set(m.id, { id: m.id, fd: m.fd, h, open: m, m: null, offset: m.hashExisting, fin: true, free: [], cur: null, curLen: 0, queue: [], writing: null, writeErr: null, req: null, res: null, paused: false, timer: null, wpos: null, written: m.hashExisting, hashed: m.hashExisting });
      port.postMessage({ id: m.id, op: 'opened' });
    } else if (m.op === 'fetch') {
      if (!f) throw Object.assign(new Error('fetch before open'), { code: 'EINVAL' });
      f.fin = false;
      f.paused = false;
      f.m = m;
      f.wpos = m.base !== undefined ? m.base + f.offset : null;
      f.written = f.offset; // the previous attempt reported only after its writes
      f.timer = setInterval(() => post(f, { op: 'progress', offset: f.offset, written: f.written }), m.progressMs);
      request(f, m, m.url, m.maxRedirects, tokenOriginOf(m.endpoint));
    } else if (m.op === 'hashTo') {
      if (!f) throw Object.assign(new Error('hashTo before open'), { code: 'EINVAL' });
      hashTo(f, m.to).then(
        () => port.postMessage({ id: m.id, op: 'hashed', offset: f.hashed }),
        (e: NodeJS.ErrnoException) => port.postMessage({ id: m.id, op: 'error', code: e.code, message: e.message }),
      );
    } else if (m.op === 'abort') {
      if (f && !f.fin) finish(f, { kind: 'aborted' });
    } else if (m.op === 'digest') {
      files.delete(m.id);
      port.postMessage({ id: m.id, op: 'digest', hex: f!.h.digest('hex') });
    } else if (m.op === 'drop') {
      files.delete(m.id);
      port.postMessage({ id: m.id, op: 'drop' });
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (m.op === 'fetch' && f) return finish(f, { kind: 'net', code: err.code, message: err.message, url: m.url });
    port.postMessage({ id: m.id, op: 'error', code: err.code, message: err.message });
  }
});
