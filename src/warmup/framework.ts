/**
 * Python framework back-end: a small generated snippet, run through execa with the interpreter python.ts
 * finds, imports torch (and transformers), loads the model and runs one generate/forward on dummy ids.
 * Import, load and first forward are timed separately inside Python (perf_counter) and reported as JSON lines.
 * Offline by construction (HF_HUB_OFFLINE=1) and never trust_remote_code: the model directory's own Python
 * code is not executed.
 */
import { existsSync, readdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { statInput } from './onnx-file.js';
import { summarize } from '../core/stats.js';
import type { BackendWarmup } from './backend.js';
import { runPythonSnippet, pythonCandidates, SYNC_CLOCK_PY } from '../python/runner.js';
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

/** The snippet. argv: framework, model path, runs, max_new_tokens, shapes JSON, device. */
export const FRAMEWORK_SNIPPET = String.raw`
import json, os, sys, time
def emit(**kw):
    print(json.dumps(kw), flush=True)
T0 = time.perf_counter()
kind, path, runs, max_new, shapes, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]), sys.argv[6]
try:
    import torch
except Exception as e:
    emit(event="missing", package="torch", error=f"{type(e).__name__}: {e}"); sys.exit(4)
if kind == "transformers":
    try:
        import transformers
    except Exception as e:
        emit(event="missing", package="transformers", error=f"{type(e).__name__}: {e}"); sys.exit(4)
emit(event="import", seconds=time.perf_counter() - T0, torch=torch.__version__,
     transformers=(transformers.__version__ if kind == "transformers" else None))
if want == "cuda" and not torch.cuda.is_available():
    emit(event="error", kind="no-gpu", message="torch sees no CUDA device (torch.cuda.is_available() is False)"); sys.exit(5)
device = "cuda" if (want == "cuda" or (want == "auto" and torch.cuda.is_available())) else "cpu"
${SYNC_CLOCK_PY}
try:
    if kind == "transformers":
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
        cfg = AutoConfig.from_pretrained(path, local_files_only=True)
        archs = list(getattr(cfg, "architectures", None) or [])
        causal = any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs)
        cls = AutoModelForCausalLM if causal else AutoModel
        model, load = clock(lambda: cls.from_pretrained(path, local_files_only=True).to(device).eval())
        vocab = int(getattr(cfg, "vocab_size", 0) or 100)
        seq = int((shapes.get("input_ids") or [1, shapes.get("sequence", [16])[0]])[-1])
        batch = int((shapes.get("input_ids") or [shapes.get("batch", [1])[0], 0])[0])
        ids = (torch.arange(batch * seq, dtype=torch.long).reshape(batch, seq) % max(vocab - 1, 1)) + 1
        ids = ids.to(device); mask = torch.ones_like(ids)
        pad = getattr(getattr(model, "generation_config", None), "pad_token_id", None)
        if pad is None:
            pad = getattr(cfg, "eos_token_id", None) or 0
        if isinstance(pad, list):
            pad = pad[0]
        if causal:
            step = lambda: model.generate(ids, attention_mask=mask, max_new_tokens=max_new, min_new_tokens=max_new, do_sample=False, pad_token_id=pad)
            what = f"generate {max_new} tokens"
        else:
            step = lambda: model(input_ids=ids, attention_mask=mask)
            what = "forward"
        info = {"class": type(model).__name__, "architectures": archs, "parameters": sum(p.numel() for p in model.parameters()),
                "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "inputShape": [batch, seq], "step": what}
    else:
        if path.endswith(".pt2"):
            ep, load = clock(lambda: torch.export.load(path))
            model = ep.module()
            args, kwargs = getattr(ep, "example_inputs", None) or ((), {})
            what = "forward (torch.export program)"
        else:
            model, load = clock(lambda: torch.jit.load(path, map_location=device))
            model.eval(); args, kwargs = (), {}
            what = "forward (TorchScript)"
        if shapes:
            def make(name, shape):
                if any(k in name.lower() for k in ("ids", "mask", "token")):
                    return torch.ones(shape, dtype=torch.long)
                g = torch.Generator().manual_seed(0)
                return torch.rand(shape, generator=g) * 2 - 1
            args, kwargs = tuple(make(k, v) for k, v in shapes.items()), {}
        if not args and not kwargs:
            emit(event="error", kind="no-inputs", message="a TorchScript module does not declare its input shapes; pass --shape NAME=DIMS for each positional input, in order"); sys.exit(6)
        args = tuple(a.to(device) if hasattr(a, "to") else a for a in args)
        kwargs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in kwargs.items()}
        if path.endswith(".pt2"):
            model = model.to(device) if hasattr(model, "to") else model
        step = lambda: model(*args, **kwargs)
        info = {"class": type(model).__name__, "inputShapes": [list(a.shape) for a in args if hasattr(a, "shape")], "step": what}
    with torch.inference_mode():
        out, first = clock(step)
        samples = [clock(step)[1] for _ in range(runs)]
    emit(event="result", load=load, first=first, samples=samples, device=device,
         cuda=(torch.cuda.get_device_name(0) if device == "cuda" else None), **info)
except SystemExit:
    raise
except BaseException as e:
    emit(event="error", kind="load", type=type(e).__name__, message=str(e).strip().splitlines()[0][:400] if str(e).strip() else type(e).__name__)
    sys.exit(3)
`;

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
  const r = await runPythonSnippet(o.env, FRAMEWORK_SNIPPET, [o.framework, path, String(o.runs), String(o.maxNewTokens ?? 8), JSON.stringify(o.shapes), o.device ?? 'auto'], {
    timeoutMs: o.timeoutSeconds * 1000,
    signal: o.signal,
    extraEnv: { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false' },
  });
  if (r.executable === undefined) {
    throw new ColdstartError('MISSING_DEPENDENCY', `no Python interpreter found for --framework ${o.framework} (tried ${r.tried.join(', ')}: ${r.reason})`, {
      hint: 'Install Python 3 with torch (and transformers), or point COLDSTART_PYTHON at an interpreter that has them.',
    });
  }
  o.signal?.throwIfAborted();
  const ev = (name: string) => r.events.find((e) => e.event === name);
  if (r.timedOut) {
    const imp = ev('import');
    throw new ColdstartError('TIMEOUT', `--framework ${o.framework}: ${o.model} was not ${imp ? 'loaded and run' : 'even imported'} within ${o.timeoutSeconds} s`, { hint: 'Raise --timeout for large models.' });
  }
  const missing = ev('missing');
  if (missing) {
    throw new ColdstartError('MISSING_DEPENDENCY', `${r.executable} cannot import ${String(missing.package)} (${String(missing.error)})`, {
      hint: `pip install ${String(missing.package)} into that interpreter, or set COLDSTART_PYTHON to one that has it.`,
    });
  }
  const err = ev('error');
  if (err) {
    if (err.kind === 'no-gpu') throw new ColdstartError('NO_GPU', `--device cuda: ${String(err.message)}`);
    if (err.kind === 'no-inputs') throw new ColdstartError('BAD_FLAG', `--framework torch: ${String(err.message)}`);
    throw new ColdstartError('BAD_INPUT', `${o.model}: ${o.framework} could not load or run it: ${String(err.type)}: ${String(err.message)}`, {
      hint:
        o.framework === 'torch'
          ? '--framework torch loads TorchScript (torch.jit.save) or torch.export (.pt2) files; pickled checkpoints are not executed — use --framework transformers for a model directory.'
          : 'The directory must load with from_pretrained(local_files_only=True) and without trust_remote_code.',
    });
  }
  const imp = ev('import');
  const res = ev('result');
  if (!imp || !res || r.exitCode !== 0) {
    const tail = r.stderr.trim().split('\n').filter(Boolean).pop() ?? '';
    throw new ColdstartError('ENV', `${r.executable} exited with ${r.exitCode ?? 'a signal'} before reporting a result${tail ? `: ${tail.slice(0, 300)}` : ''}`);
  }
  const importS = Number(imp.seconds);
  const load = Number(res.load);
  const first = Number(res.first);
  const samples = (res.samples as number[]).map(Number);
  const device = String(res.device);
  const { event: _e, load: _l, first: _f, samples: _s, ...info } = res;
  return {
    steps: [
      { name: 'import', seconds: importS, note: `import torch${o.framework === 'transformers' ? ', transformers' : ''}` },
      { name: 'load', seconds: load, note: `${String(res.class)} → ${device}` },
      { name: 'first-forward', seconds: first, note: String(res.step) },
    ],
    firstSeconds: first,
    startupSeconds: importS + load + first,
    ...(samples.length > 0 ? { steady: summarize(samples) } : {}),
    details: { model: path, framework: o.framework, python: r.executable, torch: imp.torch, transformers: imp.transformers ?? null, ...info },
  };
}
