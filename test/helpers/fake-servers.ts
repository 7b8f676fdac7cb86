/**
 * Local stand-ins for inference servers, on 127.0.0.1 with ephemeral ports: each speaks one API the way the
 * real one does (routes, JSON shapes, SSE / NDJSON streaming) and can misbehave on purpose — slow readiness,
 * 503 while loading, errors, garbage, a stream that never sends a token.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { isColdstartError } from '../../src/core/errors.js';

export type FakeApi = 'openai' | 'openai-chat' | 'tgi' | 'kserve' | 'triton' | 'ollama' | 'html' | 'nothing' | 'broken';

export interface FakeOptions {
  api: FakeApi;
  /** Until this many ms after start every route answers 503 "loading". */
  loadingMs?: number;
  /** Tokens streamed, one per event. */
  tokens?: string[];
  /** Delay before the first token (prefill) and between tokens. */
  firstTokenMs?: number;
  tokenMs?: number;
  /** Inference requests answer this status (e.g. 500) with a JSON error. */
  inferStatus?: number;
  /** Inference answers 200 with this raw body instead of the API's JSON. */
  inferGarbage?: string;
  /** Streaming answers 200 text/event-stream with these raw lines. */
  streamGarbage?: string[];
  /** Require this bearer token (401 otherwise). */
  token?: string;
  /** The first inference request hangs this long (a model loading on first use, like Ollama). */
  firstInferMs?: number;
  /** Models listed (default ["tiny"]). */
  models?: string[];
  /** A stream sends this many tokens, then neither another byte nor its end (a server stuck mid-answer). */
  stallAfterTokens?: number;
}

export interface FakeServer {
  url: string;
  port: number;
  /** Every request as "METHOD /path". */
  log: string[];
  /** Every request's headers, in the order of `log`. */
  headers: IncomingMessage['headers'][];
  bodies: unknown[];
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function json(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const t = Buffer.concat(chunks).toString('utf8');
  try {
    return t ? JSON.parse(t) : undefined;
  } catch {
    return t;
  }
}

/** Starts a fake server; `port` reuses a known port (to start late after a client began waiting). */
export async function startFake(o: FakeOptions, port = 0): Promise<FakeServer> {
  const started = Date.now();
  const log: string[] = [];
  const headers: IncomingMessage['headers'][] = [];
  const bodies: unknown[] = [];
  const tokens = o.tokens ?? ['Hel', 'lo', ' wor', 'ld'];
  const models = o.models ?? ['tiny'];
  let inferCount = 0;

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    log.push(`${method} ${path}`);
    headers.push(req.headers);
    const body = method === 'POST' ? await readBody(req) : undefined;
    if (body !== undefined) bodies.push(body);
    if (o.token && req.headers.authorization !== `Bearer ${o.token}`) return json(res, 401, { error: { message: 'invalid api key' } });
    if (Date.now() - started < (o.loadingMs ?? 0)) {
      if (o.api === 'ollama') return json(res, 503, { error: 'starting' });
      return json(res, 503, { error: { message: 'Loading model', type: 'unavailable_error' } });
    }
    const infer = async (): Promise<boolean> => {
      inferCount++;
      if (inferCount === 1 && o.firstInferMs) await sleep(o.firstInferMs);
      if (o.inferStatus) {
        json(res, o.inferStatus, { error: { message: `boom ${o.inferStatus}` } });
        return false;
      }
      if (o.inferGarbage !== undefined) {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(o.inferGarbage);
        return false;
      }
      return true;
    };
    const sse = async (event: (t: string, i: number) => unknown, done?: unknown) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      if (o.streamGarbage) {
        for (const l of o.streamGarbage) res.write(`${l}\n`);
        return res.end();
      }
      await sleep(o.firstTokenMs ?? 0);
      for (let i = 0; i < tokens.length; i++) {
        if (i === o.stallAfterTokens) return new Promise<void>(() => {}); // until close() drops the connection
        if (i > 0) await sleep(o.tokenMs ?? 0);
        res.write(`data: ${JSON.stringify(event(tokens[i]!, i))}\n\n`);
      }
      if (done !== undefined) res.write(`data: ${typeof done === 'string' ? done : JSON.stringify(done)}\n\n`);
      res.end();
    };

