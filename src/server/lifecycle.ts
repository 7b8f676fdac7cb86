/**
 * The one server lifecycle: start a server through the watchdog (./shim.cjs: setsid children tracked, the tree
 * stopped even when coldstart dies by SIGKILL), read its output as timed lines (from pipes, or by tailing the log
 * file it writes itself), wait until it is ready — its URL answers 2xx or a line matches — under one deadline and the
 * run's abort signal, and stop its whole tree, reporting which signal each process really needed. A tree coldstart
 * did not start (a restored snapshot) is adopted and stopped the same way.
 *
 * Wrap mode (./wrap.ts), `snapshot` and `restore` (src/snapshot/) use it; the first request after ready is
 * ./api.ts's, over ./http.ts's client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { monotonicNs, nowSeconds, Stopwatch } from '../core/clock.js';
import { ColdstartError } from '../core/errors.js';
import { pidAlive, processCommand, procStartTicks } from '../platform/procfs.js';
import { olderListeners } from '../platform/sockets.js';
import { urlAnswersOk } from './http.js';
import { LineSplitter } from './log-lines.js';
import { pollUntil } from './poll.js';
import { newShimState, newTree, readShimStatus, watchdogCommand, type ShimState, type Tree } from './shim.js';

type Env = Record<string, string | undefined>;

export interface StopReport {
  /** The signal the slowest process really needed. */
  signal: 'SIGTERM' | 'SIGKILL';
  seconds: number;
  /** Processes signalled (server and every descendant seen, setsid children included). */
  processes: number;
  /** Pids that ignored SIGTERM for the whole grace period and were killed with SIGKILL. */
  sigkilled: number[];
  /** Pids still alive after SIGKILL (should be empty; non-empty is reported, never hidden). */
  survivors: number[];
  /**
   * How the tree was stopped: by the watchdog shim, by coldstart's process-group fallback (the shim did not
   * report), or by coldstart itself for a tree it adopted (a restored snapshot).
   */
  by: 'shim' | 'group-fallback' | 'adopted';
  /** Whether the watchdog was a child subreaper (orphaned descendants re-parent to it, so none escape). */
  subreaper: boolean;
}

