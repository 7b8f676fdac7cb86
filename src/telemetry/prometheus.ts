/**
 * `--prometheus FILE`: the report in the node-exporter textfile format, so a fleet's p50/p90 of each phase is a
 * PromQL query (`histogram_quantile(0.9, sum by (le, phase) (rate(coldstart_phase_seconds_bucket[1d])))`).
 * Per phase: a histogram of the measured seconds (cumulative across runs on this node: the file's own earlier
 * counts are read back and added to), the last value and the floor as gauges, and whether the last run measured it
 * (`coldstart_phase_measured` 0/1 with the reason as a label — a phase that was not measured adds nothing to the
 * histogram, never a 0). The file is replaced atomically, as the textfile collector requires.
 */
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../core/atomic.js';
import { readInputText } from '../core/files.js';
import { measurementOf } from '../core/phases.js';
import type { Report } from '../core/report.js';

/** Bucket bounds (seconds): from a warm page-cache load to a long compile. */
export const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200] as const;

interface Histogram {
  buckets: number[];
  count: number;
  sum: number;
}

/** Label values are escaped as the text format says: backslash, double quote and newline. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

const HIST_RE = /^coldstart_(phase|total)_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$/;

/** The histograms of an earlier file of ours, keyed by `command|phase` (phase "total" for the total). */
export function readHistograms(text: string): Map<string, Histogram> {
  const out = new Map<string, Histogram>();
  for (const line of text.split('\n')) {
    const m = HIST_RE.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[3]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    const key = `${labels.command ?? ''}|${m[1] === 'total' ? 'total' : (labels.phase ?? '')}`;
    const h = out.get(key) ?? { buckets: BUCKETS.map(() => 0), count: 0, sum: 0 };
    const v = Number(m[4]);
    if (!Number.isFinite(v) || v < 0) continue;
    if (m[2] === 'sum') h.sum = v;
    else if (m[2] === 'count') h.count = v;
    else {
      const i = BUCKETS.findIndex((b) => String(b) === labels.le);
      if (i >= 0) h.buckets[i] = v;
    }
    out.set(key, h);
  }
  return out;
}

function observe(h: Histogram | undefined, seconds: number): Histogram {
  const n = h ?? { buckets: BUCKETS.map(() => 0), count: 0, sum: 0 };
  BUCKETS.forEach((b, i) => {
    if (seconds <= b) n.buckets[i]!++;
  });
  return { buckets: n.buckets, count: n.count + 1, sum: n.sum + seconds };
}

function histogramLines(name: string, labels: string, h: Histogram): string[] {
  return [
    ...BUCKETS.map((b, i) => `${name}_bucket{${labels},le="${b}"} ${h.buckets[i]}`),
    `${name}_bucket{${labels},le="+Inf"} ${h.count}`,
    `${name}_sum{${labels}} ${h.sum}`,
    `${name}_count{${labels}} ${h.count}`,
  ];
}

/** The textfile for `report`, folding in the histograms of `previous` (an earlier file of ours, or ''). */
export function prometheusText(report: Report, previous = ''): string {
  const hist = readHistograms(previous);
  const cmd = escapeLabel(report.command);
  const runs = report.runs?.samples?.length ? report.runs.samples : null;
  for (const p of report.phases) {
    const key = `${report.command}|${p.name}`;
    const values = runs ? runs.map((r) => r.phases[p.name]).filter((v): v is number => typeof v === 'number') : [measurementOf(p)].flatMap((m) => (m.state === 'measured' ? [m.seconds] : []));
    for (const v of values) hist.set(key, observe(hist.get(key), v));
  }
  const totals = runs ? runs.map((r) => r.total).filter((v): v is number => typeof v === 'number') : report.total.seconds !== null ? [report.total.seconds] : [];
  for (const v of totals) hist.set(`${report.command}|total`, observe(hist.get(`${report.command}|total`), v));

  const out: string[] = [];
  out.push('# HELP coldstart_phase_seconds Seconds each cold-start phase took (measured runs only).', '# TYPE coldstart_phase_seconds histogram');
  for (const [key, h] of hist) {
    const [c, phase] = key.split('|') as [string, string];
    if (phase !== 'total') out.push(...histogramLines('coldstart_phase_seconds', `command="${escapeLabel(c)}",phase="${escapeLabel(phase)}"`, h));
  }
  out.push('# HELP coldstart_total_seconds Seconds of the whole cold start (complete runs only).', '# TYPE coldstart_total_seconds histogram');
  for (const [key, h] of hist) {
    const [c, phase] = key.split('|') as [string, string];
    if (phase === 'total') out.push(...histogramLines('coldstart_total_seconds', `command="${escapeLabel(c)}"`, h));
  }
  out.push('# HELP coldstart_phase_last_seconds The last run: seconds of each measured phase.', '# TYPE coldstart_phase_last_seconds gauge');
  for (const p of report.phases) {
    const m = measurementOf(p);
    if (m.state === 'measured') out.push(`coldstart_phase_last_seconds{command="${cmd}",phase="${escapeLabel(p.name)}"} ${m.seconds}`);
  }
  out.push('# HELP coldstart_phase_floor_seconds The floor this machine allows for the phase (coldstart\'s own probes and loader).', '# TYPE coldstart_phase_floor_seconds gauge');
  for (const p of report.phases) if (p.floor) out.push(`coldstart_phase_floor_seconds{command="${cmd}",phase="${escapeLabel(p.name)}",source="${escapeLabel(p.floor.source)}"} ${p.floor.seconds}`);
  out.push('# HELP coldstart_phase_measured Whether the last run measured the phase (0 with the reason when not).', '# TYPE coldstart_phase_measured gauge');
  for (const p of report.phases) {
    const m = measurementOf(p);
    out.push(`coldstart_phase_measured{command="${cmd}",phase="${escapeLabel(p.name)}",state="${m.state}"${m.state === 'measured' ? '' : `,reason="${escapeLabel(m.reason.slice(0, 200))}"`}} ${m.state === 'measured' ? 1 : 0}`);
  }
  out.push('# HELP coldstart_last_run_timestamp_seconds When the last run was reported.', '# TYPE coldstart_last_run_timestamp_seconds gauge');
  out.push(`coldstart_last_run_timestamp_seconds{command="${cmd}"} ${Math.round(Date.parse(report.createdAt) / 1000)}`);
  return `${out.join('\n')}\n`;
}

/** Writes (atomically) the textfile, adding to the histograms of the file it replaces when that one is ours. */
export function writePrometheus(path: string, report: Report): void {
  let previous = '';
  if (existsSync(path)) {
    try {
      const t = readInputText(path, 'Prometheus textfile', 16 << 20);
      if (t.includes('# TYPE coldstart_phase_seconds histogram')) previous = t;
    } catch {
      /* not ours or not readable: started afresh */
    }
  }
  writeFileAtomic(path, prometheusText(report, previous));
}
