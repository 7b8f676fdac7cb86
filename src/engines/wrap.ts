/**
 * Wrap mode: start a real inference server, time process start → ready → first completion, and split the
 * start-up into phases from the server's own log lines (vLLM, TGI, SGLang, llama.cpp). Whatever no log line
 * explains is reported as `unexplained`, never spread over the phases. The server runs in its own process
 * group and is stopped (SIGTERM, then SIGKILL after a timeout) whatever happens.
 */
import { sleep } from '../core/clock.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { ColdstartError } from '../core/errors.js';
import { Stopwatch } from '../core/clock.js';

type Env = Record<string, string | undefined>;

export type EngineName = 'vllm' | 'tgi' | 'sglang' | 'llama.cpp';
export type WrapPhase = 'download' | 'gpu-load' | 'warmup';

export interface LogRule {
  engine: EngineName;
  re: RegExp;
  stage: string;
  phase: WrapPhase;
  kind: 'begin' | 'end';
  /** Capture group holding the duration the engine itself reports (seconds). */
  secondsGroup?: number;
}

/** Log lines of the known engines; `end` rules with a reported duration also give the stage's start. */
export const LOG_RULES: readonly LogRule[] = [
  // vLLM
  { engine: 'vllm', re: /Starting to load model/, stage: 'weight loading', phase: 'gpu-load', kind: 'begin' },
  { engine: 'vllm', re: /Model loading took [\d.]+ ?GiB and ([\d.]+) ?s/, stage: 'weight loading', phase: 'gpu-load', kind: 'end', secondsGroup: 1 },
  { engine: 'vllm', re: /torch\.compile takes ([\d.]+) ?s in total/, stage: 'torch.compile', phase: 'warmup', kind: 'end', secondsGroup: 1 },
  { engine: 'vllm', re: /Graph capturing finished in ([\d.]+) secs?/, stage: 'CUDA graph capture', phase: 'warmup', kind: 'end', secondsGroup: 1 },
  { engine: 'vllm', re: /init engine \(profile, create kv cache, warmup model\) took ([\d.]+) seconds/, stage: 'engine init (profile, KV cache, warmup)', phase: 'warmup', kind: 'end', secondsGroup: 1 },
  // TGI
  { engine: 'tgi', re: /Starting download process/, stage: 'download', phase: 'download', kind: 'begin' },
  { engine: 'tgi', re: /Successfully downloaded weights/, stage: 'download', phase: 'download', kind: 'end' },
  { engine: 'tgi', re: /Starting shard/, stage: 'weight loading', phase: 'gpu-load', kind: 'begin' },
  { engine: 'tgi', re: /Shard ready in ([\d.]+)s/, stage: 'weight loading', phase: 'gpu-load', kind: 'end', secondsGroup: 1 },
  { engine: 'tgi', re: /Warming up model/, stage: 'warmup', phase: 'warmup', kind: 'begin' },
  { engine: 'tgi', re: /Setting max batch total tokens/, stage: 'warmup', phase: 'warmup', kind: 'end' },
  // SGLang
  { engine: 'sglang', re: /Load weight begin/, stage: 'weight loading', phase: 'gpu-load', kind: 'begin' },
  { engine: 'sglang', re: /Load weight end/, stage: 'weight loading', phase: 'gpu-load', kind: 'end' },
  { engine: 'sglang', re: /Capture cuda graph begin/, stage: 'CUDA graph capture', phase: 'warmup', kind: 'begin' },
  { engine: 'sglang', re: /Capture cuda graph end\.(?: Time elapsed: ([\d.]+) ?s)?/, stage: 'CUDA graph capture', phase: 'warmup', kind: 'end', secondsGroup: 1 },
  // llama.cpp server
  { engine: 'llama.cpp', re: /llama_model_loader: loaded meta data/, stage: 'weight loading', phase: 'gpu-load', kind: 'begin' },
  { engine: 'llama.cpp', re: /llama_(?:init_from_model|new_context_with_model):/, stage: 'weight loading', phase: 'gpu-load', kind: 'end' },
  { engine: 'llama.cpp', re: /warming up the model/, stage: 'warmup', phase: 'warmup', kind: 'begin' },
  { engine: 'llama.cpp', re: /main: model loaded/, stage: 'warmup', phase: 'warmup', kind: 'end' },
];

