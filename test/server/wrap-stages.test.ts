/**
 * The stage rules (src/server/rules) on single lines whose wording is copied from real logs (the
 * fixtures in fixtures/server-logs and the public logs cited in each rule); times are made up here — the
 * replay test (wrap-replay.test.ts) checks real timing.
 */
import { describe, expect, it } from 'vitest';
import { stagesFromLog, phaseSeconds, detectEngine, type LogLine } from '../../src/server/stages.js';
import { parseStageFlag } from '../../src/server/rules/index.js';
import { LineSplitter, normalizeLine } from '../../src/server/log-lines.js';
import { ALL_RULES } from '../../src/server/rules/index.js';
import { isColdstartError } from '../../src/core/errors.js';

const L = (t: number, text: string): LogLine => ({ t, stream: 'stderr', text });
const brief = (r: ReturnType<typeof stagesFromLog>) => r.stages.map((s) => [s.phase, s.stage, +(s.ownSeconds ?? 0).toFixed(3)]);

describe('rules as data', () => {
  it('every rule names its engine versions and cites where its wording comes from', () => {
    for (const r of ALL_RULES) {
      expect(r.versions.length, r.id).toBeGreaterThan(0);
      expect(r.cite, r.id).toMatch(/github\.com|fixtures?/);
    }
    expect(new Set(ALL_RULES.map((r) => r.id)).size).toBe(ALL_RULES.length);
  });
});

describe('vLLM wording across versions', () => {
  it('0.22: "GiB memory and", "torch.compile took", "(compilation: …)", profiling run, "Starting vLLM server on"', () => {
    const r = stagesFromLog(
      [
        L(10, '(EngineCore pid=111) INFO 06-07 08:55:57 [gpu_model_runner.py:5037] Starting to load model google/gemma-4-E4B-it...'),
        L(12, '(EngineCore pid=111) INFO 06-07 08:55:59 [default_loader.py:397] Loading weights took 1.65 seconds'),
        L(13, '(EngineCore pid=111) INFO 06-07 08:56:00 [gpu_model_runner.py:5132] Model loading took 15.18 GiB memory and 2.640207 seconds'),
        L(40, '(EngineCore pid=111) INFO 06-07 08:56:35 [monitor.py:53] torch.compile took 25.93 s in total'),
        L(41, '(EngineCore pid=111) INFO 06-07 08:56:36 [monitor.py:81] Initial profiling/warmup run took 0.40 s'),
        L(63.64, '(EngineCore pid=111) INFO 06-07 08:56:50 [gpu_model_runner.py:6456] Graph capturing finished in 7 secs, took 0.71 GiB'),
        L(63.64, '(EngineCore pid=111) INFO 06-07 08:56:50 [core.py:302] init engine (profile, create kv cache, warmup model) took 50.64 s (compilation: 25.93 s)'),
        L(72.64, '(APIServer pid=1) INFO 06-07 08:56:59 [api_server.py:596] Starting vLLM server on http://0.0.0.0:8020'),
      ],
      72.64,
    );
    expect(r.engine).toBe('vllm');
    const p = phaseSeconds(r.stages);
    expect(+p['gpu-load'].toFixed(2)).toBe(2.65); // weights (1.65 s before 12) reach 0.01 s before model loading (2.64 s before 13)
    expect(+p.compile.toFixed(2)).toBe(25.93 + 7);
    expect(+p.warmup.toFixed(2)).toBe(+(50.64 - 25.93 - 7 + 9).toFixed(2)); // engine init's remainder (the profiling run inside it) + API start 9 s
    expect(r.stages.map((s) => s.stage)).toEqual(expect.arrayContaining(['weight loading', 'torch.compile', 'profiling/warmup run', 'CUDA graph capture', 'API server start']));
  });

  it('a download is the download phase, not weight loading; tensor-parallel duplicates become one span', () => {
    const r = stagesFromLog(
      [
        L(1, '(Worker_TP0 pid=1) INFO 09-24 20:46:11 [gpu_model_runner.py:2338] Starting to load model Qwen/Q...'),
        L(1, '(Worker_TP1 pid=2) INFO 09-24 20:46:11 [gpu_model_runner.py:2338] Starting to load model Qwen/Q...'),
        L(112, '(Worker_TP1 pid=2) INFO 09-24 20:50:44 [weight_utils.py:369] Time spent downloading weights for Qwen/Q: 111.0 seconds7MB/s]'),
        L(124, '(Worker_TP1 pid=2) INFO 09-24 20:50:57 [default_loader.py:268] Loading weights took 12.00 seconds'),
        L(125, '(Worker_TP0 pid=1) INFO 09-24 20:50:58 [default_loader.py:268] Loading weights took 12.50 seconds'),
        L(124, '(Worker_TP1 pid=2) INFO 09-24 20:50:58 [gpu_model_runner.py:2392] Model loading took 27.7183 GiB and 123.0 seconds'),
        L(125, '(Worker_TP0 pid=1) INFO 09-24 20:50:59 [gpu_model_runner.py:2392] Model loading took 27.7183 GiB and 124.0 seconds'),
      ].sort((a, b) => a.t - b.t),
      125,
    );
    const p = phaseSeconds(r.stages);
    expect(+p.download.toFixed(2)).toBe(111);
    expect(+p['gpu-load'].toFixed(2)).toBe(13); // 125 − 1 − 111
    expect(r.stages.filter((s) => s.stage === 'weight loading')).toHaveLength(1);
  });
});