    switch (o.api) {
      case 'openai':
      case 'openai-chat': {
        if (method === 'GET' && path === '/v1/models') return json(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', owned_by: 'fake' })) });
        if (method === 'POST' && path === '/v1/completions' && o.api === 'openai') {
          if (!(await infer())) return;
          const b = body as { stream?: boolean; model?: string };
          if (b.model && !models.includes(b.model)) return json(res, 404, { error: { message: `model ${b.model} not found` } });
          if (b.stream) return sse((t) => ({ id: 'c', object: 'text_completion', choices: [{ index: 0, text: t, finish_reason: null }] }), '[DONE]');
          return json(res, 200, { id: 'c', object: 'text_completion', choices: [{ index: 0, text: tokens.join(''), finish_reason: 'length' }] });
        }
        if (method === 'POST' && path === '/v1/chat/completions') {
          if (!(await infer())) return;
          const b = body as { stream?: boolean };
          if (b.stream) {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            // Like vLLM: a first chunk with the role and no content, then content deltas.
            res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { role: 'assistant' } }] })}\n\n`);
            await sleep(o.firstTokenMs ?? 0);
            for (const t of tokens) res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: t } }] })}\n\n`);
            res.write('data: [DONE]\n\n');
            return res.end();
          }
          return json(res, 200, { choices: [{ index: 0, message: { role: 'assistant', content: tokens.join('') } }] });
        }
        return json(res, 404, { detail: 'Not Found' });
      }
      case 'tgi': {
        if (method === 'GET' && path === '/info') return json(res, 200, { model_id: 'fake/tiny', version: '3.0.0', max_total_tokens: 2048 });
        if (method === 'GET' && path === '/health') {
          res.writeHead(200);
          return res.end();
        }
        if (method === 'POST' && path === '/generate_stream') {
          if (!(await infer())) return;
          return sse((t, i) => ({ index: i, token: { id: i, text: t, logprob: -0.1, special: false }, generated_text: null }));
        }
        if (method === 'POST' && path === '/generate') {
          if (!(await infer())) return;
          return json(res, 200, { generated_text: tokens.join('') });
        }
        return json(res, 404, { error: 'not found' });
      }
      case 'kserve':
      case 'triton': {
        if (method === 'GET' && path === '/v2/health/ready') {
          if (o.api === 'triton') {
            res.writeHead(200, { 'content-length': '0' });
            return res.end();
          }
          return json(res, 200, { ready: true });
        }
        if (method === 'POST' && path === '/v2/repository/index' && o.api === 'triton') return json(res, 200, models.map((name) => ({ name, version: '1', state: 'READY' })));
        const m = /^\/v2\/models\/([^/]+)(\/ready|\/infer)?$/.exec(path);
        if (m) {
          const name = decodeURIComponent(m[1]!);
          if (!models.includes(name)) return json(res, 404, { error: `model ${name} not found` });
          if (m[2] === '/ready') {
            res.writeHead(200, { 'content-length': '0' });
            return res.end();
          }
          if (!m[2] && method === 'GET')
            return json(res, 200, {
              name,
              platform: 'onnxruntime_onnx',
              inputs: [
                { name: 'input_ids', datatype: 'INT64', shape: [-1, -1] },
                { name: 'pixel', datatype: 'FP32', shape: [1, 3] },
              ],
              outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 2] }],
            });
          if (m[2] === '/infer' && method === 'POST') {
            if (!(await infer())) return;
            const b = body as { inputs?: Array<{ name: string; shape: number[]; data: unknown[] }> };
            const bad = (b.inputs ?? []).find((i) => i.data.length !== i.shape.reduce((a, c) => a * c, 1));
            if (!b.inputs || b.inputs.length !== 2 || bad) return json(res, 400, { error: 'inputs do not match the model metadata' });
            return json(res, 200, { model_name: name, outputs: [{ name: 'logits', datatype: 'FP32', shape: [1, 2], data: [0.1, 0.9] }] });
          }
        }
        return json(res, 404, { error: 'not found' });
      }
      case 'ollama': {
        if (method === 'GET' && path === '/') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          return res.end('Ollama is running');
        }
        if (method === 'GET' && path === '/api/tags') return json(res, 200, { models: models.map((name) => ({ name, model: name, size: 1234 })) });
        if (method === 'POST' && path === '/api/generate') {
          if (!(await infer())) return;
          const b = body as { model?: string; stream?: boolean };
          if (b.model && !models.includes(b.model)) return json(res, 404, { error: `model "${b.model}" not found, try pulling it first` });
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          await sleep(o.firstTokenMs ?? 0);
          for (const t of tokens) res.write(`${JSON.stringify({ model: b.model, response: t, done: false })}\n`);
          res.write(`${JSON.stringify({ model: b.model, response: '', done: true, eval_count: tokens.length })}\n`);
          return res.end();
        }
        return json(res, 404, { error: 'not found' });
      }
      case 'html': {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<html><body>It works!</body></html>');
      }
      case 'nothing':
        return json(res, 404, { error: 'not found' });
      case 'broken':
        // An OpenAI-style server whose model listing crashes.
        if (path === '/v1/models') return json(res, 500, { error: { message: 'CUDA error: an illegal memory access was encountered' } });
        return json(res, 404, { error: 'not found' });
    }
  };

  const server: Server = createServer((req, res) => {
    handler(req, res).catch((e) => {
      if (!res.headersSent) json(res, 500, { error: String(e) });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${p}`,
    port: p,
    log,
    headers,
    bodies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Whether a server can listen on 127.0.0.1:`port` right now (it is closed again at once). */
async function canListen(port: number): Promise<boolean> {
  const s = createServer();
  const ok = await new Promise<boolean>((r) => {
    s.once('error', () => r(false));
    s.listen(port, '127.0.0.1', () => r(true));
  });
  if (ok) await new Promise<void>((r) => s.close(() => r()));
  return ok;
}

/** The kernel's ephemeral ports (bind(0) and outgoing connections take theirs from here); null when unreadable. */
function ephemeralRange(): [number, number] | null {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return lo! > 0 && hi! >= lo! ? [lo!, hi!] : null;
  } catch {
    return null;
  }
}

const PORT_SLICE = 1000;
let portsHandedOut = 0;

/**
 * A port that was free a moment ago, for a server a test starts itself (wrap mode needs the ready URL before the
 * server listens). Taken from this vitest worker's own slice of the ports below the kernel's ephemeral range, so no
 * other worker's freePort, no other test's listen(0) and no outgoing connection can take it between this check and
 * the server's listen (a port from listen(0) could: a double-forked fixture once found another test's server
 * answering its ready URL). Where the ephemeral range leaves no room for the slices, listen(0) as before.
 */
export async function freePort(): Promise<number> {
  const range = ephemeralRange();
  const pool = Math.max(1, Number(process.env.VITEST_POOL_ID) || 1);
  const base = 10000 + ((pool - 1) % 16) * PORT_SLICE;
  if (range && base + PORT_SLICE <= range[0]) {
    for (let tries = 0; tries < PORT_SLICE; tries++) {
      const p = base + (portsHandedOut++ % PORT_SLICE);
      if (await canListen(p)) return p;
    }
  }
  const s = createServer();
  await new Promise<void>((r, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => r());
  });
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** A server that accepts connections and never answers (to prove every wait has a timeout). */
export async function startBlackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(() => {
    /* never respond */
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const p = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${p}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Awaits a promise that must reject with a ColdstartError; returns its code, exit code and message. */
export async function failureOf(p: Promise<unknown>): Promise<{ code: string; exit: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isColdstartError(e)) return { code: e.code, exit: e.exitCode, message: e.message };
    throw e;
  }
  throw new Error('expected a ColdstartError, got success');
}
