/**
 * `--framework torch|safetensors|transformers`: times the user's real framework path through Python (the
 * interpreter src/engines/python.ts finds), next to the native floor. Runs in a child process; the numbers
 * come from Python's own perf_counter, split into import, device init and load.
 */
import { ColdstartError } from '../../core/errors.js';
import { pythonCandidates } from '../../engines/python.js';

export const FRAMEWORKS = ['torch', 'safetensors', 'transformers'] as const;
export type Framework = (typeof FRAMEWORKS)[number];

export interface FrameworkResult {
  framework: Framework;
  python: string;
  device: string;
  importSeconds: number;
  deviceInitSeconds: number;
  loadSeconds: number;
  bytes: number;
  cache: string;
}

const SCRIPT = String.raw`
import json, os, sys, time
fw, model_dir, cache = sys.argv[1], sys.argv[2], sys.argv[3]
files = sys.argv[4:]
t0 = time.perf_counter()
import torch
if fw == "safetensors":
    from safetensors.torch import load_file
elif fw == "transformers":
    import transformers
t1 = time.perf_counter()
dev = "cuda" if torch.cuda.is_available() else "cpu"
if dev == "cuda":
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
t2 = time.perf_counter()
# Cold: drop these files' clean pages first, as the native loader does (no root needed).
if cache == "cold":
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
t2b = time.perf_counter()
n = 0
keep = []
if fw == "safetensors":
    for f in files:
        sd = load_file(f, device=dev)
        n += sum(t.numel() * t.element_size() for t in sd.values())
        keep.append(sd)
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
else:
    kw = {"torch_dtype": "auto"}
    if dev == "cuda":
        kw["device_map"] = "cuda"
    m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **kw)
    n = sum(p.numel() * p.element_size() for p in m.parameters())
    keep.append(m)
if dev == "cuda":
    torch.cuda.synchronize()
t3 = time.perf_counter()
print(json.dumps({"python": sys.executable, "device": dev, "import": t1 - t0, "deviceInit": t2 - t1, "load": t3 - t2b, "bytes": n}))
`;

export async function timeFramework(fw: Framework, modelDir: string, files: readonly string[], cache: string, env: Record<string, string | undefined>, signal?: AbortSignal): Promise<FrameworkResult> {
  if (fw === 'transformers' && !modelDir) throw new ColdstartError('BAD_INPUT', '--framework transformers needs a model directory with config.json');
  let lastErr = 'no python3 or python on PATH';
  for (const py of pythonCandidates(env)) {
    const { execa } = await import('execa');
    const r = await execa(py, ['-c', SCRIPT, fw, modelDir, cache, ...files], { env, extendEnv: false, reject: false, timeout: 3_600_000, cancelSignal: signal });
    if (r.exitCode === 0) {
      const j = JSON.parse(String(r.stdout).trim().split('\n').pop()!) as { python: string; device: string; import: number; deviceInit: number; load: number; bytes: number };
      return { framework: fw, python: j.python, device: j.device, importSeconds: j.import, deviceInitSeconds: j.deviceInit, loadSeconds: j.load, bytes: j.bytes, cache };
    }
    const err = String(r.stderr).trim().split('\n').pop() ?? '';
    lastErr = `${py}: ${err || r.message}`;
    if (/ModuleNotFoundError/.test(err)) {
      throw new ColdstartError('MISSING_DEPENDENCY', `--framework ${fw}: ${err}`, { hint: `Install it in the Python coldstart uses (${py}; set COLDSTART_PYTHON to choose another).` });
    }
    if (r.exitCode !== undefined && r.exitCode !== null && !/ENOENT/.test(String(r.message))) break;
  }
  throw new ColdstartError('MISSING_DEPENDENCY', `--framework ${fw}: Python path failed: ${lastErr}`, { hint: 'Set COLDSTART_PYTHON to a Python with torch installed.' });
}