export interface LogLine {
  t: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface Stage {
  engine: EngineName;
  stage: string;
  phase: WrapPhase;
  start: number;
  end: number;
  /** Duration the engine printed, when it printed one. */
  reportedSeconds?: number;
  /** Seconds counted for this stage: its span minus the nested stages inside it. */
  ownSeconds?: number;
}

/**
 * Turns timestamped log lines into non-overlapping stages up to `readyAt`: begin/end pairs; an end with a
 * reported duration and no begin starts that long before it; a begin with no end runs to the next stage or
 * ready. Overlaps are clipped so that every second is counted once.
 */
export function stagesFromLog(lines: readonly LogLine[], readyAt: number, rules: readonly LogRule[] = LOG_RULES): { engine: EngineName | null; stages: Stage[] } {
  type Open = { rule: LogRule; t: number };
  const open = new Map<string, Open>();
  const raw: Stage[] = [];
  let engine: EngineName | null = null;
  for (const l of lines) {
    if (l.t > readyAt) break;
    for (const rule of rules) {
      const m = rule.re.exec(l.text);
      if (!m) continue;
      engine ??= rule.engine;
      if (rule.engine !== engine) continue;
      const key = `${rule.stage}`;
      if (rule.kind === 'begin') {
        if (!open.has(key)) open.set(key, { rule, t: l.t });
      } else {
        const reported = rule.secondsGroup && m[rule.secondsGroup] ? Number(m[rule.secondsGroup]) : undefined;
        const o = open.get(key);
        open.delete(key);
        const start = o ? o.t : reported !== undefined ? Math.max(0, l.t - reported) : null;
        if (start !== null) raw.push({ engine: rule.engine, stage: rule.stage, phase: rule.phase, start, end: l.t, ...(reported !== undefined ? { reportedSeconds: reported } : {}) });
      }
      break;
    }
  }
  const sortedStarts = [...raw.map((s) => s.start), readyAt].sort((a, b) => a - b);
  for (const o of open.values()) {
    const next = sortedStarts.find((t) => t > o.t) ?? readyAt;
    raw.push({ engine: o.rule.engine, stage: `${o.rule.stage} (no end line)`, phase: o.rule.phase, start: o.t, end: next });
  }
  // Nested stages (vLLM's "init engine … took" contains compile and graph capture): each elementary time
  // segment goes to the shortest stage that covers it, so every second is counted once and the outer
  // stage keeps only its own remainder.
  const clipped = raw.map((x) => ({ ...x, start: Math.max(0, x.start), end: Math.min(x.end, readyAt) })).filter((x) => x.end > x.start);
  const bounds = [...new Set(clipped.flatMap((x) => [x.start, x.end]))].sort((a, b) => a - b);
  const own = new Map<Stage, number>();
  for (let i = 0; i + 1 < bounds.length; i++) {
    const a = bounds[i]!;
    const b = bounds[i + 1]!;
    let best: Stage | null = null;
    for (const x of clipped) if (x.start <= a && x.end >= b && (!best || x.end - x.start < best.end - best.start)) best = x;
    if (best) own.set(best, (own.get(best) ?? 0) + (b - a));
  }
  const stages: Stage[] = clipped
    .filter((x) => (own.get(x) ?? 0) > 0)
    .map((x) => ({ ...x, ownSeconds: own.get(x)! }))
    .sort((a, b) => a.start - b.start);
  return { engine, stages };
}

export interface WrapOptions {
  command: string[];
  readyUrl?: string;
  readyLog?: RegExp;
  /** Completion request after ready: explicit URL, derived from readyUrl when undefined, none when false. */
  completionUrl?: string | false;
  readyTimeoutSeconds?: number;
  stopTimeoutSeconds?: number;
  env: Env;
  cwd: string;
  signal?: AbortSignal;
  onLine?: (l: LogLine) => void;
}

export interface WrapResult {
  command: string[];
  pid: number;
  readySeconds: number;
  readyBy: 'url' | 'log';
  firstCompletion: { seconds: number; url: string; status: number } | { skipped: string };
  engine: EngineName | null;
  stages: Stage[];
  unexplainedSeconds: number;
  stop: { signal: 'SIGTERM' | 'SIGKILL'; seconds: number };
  logTail: string[];
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

async function stopGroup(child: ChildProcess, timeoutSeconds: number): Promise<{ signal: 'SIGTERM' | 'SIGKILL'; seconds: number }> {
  const sw = new Stopwatch();
  const pid = child.pid!;
  const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      /* group gone */
    }
  };
  kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), deadline(timeoutSeconds * 1000).then(() => false)]);
  if (done) {
    kill('SIGKILL'); // stragglers in the group that ignored SIGTERM after the leader left
    return { signal: 'SIGTERM', seconds: sw.elapsed() };
  }
  kill('SIGKILL');
  await Promise.race([exited, deadline(5000)]);
  return { signal: 'SIGKILL', seconds: sw.elapsed() };
}

