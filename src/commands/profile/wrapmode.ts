/** Wrap mode (`profile -- <server command>`): the server's own phases from its logs; unexplained time shown as such. */
import type { Context } from '../context.js';
import { invalidArg } from '../../core/errors.js';
import { skippedPhase, type PhaseResult } from '../../core/phases.js';
import { newReport, summarizeRuns } from '../../core/report.js';
import { emitReport, type EmitOptions } from '../../core/emit.js';
import type { Stopwatch } from '../../core/clock.js';
import { repeatRuns } from '../../core/repeat.js';
import { intFlag } from '../../core/flags.js';
import { formatDuration } from '../../core/format.js';
import { parseStageFlag, WRAP_PHASES, type WrapResult } from '../../engines/wrap.js';
import { whatIfRows, computeFindings } from './findings.js';
import type { Engines } from './engines.js';
import type { ProfileFlags } from './state.js';

export function posNum(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw invalidArg(flag, 'a positive number', v);
  return n;
}

function wrapPhases(r: WrapResult): PhaseResult[] {
  const phases: PhaseResult[] = [];
  phases.push(skippedPhase('container', 'wrap mode: the server was started as a process on this host', true));
  phases.push(skippedPhase('cuda-init', 'wrap mode: inside the server process, not separable from its logs (counted in unexplained)', true));
  for (const name of WRAP_PHASES) {
    const st = r.stages.filter((x) => x.phase === name);
    if (st.length === 0) {
      // The time is not lost: it is inside "unexplained" (start → ready not covered by a log line).
      phases.push(skippedPhase(name, `${r.engine ? `no ${r.engine} log line for this phase` : r.engineNote ?? 'no known engine log lines (vLLM, TGI, SGLang, llama.cpp)'}; its time is inside unexplained`, true));
      continue;
    }
    phases.push({
      name,
      status: 'ok',
      seconds: st.reduce((a, x) => a + (x.ownSeconds ?? x.end - x.start), 0),
      note: `from ${r.engine ?? '--stage'} log lines`,
      steps: st.map((x) => ({ name: x.stage, seconds: x.ownSeconds ?? x.end - x.start, note: `${formatDuration(x.start)} → ${formatDuration(x.end)} after start${x.reportedSeconds !== undefined ? `; engine reported ${formatDuration(x.reportedSeconds)}` : ''}` })),
      metrics: {},
    });
  }
  phases.push({ name: 'unexplained', status: 'ok', seconds: r.unexplainedSeconds, note: 'start → ready not covered by any known log line (imports, process start, engine set-up)', steps: [], metrics: {} });
  if ('seconds' in r.firstCompletion) phases.push({ name: 'first-completion', status: 'ok', seconds: r.firstCompletion.seconds, note: `POST ${r.firstCompletion.url}`, steps: [], metrics: { status: r.firstCompletion.status } });
  else phases.push(skippedPhase('first-completion', r.firstCompletion.skipped));
  return phases;
}

export async function wrapMode(ctx: Context, engines: Engines, command: string[], flags: ProfileFlags, runs: number, warmup: number, opts: EmitOptions, wall: Stopwatch): Promise<number> {
  let readyLog: RegExp | undefined;
  if (flags.readyLog) {
    try {
      readyLog = new RegExp(flags.readyLog);
    } catch (e) {
      throw invalidArg('--ready-log', 'a regular expression', flags.readyLog, (e as Error).message);
    }
  }
  const readyTimeout = posNum('--ready-timeout', flags.readyTimeout);
  const stopTimeout = posNum('--stop-timeout', flags.stopTimeout);
  const stageRules = (flags.stage ?? []).map(parseStageFlag);
  let last: WrapResult | null = null;
  const onRun = ({ index, warmup: w }: { index: number; warmup: boolean }) => {
    if (runs + warmup > 1) ctx.out.progressLine(`run ${index + 1}/${warmup + runs}${w ? ' (warmup, not counted)' : ''}: ready in ${formatDuration(last!.readySeconds)}`);
  };
  const measured = await repeatRuns({ runs, warmup, signal: ctx.signal, onRun }, async () => {
    last = await engines.wrap.runWrapped({
      command,
      readyUrl: flags.readyUrl,
      readyLog,
      completionUrl: flags.completion === false ? false : flags.completionUrl,
      readyTimeoutSeconds: readyTimeout,
      stopTimeoutSeconds: stopTimeout,
      stageRules,
      env: ctx.env,
      cwd: ctx.cwd,
      signal: ctx.signal,
      onLine: ctx.global.debug ? (l) => ctx.out.debug(`[server ${l.t.toFixed(2)}s] ${l.text}`) : undefined,
    });
    return wrapPhases(last);
  });
  const report = newReport('profile');
  const sum = summarizeRuns(measured);
  report.phases = sum.phases;
  report.total = sum.total;
  report.warnings.push(...sum.warnings);
  report.runs = { count: runs, warmup, samples: measured.map((r, index) => ({ index, total: r.reduce((a, p) => a + (p.seconds ?? 0), 0), phases: Object.fromEntries(r.map((p) => [p.name, p.seconds])) })) };
  report.target = { name: command.join(' '), kind: 'server', command, engine: last!.engine };
  const inputs = { phases: report.phases, total: report.total.seconds, rates: null, model: null, gpuPricePerHour: flags.gpuPrice ? posNum('--gpu-price', flags.gpuPrice) : null, warmInstances: flags.warmInstances ? intFlag('--warm-instances', flags.warmInstances, 1) : 1 };
  const rows = whatIfRows(inputs);
  // The server's own warmup runs before ready; the first request's cost is the first-completion row.
  report.findings = computeFindings(inputs, rows).filter((f) => f.id !== 'warmup');
  const un = report.phases.find((p) => p.name === 'unexplained');
  if (un?.seconds && report.total.seconds && un.seconds / report.total.seconds > 0.3) {
    report.findings.push({ id: 'unexplained', savesSeconds: null, message: `${formatDuration(un.seconds)} of the start-up is not explained by the server's log lines: run with --debug to see the timed log, or profile the pieces (coldstart profile MODEL)` });
  }
  report.details = {
    mode: 'wrap',
    readyBy: last!.readyBy,
    readySeconds: last!.readySeconds,
    stages: last!.stages,
    stop: last!.stop,
    whatIf: rows,
    wall: { seconds: wall.elapsed(), serverSeconds: last!.readySeconds + ('seconds' in last!.firstCompletion ? last!.firstCompletion.seconds : 0) },
  };
  return emitReport(ctx.out, report, ctx.cwd, { ...opts, extraHuman: [...(last!.engineNote ? [last!.engineNote, ...last!.timeline.map((l) => `  ${l.t.toFixed(3).padStart(9)} s  ${l.text.slice(0, 160)}`)] : []), `server ${last!.engine ?? '(engine not recognised)'}: ready after ${formatDuration(last!.readySeconds)} (by ${last!.readyBy}); stopped with ${last!.stop.signal} in ${formatDuration(last!.stop.seconds)}${last!.engineVersion ? `; ${last!.engine} ${last!.engineVersion}` : ''}`] });
}

