/** A warmup result as a report: its one phase, and the human lines under the table (first vs steady, cache, …). */
import { runPhase, publicPhase } from '../core/phases.js';
import { newReport, summarizeRuns, type Report } from '../core/report.js';
import { formatDuration } from '../core/format.js';
import type { Style } from '../core/output.js';
import { statsLine } from '../core/reporters/human.js';
import { recordWarmupPhase, type WarmupResult } from './warmup.js';
import { compileLines } from './compile/report.js';

/** The `coldstart/warmup@1` document of a warmup: the warmup phase (start-up cost) and the result as details. */
export async function warmupReport(result: WarmupResult): Promise<Report> {
  const phase = await runPhase('warmup', (h) => recordWarmupPhase(h, result));
  const report = newReport('warmup', 'coldstart/warmup@1');
  const sum = summarizeRuns([[publicPhase(phase)]]);
  report.phases = sum.phases;
  report.total = sum.total;
  report.warnings.push(...sum.warnings);
  report.target = { backend: result.backend, target: result.target };
  report.details = { ...result };
  return report;
}

function opsetText(opsets: Record<string, number>): string {
  const main = opsets[''] ?? opsets['ai.onnx'];
  const others = Object.keys(opsets).filter((k) => k !== '' && k !== 'ai.onnx').length;
  return `${main === undefined ? 'no ai.onnx opset' : `opset ${main}`}${others ? ` (+${others} other domain${others > 1 ? 's' : ''})` : ''}`;
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}×` : '—';
}

/** The human lines under the phase table: first vs steady, cold vs cached, what was fed and where things went. */
export function warmupLines(r: WarmupResult, s: Style): string[] {
  const d = r.details;
  const lines: string[] = [];
  if (r.steady) lines.push(`${s.bold('first vs steady')}  first ${formatDuration(r.firstSeconds)} · steady ${statsLine(r.steady)} → first is ${ratio(r.firstSeconds, r.steady.mean)} steady`);
  else lines.push(`${s.bold('first')}  ${formatDuration(r.firstSeconds)} (no steady-state runs: --runs 0)`);
  if (r.cached) {
    const when = d.coldMeasured === 'recorded' ? ` (cold recorded ${String(d.coldRecordedAt)}; --compare re-measures it)` : ' (both measured in this run)';
    lines.push(
      `${s.bold('session create')}  cold ${formatDuration(r.cached.coldSessionSeconds)} · cached graph ${formatDuration(r.cached.cachedSessionSeconds)} → ${ratio(r.cached.coldSessionSeconds, r.cached.cachedSessionSeconds)} faster, saves ${formatDuration(r.cached.coldSessionSeconds - r.cached.cachedSessionSeconds)}${when}`,
    );
  }
  if (r.backend === 'onnx') {
    const inputs = (d.inputs as Array<{ name: string; type: string; shape: number[]; source: string }>).map((i) => `${i.name} ${i.type}[${i.shape.join('x')}] (${i.source})`);
    lines.push(`${s.bold('inputs')}  ${inputs.join(', ')}`);
    const ort = d.ort as { version: string };
    lines.push(`${s.bold('runtime')}  onnxruntime-node ${ort.version}, ${String(d.provider)} execution provider; ${opsetText(d.opsets as Record<string, number>)}`);
    const c = d.cache as { enabled: boolean; hit?: boolean; written?: string | null; file?: string };
    if (c.enabled) lines.push(`${s.bold('cache')}  ${c.hit ? `hit: ${c.file}` : c.written ? `written: ${c.written}` : 'not written'}`);
  }
  if (r.backend === 'http') {
    lines.push(`${s.bold('server')}  ${String(d.api)} API at ${String(d.url)}${d.model ? `, model ${String(d.model)}` : ''}, ${String(d.endpoint)}${d.streaming ? ' (streamed)' : ''}`);
    const st = d.steadyTtft as { mean: number; stddev: number; min: number; max: number; n: number } | null;
    if (typeof d.firstTtftSeconds === 'number') lines.push(`${s.bold('ttft')}  first request ${formatDuration(d.firstTtftSeconds)}${st ? ` · steady ${statsLine(st)}` : ''}`);
  }
  if (r.backend === 'framework' && d.compile) lines.push(...compileLines(d.compile as Parameters<typeof compileLines>[0], s));
  else if (r.backend === 'framework') {
    lines.push(`${s.bold('python')}  ${String(d.python)}: torch ${String(d.torch)}${d.transformers ? `, transformers ${String(d.transformers)}` : ''}; ${String(d.class)} on ${String(d.device)}`);
  }
  for (const n of (d.notes as string[] | undefined) ?? []) lines.push(s.dim(`note: ${n}`));
  return lines;
}
