
type Env = Record<string, string | undefined>;

export interface PythonInfo {
  found: boolean;
  executable?: string;
  version?: string;
  reason?: string;
  /** Package → version, or null when not importable. */
  packages: Record<string, string | null>;
}

export const PEER_PACKAGES = ['torch', 'safetensors', 'transformers', 'huggingface_hub', 'onnxruntime', 'onnx'] as const;

/** The Python interpreter coldstart uses for framework paths: $COLDSTART_PYTHON, else python3, else python. */
export function pythonCandidates(env: Env): string[] {
  return env.COLDSTART_PYTHON ? [env.COLDSTART_PYTHON] : ['python3', 'python'];
}

const PROBE = `
import importlib, json, sys
out = {"version": sys.version.split()[0], "executable": sys.executable, "packages": {}}
for name in sys.argv[1:]:
    try:
        from importlib.metadata import version
        importlib.util.find_spec(name) or (_ for _ in ()).throw(ImportError(name))
        out["packages"][name] = version(name.replace("_", "-"))
    except Exception:
        out["packages"][name] = None
print(json.dumps(out))
`;

/** Finds Python and the versions of the peer packages (found by metadata, without importing torch). */
export async function probePython(env: Env, packages: readonly string[] = PEER_PACKAGES, timeoutMs = 20_000): Promise<PythonInfo> {
  let lastReason = 'no python3 or python on PATH';
  for (const exe of pythonCandidates(env)) {
    try {
      const { execa } = await import('execa');
      const r = await execa(exe, ['-c', PROBE, ...packages], { env, extendEnv: false, timeout: timeoutMs, reject: false });
      if (r.exitCode !== 0) {
        lastReason = `${exe} exited with ${r.exitCode}: ${String(r.stderr).split('\n').filter(Boolean).pop() ?? ''}`;
        continue;
      }
      const j = JSON.parse(String(r.stdout)) as { version: string; executable: string; packages: Record<string, string | null> };
      return { found: true, executable: j.executable, version: j.version, packages: j.packages };
    } catch (e) {
      lastReason = `${exe}: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  return { found: false, reason: lastReason, packages: Object.fromEntries(packages.map((p) => [p, null])) };
}

/**
 * Python for the generated snippets (framework warmup, compile): `sync()` waits for the GPU when the snippet's
 * `device` is cuda, `clock(fn)` times `fn` between two syncs. Needs `torch`, `time` and `device` in scope.
 */
export const SYNC_CLOCK_PY = String.raw`
def sync():
    if device == "cuda":
        torch.cuda.synchronize()
def clock(fn):
    sync(); t = time.perf_counter(); out = fn(); sync(); return out, time.perf_counter() - t
`;

export interface SnippetResult {
  /** The interpreter that ran it (as named, e.g. python3 or $COLDSTART_PYTHON). */
  executable: string;
  exitCode: number | undefined;
  timedOut: boolean;
  /** Lines of stdout that parsed as JSON objects (the snippet's events), in order. */
  events: Array<Record<string, unknown>>;
  stderr: string;
}

/**
 * Runs a Python snippet with the first interpreter that exists ($COLDSTART_PYTHON, else python3, python).
 * The snippet reports by printing one JSON object per line. `undefined` when no interpreter was found.
 * Bounded by `timeoutMs`; `signal` (Ctrl-C) terminates it, then SIGKILL after 2 s.
 */
export async function runPythonSnippet(
  env: Env,
  code: string,
  args: readonly string[],
  opts: { timeoutMs: number; signal?: AbortSignal; extraEnv?: Record<string, string> },
): Promise<SnippetResult | { executable: undefined; tried: string[]; reason: string }> {
  const tried: string[] = [];
  let reason = 'no python3 or python on PATH';
  for (const exe of pythonCandidates(env)) {
    tried.push(exe);
    const { execa } = await import('execa');
    const r = await execa(exe, ['-c', code, ...args], {
      env: { ...env, PYTHONUNBUFFERED: '1', ...opts.extraEnv },
      extendEnv: false,
      timeout: opts.timeoutMs,
      cancelSignal: opts.signal,
      forceKillAfterDelay: 2000,
      reject: false,
      stdin: 'ignore',
      maxBuffer: 16 << 20,
    });
    if ((r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined && !r.timedOut && !r.isCanceled)) {
      reason = `${exe}: ${String(r.message ?? '').split('\n')[0]}`;
      continue;
    }
    const events: Array<Record<string, unknown>> = [];
    for (const line of String(r.stdout ?? '').split('\n')) {
      const t = line.trim();
      if (!t.startsWith('{')) continue;
      try {
        const j = JSON.parse(t) as unknown;
        if (j && typeof j === 'object' && !Array.isArray(j)) events.push(j as Record<string, unknown>);
      } catch {
        /* a print from the model's code, not ours */
      }
    }
    return { executable: exe, exitCode: r.exitCode, timedOut: !!r.timedOut, events, stderr: String(r.stderr ?? '') };
  }
  return { executable: undefined, tried, reason };
}
