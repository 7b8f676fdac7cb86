/**
 * `--framework torch|safetensors|transformers`: the user's stack itself, one Python process timed from its own
 * start (src/python/stack.py, run by src/python/runner.ts): interpreter start, imports, CUDA init, the weights
 * load (from_pretrained through common.py's load_hf / load_file / torch.load), the first forward (generate) and a
 * steady one. Every event carries the system's monotonic clock (Python's time.monotonic(), the CLOCK_MONOTONIC that
 * core/clock's nowSeconds reads), anchored here at the moment Node spawned the process, so the rows are contiguous
 * and the process wall clock measured by Node checks them. Not the wall clock: Python's time.time() and Node's
 * performance.timeOrigin + now() drift apart by milliseconds in a long run.
 */
import { nowSeconds } from '../core/clock.js';
import { ColdstartError } from '../core/errors.js';
import type { Engines } from './engines.js';
import { eventOf, scriptFailure } from '../python/runner.js';

export const FRAMEWORKS = ['torch', 'safetensors', 'transformers'] as const;
export type Framework = (typeof FRAMEWORKS)[number];

/** Prompt and generation length of the first and steady forwards (the device cross-check uses the same). */
export const PROMPT_TOKENS = 32;
export const NEW_TOKENS = 16;
/** The stack is stopped after an hour. */
const STACK_TIMEOUT_S = 3600;

export interface StackTimes {
  framework: Framework;
  python: string;
  device: 'cuda' | 'cpu';
  deviceReason?: string;
  /** Seconds from Node's spawn to each event. */
  interpreterSeconds: number;
  importSteps: Array<{ name: string; seconds: number }>;
  importSeconds: number;
  cudaInitSeconds: number | null;
  loadSeconds: number;
  loadCall: string;
  /** The dtype(s) of the loaded weights, as torch names them ("bfloat16"; "float16,float32" when mixed). */
  dtype: string | null;
  /** What the CUDA init step ran, as the stack reports it. */
  cudaCall: string | null;
  bytes: number;
  firstForwardSeconds: number | null;
  steadyForwardSeconds: number | null;
  forwardSkipped?: string;
  /** spawn → end of the first forward (the cold start), and the whole process as Node saw it. */
  coldStartSeconds: number;
  processWallSeconds: number;
  /** Part of the cold start no event covers (process exit, pipes): processWall − (events after the first forward) − events. */
  unexplainedSeconds: number;
  cache: string;
}

function num(e: Record<string, unknown> | undefined, k: string): number | null {
  const v = e?.[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Runs the stack once and turns its events into times from the spawn. */
export async function timeStack(engines: Engines, fw: Framework, modelDir: string, files: readonly string[], cache: string, env: Record<string, string | undefined>, signal?: AbortSignal, onEvent?: (e: Record<string, unknown>) => void): Promise<StackTimes> {
  if (fw === 'transformers' && !modelDir) throw new ColdstartError('BAD_INPUT', '--framework transformers needs a model directory with config.json');
  await import('execa'); // loaded before the clock starts: the spawn is what is timed
  const spawnAt = nowSeconds();
  const r = await engines.python.runScript(env, 'stack.py', [fw, modelDir, ...files], {
    what: `--framework ${fw}`,
    timeoutMs: STACK_TIMEOUT_S * 1000,
    signal,
    ...(onEvent ? { onEvent } : {}),
    extraEnv: { COLDSTART_PROMPT_TOKENS: String(PROMPT_TOKENS), COLDSTART_NEW_TOKENS: String(NEW_TOKENS) },
  });
  const processWallSeconds = nowSeconds() - spawnAt;
  const by = (name: string) => eventOf(r, name);
  const end = by('end');
  if (r.exitCode !== 0 || !end) throw scriptFailure(r, `--framework ${fw}`, { seconds: STACK_TIMEOUT_S, hint: 'A stack that takes an hour to start is stopped: load a smaller model to profile the path.' });
  const t = (name: string) => {
    const v = num(by(name), 't');
    if (v === null) throw new ColdstartError('INTERNAL', `--framework ${fw}: the stack did not report "${name}"`);
    return v - spawnAt;
  };
  const start = t('start');
  const imports = t('imports');
  const cuda = t('cuda');
  const load = t('load');
  const first = t('first');
  const tEnd = t('end');
  const cudaEv = by('cuda');
  const firstEv = by('first');
  const loadEv = by('load');
  const steps = (by('imports')?.steps as Array<[string, number]> | undefined) ?? [];
  const coldStart = firstEv?.skipped ? load : first;
  return {
    framework: fw,
    python: String(end.python ?? r.executable),
    device: loadEv?.device === 'cuda' ? 'cuda' : 'cpu',
    ...(typeof cudaEv?.skipped === 'string' ? { deviceReason: cudaEv.skipped } : {}),
    interpreterSeconds: start,
    importSteps: steps.map(([name, seconds]) => ({ name, seconds })),
    importSeconds: imports,
    cudaInitSeconds: cudaEv?.skipped ? null : cuda - imports,
    loadSeconds: load - cuda,
    loadCall: String(loadEv?.call ?? ''),
    dtype: typeof loadEv?.dtype === 'string' && loadEv.dtype ? loadEv.dtype : null,
    cudaCall: typeof cudaEv?.call === 'string' ? cudaEv.call : null,
    bytes: num(loadEv, 'bytes') ?? 0,
    firstForwardSeconds: firstEv?.skipped ? null : first - load,
    steadyForwardSeconds: num(by('steady'), 'seconds'),
    ...(typeof firstEv?.skipped === 'string' ? { forwardSkipped: firstEv.skipped } : {}),
    coldStartSeconds: coldStart,
    processWallSeconds,
    // What Node saw minus what came after the cold start (steady forward, exit event) minus the events themselves.
    unexplainedSeconds: Math.max(0, processWallSeconds - (tEnd - coldStart) - coldStart),
    cache,
  };
}
