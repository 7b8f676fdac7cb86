/**
 * The one way coldstart runs Python: the interpreter ($COLDSTART_PYTHON, else python3, else python), a script
 * shipped beside this module (src/python/*.py, copied into dist/python/ by scripts/copy-assets.cjs) run by name
 * with its arguments, its events parsed (one JSON object a line with an "event" key: common.py's emit), bounded
 * by a timeout and an abort signal; and the one mapping of what went wrong to a ColdstartError.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ColdstartError } from '../core/errors.js';

type Env = Record<string, string | undefined>;

/** The scripts shipped with coldstart (src/python/). */
export type PythonScript = 'stack.py' | 'framework.py' | 'compile.py' | 'compile_probe.py' | 'packages.py' | 'stack_files.py';

export interface PythonInfo {
  found: boolean;
  executable?: string;
  version?: string;
  reason?: string;
  /** Package → version, or null when not importable. */
  packages: Record<string, string | null>;
  /**
   * coldstart_load.py (the loader a server's wake-up calls) as this Python imports it: the library it loaded
   * (libcoldstart_load.so), or why none did.
   */
  serverLoader?: { module: string; library?: string; reason?: string };
}

export const PEER_PACKAGES = ['torch', 'safetensors', 'transformers', 'huggingface_hub', 'onnxruntime', 'onnx'] as const;

/** The Python interpreter coldstart uses for framework paths: $COLDSTART_PYTHON, else python3, else python. */
export function pythonCandidates(env: Env): string[] {
  return env.COLDSTART_PYTHON ? [env.COLDSTART_PYTHON] : ['python3', 'python'];
}

/**
 * The path of a shipped script: next to this module (dist/python/ in the package, src/python/ under vitest).
 * A checkout built with plain `tsc` (which copies no .py) has none in dist/python/: its src/python/ is used.
 */
export function scriptPath(name: PythonScript | (string & {})): string {
  const beside = fileURLToPath(new URL(`./${name}`, import.meta.url));
  if (existsSync(beside)) return beside;
  const source = fileURLToPath(new URL(`../../src/python/${name}`, import.meta.url));
  if (existsSync(source)) return source;
  throw new ColdstartError('INTERNAL', `the Python script ${name} is not installed beside ${fileURLToPath(import.meta.url)}`, {
    hint: 'Reinstall coldstart; from a checkout, run npm run build (it copies src/**/*.py into dist/).',
  });
}

export interface ScriptRun {
  /** The interpreter that ran it (as named, e.g. python3 or $COLDSTART_PYTHON). */
  executable: string;
  exitCode: number | undefined;
  timedOut: boolean;
  /** Lines of stdout that parsed as JSON objects with an "event" key, in order. */
  events: Array<Record<string, unknown>>;
  stderr: string;
}

export interface ScriptOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  extraEnv?: Record<string, string>;
  /** Names the run in the error when no interpreter is found (e.g. "--framework torch"). */
  what: string;
  /** Each event as the script emits it (progress while it runs); the run's result holds them all as well. */
  onEvent?: (event: Record<string, unknown>) => void;
}

function eventsOf(stdout: string): Array<Record<string, unknown>> {
  const events: Array<Record<string, unknown>> = [];
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      const j = JSON.parse(t) as unknown;
      if (j && typeof j === 'object' && !Array.isArray(j) && typeof (j as { event?: unknown }).event === 'string') events.push(j as Record<string, unknown>);
    } catch {
      /* a print from the model's code, not ours */
    }
  }
  return events;
}

/** One interpreter, one script; 'absent' when the interpreter does not exist. */
async function runWith(exe: string, env: Env, script: string, args: readonly string[], o: Omit<ScriptOptions, 'what'>): Promise<ScriptRun | { absent: string }> {
  const { execa } = await import('execa');
  const sub = execa(exe, [script, ...args], {
    env: { ...env, PYTHONUNBUFFERED: '1', ...o.extraEnv },
    extendEnv: false,
    timeout: o.timeoutMs,
    cancelSignal: o.signal,
    forceKillAfterDelay: 2000,
    reject: false,
    stdin: 'ignore',
    maxBuffer: 16 << 20,
  });
  if (o.onEvent) {
    let pending = '';
    sub.stdout?.on('data', (chunk: Buffer | string) => {
      pending += String(chunk);
      const cut = pending.lastIndexOf('\n');
      if (cut < 0) return;
      for (const e of eventsOf(pending.slice(0, cut))) o.onEvent!(e);
      pending = pending.slice(cut + 1);
    });
  }
  const r = await sub;
  if ((r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined && !r.timedOut && !r.isCanceled)) {
    return { absent: `${exe}: ${String(r.message ?? '').split('\n')[0]}` };
  }
  return { executable: exe, exitCode: r.exitCode, timedOut: !!r.timedOut, events: eventsOf(String(r.stdout ?? '')), stderr: String(r.stderr ?? '') };
}

