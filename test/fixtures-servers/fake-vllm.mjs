#!/usr/bin/env node
// A stand-in for `vllm serve`: prints vLLM's start-up log lines (same wording as vLLM 0.9–0.11) with real
// delays between them, then serves /health, /v1/models and /v1/completions on 127.0.0.1:PORT.
// Usage: fake-vllm.mjs PORT [--ignore-sigterm] [--die-early] [--compile-cache]
// --compile-cache: torch.compile honours $VLLM_CACHE_ROOT like vLLM does: cold it takes FAKE_VLLM_COMPILE_MS (default
// 1500 ms) and writes torch_compile_cache/<hash>/rank_0_0/backbone/vllm_compile_cache.py; with that file present it
// loads it (0.05 s) and says so, as vLLM's "Directly load the compiled graph(s)" line does.
import { createServer } from 'node:http';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const port = Number(process.argv[2]);
const ignoreTerm = process.argv.includes('--ignore-sigterm');
const dieEarly = process.argv.includes('--die-early');
const compileCache = process.argv.includes('--compile-cache');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ts = () => new Date().toISOString().slice(5, 19).replace('T', ' ');
const log = (m) => process.stderr.write(`INFO ${ts()} [fake_vllm.py:1] ${m}\n`);

if (process.env.FAKE_VLLM_PIDFILE) writeFileSync(process.env.FAKE_VLLM_PIDFILE, String(process.pid));
if (ignoreTerm) process.on('SIGTERM', () => log('SIGTERM ignored'));
else process.on('SIGTERM', () => { log('Shutting down'); process.exit(0); });

log('vLLM API server version 0.10.1 (fake)');
await sleep(200); // imports, arg parsing: unexplained by design
if (dieEarly) { log('ERROR: CUDA out of memory'); process.exit(1); }
log('Starting to load model fake/llama...');
await sleep(300);
log('Loading weights took 0.28 seconds');
log('Model loading took 0.9 GiB and 0.30 seconds');
await sleep(200);
if (compileCache) {
  const dir = join(process.env.VLLM_CACHE_ROOT || join(process.env.HOME || '/tmp', '.cache', 'vllm'), 'torch_compile_cache', '5f1c0ffee0', 'rank_0_0', 'backbone');
  const file = join(dir, 'vllm_compile_cache.py');
  if (existsSync(file)) {
    await sleep(50);
    log(`Directly load the compiled graph(s) for dynamic shape from the cache, took 0.05 s`);
    log('torch.compile takes 0.05 s in total');
  } else {
    const ms = Number(process.env.FAKE_VLLM_COMPILE_MS || 1500);
    await sleep(ms);
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, "{(0, 'fake'): ('artifact_shape_None_subgraph_0', 'fake.py')}\n");
    log(`Compiling a graph for dynamic shape takes ${(ms / 1000).toFixed(2)} s`);
    log(`torch.compile takes ${(ms / 1000).toFixed(2)} s in total`);
  }
} else log('torch.compile takes 0.20 s in total');
await sleep(150);
log('Graph capturing finished in 0.15 secs, took 0.10 GiB');
log('init engine (profile, create kv cache, warmup model) took 0.40 seconds');
const server = createServer((req, res) => {
  if (req.url === '/health') return res.end('ok');
  if (req.url === '/v1/models') return res.end(JSON.stringify({ data: [{ id: 'fake/llama' }] }));
  if (req.url === '/v1/completions' && req.method === 'POST') {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const j = JSON.parse(body);
      if (j.model !== 'fake/llama') { res.statusCode = 404; return res.end('{"error":"model"}'); }
      await sleep(120); // first request: lazy kernels
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ choices: [{ text: ' world' }] }));
    });
    return;
  }
  res.statusCode = 404;
  res.end();
});
server.listen(port, '127.0.0.1', () => {
  log(`Starting vLLM API server 0 on http://127.0.0.1:${port}`);
  process.stdout.write('INFO:     Application startup complete.\n');
});
