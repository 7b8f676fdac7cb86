/**
 * A report as a tree of timed spans, the shape every exporter takes: one root per cold start (per measured run
 * when the report holds several), a child per phase and a grandchild per step. A report holds durations, not
 * instants, so the spans are laid back to back in the order the phases happen, ending when the report is
 * exported: every span's duration is the report's number exactly. A phase that was not measured is a span of no
 * duration that says so (`coldstart.measured = false` and the reason), never a zero that looks measured.
 */
import { measurementOf, type PhaseResult } from '../core/phases.js';
import { epochSeconds } from '../core/clock.js';
import type { Report } from '../core/report.js';

export type AttrValue = string | number | boolean;
export type Attrs = Record<string, AttrValue>;

export interface SpanNode {
  name: string;
  /** Milliseconds since the epoch. */
  startMs: number;
  endMs: number;
  attributes: Attrs;
  error?: string;
  children: SpanNode[];
}

/** The attributes a phase carries: its state, the floor beside it and the efficiency, or why it was not measured. */
export function phaseAttributes(p: PhaseResult): Attrs {
  const m = measurementOf(p);
  const a: Attrs = { 'coldstart.phase': p.name, 'coldstart.status': p.status, 'coldstart.measured': m.state === 'measured' };
  if (m.state === 'measured') a['coldstart.seconds'] = m.seconds;
  else a['coldstart.not_measured.reason'] = `${m.state === 'left-out' ? 'left out: ' : ''}${m.reason}`;
  if (m.state === 'left-out') a['coldstart.left_out'] = true;
  if (p.status === 'estimated') a['coldstart.estimated'] = true;
  if (p.note) a['coldstart.note'] = p.note;
  if (p.floor) {
    a['coldstart.floor.seconds'] = p.floor.seconds;
    a['coldstart.floor.source'] = p.floor.source;
    if (m.state === 'measured' && m.seconds > 0) a['coldstart.efficiency'] = p.floor.seconds / m.seconds;
  }
  for (const [k, v] of Object.entries(p.metrics ?? {})) if (v !== null && v !== undefined) a[`coldstart.metric.${k}`] = v;
  return a;
}

function seconds(p: PhaseResult): number {
  const m = measurementOf(p);
  return m.state === 'measured' ? m.seconds : 0;
}

function phaseSpan(p: PhaseResult, startMs: number, withSteps: boolean): SpanNode {
  const endMs = startMs + seconds(p) * 1000;
  const children: SpanNode[] = [];
  if (withSteps) {
    let t = startMs;
    for (const s of p.steps) {
      children.push({ name: `${p.name}: ${s.name}`, startMs: t, endMs: t + s.seconds * 1000, attributes: { 'coldstart.step': s.name, 'coldstart.seconds': s.seconds, ...(s.note ? { 'coldstart.note': s.note } : {}) }, children: [] });
      t += s.seconds * 1000;
    }
  }
  return { name: p.name, startMs, endMs, attributes: phaseAttributes(p), ...(p.status === 'failed' ? { error: p.error?.message ?? 'the phase failed' } : {}), children };
}

/**
 * The root spans of a report. `endMs` is when the last one ends (now, by default). With several measured runs
 * (`runs.samples`), one root per run, each with its phases' seconds from that run (steps only on the last run,
 * the one whose detail the report keeps); otherwise one root with the report's phases.
 */
export function reportSpans(report: Report, rootAttrs: Attrs = {}, endMs = epochSeconds() * 1000): SpanNode[] {
  const name = `coldstart ${report.command}`;
  const samples = report.runs?.samples ?? [];
  const runs: Array<{ phases: PhaseResult[]; total: number | null; index?: number; last: boolean }> =
    samples.length > 1
      ? samples.map((s, i) => ({
          phases: report.phases.map((p) => ({ ...p, seconds: s.phases[p.name] ?? null, status: s.phases[p.name] === null || s.phases[p.name] === undefined ? (p.status === 'ok' ? 'skipped' : p.status) : p.status })),
          total: s.total,
          index: s.index,
          last: i === samples.length - 1,
        }))
      : [{ phases: report.phases, total: report.total.seconds, last: true }];
  const lengths = runs.map((r) => r.phases.reduce((a, p) => a + seconds(p), 0) * 1000);
  let t = endMs - lengths.reduce((a, b) => a + b, 0);
  return runs.map((r, i) => {
    const start = t;
    const children = r.phases.map((p) => {
      const sp = phaseSpan(p, t, r.last);
      t = sp.endMs;
      return sp;
    });
    const attrs: Attrs = { ...rootAttrs, 'coldstart.command': report.command, 'coldstart.schema': report.schema, 'coldstart.complete': r.total !== null };
    if (r.total !== null) attrs['coldstart.total.seconds'] = r.total;
    else attrs['coldstart.not_measured.reason'] = `incomplete: not measured: ${(report.total.missing ?? []).join(', ') || 'a phase'}`;
    if (r.index !== undefined) attrs['coldstart.run'] = r.index;
    for (const b of report.budgets) attrs[`coldstart.budget.${b.phase}`] = b.status;
    return { name, startMs: start, endMs: start + lengths[i]!, attributes: attrs, children };
  });
}