function noPython(what: string, tried: readonly string[], reason: string): ColdstartError {
  return new ColdstartError('MISSING_DEPENDENCY', `no Python interpreter found for ${what} (tried ${tried.join(', ')}: ${reason})`, {
    hint: 'Install Python 3 with torch (and transformers), or point COLDSTART_PYTHON at an interpreter that has them.',
  });
}

/**
 * Runs a shipped script with the first interpreter that exists. Bounded by `timeoutMs`; `signal` (Ctrl-C)
 * terminates it, then SIGKILL after 2 s. Throws MISSING_DEPENDENCY when no interpreter exists.
 */
export async function runScript(env: Env, script: PythonScript, args: readonly string[], o: ScriptOptions): Promise<ScriptRun> {
  const path = scriptPath(script);
  const tried: string[] = [];
  let reason = 'no python3 or python on PATH';
  for (const exe of pythonCandidates(env)) {
    tried.push(exe);
    const r = await runWith(exe, env, path, args, o);
    if ('absent' in r) {
      reason = r.absent;
      continue;
    }
    return r;
  }
  throw noPython(o.what, tried, reason);
}

/** The first event of that name. */
export function eventOf(r: ScriptRun, name: string): Record<string, unknown> | undefined {
  return r.events.find((e) => e.event === name);
}

/**
 * What went wrong in a run that did not report its result, for the cases every script shares (common.py):
 * timed out (TIMEOUT), a package missing (MISSING_DEPENDENCY), cuda asked without a GPU (NO_GPU), else the
 * process failed (ENV, with the last line of its stderr). Script-specific error events are mapped by the caller
 * before this.
 */
export function scriptFailure(r: ScriptRun, what: string, timeout: { seconds: number; hint: string }): ColdstartError {
  if (r.timedOut) {
    const last = r.events.at(-1)?.event;
    return new ColdstartError('TIMEOUT', `${what}: not finished within ${timeout.seconds} s (${last ? `the last event was "${String(last)}"` : 'nothing reported yet: still importing'})`, {
      hint: timeout.hint,
    });
  }
  const missing = eventOf(r, 'missing');
  if (missing) {
    return new ColdstartError('MISSING_DEPENDENCY', `${what}: ${r.executable} cannot import ${String(missing.package)} (${String(missing.error)})`, {
      hint: `pip install ${String(missing.package).split('.')[0]} into that interpreter, or set COLDSTART_PYTHON to one that has it.`,
    });
  }
  const err = eventOf(r, 'error');
  if (err?.kind === 'no-gpu') return new ColdstartError('NO_GPU', `--device cuda: ${String(err.message)}`);
  const tail = r.stderr.trim().split('\n').filter(Boolean).pop() ?? '';
  return new ColdstartError('ENV', `${what}: ${r.executable} exited with ${r.exitCode ?? 'a signal'} before reporting a result${tail ? `: ${tail.slice(0, 300)}` : ''}`);
}

/** Finds Python and the versions of the peer packages (found by metadata, without importing torch). */
export async function probePython(env: Env, packages: readonly string[] = PEER_PACKAGES, timeoutMs = 20_000): Promise<PythonInfo> {
  let lastReason = 'no python3 or python on PATH';
  const script = scriptPath('packages.py');
  for (const exe of pythonCandidates(env)) {
    try {
      const r = await runWith(exe, env, script, packages, { timeoutMs });
      if ('absent' in r) {
        lastReason = r.absent;
        continue;
      }
      const ev = eventOf(r, 'python');
      if (r.exitCode !== 0 || !ev) {
        lastReason = `${exe} exited with ${r.timedOut ? 'a timeout' : r.exitCode}: ${r.stderr.split('\n').filter(Boolean).pop() ?? ''}`;
        continue;
      }
      const sl = ev.serverLoader as PythonInfo['serverLoader'];
      return { found: true, executable: String(ev.executable), version: String(ev.version), packages: ev.packages as Record<string, string | null>, ...(sl ? { serverLoader: sl } : {}) };
    } catch (e) {
      lastReason = `${exe}: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  return { found: false, reason: lastReason, packages: Object.fromEntries(packages.map((p) => [p, null])) };
}
