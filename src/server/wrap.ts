/**
 * Wrap mode: start a real inference server, time process start → ready → first completion, and split the
 * start-up into stages from the server's own log lines (rules as data in ./rules/: vLLM, SGLang, TGI, llama.cpp,
 * plus --stage rules). Whatever no log line explains is reported as `unexplained`, never spread over the phases;
 * an engine that is not recognised says so and keeps the raw timeline.
 *
 * The server runs through the one lifecycle (./lifecycle.ts: the watchdog stops its whole tree, setsid children
 * included, even when coldstart dies by SIGKILL) and its first completion is ./api.ts's.
 */
import { ColdstartError } from '../core/errors.js';
import { firstCompletion, type RecordedRequest } from './api.js';
import { refuseReadyAlready, requireServerCommand, startServer, type StopReport } from './lifecycle.js';
import { stagesFromLog, type LogLine, type Stage } from './stages.js';
import type { EngineName, LogRule } from './rules/index.js';

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

export interface WrapResult {
  command: string[];
  pid: number;
  readySeconds: number;
  readyBy: 'url' | 'log';
  /** The ready URL was answered through a process older than the server (Ready.olderAnswer). */
  readyNote?: string;
  /** `answer`: the body the server sent (optimize compares two starts' answers). */
  firstCompletion: { seconds: number; url: string; status: number; answer: string; request: RecordedRequest } | { skipped: string };
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

const NOT_RECOGNISED = (n: number) =>
  `engine not recognised: none of the ${n} log lines before ready matched vLLM, SGLang, TGI or llama.cpp wording, so the whole start-up is "unexplained". The timeline below shows when each line came; add stages from the command line with --stage 'name=REGEX' (the line that ends the stage; a (number) group is the duration it prints), e.g. --stage 'weights:gpu-load=Loaded weights in ([\\d.]+)s'`;

/** How late (s) a log line may arrive after a ready seen on the URL and still count as printed before it. */
export const LATE_LINE_GRACE_S = 0.25;

/** Starts the server (through the watchdog shim), waits for ready, sends one completion, stops the tree. */
export async function runWrapped(opts: WrapOptions): Promise<WrapResult> {
  requireServerCommand('profile', opts);
  await refuseReadyAlready(opts.readyUrl, '--ready-url', opts.signal);
  const server = startServer({ command: opts.command, cwd: opts.cwd, env: opts.env, what: 'wrap mode', stopGraceSeconds: opts.stopTimeoutSeconds ?? 10, onLine: opts.onLine });
  try {
    const ready = await server.waitReady({ url: opts.readyUrl, log: opts.readyLog, timeoutSeconds: opts.readyTimeoutSeconds ?? 600, signal: opts.signal, pollMs: opts.readyPollMs, timeoutFlag: '--ready-timeout' });
    const readySeconds = ready.seconds;
    let first: WrapResult['firstCompletion'];
    if (opts.completionUrl === false) first = { skipped: 'disabled with --no-completion' };
    else if (!opts.completionUrl && !opts.readyUrl) first = { skipped: 'no --ready-url or --completion-url to send a request to' };
    else {
      const base = new URL(opts.readyUrl ?? (opts.completionUrl as string)).origin;
      try {
        const c = await firstCompletion({ base, endpoint: opts.completionUrl || undefined, timeoutSeconds: 300, signal: opts.signal });
        first = { seconds: c.seconds, url: c.url, status: c.status, answer: c.answer, request: c.request };
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        throw new ColdstartError('ENV', `wrap mode: the first completion failed: ${(e as Error).message}`, { hint: 'Pass --completion-url for servers without /v1/completions or /generate, or --no-completion.' });
      }
    }
    // A line the server printed just before it answered can reach us after the answer (it passes through the
    // watchdog's pipe, and a loaded machine delays it): one that arrives within LATE_LINE_GRACE_S of a ready
    // seen on the URL is counted at ready instead of being dropped from the split.
    const lines: LogLine[] = server.lines().map((l) => {
      const t = server.since(l.hr);
      const late = ready.by === 'url' && t > readySeconds && t - readySeconds <= LATE_LINE_GRACE_S;
      return { t: late ? readySeconds : t, stream: l.stream, text: l.text };
    });
    const { engine, version, stages } = stagesFromLog(lines, readySeconds, opts.stageRules ?? [], opts.reportedScale ?? 1);
    const explained = stages.reduce((a, s) => a + (s.ownSeconds ?? s.end - s.start), 0);
    const readyNote = ready.olderAnswer(); // the timed part is over; the server still holds its port
    const stop = await server.stop();
    const before = lines.filter((l) => l.t <= readySeconds);
    const timeline = (before.length > 80 ? [...before.slice(0, 40), ...before.slice(-40)] : before).map((l) => ({ t: l.t, text: l.text }));
    const onlyCustom = engine === null && stages.length > 0;
    return {
      command: opts.command,
      pid: server.pid() ?? 0,
      readySeconds,
      readyBy: ready.by,
      ...(readyNote ? { readyNote } : {}),
      firstCompletion: first,
      engine,
      engineVersion: version,
      stages,
      unexplainedSeconds: Math.max(0, readySeconds - explained),
      stop,
      logTail: server.tail(),
      ...(engine === null ? { engineNote: onlyCustom ? 'engine not recognised; stages come from --stage rules only' : NOT_RECOGNISED(before.length) } : {}),
      timeline,
      ...(opts.keepLines ? { lines } : {}),
    };
  } finally {
    await server.stop();
  }
}
