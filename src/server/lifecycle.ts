/**
 * Wrap mode: start a real inference server, time process start → ready → first completion, and split the
 * start-up into stages from the server's own log lines (rules as data in ./server-rules/: vLLM, SGLang, TGI,
 * llama.cpp, plus --stage rules). Whatever no log line explains is reported as `unexplained`, never spread over
 * the phases; an engine that is not recognised says so and keeps the raw timeline.
 *
 * The server is started through a watchdog shim (./wrap-shim.ts) that stops the whole process tree — setsid
 * children included — when coldstart closes its stdin or dies, even by SIGKILL, and reports which signal was
 * really needed.
 */
import { sleep, Stopwatch } from '../core/clock.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, join as joinPath } from 'node:path';
import type { Readable } from 'node:stream';
import { ColdstartError } from '../core/errors.js';
import { LineSplitter } from './log-lines.js';
import { SHIM_SOURCE } from './shim.js';
import { stagesFromLog, type LogLine, type Stage } from './stages.js';
import { ALL_RULES, type EngineName, type LogRule } from './rules/index.js';

export { stagesFromLog, phaseSeconds, detectEngine, type LogLine, type Stage } from './stages.js';
export { parseStageFlag, WRAP_PHASES, ENGINES, type EngineName, type LogRule, type WrapPhase } from './rules/index.js';
/** Every engine rule (data in ./server-rules/); kept for callers of the old single table. */
export const LOG_RULES: readonly LogRule[] = ALL_RULES;

type Env = Record<string, string | undefined>;

export interface WrapOptions {
  command: string[];
  readyUrl?: string;
  readyLog?: RegExp;
  /** Completion request after ready: explicit URL, derived from readyUrl when undefined, none when false. */
  completionUrl?: string | false;
  readyTimeoutSeconds?: number;
  stopTimeoutSeconds?: number;
  /** Extra stage rules from `--stage 'name=REGEX'` (parseStageFlag). */
  stageRules?: readonly LogRule[];
  env: Env;
  cwd: string;
  signal?: AbortSignal;
  onLine?: (l: LogLine) => void;
  /** How often the ready URL is polled (ms; default 50). */
  readyPollMs?: number;
  /** Replay harness only: the log is played `1/reportedScale` times faster, so printed durations are scaled. */
  reportedScale?: number;
  /** Keep every timestamped line in the result (`lines`); the replay harness and bench use it. */
  keepLines?: boolean;
}

export interface StopReport {
  /** The signal the slowest process really needed. */
  signal: 'SIGTERM' | 'SIGKILL';
  seconds: number;
  /** Processes signalled (server and every descendant seen, setsid children included). */
  processes: number;
  /** Pids that ignored SIGTERM for the whole --stop-timeout and were killed with SIGKILL. */
  sigkilled: number[];
  /** Pids still alive after SIGKILL (should be empty; non-empty is reported, never hidden). */
  survivors: number[];
  /** How the tree was stopped: by the watchdog shim, or by coldstart's process-group fallback. */
  by: 'shim' | 'group-fallback';
  /** Whether the watchdog was a child subreaper (orphaned descendants re-parent to it, so none escape). */
  subreaper: boolean;
}

export interface WrapResult {
  command: string[];
  pid: number;
  readySeconds: number;
  readyBy: 'url' | 'log';
  firstCompletion: { seconds: number; url: string; status: number } | { skipped: string };
  engine: EngineName | null;
  /** The version the engine printed, when it printed one. */
  engineVersion: string | null;
  stages: Stage[];
  unexplainedSeconds: number;
  stop: StopReport;
  logTail: string[];
  /** When no engine was recognised: why, and what to do (`--stage`). */
  engineNote?: string;
  /** Timestamped log lines up to ready (first 40 and last 40) for an unrecognised engine or --debug. */
  timeline: Array<{ t: number; text: string }>;
  /** Every line with its time (only with `keepLines`). */
  lines?: LogLine[];
}

/** A timer that never keeps the process alive (used for timeouts raced against an exit). */
function deadline(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

async function httpOk(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer().catch(() => undefined);
    return res.ok;
  } catch {
    return false;
  }
}

