import type { EngineSpec } from './types.js';

const SRC = 'github.com/ggml-org/llama.cpp';
const CONTEXT = /\bllama_context: |\bllama_new_context_with_model: |\bllama_init_from_model: /;
/**
 * llama-server lines. 2024–2025 builds print llama_model_loader/llama_new_context_with_model lines; 2026 builds
 * at default verbosity print only srv/slot lines plus a W "llama_context:" line at context creation.
 * Fixtures: fixtures/server-logs/llama.cpp/*.
 */
export const LLAMACPP: EngineSpec = {
  engine: 'llama.cpp',
  signature: /llama_model_loader: |\bsrv +\w+: |\bllama_server: |llama_new_context_with_model: |\bllama_context: |^(?:\S+ [IWE] )?main: (?:loading model|model loaded|server is listening)|common_init_from_params: /,
  version: /build: (\d+)|b(\d{4,5})-[0-9a-f]{6,}/,
  rules: [
    {
      id: 'llama.weights.begin', engine: 'llama.cpp', stage: 'weight loading', phase: 'gpu-load', kind: 'begin',
      re: /(?:load_model|main|llama_server): loading model\b|llama_model_loader: loaded meta data/,
      versions: '<=2025 "llama_model_loader: loaded meta data"; 2025+ "srv load_model: loading model", 2026 "srv llama_server: loading model"',
      cite: `${SRC} tools/server/server.cpp, src/llama-model-loader.cpp; fixtures llama.cpp/2026-*`,
    },
    {
      id: 'llama.weights.end', engine: 'llama.cpp', stage: 'weight loading', phase: 'gpu-load', kind: 'end',
      re: CONTEXT,
      versions: '2024 llama_new_context_with_model:, 2025 llama_init_from_model:, 2026 llama_context:',
      cite: `${SRC} src/llama-context.cpp (context creation follows the weights); fixtures llama.cpp/2026-*`,
    },
    {
      id: 'llama.context.begin', engine: 'llama.cpp', stage: 'context and KV cache setup', phase: 'warmup', kind: 'begin',
      re: CONTEXT,
      versions: 'as above', cite: `${SRC} src/llama-context.cpp; fixtures llama.cpp/2026-*`,
    },
    {
      id: 'llama.warmup.begin', engine: 'llama.cpp', stage: 'warm-up run', phase: 'warmup', kind: 'begin',
      re: /warming up the model with an empty run/,
      versions: 'all (absent with --no-warmup)', cite: `${SRC} common/common.cpp "warming up the model with an empty run"; fixtures llama.cpp/2026-llama-server-*`,
    },
    {
      id: 'llama.mmproj', engine: 'llama.cpp', stage: 'multimodal projector loaded', phase: 'warmup', kind: 'mark',
      re: /loaded multimodal model/,
      versions: '2025+', cite: `${SRC} tools/server/server.cpp; fixtures llama.cpp/2026-*`,
    },
    {
      id: 'llama.slots.begin', engine: 'llama.cpp', stage: 'slot init', phase: 'warmup', kind: 'begin',
      re: /initializing slots, n_slots/,
      versions: '2025+', cite: `${SRC} tools/server/server.cpp; fixtures llama.cpp/2026-*`,
    },
    {
      id: 'llama.slots.end', engine: 'llama.cpp', stage: 'slot init', phase: 'warmup', kind: 'end',
      re: /(?:main|llama_server): model loaded|"msg":"model loaded"/,
      versions: '2024–2025 "main: model loaded", 2026 "srv llama_server: model loaded"', cite: `${SRC} tools/server/server.cpp; fixtures llama.cpp/2026-*`,
    },
    {
      id: 'llama.listening', engine: 'llama.cpp', stage: 'HTTP server start', phase: 'warmup', kind: 'end', fromPrevious: true,
      re: /server is listening on|HTTP server listening/,
      versions: 'all', cite: `${SRC} tools/server/server.cpp; fixtures llama.cpp/2026-*`,
    },
  ],
};