export interface TimedLine {
  /** monotonicNs() when the line arrived. */
  hr: bigint;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface StartOptions {
  command: string[];
  cwd: string;
  env: Env;
  /** Who runs the server, at the start of every error message ("wrap mode", "snapshot"). */
  what: string;
  /** Seconds each process gets between SIGTERM and SIGKILL when the tree is stopped (default 10). */
  stopGraceSeconds?: number;
  /**
   * Where stdout and stderr go: pipes to coldstart by default (lines timed as they arrive), or this open file, which
   * the server then holds itself (a snapshot: CRIU restores a file, never a pipe to coldstart); its lines are read
   * back by tailing `path`.
   */
  logFile?: { fd: number; path: string };
  /** Each line as it arrives, timed from the server's spawn. */
  onLine?: (l: { t: number; stream: 'stdout' | 'stderr'; text: string }) => void;
}

export interface ReadyOptions {
  /** Ready when this URL answers 2xx. */
  url?: string;
  /** Ready when a line of the server's output matches. */
  log?: RegExp;
  timeoutSeconds: number;
  signal?: AbortSignal;
  /** How often the ready URL is polled, ms (default 50): the ready time is measured to within this. */
  pollMs?: number;
  /** The flag that raises the timeout, named in the TIMEOUT hint (default --timeout). */
  timeoutFlag?: string;
}

export interface Ready {
  by: 'url' | 'log';
  /** When readiness was seen (monotonicNs()): the matching line's arrival, or the URL's answer. */
  hr: bigint;
  /** Seconds from the server's spawn to ready. */
  seconds: number;
  /**
   * Whether the ready URL was answered through a process older than the server: which, and what that means for the
   * time (null: the server or something younger holds the port, or nothing can be told). It reads /proc/net/tcp (a
   * few ms, more on a host with a large TCP table), so callers ask once the timed part is over.
   */
  olderAnswer(): string | null;
}

export interface ServerHandle {
  readonly command: readonly string[];
  /** The server's pid (null until the watchdog reports the spawn). */
  pid(): number | null;
  /** Every process of the tree seen so far, the server first (setsid children included). */
  pids(): number[];
  /** Every line so far (the last 20,000). */
  lines(): readonly TimedLine[];
  /** Seconds from the server's spawn to `hr`. */
  since(hr: bigint): number;
  /** The last lines, for error hints. */
  tail(n?: number): string[];
  waitReady(o: ReadyOptions): Promise<Ready>;
  /** Stops the whole tree (once; later calls get the same report). */
  stop(): Promise<StopReport>;
}

/** The coldstart commands that start a server from a command line after `--`. */
export type ServerCommandName = 'profile' | 'snapshot' | 'optimize';

/**
 * The one check of what starting a server needs, with one wording for every command: a command after `--`, and a way
 * to know when it is ready (a URL that answers 2xx or a log line). Commands call it before anything else is parsed or
 * started; the functions they call (wrap mode, snapshot, optimize) call it again for callers that skip the CLI.
 */
export function requireServerCommand(name: ServerCommandName, o: { command: readonly string[]; readyUrl?: string; readyLog?: unknown }): void {
  const hint = `Example: coldstart ${name}${name === 'snapshot' ? ' -o IMAGE' : ''} --ready-url http://127.0.0.1:8000/health -- vllm serve MODEL`;
  if (o.command.length === 0) throw new ColdstartError('USAGE', `${name}: no server command after --`, { hint });
  if (!o.readyUrl && !o.readyLog) throw new ColdstartError('USAGE', `${name}: give --ready-url URL or --ready-log REGEX so coldstart knows when the server is ready`, { hint });
}

/** A timer that never keeps the process alive (used for timeouts raced against an exit). */
function deadline(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

const MAX_LINES = 20000;

/** The readiness loop both kinds of handle share: checks in order, one deadline, the abort signal. */
async function waitUntilReady(
  h: {
    what: string;
    command: readonly string[];
    tail(): string[];
    startFailure(): string | null;
    ended(): string | null;
    logReadyHr(): bigint | null;
    running(): boolean;
    since(hr: bigint): number;
    logHint: string;
    /** The server's first process (null until known) and its tree as far as known: who must hold the ready URL's port. */
    root(): number | null;
    known(): number[];
  },
  o: ReadyOptions,
): Promise<Ready> {
  if (!o.url && !o.log) throw new ColdstartError('USAGE', `${h.what}: give --ready-url URL or --ready-log REGEX so coldstart knows when the server is ready`);
  const limit = o.timeoutSeconds;
  const lines = () => `Last lines: ${h.tail().join(' | ') || '(no output)'}${h.logHint}`;
  const until = nowSeconds() + limit;
  return pollUntil<Ready>(
    async () => {
      const fail = h.startFailure();
      if (fail) throw new ColdstartError('NOT_FOUND', `${h.what}: cannot start ${h.command[0]}: ${fail}`, { hint: 'Check the command after --.' });
      const logHr = o.log ? h.logReadyHr() : null;
      if (logHr !== null) return { by: 'log', hr: logHr, seconds: h.since(logHr), olderAnswer: () => null };
      const ended = h.ended();
      if (ended) throw new ColdstartError('ENV', `${h.what}: the server ${ended} before it was ready`, { hint: lines(), details: { exit: ended } });
      if (o.url && h.running()) {
        const left = Math.max(1, (until - nowSeconds()) * 1000);
        if (await urlAnswersOk(o.url, Math.min(2000, left), o.signal)) {
          const hr = monotonicNs();
          const url = o.url;
          const root = h.root();
          const startTicks = root === null ? null : procStartTicks(root);
          return { by: 'url', hr, seconds: h.since(hr), olderAnswer: () => (root !== null && startTicks !== null ? olderAnswerNote(url, { pid: root, startTicks }, h.known()) : null) };
        }
      }
      return undefined;
    },
    {
      deadline: until,
      signal: o.signal,
      delayMs: o.url ? { first: o.pollMs ?? 50, max: o.pollMs ?? 50 } : { first: 20, max: 20 },
      onTimeout: () =>
        new ColdstartError('TIMEOUT', `${h.what}: the server was not ready within ${limit} s`, { hint: `Raise ${o.timeoutFlag ?? '--timeout'}, or check --ready-url/--ready-log. ${lines()}` }),
    },
  );
}

/**
 * Once the ready URL answered (and the timed part is over): what listens there, when every process holding it is older than the server (an
 * earlier server still starting when the start check ran, which has the port now — or a proxy or port-forward
 * started before, which is fine). Said, not refused: coldstart cannot tell the two apart. Null when the server (or
 * something younger) holds the port, or the holder cannot be seen (another host, another user's process).
 */
function olderAnswerNote(url: string, server: { pid: number; startTicks: number }, known: number[]): string | null {
  const older = olderListeners(url, server, known);
  if (!older.length) return null;
  const pid = older[0]!.pids[0]!;
  const command = processCommand(pid, 120);
  return `${url} was answered through pid ${pid}${command ? ` (${command})` : ''}, which was running before the server was started: unless it forwards to the server (a proxy, a port-forward), the ready time measured is that process's, not the server's`;
}

/** Collects timed lines from the server's output, and notes the first that matches a ready pattern. */
class LineLog {
  readonly raw: TimedLine[] = [];
  readyHr: bigint | null = null;
  pattern: RegExp | undefined;
  constructor(private readonly onLine: ((l: TimedLine) => void) | undefined) {}
  take(stream: 'stdout' | 'stderr', texts: string[]): void {
    const hr = monotonicNs();
    for (const text of texts) {
      const l = { hr, stream, text };
      this.raw.push(l);
      if (this.raw.length > MAX_LINES) this.raw.splice(0, 1000);
      this.onLine?.(l);
      if (this.readyHr === null && this.pattern?.test(text)) this.readyHr = hr;
    }
  }
  tail(n = 8): string[] {
    return this.raw.slice(-n).map((l) => l.text);
  }
}

/** Reads what the server appends to its log file (polled every 25 ms), as lines. */
class FileTail {
  private fd: number | null;
  private offset = 0;
  private readonly split = new LineSplitter();
  private readonly timer: NodeJS.Timeout;
  constructor(path: string, private readonly log: LineLog) {
    try {
      this.fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch {
      this.fd = null;
    }
    this.timer = setInterval(() => this.read(), 25);
    this.timer.unref();
  }
  read(): void {
    if (this.fd === null) return;
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, buf, 0, buf.length, this.offset);
      } catch {
        return;
      }
      if (n <= 0) return;
      this.offset += n;
      this.log.take('stdout', this.split.push(buf.toString('utf8', 0, n)));
    }
  }
  close(): void {
    clearInterval(this.timer);
    this.read();
    this.log.take('stdout', this.split.flush());
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Starts `command` through the watchdog: in a session of its own, its tree tracked (setsid children included), and
 * stopped by the watchdog if coldstart dies, even by SIGKILL. The handle waits for ready and stops the tree.
 */
export function startServer(opts: StartOptions): ServerHandle {
  if (opts.command.length === 0) throw new ColdstartError('USAGE', `${opts.what}: no server command after --`);
  const grace = opts.stopGraceSeconds ?? 10;
  const shimStartHr = monotonicNs();
  const [exe, args] = watchdogCommand(grace, opts.command, opts.env);
  const out = opts.logFile?.fd ?? 'pipe';
  const shim: ChildProcess = spawn(exe, args, {
    cwd: opts.cwd,
    env: { ...opts.env, PYTHONUNBUFFERED: '1' } as NodeJS.ProcessEnv,
    detached: true,
    stdio: ['pipe', out, out, 'pipe'],
  });
  const state: ShimState = newShimState();
  let onStopped: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (onStopped = r));
  readShimStatus(shim.stdio[3] as Readable, state, (event) => {
    if (event === 'stopped') onStopped();
  });
  let shimError: Error | null = null;
  shim.on('error', (e) => (shimError = e));
  shim.stdin?.on('error', () => undefined);
  let shimExit: string | null = null;
  shim.on('exit', (code, sig) => (shimExit = sig ? `killed by ${sig}` : `exited with ${code}`));
  const base = () => state.serverSpawnHr ?? shimStartHr;
  const since = (hr: bigint) => Number(hr - base()) / 1e9;
  const log = new LineLog(opts.onLine ? (l) => opts.onLine!({ t: since(l.hr), stream: l.stream, text: l.text }) : undefined);
  const attach = (stream: Readable, name: 'stdout' | 'stderr') => {
    const split = new LineSplitter();
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => log.take(name, split.push(d)));
    stream.on('end', () => log.take(name, split.flush()));
  };
  let fileTail: FileTail | null = null;
  if (opts.logFile) fileTail = new FileTail(opts.logFile.path, log);
  else {
    attach(shim.stdout!, 'stdout');
    attach(shim.stderr!, 'stderr');
  }
  const exitText = () => (state.exit ? (state.exit.signal ? `killed by ${state.exit.signal}` : `exited with ${state.exit.code}`) : null);
  let report: Promise<StopReport> | null = null;
  const handle: ServerHandle = {
    command: opts.command,
    pid: () => state.serverPid,
    pids: () => [...new Set([...(state.serverPid ? [state.serverPid] : []), ...state.pids])],
    lines: () => log.raw,
    since,
    tail: (n) => log.tail(n),
    waitReady: (o) => {
      log.pattern = o.log;
      if (o.log && log.readyHr === null) log.readyHr = log.raw.find((l) => o.log!.test(l.text))?.hr ?? null;
      return waitUntilReady(
        {
          what: opts.what,
          command: opts.command,
          tail: () => log.tail(),
          startFailure: () => state.spawnError ?? (shimError as Error | null)?.message ?? null,
          ended: () => exitText() ?? (shimExit && !state.serverPid ? `could not be started (watchdog ${shimExit})` : null),
          logReadyHr: () => {
            fileTail?.read();
            return log.readyHr;
          },
          running: () => state.serverPid !== null,
          since,
          logHint: opts.logFile ? ` (all of it in ${opts.logFile.path})` : '',
          root: () => state.serverPid,
          known: () => [...state.pids],
        },
        o,
      );
    },
    stop: () => (report ??= stopTree(shim, state, stopped, grace).finally(() => fileTail?.close())),
  };
  return handle;
}