describe('SGLang 2025 and 2026 wording, EAGLE draft graphs, its own warm-up', () => {
  it('capture variants are separate stages with the printed elapsed time', () => {
    const r = stagesFromLog(
      [
        L(0, '[2025-09-05 20:47:10 TP0] Load weight begin. avail mem=78.5 GB'),
        L(5, '[2025-09-05 20:47:15 TP0] Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=60 GB'),
        L(6, '[2025-09-05 20:47:16 TP0] KV Cache is allocated. #tokens: 834615, K size: 54.12 GB, V size: 54.12 GB'),
        L(6, '[2025-09-05 20:47:16 TP0] Memory pool end. avail mem=14.61 GB'),
        L(7, '[2025-09-05 20:47:17 TP0] Capture cuda graph begin. This can take up to several minutes. avail mem=13.95 GB'),
        L(19, '[2025-09-05 20:48:29 TP0] Capture cuda graph end. Time elapsed: 12.11 s. mem usage=0.54 GB. avail mem=16.74 GB.'),
        L(20, '[2025-09-05 20:48:30 TP0] Capture draft cuda graph begin. This can take up to several minutes. avail mem=16 GB'),
        L(82, '[2025-09-05 20:50:29 TP6] Capture draft cuda graph end. Time elapsed: 62.67 s. mem usage=0.21 GB. avail mem=15.31 GB.'),
        L(83, '[2025-09-05 20:50:30 TP0] Capture draft extend cuda graph begin. This can take up to several minutes. avail mem=15 GB'),
        L(85, '[2025-09-05 20:50:32 TP0] Capture draft extend cuda graph end. Time elapsed: 2.00 s. mem usage=0.1 GB. avail mem=15 GB.'),
        L(86, '[2026-08-27 03:46:30] INFO:     Uvicorn running on http://127.0.0.1:30000 (Press CTRL+C to quit)'),
        L(88, '[2026-08-27 03:46:32] The server is fired up and ready to roll!'),
      ],
      88,
    );
    expect(r.engine).toBe('sglang');
    expect(brief(r)).toEqual([
      ['gpu-load', 'weight loading', 5],
      ['warmup', 'KV cache / memory pool', 1],
      ['compile', 'CUDA graph capture', 12.11],
      ['compile', 'CUDA graph capture (draft)', 62.67],
      ['compile', 'CUDA graph capture (draft extend)', 2],
      ['warmup', 'HTTP server start', 1],
      ['warmup', 'server warm-up request', 2],
    ]);
  });
});

describe('lines that arrive in one read', () => {
  it('a stage whose begin and end came in the same chunk is kept at 0 s, not dropped', () => {
    const r = stagesFromLog(
      [
        L(1, '[2026-10-10 11:59:00] Load weight begin. avail mem=70 GB'),
        L(4, '[2026-10-10 11:59:41] Load weight end. type=X, dtype=torch.bfloat16, avail mem=20 GB'),
        L(5, '[2026-10-10 11:59:51] Capture target decode CUDA graph end. elapsed=1.00 s, mem usage=0.79 GB, avail mem=10.39 GB.'),
        L(5, '[2026-10-10 11:59:52] INFO:     Uvicorn running on http://0.0.0.0:30000 (Press CTRL+C to quit)'),
        L(6, '[2026-10-10 12:00:13] The server is fired up and ready to roll!'),
      ],
      6,
    );
    const http = r.stages.find((x) => x.stage === 'HTTP server start');
    expect(http).toMatchObject({ start: 5, end: 5, ownSeconds: 0 });
    expect(r.stages.map((x) => x.stage)).toContain('server warm-up request');
  });
});

