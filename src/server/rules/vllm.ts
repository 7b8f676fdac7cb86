import type { EngineSpec } from './types.js';

const SRC = 'github.com/vllm-project/vllm';
/** vLLM (V1 engine) start-up lines, 0.7 → 0.25+. Fixtures: fixtures/server-logs/vllm/*. */
export const VLLM: EngineSpec = {
  engine: 'vllm',
  // vLLM's logger prints "[file.py:line]"; SGLang/TGI/llama.cpp never do.
  signature: /\[(?:gpu_model_runner|default_loader|weight_utils|api_server|core|monitor|backends|loader|kv_cache_utils|gpu_worker|launcher|utils|arg_utils|model)\.py:\d+\]|vLLM API server version|Initializing a V1 LLM engine/,
  version: /vLLM API server version (\d+\.\d+\.\d+\S*)|LLM engine \(v(\d+\.\d+\.\d+[^)\s]*)\)|version (\d+\.\d+\.\d+)$/,
  rules: [
    {
      id: 'vllm.download', engine: 'vllm', stage: 'download', phase: 'download', kind: 'end',
      re: /Time spent downloading weights for .+?: ([\d.]+) seconds/, secondsGroup: 1,
      versions: '>=0.8 (PR #14063)', cite: `${SRC} vllm/model_executor/model_loader/weight_utils.py "Time spent downloading weights for %s: %.6f seconds"; fixtures vllm/0.8.1-download-508s-k8s.log, 0.10.x-tp8-*`,
    },
    {
      id: 'vllm.model-loading.begin', engine: 'vllm', stage: 'model loading', phase: 'gpu-load', kind: 'begin',
      re: /Starting to load model /,
      versions: '>=0.7', cite: `${SRC} vllm/v1/worker/gpu_model_runner.py "Starting to load model %s..."; every vllm fixture`,
    },
    {
      id: 'vllm.model-loading.end', engine: 'vllm', stage: 'model loading', phase: 'gpu-load', kind: 'end',
      // "Model loading took 3.3465 GB and 509.68 seconds" (0.8), "… 27.7183 GiB and …" (0.10), "… 15.18 GiB memory and 2.64 seconds" (0.11.2+)
      re: /Model loading took [\d.]+ ?Gi?B(?: memory)? and ([\d.]+) ?s/, secondsGroup: 1,
      versions: '0.7–0.11.1 "X GiB and Y seconds"; >=0.11.2 "X GiB memory and Y seconds"', cite: `${SRC} vllm/v1/worker/gpu_model_runner.py; fixtures vllm/0.8.1-*, 0.10.x-*, 0.22.1-*`,
    },
    {
      id: 'vllm.weights', engine: 'vllm', stage: 'weight loading', phase: 'gpu-load', kind: 'end',
      re: /Loading weights took ([\d.]+) ?s/, secondsGroup: 1,
      versions: '>=0.8', cite: `${SRC} vllm/model_executor/model_loader/default_loader.py "Loading weights took %.2f seconds"; fixtures vllm/*`,
    },
    {
      id: 'vllm.compile-graph', engine: 'vllm', stage: 'torch.compile (graph)', phase: 'compile', kind: 'end',
      re: /Compiling a graph for .+? takes ([\d.]+) ?s/, secondsGroup: 1,
      versions: '>=0.8', cite: `${SRC} vllm/compilation/backends.py "Compiling a graph for … takes %.2f s"; fixtures vllm/0.8.1-*, 0.22.1-*`,
    },
    {
      id: 'vllm.torch-compile', engine: 'vllm', stage: 'torch.compile', phase: 'compile', kind: 'end',
      re: /torch\.compile (?:takes|took) ([\d.]+) ?s in total/, secondsGroup: 1,
      versions: '<0.19 "takes"; >=0.19 "took"', cite: `${SRC} vllm/compilation/monitor.py "torch.compile took %.2f s in total"; fixtures vllm/0.9.x-*, 0.22.1-*`,
    },
    {
      id: 'vllm.profile-run', engine: 'vllm', stage: 'profiling/warmup run', phase: 'warmup', kind: 'end',
      re: /Initial profiling\/warmup run took ([\d.]+) ?s/, secondsGroup: 1,
      versions: '>=0.19', cite: `${SRC} vllm/compilation/monitor.py "Initial profiling/warmup run took %.2f s"; fixture vllm/0.22.1-*`,
    },
    {
      id: 'vllm.cuda-graphs', engine: 'vllm', stage: 'CUDA graph capture', phase: 'compile', kind: 'end',
      re: /Graph capturing finished in ([\d.]+) secs?/, secondsGroup: 1,
      versions: '>=0.6', cite: `${SRC} vllm/v1/worker/gpu_model_runner.py "Graph capturing finished in %.0f secs, took %.2f GiB"; fixtures vllm/*`,
    },
    {
      id: 'vllm.engine-init', engine: 'vllm', stage: 'engine init (profile, KV cache, warmup)', phase: 'warmup', kind: 'end',
      // "took 59.57 seconds" (<=0.19), "took 50.64 s (compilation: 25.93 s)" (>=0.20); compilation is the torch.compile stage above
      re: /init engine \(profile, create kv cache, warmup model\) took ([\d.]+) ?s(?:econds)?/, secondsGroup: 1,
      versions: '<0.20 "took N seconds"; >=0.20 "took N s (compilation: M s)"', cite: `${SRC} vllm/v1/engine/core.py; fixtures vllm/0.8.1-*, 0.22.1-*`,
    },
    {
      id: 'vllm.api-up', engine: 'vllm', stage: 'API server start', phase: 'warmup', kind: 'end', fromPrevious: true,
      re: /Starting vLLM (?:API )?server(?: \d+)? on /,
      versions: 'all ("API server" <0.20, "server" >=0.20)', cite: `${SRC} vllm/entrypoints/openai/api_server.py; fixtures vllm/*`,
    },
  ],
};
