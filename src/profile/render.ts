/** Human lines beside the phase table: yours vs floor, what-if rows; and the model facts findings use. */
import type { PhaseSummary } from '../core/report.js';
import type { Style } from '../core/output.js';
import { formatDuration } from '../core/format.js';
import { planSynthetic } from '../models/synthetic.js';
import type { ModelFacts, WhatIfRow } from './findings.js';
import type { CudaProbeResult } from '../native.js';
import type { CacheMode } from './options.js';
import { bytesPerParam, weightsArg, type Target } from './target.js';
import { shellArg } from '../core/format.js';

/** floor / yours at two significant figures (never a bare 0.00). */
export function efficiencyText(e: number): string {
  return e >= 0.995 ? e.toFixed(2) : e.toPrecision(2);
}

/** Two columns for every step that has a floor: yours, floor, efficiency = floor / yours. */
export function yoursFloorLines(phases: readonly PhaseSummary[], st: Style): string[] {
  const rows = phases.filter((p) => p.name !== 'unexplained' && (p.status === 'ok' || p.status === 'estimated' || p.floor));
  if (!rows.some((p) => p.floor)) return [];
  const w = Math.max(...rows.map((p) => p.name.length));
  const out = ['', st.bold(`${'step'.padEnd(w)}  ${'yours'.padStart(9)}  ${'floor'.padStart(9)}  efficiency  floor measured by`)];
  for (const p of rows) {
    const yours = p.seconds === null ? '—' : formatDuration(p.seconds);
    const floor = p.floor ? formatDuration(p.floor.seconds) : '—';
    const eff = p.floor && p.seconds ? efficiencyText(p.floor.seconds / p.seconds) : '';
    out.push(`${p.name.padEnd(w)}  ${yours.padStart(9)}  ${floor.padStart(9)}  ${eff.padStart(10)}  ${p.floor?.source ?? ''}`);
  }
  return out;
}

export function whatIfLines(rows: readonly WhatIfRow[], s: Style): string[] {
  if (rows.length === 0) return [];
  const w = Math.max(...rows.map((r) => r.scenario.length));
  const out = ['', s.bold('what if')];
  for (const r of rows) {
    const pct = r.fromSeconds > 0 ? ` (${r.toSeconds >= r.fromSeconds ? '+' : ''}${(((r.toSeconds - r.fromSeconds) / r.fromSeconds) * 100).toFixed(0)}%)` : '';
    out.push(`  ${r.scenario.padEnd(w)}  ${r.phase.padEnd(8)} ${formatDuration(r.fromSeconds).padStart(9)} → ${formatDuration(r.toSeconds).padStart(9)}${pct}`);
  }
  // Where the gpu-load baseline comes from in the table, and that only its byte part moves.
  const base = rows.find((r) => r.baseline)?.baseline;
  if (base) out.push(s.dim(`  gpu-load rows: ${base}${/scales with bytes/.test(base) ? '' : ', all of it scales with bytes'}`));
  return out;
}

/** What the findings need to know about the model: its size, format and dtype, where it came from, GPU or not. */
export function modelFacts(t: Target, cuda: CudaProbeResult | null, cache: CacheMode, source: ModelFacts['source'], framework?: string): ModelFacts | null {
  if (!t.bytes || !t.format) return null;
  const arg = weightsArg(t);
  // warmup --framework takes a model folder or file (not an alias): the folder the stack loaded.
  const folder = t.dir ?? t.files[0] ?? null;
  const warmupCommand = framework && (framework === 'torch' || framework === 'transformers') && folder ? `coldstart warmup ${t.kind === 'dir' || t.kind === 'file' ? arg : shellArg(folder)} --framework ${framework}` : null;
  const repoBytes = t.spec ? planSynthetic(t.spec, 'safetensors').bytes : null;
  return {
    name: t.kind === 'file' || t.kind === 'dir' ? (t.dir ?? t.files[0] ?? t.name) : t.name,
    arg,
    warmupCommand,
    path: t.dir ?? t.files[0] ?? null,
    bytes: t.bytes,
    format: t.format,
    bytesPerParam: bytesPerParam(t.dtype),
    dtype: t.dtype ?? 'unknown',
    source,
    repoBytes,
    gpu: !!cuda?.available,
    cache: cache === 'warm' ? 'warm' : 'cold',
  };
}