/** One completion: OpenAI-style /v1/completions (vLLM, SGLang, llama.cpp), else TGI's /generate. */
export async function firstCompletion(base: string, explicit?: string, timeoutMs = 300_000): Promise<{ seconds: number; url: string; status: number }> {
  const sw = new Stopwatch();
  const post = async (url: string, body: unknown) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  };
  if (explicit) {
    const status = await post(explicit, explicit.endsWith('/generate') ? { inputs: 'Hello', parameters: { max_new_tokens: 1 } } : { prompt: 'Hello', max_tokens: 1 });
    return { seconds: sw.elapsed(), url: explicit, status };
  }
  let model: string | undefined;
  try {
    const r = await fetch(`${base}/v1/models`, { signal: AbortSignal.timeout(10_000) });
    if (r.ok) model = ((await r.json()) as { data?: Array<{ id: string }> }).data?.[0]?.id;
    else await r.arrayBuffer();
  } catch {
    /* not OpenAI-compatible */
  }
  const t = new Stopwatch();
  if (model !== undefined) {
    const url = `${base}/v1/completions`;
    const status = await post(url, { model, prompt: 'Hello', max_tokens: 1 });
    return { seconds: t.elapsed(), url, status };
  }
  const url = `${base}/generate`;
  const status = await post(url, { inputs: 'Hello', parameters: { max_new_tokens: 1 } });
  return { seconds: t.elapsed(), url, status };
}

/**
 * Makes the watchdog a child subreaper (prctl PR_SET_CHILD_SUBREAPER, kept across execve): a descendant that
 * double-forks re-parents to the watchdog instead of init, so the /proc scan always finds it. Node cannot call
 * prctl, so a python3 found on PATH sets it and execs node; without python3 the watchdog runs unchanged.
 */
const SUBREAPER_EXEC = "import ctypes, os, sys\ntry:\n    ok = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0\nexcept Exception:\n    ok = False\ntry:\n    os.write(3, (('{\"event\":\"subreaper\",\"ok\":%s}' % ('true' if ok else 'false')) + '\\n').encode())\nexcept OSError:\n    pass\nos.execv(sys.argv[1], sys.argv[1:])\n";