/** Starts the server, waits for ready, sends one completion, stops the process group. */
export async function runWrapped(opts: WrapOptions): Promise<WrapResult> {
  if (opts.command.length === 0) throw new ColdstartError('USAGE', 'wrap mode: no server command after --', { hint: 'Example: coldstart profile --ready-url http://127.0.0.1:8000/health -- vllm serve MODEL' });
  if (!opts.readyUrl && !opts.readyLog) throw new ColdstartError('USAGE', 'wrap mode needs --ready-url URL or --ready-log REGEX to know when the server is ready');
  const lines: LogLine[] = [];
  const sw = new Stopwatch();
  const child = spawn(opts.command[0]!, opts.command.slice(1), {
    cwd: opts.cwd,
    env: { ...opts.env, PYTHONUNBUFFERED: '1' } as NodeJS.ProcessEnv,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let spawnError: Error | null = null;
  child.on('error', (e) => (spawnError = e));
  // Ctrl-C exits coldstart at once (cli.ts): never leave the server's process group behind.
  const onExit = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', onExit);
  let exitInfo: string | null = null;
  child.on('exit', (code, sig) => (exitInfo = sig ? `killed by ${sig}` : `exited with ${code}`));
  let logReady: number | null = null;
  const attach = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr') => {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      const t = sw.elapsed();
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        const l = { t, stream: name, text };
        lines.push(l);
        if (lines.length > 20000) lines.splice(0, 1000);
        opts.onLine?.(l);
        if (logReady === null && opts.readyLog?.test(text)) logReady = t;
      }
    });
  };
  attach(child.stdout!, 'stdout');
  attach(child.stderr!, 'stderr');
  const tail = () => lines.slice(-8).map((l) => l.text);
  try {
    const deadline = (opts.readyTimeoutSeconds ?? 600) + 0;
    let readySeconds: number | null = null;
    let readyBy: 'url' | 'log' = 'log';
    while (readySeconds === null) {
      opts.signal?.throwIfAborted();
      if (spawnError) throw new ColdstartError('NOT_FOUND', `wrap mode: cannot start ${opts.command[0]}: ${(spawnError as Error).message}`, { hint: 'Check the command after --.' });
      if (logReady !== null) {
        readySeconds = logReady;
        readyBy = 'log';
        break;
      }
      if (exitInfo) throw new ColdstartError('ENV', `wrap mode: the server ${exitInfo} before it was ready`, { hint: `Last lines: ${tail().join(' | ') || '(no output)'}` });
      if (opts.readyUrl && (await httpOk(opts.readyUrl))) {
        readySeconds = sw.elapsed();
        readyBy = 'url';
        break;
      }
      if (sw.elapsed() > deadline) throw new ColdstartError('TIMEOUT', `wrap mode: the server was not ready within ${deadline} s`, { hint: `Raise --ready-timeout, or check --ready-url/--ready-log. Last lines: ${tail().join(' | ')}` });
      await sleep(opts.readyUrl ? 50 : 20);
    }
    let first: WrapResult['firstCompletion'];
    if (opts.completionUrl === false) first = { skipped: 'disabled with --no-completion' };
    else if (!opts.completionUrl && !opts.readyUrl) first = { skipped: 'no --ready-url or --completion-url to send a request to' };
    else {
      const base = opts.readyUrl ? new URL(opts.readyUrl).origin : new URL(opts.completionUrl as string).origin;
      try {
        const c = await firstCompletion(base, opts.completionUrl || undefined);
        if (c.status >= 400) throw new Error(`HTTP ${c.status} from ${c.url}`);
        first = c;
      } catch (e) {
        throw new ColdstartError('ENV', `wrap mode: the first completion failed: ${(e as Error).message}`, { hint: 'Pass --completion-url for servers without /v1/completions or /generate, or --no-completion.' });
      }
    }
    const { engine, stages } = stagesFromLog(lines, readySeconds);
    const explained = stages.reduce((a, s) => a + (s.ownSeconds ?? s.end - s.start), 0);
    const stop = await stopGroup(child, opts.stopTimeoutSeconds ?? 10);
    return { command: opts.command, pid: child.pid!, readySeconds, readyBy, firstCompletion: first, engine, stages, unexplainedSeconds: Math.max(0, readySeconds - explained), stop, logTail: tail() };
  } finally {
    if (child.exitCode === null && child.signalCode === null && child.pid) await stopGroup(child, opts.stopTimeoutSeconds ?? 10);
    process.removeListener('exit', onExit);
  }
}
