import type { EngineSpec } from './types.js';

const SRC = 'github.com/sgl-project/sglang';
/** SGLang (srt) start-up lines, 2025 → 2026 wording. Fixtures: fixtures/server-logs/sglang/*. */
export const SGLANG: EngineSpec = {
  engine: 'sglang',
  signature: /Load weight (?:begin|end)|Capture (?:[a-z]+ ){0,2}(?:cuda|CUDA|npu) graph (?:begin|end)|fired up and ready to roll|Memory pool end|Init torch distributed begin|server_args=ServerArgs\(|sglang\.srt/,
  version: /sglang[ =-]v?(\d+\.\d+\.\d+\S*)/,
  rules: [
    {
      id: 'sglang.dist.begin', engine: 'sglang', stage: 'torch distributed init', phase: 'warmup', kind: 'begin',
      re: /Init torch distributed begin/,
      versions: '>=0.4', cite: `${SRC} python/sglang/srt/model_executor/model_runner.py "Init torch distributed begin."; fixture sglang/2026-08-*`,
    },
    {
      id: 'sglang.dist.end', engine: 'sglang', stage: 'torch distributed init', phase: 'warmup', kind: 'end',
      re: /Init torch distributed ends\.(?: elapsed=([\d.]+) ?s)?/, secondsGroup: 1,
      versions: '>=0.4 (elapsed= from 2026)', cite: `${SRC} model_runner.py "Init torch distributed ends. elapsed=%.2f s"; fixture sglang/2026-08-*`,
    },
    {
      id: 'sglang.weights.begin', engine: 'sglang', stage: 'weight loading', phase: 'gpu-load', kind: 'begin',
      re: /Load weight begin/,
      versions: '>=0.3', cite: `${SRC} model_runner.py "Load weight begin. avail mem=%.2f GB"; fixtures sglang/2026-*`,
    },
    {
      id: 'sglang.weights.end', engine: 'sglang', stage: 'weight loading', phase: 'gpu-load', kind: 'end',
      re: /Load weight end\.(?: elapsed=([\d.]+) ?s)?/, secondsGroup: 1,
      versions: '2025 "Load weight end. type=…"; 2026 "Load weight end. elapsed=N s, …"', cite: `${SRC} model_runner.py; fixtures sglang/2026-*`,
    },
    {
      id: 'sglang.kv-alloc', engine: 'sglang', stage: 'KV cache / memory pool', phase: 'warmup', kind: 'end', fromPrevious: true,
      re: /(?:KV|Mamba) Cache is allocated/,
      versions: '>=0.4.5', cite: `${SRC} python/sglang/srt/mem_cache/memory_pool.py "KV Cache is allocated. #tokens: …"; fixtures sglang/2026-*; public log sgl-project/sglang#4826`,
    },
    {
      id: 'sglang.kv-pool', engine: 'sglang', stage: 'KV cache / memory pool', phase: 'warmup', kind: 'end', fromPrevious: true,
      re: /Memory pool end/,
      versions: '>=0.4', cite: `${SRC} model_runner.py "Memory pool end. avail mem=%.2f GB"; fixture sglang/2026-08-*`,
    },
    {
      id: 'sglang.graphs.begin', engine: 'sglang', stage: 'CUDA graph capture{1}', phase: 'compile', kind: 'begin',
      re: /Capture ((?:[a-z]+ ){0,2})(?:cuda|CUDA|npu) graph begin/, variantGroup: 1,
      versions: '2025 "Capture cuda graph begin", "Capture draft [extend] cuda graph begin" (EAGLE); 2026 "Capture {target|draft} {prefill|decode|verify|extend} CUDA graph begin"',
      cite: `${SRC} python/sglang/srt/model_executor/cuda_graph_runner.py, speculative/eagle_worker.py "Capture draft extend cuda graph begin…"; fixture sglang/2026-08-*`,
    },
    {
      id: 'sglang.graphs.end', engine: 'sglang', stage: 'CUDA graph capture{1}', phase: 'compile', kind: 'end',
      re: /Capture ((?:[a-z]+ ){0,2})(?:cuda|CUDA|npu) graph end\.(?:(?: Time elapsed:| elapsed=) ?([\d.]+) ?s)?/, variantGroup: 1, secondsGroup: 2,
      versions: '2025 "… end. Time elapsed: N s"; 2026 "… end. elapsed=N s"', cite: `${SRC} cuda_graph_runner.py, eagle_worker.py; fixtures sglang/2025-11-*, 2026-*`,
    },
    {
      id: 'sglang.piecewise-compile', engine: 'sglang', stage: 'torch.compile (piecewise graph)', phase: 'compile', kind: 'end',
      re: /Compiling a graph for .+? takes ([\d.]+) ?s/, secondsGroup: 1,
      versions: '>=0.5.4 (piecewise CUDA graph)', cite: `${SRC} python/sglang/srt/compilation/backend.py; public log sgl-project/sglang#20758`,
    },
    {
      id: 'sglang.http-up', engine: 'sglang', stage: 'HTTP server start', phase: 'warmup', kind: 'end', fromPrevious: true,
      re: /Uvicorn running on /,
      versions: 'all', cite: `${SRC} python/sglang/srt/entrypoints/http_server.py (uvicorn); fixtures sglang/*`,
    },
    {
      id: 'sglang.warmup.begin', engine: 'sglang', stage: 'server warm-up request', phase: 'warmup', kind: 'begin',
      re: /Uvicorn running on /,
      versions: 'all', cite: `${SRC} http_server.py _wait_and_warmup; fixtures sglang/2026-*`,
    },
    {
      id: 'sglang.warmup.end', engine: 'sglang', stage: 'server warm-up request', phase: 'warmup', kind: 'end',
      re: /The server is fired up and ready to roll/,
      versions: 'all', cite: `${SRC} http_server.py "The server is fired up and ready to roll!"; fixtures sglang/2026-*`,
    },
  ],
};