function findOnPath(name: string, env: Env): string | null {
  if (process.platform !== 'linux') return null;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = joinPath(dir, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

interface ShimState {
  subreaper: boolean;
  serverPid: number | null;
  serverSpawnHr: bigint | null;
  exit: { code: number | null; signal: string | null } | null;
  spawnError: string | null;
  pids: number[];
  stopped: { signal: 'SIGTERM' | 'SIGKILL'; seconds: number; pids: number[]; sigkilled: number[]; survivors: number[] } | null;
}

function readStatus(stream: Readable, state: ShimState, onStopped: () => void): void {
  const split = new LineSplitter(1 << 20);
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    for (const line of split.push(d)) {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (o.event === 'spawned') {
        state.serverPid = o.pid as number;
        state.serverSpawnHr = BigInt(o.hr as string);
      } else if (o.event === 'exit') state.exit = { code: (o.code as number | null) ?? null, signal: (o.signal as string | null) ?? null };
      else if (o.event === 'error') state.spawnError = String(o.message);
      else if (o.event === 'pids') state.pids = o.pids as number[];
      else if (o.event === 'subreaper') state.subreaper = o.ok === true;
      else if (o.event === 'stopped') {
        state.stopped = { signal: o.signal as 'SIGTERM' | 'SIGKILL', seconds: o.seconds as number, pids: o.pids as number[], sigkilled: o.sigkilled as number[], survivors: o.survivors as number[] };
        onStopped();
      }
    }
  });
  stream.on('error', () => undefined);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Closes the shim's stdin (its signal to stop the tree) and waits for its report; falls back to the group. */
async function stopTree(shim: ChildProcess, state: ShimState, stopped: Promise<void>, timeoutSeconds: number): Promise<StopReport> {
  const sw = new Stopwatch();
  const shimExited = new Promise<void>((r) => (shim.exitCode !== null || shim.signalCode !== null ? r() : shim.once('exit', () => r())));
  shim.stdin?.end();
  shim.stdin?.destroy();
  const ok = await Promise.race([stopped.then(() => true), shimExited.then(() => state.stopped !== null), deadline((timeoutSeconds + 5) * 1000).then(() => false)]);
  if (ok && state.stopped) {
    const s = state.stopped;
    return { signal: s.signal, seconds: s.seconds, processes: s.pids.length, sigkilled: s.sigkilled, survivors: s.survivors, by: 'shim', subreaper: state.subreaper };
  }
  // The shim did not report (killed, or no node): kill its group and every pid it told us about.
  const pids = [...new Set([...(state.serverPid ? [state.serverPid] : []), ...state.pids])];
  for (const g of [shim.pid, state.serverPid]) {
    try {
      if (g) process.kill(-g, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await Promise.race([shimExited, deadline(2000)]);
  return { signal: 'SIGKILL', seconds: sw.elapsed(), processes: pids.length, sigkilled: pids, survivors: pids.filter(pidAlive), by: 'group-fallback', subreaper: state.subreaper };
}

const NOT_RECOGNISED = (n: number) =>
  `engine not recognised: none of the ${n} log lines before ready matched vLLM, SGLang, TGI or llama.cpp wording, so the whole start-up is "unexplained". The timeline below shows when each line came; add stages from the command line with --stage 'name=REGEX' (the line that ends the stage; a (number) group is the duration it prints), e.g. --stage 'weights:gpu-load=Loaded weights in ([\\d.]+)s'`;

/** How late (s) a log line may arrive after a ready seen on the URL and still count as printed before it. */
export const LATE_LINE_GRACE_S = 0.25;

/** Starts the server (through the watchdog shim), waits for ready, sends one completion, stops the tree. */
export async function runWrapped(opts: WrapOptions): Promise<WrapResult> {
  if (opts.command.length === 0) throw new ColdstartError('USAGE', 'wrap mode: no server command after --', { hint: 'Example: coldstart profile --ready-url http://127.0.0.1:8000/health -- vllm serve MODEL' });
  if (!opts.readyUrl && !opts.readyLog) throw new ColdstartError('USAGE', 'wrap mode needs --ready-url URL or --ready-log REGEX to know when the server is ready');
  const stopTimeout = opts.stopTimeoutSeconds ?? 10;
  type Raw = { hr: bigint; stream: 'stdout' | 'stderr'; text: string };
  const raw: Raw[] = [];
  const sw = new Stopwatch();
  const shimStartHr = process.hrtime.bigint();
  const shimArgs = ['-e', SHIM_SOURCE, '--', String(stopTimeout), ...opts.command];
  const python = opts.env.COLDSTART_NO_SUBREAPER ? null : findOnPath('python3', opts.env);
  const [exe, args] = python ? [python, ['-c', SUBREAPER_EXEC, process.execPath, ...shimArgs]] : [process.execPath, shimArgs];
  const shim = spawn(exe, args, {
    cwd: opts.cwd,
    env: { ...opts.env, PYTHONUNBUFFERED: '1' } as NodeJS.ProcessEnv,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
  const state: ShimState = { subreaper: false, serverPid: null, serverSpawnHr: null, exit: null, spawnError: null, pids: [], stopped: null };
  let onStopped: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (onStopped = r));
  readStatus(shim.stdio[3] as Readable, state, () => onStopped());
  let shimError: Error | null = null;
  shim.on('error', (e) => (shimError = e));
  let shimExit: string | null = null;
  shim.on('exit', (code, sig) => (shimExit = sig ? `killed by ${sig}` : `exited with ${code}`));
  const base = () => state.serverSpawnHr ?? shimStartHr;
  const tOf = (hr: bigint) => Number(hr - base()) / 1e9;
  let logReadyHr: bigint | null = null;
  const attach = (stream: Readable, name: 'stdout' | 'stderr') => {
    const split = new LineSplitter();
    stream.setEncoding('utf8');
    const take = (texts: string[]) => {
      const hr = process.hrtime.bigint();
      for (const text of texts) {
        raw.push({ hr, stream: name, text });
        if (raw.length > 20000) raw.splice(0, 1000);
        opts.onLine?.({ t: tOf(hr), stream: name, text });
        if (logReadyHr === null && opts.readyLog?.test(text)) logReadyHr = hr;
      }
    };
    stream.on('data', (d: string) => take(split.push(d)));
    stream.on('end', () => take(split.flush()));
  };
  attach(shim.stdout!, 'stdout');
  attach(shim.stderr!, 'stderr');
  const tail = () => raw.slice(-8).map((l) => l.text);
  const exitText = () => (state.exit ? (state.exit.signal ? `killed by ${state.exit.signal}` : `exited with ${state.exit.code}`) : null);
  let stopReport: StopReport | null = null;
  const stopOnce = async () => (stopReport ??= await stopTree(shim, state, stopped, stopTimeout));
  try {
    const limit = opts.readyTimeoutSeconds ?? 600;
    let readyHr: bigint | null = null;
    let readyBy: 'url' | 'log' = 'log';
    while (readyHr === null) {
      opts.signal?.throwIfAborted();
      const spawnFail = state.spawnError ?? (shimError as Error | null)?.message ?? null;
      if (spawnFail) throw new ColdstartError('NOT_FOUND', `wrap mode: cannot start ${opts.command[0]}: ${spawnFail}`, { hint: 'Check the command after --.' });
      if (logReadyHr !== null) {
        readyHr = logReadyHr;
        readyBy = 'log';
        break;
      }
      const ended = exitText() ?? (shimExit && !state.serverPid ? `could not be started (watchdog ${shimExit})` : null);
      if (ended) throw new ColdstartError('ENV', `wrap mode: the server ${ended} before it was ready`, { hint: `Last lines: ${tail().join(' | ') || '(no output)'}` });
      if (opts.readyUrl && state.serverPid !== null && (await httpOk(opts.readyUrl))) {
        readyHr = process.hrtime.bigint();
        readyBy = 'url';
        break;
      }
      if (sw.elapsed() > limit) throw new ColdstartError('TIMEOUT', `wrap mode: the server was not ready within ${limit} s`, { hint: `Raise --ready-timeout, or check --ready-url/--ready-log. Last lines: ${tail().join(' | ')}` });
      await sleep(opts.readyUrl ? (opts.readyPollMs ?? 50) : 20);
    }
    const readySeconds = tOf(readyHr);
    let first: WrapResult['firstCompletion'];
    if (opts.completionUrl === false) first = { skipped: 'disabled with --no-completion' };
    else if (!opts.completionUrl && !opts.readyUrl) first = { skipped: 'no --ready-url or --completion-url to send a request to' };
    else {
      const origin = opts.readyUrl ? new URL(opts.readyUrl).origin : new URL(opts.completionUrl as string).origin;
      try {
        const c = await firstCompletion(origin, opts.completionUrl || undefined);
        if (c.status >= 400) throw new Error(`HTTP ${c.status} from ${c.url}`);
        first = c;
      } catch (e) {
        throw new ColdstartError('ENV', `wrap mode: the first completion failed: ${(e as Error).message}`, { hint: 'Pass --completion-url for servers without /v1/completions or /generate, or --no-completion.' });
      }
    }
    // A line the server printed just before it answered can reach us after the answer (it passes through the
    // watchdog's pipe, and a loaded machine delays it): one that arrives within LATE_LINE_GRACE_S of a ready
    // seen on the URL is counted at ready instead of being dropped from the split.
    const lines: LogLine[] = raw.map((l) => {
      const t = tOf(l.hr);
      const late = readyBy === 'url' && t > readySeconds && t - readySeconds <= LATE_LINE_GRACE_S;
      return { t: late ? readySeconds : t, stream: l.stream, text: l.text };
    });
    const { engine, version, stages } = stagesFromLog(lines, readySeconds, opts.stageRules ?? [], opts.reportedScale ?? 1);
    const explained = stages.reduce((a, s) => a + (s.ownSeconds ?? s.end - s.start), 0);
    const stop = await stopOnce();
    const before = lines.filter((l) => l.t <= readySeconds);
    const timeline = (before.length > 80 ? [...before.slice(0, 40), ...before.slice(-40)] : before).map((l) => ({ t: l.t, text: l.text }));
    const onlyCustom = engine === null && stages.length > 0;
    return {
      command: opts.command,
      pid: state.serverPid ?? shim.pid!,
      readySeconds,
      readyBy,
      firstCompletion: first,
      engine,
      engineVersion: version,
      stages,
      unexplainedSeconds: Math.max(0, readySeconds - explained),
      stop,
      logTail: tail(),
      ...(engine === null ? { engineNote: onlyCustom ? 'engine not recognised; stages come from --stage rules only' : NOT_RECOGNISED(before.length) } : {}),
      timeline,
      ...(opts.keepLines ? { lines } : {}),
    };
  } finally {
    if (!stopReport) await stopOnce();
  }
}
