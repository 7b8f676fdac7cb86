/**
 * Python framework back-end: src/python/framework.py, run by src/python/runner.ts, imports torch (and
 * transformers), loads the model (common.py's load_hf for a Hugging Face directory) and runs one generate/forward
 * on dummy ids. Import, load and first forward are timed separately inside Python (perf_counter) and reported as
 * events. Offline by construction (HF_HUB_OFFLINE=1) and never trust_remote_code: the model directory's own
 * Python code is not executed.
 */
import { existsSync, readdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { statInput } from '../core/files.js';
import { summarize } from '../core/stats.js';
import type { BackendWarmup } from './backend.js';
import { eventOf, runScript, pythonCandidates, scriptFailure } from '../python/runner.js';
import type { Shapes } from './dummy.js';

type Env = Record<string, string | undefined>;
export type Framework = 'torch' | 'transformers';

export interface FrameworkWarmupOptions {
  framework: Framework;
  model: string;
  runs: number;
  shapes: Shapes;
  timeoutSeconds: number;
  maxNewTokens?: number;
  /** auto: cuda when torch sees a GPU, else cpu. */
  device?: 'auto' | 'cpu' | 'cuda';
  env: Env;
  signal?: AbortSignal;
  progress?: (text: string) => void;
}

export type FrameworkWarmup = BackendWarmup;

/** transformers: a directory with config.json. torch: a TorchScript file (.pt/.pth) or a torch.export program (.pt2), or a directory holding one. */
export function resolveFrameworkModel(framework: Framework, model: string, cwd = process.cwd()): string {
  const p = resolve(cwd, model);
  const st = statInput(p, model);
  if (framework === 'transformers') {
    if (!st.isDirectory() || !existsSync(join(p, 'config.json'))) {
      throw new ColdstartError('BAD_INPUT', `${model}: --framework transformers needs a model directory with config.json (as save_pretrained writes)`);
    }
    return p;
  }
  if (st.isDirectory()) {
    const files = readdirSync(p).filter((f) => /\.(pt2|pt|pth|torchscript)$/.test(f));
    if (files.length === 1) return join(p, files[0]!);
    if (files.length === 0) throw new ColdstartError('NOT_FOUND', `${model}: no TorchScript (.pt) or torch.export (.pt2) file in this directory`, { hint: 'For a Hugging Face directory use --framework transformers.' });
    throw new ColdstartError('AMBIGUOUS', `${model}: several model files (${files.join(', ')}); pass one of them`);
  }
  return p;
}

export async function warmupFramework(o: FrameworkWarmupOptions): Promise<FrameworkWarmup> {
  const path = resolveFrameworkModel(o.framework, o.model);
  o.progress?.(`starting Python (${pythonCandidates(o.env).join(' or ')}) to load ${o.model} with ${o.framework}`);
  const what = `--framework ${o.framework}`;
  const r = await runScript(o.env, 'framework.py', [o.framework, path, String(o.runs), String(o.maxNewTokens ?? 8), JSON.stringify(o.shapes), o.device ?? 'auto'], {
    what,
    timeoutMs: o.timeoutSeconds * 1000,
    signal: o.signal,
    extraEnv: { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false' },
  });
  o.signal?.throwIfAborted();
  const imp = eventOf(r, 'import');
  const res = eventOf(r, 'result');
  if (imp && res && r.exitCode === 0) return frameworkResult(o, path, r.executable, imp, res);
  const err = eventOf(r, 'error');
  if (!r.timedOut && err?.kind === 'no-inputs') throw new ColdstartError('BAD_FLAG', `--framework torch: ${String(err.message)}`);
  if (!r.timedOut && err?.kind === 'load') {
    throw new ColdstartError('BAD_INPUT', `${o.model}: ${o.framework} could not load or run it: ${String(err.type)}: ${String(err.message)}`, {
      hint:
        o.framework === 'torch'
          ? '--framework torch loads TorchScript (torch.jit.save) or torch.export (.pt2) files; pickled checkpoints are not executed — use --framework transformers for a model directory.'
          : 'The directory must load with from_pretrained(local_files_only=True) and without trust_remote_code.',
    });
  }
  throw scriptFailure(r, what, { seconds: o.timeoutSeconds, hint: 'Raise --timeout for large models.' });
}

function frameworkResult(o: FrameworkWarmupOptions, path: string, python: string, imp: Record<string, unknown>, res: Record<string, unknown>): FrameworkWarmup {
  const importS = Number(imp.seconds);
  const load = Number(res.load);
  const first = Number(res.first);
  const samples = (res.samples as number[]).map(Number);
  const device = String(res.device);
  const { event: _e, load: _l, first: _f, samples: _s, ...info } = res;
  return {
    steps: [
      { name: 'import', seconds: importS, note: String(imp.what) },
      { name: 'load', seconds: load, note: `${String(res.class)} → ${device}` },
      { name: 'first-forward', seconds: first, note: String(res.step) },
    ],
    firstSeconds: first,
    startupSeconds: importS + load + first,
    ...(samples.length > 0 ? { steady: summarize(samples) } : {}),
    details: { model: path, framework: o.framework, python, torch: imp.torch, transformers: imp.transformers ?? null, ...info },
  };
}
