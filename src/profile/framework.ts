/**
 * `--framework torch|safetensors|transformers`: the user's stack itself, one Python process timed from its own
 * start (src/engines/python.ts runs it): interpreter start, imports, CUDA init (torch.zeros(1, device='cuda')),
 * the weights load (from_pretrained / load_file / torch.load), the first forward (generate) and a steady one.
 * Every event carries Python's wall clock (time.time()), anchored at the moment Node spawned the process, so the
 * rows are contiguous and the process wall clock measured by Node checks them.
 */
import { performance } from 'node:perf_hooks';
import { ColdstartError } from '../core/errors.js';
import type { Engines } from './engines.js';

export const FRAMEWORKS = ['torch', 'safetensors', 'transformers'] as const;
export type Framework = (typeof FRAMEWORKS)[number];

/** Prompt and generation length of the first and steady forwards (the device cross-check uses the same). */
export const PROMPT_TOKENS = 32;
export const NEW_TOKENS = 16;

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

export const STACK_SCRIPT = String.raw`
import time
t_start = time.time()
import json, os, sys
def ev(name, **kw):
    kw["ev"] = name
    kw.setdefault("t", time.time())
    print(json.dumps(kw), flush=True)
ev("start", t=t_start)
fw, model_dir = sys.argv[1], sys.argv[2]
files = sys.argv[3:]
a = time.time()
import torch
b = time.time()
steps = [["import torch", b - a]]
if fw == "safetensors":
    from safetensors.torch import load_file
    steps.append(["import safetensors", time.time() - b])
elif fw == "transformers":
    import transformers
    steps.append(["import transformers", time.time() - b])
ev("imports", steps=steps)
if torch.cuda.is_available():
    dev = "cuda"
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    ev("cuda")
else:
    dev = "cpu"
    ev("cuda", skipped="torch.cuda.is_available() is False: the stack runs on CPU")
n = 0
keep = []
if fw == "safetensors":
    for f in files:
        sd = load_file(f, device=dev)
        n += sum(t.numel() * t.element_size() for t in sd.values())
        keep.append(sd)
    call = "safetensors.torch.load_file(f, device=%r)" % dev
elif fw == "torch":
    for f in files:
        if f.endswith(".safetensors"):
            from safetensors.torch import load_file as lf
            sd = lf(f)
        else:
            sd = torch.load(f, map_location="cpu", weights_only=True)
        sd = {k: v.to(dev) for k, v in sd.items()}
        n += sum(t.numel() * t.element_size() for t in sd.values())
        keep.append(sd)
    call = "torch.load(f, weights_only=True) + .to(%r)" % dev
else:
    kw = {"torch_dtype": "auto"}
    if dev == "cuda":
        kw["device_map"] = "cuda"
    m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **kw)
    n = sum(p.numel() * p.element_size() for p in m.parameters())
    call = "AutoModelForCausalLM.from_pretrained(dir, torch_dtype='auto'%s)" % (", device_map='cuda'" if dev == "cuda" else "")
if dev == "cuda":
    torch.cuda.synchronize()
ev("load", bytes=n, call=call, device=dev)
if fw == "transformers":
    P, NEW = int(os.environ.get("COLDSTART_PROMPT_TOKENS", "32")), int(os.environ.get("COLDSTART_NEW_TOKENS", "16"))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, min(1000, m.config.vocab_size), (1, P), generator=g).to(dev)
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        m.generate(ids, **kw)
        if dev == "cuda":
            torch.cuda.synchronize()
        ev("first")
        a = time.time()
        m.generate(ids, **kw)
        if dev == "cuda":
            torch.cuda.synchronize()
        ev("steady", seconds=time.time() - a)
else:
    ev("first", skipped="a state dict has no forward pass: use --framework transformers for the first forward")
ev("end", python=sys.executable)
sys.stdout.flush()
os._exit(0)
`;

function num(e: Record<string, unknown> | undefined, k: string): number | null {
  const v = e?.[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Runs the stack once and turns its events into times from the spawn. */
export async function timeStack(engines: Engines, fw: Framework, modelDir: string, files: readonly string[], cache: string, env: Record<string, string | undefined>, signal?: AbortSignal): Promise<StackTimes> {
  if (fw === 'transformers' && !modelDir) throw new ColdstartError('BAD_INPUT', '--framework transformers needs a model directory with config.json');
  await import('execa'); // loaded before the clock starts: the spawn is what is timed
  const spawnEpoch = (performance.timeOrigin + performance.now()) / 1000;
  const t0 = performance.now();
  const r = await engines.python.runPythonSnippet(env, STACK_SCRIPT, [fw, modelDir, ...files], { timeoutMs: 3_600_000, signal, extraEnv: { COLDSTART_PROMPT_TOKENS: String(PROMPT_TOKENS), COLDSTART_NEW_TOKENS: String(NEW_TOKENS) } });
  const processWallSeconds = (performance.now() - t0) / 1000;
  if (r.executable === undefined) throw new ColdstartError('MISSING_DEPENDENCY', `--framework ${fw}: no Python found (${r.reason})`, { hint: 'Set COLDSTART_PYTHON to a Python with torch installed.' });
  const by = (name: string) => r.events.find((e) => e.ev === name);
  const end = by('end');
  if (r.exitCode !== 0 || !end) {
    const err = r.stderr.trim().split('\n').pop() ?? '';
    if (/ModuleNotFoundError/.test(err)) throw new ColdstartError('MISSING_DEPENDENCY', `--framework ${fw}: ${err}`, { hint: `Install it in the Python coldstart uses (${r.executable}; set COLDSTART_PYTHON to choose another).` });
    throw new ColdstartError('ENV', `--framework ${fw}: the stack failed (${r.executable}, exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}): ${err}`);
  }
  const t = (name: string) => {
    const v = num(by(name), 't');
    if (v === null) throw new ColdstartError('INTERNAL', `--framework ${fw}: the stack did not report "${name}"`);
    return v - spawnEpoch;
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