describe('TGI plain and --json-output', () => {
  it('"Starting check and download process" (2.1+) is the download; JSON lines read like plain ones', () => {
    const plain = stagesFromLog(
      [
        L(0.1, '2025-07-04T12:35:04.406496Z  INFO download: text_generation_launcher: Starting check and download process for /models/gemma-3-27b-it'),
        L(5.5, '2025-07-04T12:35:09.843082Z  INFO download: text_generation_launcher: Successfully downloaded weights for /models/gemma-3-27b-it'),
        L(5.5, '2025-07-04T12:35:09.843564Z  INFO shard-manager: text_generation_launcher: Starting shard rank=0'),
        L(53.9, '2025-07-04T12:35:58.150338Z  INFO shard-manager: text_generation_launcher: Shard ready in 48.277857716s rank=0'),
        L(54.0, '2025-07-04T12:35:58.387723Z  INFO text_generation_router_v3: backends/v3/src/lib.rs:125: Warming up model'),
        L(65.0, '2025-07-04T12:36:09.356551Z  INFO text_generation_router_v3: backends/v3/src/lib.rs:137: Setting max batch total tokens to 52125'),
        L(71.0, '2025-07-04T12:36:15.367126Z  INFO text_generation_router::server: router/src/server.rs:2298: Connected'),
      ],
      71,
    );
    expect(plain.engine).toBe('tgi');
    expect(brief(plain).map((x) => x[1])).toEqual(['download', 'shard start (weight loading)', 'warm-up (KV blocks, CUDA graphs)', 'router start']);
    expect(+phaseSeconds(plain.stages).download.toFixed(2)).toBe(5.4);
    const json = stagesFromLog(
      [
        L(0, '{"timestamp":"2024-02-21T05:09:46.815155Z","level":"INFO","fields":{"message":"Starting download process."},"target":"text_generation_launcher","span":{"name":"download"},"spans":[{"name":"download"}]}'),
        L(5.6, '{"timestamp":"2024-02-21T05:09:52.420748Z","level":"INFO","fields":{"message":"Successfully downloaded weights."},"target":"text_generation_launcher"}'),
        L(11.2, '{"timestamp":"2024-02-21T05:09:58.029562Z","level":"INFO","fields":{"message":"Shard ready in 5.607799614s"},"target":"text_generation_launcher"}'),
      ],
      11.2,
    );
    expect(json.engine).toBe('tgi');
    expect(brief(json).map((x) => x[1])).toEqual(['download', 'shard start (weight loading)']);
    const jp = phaseSeconds(json.stages);
    expect(+(jp.download + jp['gpu-load']).toFixed(3)).toBe(11.2);
  });
});

describe('llama.cpp old and 2026 formats', () => {
  it('2026: recognised from srv lines alone; weights end at the llama_context line, not at "model loaded"', () => {
    const r = stagesFromLog(
      [
        L(0, '0.32.622.104 I srv  llama_server: loading model'),
        L(5.24, '0.37.865.641 W llama_context: n_ctx_seq (264960) > n_ctx_train (262144) -- possible training context overflow'),
        L(6.4, '0.39.033.954 I common_init_from_params: warming up the model with an empty run - please wait ... (--no-warmup to disable)'),
        L(6.75, "0.39.371.677 I srv    load_model: loaded multimodal model, '/root/mmproj-BF16.gguf'"),
        L(6.75, '0.39.371.686 I srv    load_model: initializing slots, n_slots = 10'),
        L(7.08, '0.39.699.972 I srv  llama_server: model loaded'),
        L(7.08, '0.39.699.976 I srv  llama_server: server is listening on http://0.0.0.0:8000'),
      ],
      7.08,
    );
    expect(r.engine).toBe('llama.cpp');
    expect(brief(r).slice(0, 4)).toEqual([
      ['gpu-load', 'weight loading', 5.24],
      ['warmup', 'context and KV cache setup (no end line, bounded by "warm-up run")', 1.16],
      ['warmup', 'warm-up run (no end line, bounded by "multimodal projector loaded")', 0.35],
      ['warmup', 'slot init', 0.33],
    ]);
  });

  it('old format (llama_model_loader … llama_new_context_with_model, "main: model loaded")', () => {
    const r = stagesFromLog(
      [
        L(0.2, 'llama_model_loader: loaded meta data with 25 key-value pairs and 197 tensors from ../models-mnt/bge-small/ggml-model-f16.gguf (version GGUF V3 (latest))'),
        L(2.2, 'llama_new_context_with_model: n_ctx      = 512'),
        L(2.4, 'main: model loaded'),
      ],
      2.5,
    );
    expect(r.engine).toBe('llama.cpp');
    expect(brief(r)[0]).toEqual(['gpu-load', 'weight loading', 2]);
    expect(brief(r)[1]).toEqual(['warmup', 'context and KV cache setup (no end line, bounded by "slot init")', 0.2]);
  });
});

