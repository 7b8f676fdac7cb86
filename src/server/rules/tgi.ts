import type { EngineSpec } from './types.js';

const SRC = 'github.com/huggingface/text-generation-inference';
/** Text Generation Inference launcher + router lines, 0.x → 3.x, plain and --json-output. Fixtures: fixtures/server-logs/tgi/*. */
export const TGI: EngineSpec = {
  engine: 'tgi',
  signature: /text_generation_launcher|text_generation_router/,
  rules: [
    {
      id: 'tgi.download.begin', engine: 'tgi', stage: 'download', phase: 'download', kind: 'begin',
      re: /Starting (?:check and )?download process/,
      versions: '<=2.0 "Starting download process."; >=2.1 "Starting check and download process for {model_id}"',
      cite: `${SRC} launcher/src/main.rs download_convert_model; fixtures tgi/0.x-*, 1.2.0-*, 2.2.0-*, 3.x-*`,
    },
    {
      id: 'tgi.download.end', engine: 'tgi', stage: 'download', phase: 'download', kind: 'end',
      re: /Successfully downloaded weights/,
      versions: 'all', cite: `${SRC} launcher/src/main.rs "Successfully downloaded weights for {model_id}"; fixtures tgi/*`,
    },
    {
      id: 'tgi.shard.begin', engine: 'tgi', stage: 'shard start (weight loading)', phase: 'gpu-load', kind: 'begin',
      re: /Starting shard/,
      versions: 'all ("Starting shard 0" 0.x, "Starting shard rank=N" >=1.0)', cite: `${SRC} launcher/src/main.rs shard_manager; fixtures tgi/*`,
    },
    {
      id: 'tgi.shard.end', engine: 'tgi', stage: 'shard start (weight loading)', phase: 'gpu-load', kind: 'end',
      re: /Shard (?:\d+ )?ready in ([\d.]+) ?s/, secondsGroup: 1,
      versions: 'all', cite: `${SRC} launcher/src/main.rs "Shard ready in {:?}"; fixtures tgi/1.2.0-*, 2.2.0-*, 3.x-*`,
    },
    {
      id: 'tgi.warmup.begin', engine: 'tgi', stage: 'warm-up (KV blocks, CUDA graphs)', phase: 'warmup', kind: 'begin',
      re: /Warming up model/,
      versions: '>=0.9', cite: `${SRC} router/src/main.rs | backends/v3/src/lib.rs "Warming up model"; fixtures tgi/1.2.0-*, 2.2.0-*, 3.x-*`,
    },
    {
      id: 'tgi.warmup.end', engine: 'tgi', stage: 'warm-up (KV blocks, CUDA graphs)', phase: 'warmup', kind: 'end',
      re: /Setting max batch total tokens to/,
      versions: '>=0.9', cite: `${SRC} router "Setting max batch total tokens to {}"; fixtures tgi/1.2.0-*, 2.2.0-*, 3.x-*`,
    },
    {
      id: 'tgi.router-up', engine: 'tgi', stage: 'router start', phase: 'warmup', kind: 'end', fromPrevious: true,
      re: /(?:^|: )Connected$/,
      versions: 'all', cite: `${SRC} router/src/server.rs "Connected"; fixtures tgi/1.2.0-*, 2.2.0-*, 3.x-*`,
    },
  ],
};