/** Closes the shim's stdin (its signal to stop the tree) and waits for its report; falls back to the group. */
async function stopTree(shim: ChildProcess, state: ShimState, stopped: Promise<void>, graceSeconds: number): Promise<StopReport> {
  const sw = new Stopwatch();
  const shimExited = new Promise<void>((r) => (shim.exitCode !== null || shim.signalCode !== null ? r() : shim.once('exit', () => r())));
  shim.stdin?.end();
  shim.stdin?.destroy();
  const ok = await Promise.race([stopped.then(() => true), shimExited.then(() => state.stopped !== null), deadline((graceSeconds + 5) * 1000).then(() => false)]);
  if (ok && state.stopped) {
    // The report comes just before the shim exits; it (and its subreaper) may still hold the server's log open, so
    // "stopped" waits for it too: a caller that unmounts or removes the log's folder next must not find it busy.
    await Promise.race([shimExited, deadline(2000)]);
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
  return { signal: 'SIGKILL', seconds: sw.elapsed(), processes: pids.length, sigkilled: pids, survivors: pids.filter((p) => pidAlive(p)), by: 'group-fallback', subreaper: state.subreaper };
}

/**
 * Refuses to start a server whose ready URL already answers: whatever answers there (an earlier server still
 * running, a restored one) would be timed instead of the one about to start. Checked once, before the start.
 */
export async function refuseReadyAlready(url: string | undefined, flag: string, signal?: AbortSignal): Promise<void> {
  if (!url) return;
  if (!(await urlAnswersOk(url, 1000, signal).catch(() => false))) return;
  throw new ColdstartError('ENV', `${flag} ${url} already answers before the server was started: what answers there (an earlier server still running?) would be measured instead`, {
    hint: 'Stop whatever serves that port, or start the server on another port, and run again.',
  });
}

/**
 * A running tree coldstart did not start (a restored snapshot): `root` and every descendant it has (setsid children
 * included, found on /proc), plus `known` pids (the tree as recorded), each remembered with its start time now. Its
 * handle waits for ready by URL and stops the tree as the watchdog would: SIGTERM, the grace period, SIGKILL.
 */
export function adoptServer(root: number, opts: { what: string; command?: readonly string[]; known?: readonly number[]; stopGraceSeconds?: number }): ServerHandle {
  const tree: Tree = newTree(root);
  tree.add(root);
  for (const p of opts.known ?? []) tree.add(p);
  tree.scan();
  const adoptedHr = monotonicNs();
  const since = (hr: bigint) => Number(hr - adoptedHr) / 1e9;
  const grace = opts.stopGraceSeconds ?? 10;
  let report: Promise<StopReport> | null = null;
  const rootAlive = () => tree.alive(root);
  return {
    command: opts.command ?? [],
    pid: () => root,
    pids: () => {
      tree.scan();
      return tree.pids();
    },
    lines: () => [],
    since,
    tail: () => [],
    waitReady: (o) =>
      waitUntilReady(
        {
          what: opts.what,
          command: opts.command ?? [String(root)],
          tail: () => [],
          startFailure: () => null,
          ended: () => (rootAlive() ? null : `(pid ${root}) exited`),
          logReadyHr: () => null,
          running: () => true,
          since,
          logHint: '',
          root: () => root,
          known: () => tree.pids(),
        },
        o,
      ),
    stop: () =>
      (report ??= tree.stop({ graceMs: grace * 1000 }).then((s) => ({ signal: s.signal, seconds: s.seconds, processes: s.pids.length, sigkilled: s.sigkilled, survivors: s.survivors, by: 'adopted' as const, subreaper: false }))),
  };
}
