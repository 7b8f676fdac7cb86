/** How a `warmup --compile` result is shown: a WarmupResult for the phase table, and the human lines under it. */
import { formatBytes, formatDuration } from '../../core/format.js';
import type { Style } from '../../core/output.js';
import type { WarmupResult } from '../backend.js';
import type { CompileRun, CompileWarmup } from './torch.js';

function runJson(r: CompileRun | undefined) {
  if (!r) return null;
  return {
    importSeconds: r.importSeconds,
    loadSeconds: r.loadSeconds,
    firstForwardSeconds: r.firstSeconds,
    loadArtifactsSeconds: r.loadArtifactsSeconds,
    compileSeconds: r.compileSeconds,
    steady: r.steady ?? null,
    outputSha256: r.outputSha256,
    outputShape: r.outputShape,
    outputSummary: r.outputSummary,
    inductorCache: r.counters,
  };
}

export type CompileDetails = ReturnType<typeof compileDetails>;

export function compileDetails(cw: CompileWarmup) {
  return {
    fingerprint: cw.fingerprint,
    key: cw.before?.key ?? null,
    persistDir: cw.before?.persistDir ?? null,
    /** What a start found before this run: cached / missed / not-cached (null without --persist). */
    status: cw.before?.status ?? null,
    statusSummary: cw.before?.summary ?? null,
    missReasons: cw.before?.status === 'missed' ? cw.before.reasons : [],
    entry: cw.entry ?? null,
    cold: runJson(cw.cold),
    cached: runJson(cw.cached),
    /** cold compile / compile from the persisted cache, both measured in this invocation (null otherwise). */
    ratio: cw.ratio,
    outputsIdentical: cw.outputsIdentical,
    cacheArtifactsApi: cw.hasCacheArtifacts,
  };
}

export function compileWarmupResult(target: string, cw: CompileWarmup): WarmupResult {
  const run = (cw.cached ?? cw.cold)!;
  const info = run.info;
  const steps = [
    { name: 'import', seconds: run.importSeconds, note: run.importNote },
    { name: 'load', seconds: run.loadSeconds, note: `${String(info.class)} → ${String(cw.fingerprint.device)}` },
    ...(run.loadArtifactsSeconds !== null ? [{ name: 'load-artifacts', seconds: run.loadArtifactsSeconds, note: 'torch.compiler.load_cache_artifacts' }] : []),
    { name: 'first-forward', seconds: run.firstSeconds, note: `torch.compile ${String(cw.fingerprint.mode)}, ${run.phase === 'cached' ? 'from the persisted cache' : 'cold'}` },
  ];
  return {
    backend: 'framework',
    target,
    steps,
    firstSeconds: run.firstSeconds,
    ...(run.steady ? { steady: run.steady } : {}),
    details: {
      startupSeconds: steps.reduce((a, s) => a + s.seconds, 0),
      framework: 'torch',
      device: cw.fingerprint.device,
      python: cw.python,
      torch: cw.fingerprint.torch,
      ...info,
      compile: compileDetails(cw),
      notes: cw.notes,
    },
  };
}

export function compileLines(c: CompileDetails, s: Style): string[] {
  const fp = c.fingerprint;
  const lines: string[] = [];
  const where = fp.device === 'cuda' ? `${fp.gpu} (cc ${fp['compute capability']}, driver ${fp.driver ?? '?'}, CUDA ${fp.cuda ?? '?'})` : `cpu (${fp['cpu isa'] ?? 'isa ?'})`;
  lines.push(`${s.bold('compile')}  torch ${fp.torch}${fp.triton ? `, triton ${fp.triton}` : ''}; mode ${fp.mode}; ${where}`);
  if (c.status) lines.push(`${s.bold('cache')}  ${c.statusSummary}`);
  if (c.cold && c.cached) {
    lines.push(
      `${s.bold('cold vs cached')}  cold ${formatDuration(c.cold.compileSeconds)} · from the persisted cache ${formatDuration(c.cached.compileSeconds)} (fresh processes) → ${c.ratio ? `${c.ratio.toFixed(1)}×` : '—'} faster, saves ${formatDuration(c.cold.compileSeconds - c.cached.compileSeconds)}`,
    );
    lines.push(`${s.bold('output')}  first forward ${c.outputsIdentical ? 'identical' : 'DIFFERS'} (sha256 ${c.cached.outputSha256.slice(0, 12)}…${c.outputsIdentical ? '' : ` vs ${c.cold.outputSha256.slice(0, 12)}…`})`);
  } else if (c.cold) lines.push(`${s.bold('cold')}  first forward under torch.compile ${formatDuration(c.cold.compileSeconds)}`);
  else if (c.cached) lines.push(`${s.bold('cached')}  first forward from the persisted cache ${formatDuration(c.cached.compileSeconds)}`);
  const k = c.cached?.inductorCache;
  if (k) lines.push(`${s.bold('inductor')}  FX-graph cache ${k.fxgraphHit} hit / ${k.fxgraphMiss} miss · AOTAutograd ${k.autogradHit} hit / ${k.autogradMiss} miss`);
  if (c.entry) lines.push(`${s.bold('persisted')}  ${c.entry.dir} (${formatBytes(c.entry.bytes)}, ${c.entry.files} files${c.entry.written ? ', written now' : ''})`);
  return lines;
}