describe('robust reading', () => {
  it('ANSI colour and CRLF do not hide a line; normalizeLine reads JSON messages', () => {
    expect(normalizeLine('\x1b[32mINFO\x1b[0m 06-02 11:03:17 [monitor.py:33] torch.compile takes 45.81 s in total\r')).toBe('INFO 06-02 11:03:17 [monitor.py:33] torch.compile takes 45.81 s in total');
    expect(normalizeLine('{"function":"main","level":"INFO","msg":"model loaded"}')).toBe('main: model loaded');
  });

  it('a begin without an end is bounded by the next stage, never runs over it', () => {
    const r = stagesFromLog([L(0, '[2026-08-27 03:45:41] Load weight begin. avail mem=78.48 GB'), L(10, '[2026-08-27 03:46:30] Capture target decode CUDA graph end. elapsed=4.00 s, mem usage=0.34 GB')], 12);
    expect(brief(r)).toEqual([
      ['gpu-load', 'weight loading (no end line, bounded by "CUDA graph capture (target decode)")', 6],
      ['compile', 'CUDA graph capture (target decode)', 4],
    ]);
  });

  it('the splitter looks at every character once, however long the line (no rescan per chunk)', () => {
    const s = new LineSplitter(1024);
    const chunk = 'x'.repeat(65536);
    let got: string[] = [];
    for (let i = 0; i < 256; i++) got = got.concat(s.push(chunk)); // 16 MiB without a newline
    expect(got).toEqual([]);
    got = s.push('tail\nnext line\npartial');
    expect(s.scannedChars).toBe(256 * 65536 + 'tail\nnext line\npartial'.length);
    expect(got[0]).toBe(`${'x'.repeat(1024)} …[${256 * 65536 + 4 - 1024} more characters not kept]`);
    expect(got[1]).toBe('next line');
    expect(s.flush()).toEqual(['partial']);
  });
});

describe('unrecognised engines and --stage', () => {
  it('unknown output explains nothing and is not given an engine', () => {
    expect(stagesFromLog([L(1, 'hello'), L(2, 'listening')], 2)).toEqual({ engine: null, version: null, stages: [] });
    expect(detectEngine([L(1, 'Loaded weights in 3.2s')]).engine).toBeNull();
  });

  it("--stage 'name[:phase]=REGEX' adds a rule: printed duration from a number group, else from the previous matched line", () => {
    const a = parseStageFlag('weights:gpu-load=Loaded weights in ([\\d.]+)s');
    const b = parseStageFlag('ready=Listening on');
    expect([a.stage, a.phase, a.secondsGroup, b.phase, b.secondsGroup]).toEqual(['weights', 'gpu-load', 1, 'warmup', undefined]);
    const r = stagesFromLog([L(1, 'boot'), L(5, 'Loaded weights in 3.5s'), L(7, 'Listening on :8080')], 7, [a, b]);
    expect(r.engine).toBeNull();
    expect(brief(r)).toEqual([
      ['gpu-load', 'weights', 3.5],
      ['warmup', 'ready', 2],
    ]);
  });

  it('a bad --stage is a usage error naming the flag (exit 2)', () => {
    for (const bad of ['no-equals-sign', 'x:nophase=foo', 'x=(unclosed']) {
      const e = (() => {
        try {
          parseStageFlag(bad);
        } catch (err) {
          return err;
        }
        return null;
      })();
      expect(isColdstartError(e) && e.exitCode).toBe(2);
      expect((e as Error).message).toMatch(/--stage/);
    }
  });
});
