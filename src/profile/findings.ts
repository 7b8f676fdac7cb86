/**
 * What-if rows and ranked findings, computed from the measured phases and the measured rates (never canned
 * text): each row scales only the part of a measured (or estimated) phase that scales with bytes — the read and
 * copy the table shows, or for a stack the floor's load of the same bytes — by the ratio the load model predicts
 * for the alternative, and keeps the rest (imports, model build, allocation) as it is. Each finding with a row is
 * that row's saving (one computation feeds both), ranked by seconds saved.
 */
import type { Finding, PhaseSummary } from '../core/report.js';
import { predictDownloadSeconds, predictLoadSeconds, type Rates } from './estimate.js';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import { estimatePrefetchSaving } from '../load/prefetch.js';
import { DTYPE_SIZES } from '../formats/dtypes.js';

export interface WhatIfRow {
  id: string;
  scenario: string;
  phase: string;
  /** The current time of the phase (measured or estimated), seconds. */
  fromSeconds: number;
  toSeconds: number;
  basis: string;
  /** The part of fromSeconds that was scaled by bytes (the rest kept as is); absent for rows not scaled by bytes. */
  byteSeconds?: number;
  /** How fromSeconds and byteSeconds follow from the table's numbers (shared by every byte-scaled row). */
  baseline?: string;
}

export interface ModelFacts {
  /** What the user would run, e.g. `llama3-8b`. */
  name: string;
  /**
   * The weights as other commands' resolver names them (target.ts weightsArg): every suggested command is built
   * from it, so it runs as printed; null: not on disk (no prefetch/convert suggestion).
   */
  arg?: string | null;
  /** `coldstart warmup …` that loads the same model the way the stack did; null: none would run (no stack). */
  warmupCommand?: string | null;
  /** Where the weights are on disk (what `coldstart convert` takes), when local. */
  path?: string | null;
  bytes: number;
  format: 'safetensors' | 'bin';
  /** Bytes per parameter of the current dtype (2 for bf16/fp16, 4 for fp32). */
  bytesPerParam: number;
  dtype: string;
  /** Download state: cached (nothing fetched), downloaded (bytes fetched), local (no Hub repo). */
  source: 'cached' | 'downloaded' | 'local' | 'synthetic';
  /** Bytes a download of the real model would move (synthetic/local: the Hub repo's size when known). */
  repoBytes?: number | null;
  gpu: boolean;
  cache: 'cold' | 'warm';
}

export interface FindingsInput {
  phases: readonly PhaseSummary[];
  /** The measured total; null when incomplete (no finding is computed from it then). */
  total: number | null;
  /** When the total is incomplete: the part that was measured (or estimated) and the phases it lacks. */
  partialTotal?: { seconds: number; missing: readonly string[] } | null;
  rates: Rates | null;
  model: ModelFacts | null;
  gpuPricePerHour?: number | null;
  /** Warm instances the warm-pool trade-off prices (--warm-instances, default 1). */
  warmInstances?: number;
  /** The native loader measured with a cold and a warm page cache in this run (the prefetch hook). */
  coldWarmRead?: { coldSeconds: number; warmSeconds: number } | null;
  /** Host RAM: weights larger than it cannot stay in the page cache. */
  hostMemoryBytes?: number;
  /** gpu-load measured again with a warm page cache (the loader, right after the cold runs). */
  warmLoadSeconds?: number | null;
}

/** Quantised sizes in bits per weight including scales: int8 per-channel ≈ 8.06, 4-bit group-128 with fp16 scale+zero ≈ 4.25. */
export const BITS_8 = 8.06;
export const BITS_4 = 4.25;
export const HOURS_PER_MONTH = 730;

function phaseSeconds(phases: readonly PhaseSummary[], name: string): number | null {
  const p = phases.find((q) => q.name === name);
  return p && (p.status === 'ok' || p.status === 'estimated') && p.seconds !== null ? p.seconds : null;
}

/** The gpu-load time a what-if starts from, the part of it that scales with bytes, and how that part was found. */
export interface LoadBasis {
  /** The row's baseline: the gpu-load phase as the table shows it (the loader's read + copy in host mode). */
  seconds: number;
  /** The part that scales with bytes (≤ seconds); the rest stays as it is in every row. */
  byteSeconds: number;
  /** The load itself was measured by the phase (not a host read standing in for a skipped GPU load). */
  measured: 'gpu-load' | 'host read';
  basis: string;
}

/**
 * THE byte-proportional part of gpu-load, from the numbers the table shows: the loader's read and copy steps
 * (their overlap counted once: copy × overlapFraction), a host read's one step, or for a stack's load (which also
 * builds the model) the floor's load of the same bytes beside it. An estimated phase is all bytes.
 */
export function loadBasis(phases: readonly PhaseSummary[]): LoadBasis | null {
  const p = phases.find((q) => q.name === 'gpu-load');
  if (!p) return null;
  const s = phaseSeconds(phases, 'gpu-load');
  const step = (n: string) => p.steps.find((q) => q.name === n)?.seconds ?? null;
  const read = step('read');
  const copy = step('copy') ?? 0;
  const frac = typeof p.metrics.overlapFraction === 'number' && Number.isFinite(p.metrics.overlapFraction) ? Math.min(1, Math.max(0, p.metrics.overlapFraction)) : 0;
  const overlap = copy * frac;
  const hostStep = step('host read (page cache as found)') ?? (typeof p.metrics.hostReadSeconds === 'number' ? p.metrics.hostReadSeconds : null);
  const loader = read !== null ? read + copy - overlap : hostStep;
  const loaderText = read !== null ? `read ${formatDuration(read)}${copy > 0 ? ` + copy ${formatDuration(copy)}` : ''}${overlap > 0 ? ` − ${formatDuration(overlap)} overlapped` : ''}` : `host read ${formatDuration(hostStep ?? 0)}`;
  if (s !== null) {
    if (p.floor && p.floor.seconds > 0) {
      const b = Math.min(s, p.floor.seconds);
      return { seconds: s, byteSeconds: b, measured: 'gpu-load', basis: `${formatDuration(b)} of gpu-load ${formatDuration(s)} scales with bytes (the floor's load of the same bytes); the rest kept` };
    }
    if (loader === null || p.status === 'estimated') return { seconds: s, byteSeconds: s, measured: 'gpu-load', basis: `gpu-load ${formatDuration(s)}` };
    const b = Math.min(s, loader);
    return { seconds: s, byteSeconds: b, measured: 'gpu-load', basis: `${loaderText} of gpu-load ${formatDuration(s)} scales with bytes; the rest kept` };
  }
  // A GPU load skipped with a host measurement: the baseline is the read (+ copy) the table shows.
  if (loader !== null && p.status === 'skipped') return { seconds: loader, byteSeconds: loader, measured: 'host read', basis: read !== null ? `${loaderText} = ${formatDuration(loader)}` : loaderText };
  return null;
}

/**
 * The first request and a warmed one, from the warmup phase's metrics. The phase itself may hold more than the
 * first request (an ONNX session's creation, a server's start-up): a warmup before traffic saves only the first
 * request's extra cost over a warmed one, never the start-up that every instance pays anyway.
 */
export function firstRequest(phases: readonly PhaseSummary[]): { first: number; steady: number | null; saves: number } | null {
  const p = phases.find((q) => q.name === 'warmup');
  if (!p || p.status !== 'ok' || p.seconds === null) return null;
  const num = (k: string) => (typeof p.metrics[k] === 'number' && Number.isFinite(p.metrics[k]) ? (p.metrics[k] as number) : null);
  // --framework: firstForwardSeconds/steadyForwardSeconds; onnx, --url: firstSeconds/steadyMeanSeconds.
  const first = num('firstForwardSeconds') ?? num('firstSeconds');
  if (first === null) return null;
  const steady = num('steadyForwardSeconds') ?? num('steadyMeanSeconds');
  return { first, steady, saves: Math.max(0, first - (steady ?? 0)) };
}

export function whatIfRows(inp: FindingsInput): WhatIfRow[] {
  const rows: WhatIfRow[] = [];
  const m = inp.model;
  const r = inp.rates;
  const load = loadBasis(inp.phases);
  if (m && load) {
    const cur = r ? predictLoadSeconds(r, { bytes: m.bytes, format: m.format, cache: m.cache, gpu: m.gpu }) : null;
    // Only the byte part moves: imports, building the model and allocation are the same for any weights.
    const scale = (alt: { bytes?: number; format?: 'safetensors' | 'bin'; cache?: 'cold' | 'warm' }): number | null => {
      if (!r || !cur) return null;
      const p = predictLoadSeconds(r, { bytes: alt.bytes ?? m.bytes, format: alt.format ?? m.format, cache: alt.cache ?? m.cache, gpu: m.gpu });
      return p === null ? null : load.seconds - load.byteSeconds + load.byteSeconds * (p / cur);
    };
    const basis = `${load.basis}; × load-model ratio`;
    const push = (row: Omit<WhatIfRow, 'phase' | 'fromSeconds' | 'basis' | 'byteSeconds'>) => rows.push({ ...row, phase: 'gpu-load', fromSeconds: load.seconds, basis, byteSeconds: load.byteSeconds, baseline: load.basis });
    const other = m.format === 'bin' ? 'safetensors' : 'bin';
    const f = scale({ format: other });
    if (f !== null) push({ id: `format-${other}`, scenario: m.format === 'bin' ? 'safetensors instead of .bin' : '.bin instead of safetensors', toSeconds: f });
    const per = m.bytesPerParam;
    const params = m.bytes / per;
    const [half, full] = [DTYPE_SIZES.BF16, DTYPE_SIZES.F32];
    if (per === half) {
      const t = scale({ bytes: params * full });
      if (t !== null) push({ id: 'dtype-fp32', scenario: `fp32 instead of ${m.dtype.toLowerCase()} (${formatBytes(params * full)})`, toSeconds: t });
    } else if (per === full) {
      const t = scale({ bytes: params * half });
      if (t !== null) push({ id: 'dtype-bf16', scenario: `bf16 instead of fp32 (${formatBytes(params * half)})`, toSeconds: t });
    }
    for (const [bits, id] of [
      [BITS_8, 'quant-8bit'],
      [BITS_4, 'quant-4bit'],
    ] as const) {
      const b = (params * bits) / 8;
      const t = scale({ bytes: b, format: 'safetensors' });
      if (t !== null) push({ id, scenario: `${id === 'quant-8bit' ? '8-bit' : '4-bit'} safetensors (${formatBytes(b)}, ${bits} bits/weight incl. scales)`, toSeconds: t });
    }
    const otherCache = m.cache === 'cold' ? 'warm' : 'cold';
    const c = scale({ cache: otherCache });
    const fitsInRam = inp.hostMemoryBytes === undefined || m.bytes < inp.hostMemoryBytes * 0.8;
    const cw = inp.coldWarmRead ?? (inp.warmLoadSeconds != null && load.measured === 'gpu-load' ? { coldSeconds: load.seconds, warmSeconds: inp.warmLoadSeconds } : null);
    if (otherCache === 'warm' && cw && cw.coldSeconds > 0) {
      // The ratio measured by one engine (the loader cold, then again with a warm page cache), applied to the byte
      // part of the same baseline as every other row. The prefetch finding is this row's saving.
      const ratio = Math.min(1, cw.warmSeconds / cw.coldSeconds);
      rows.push({
        id: 'page-cache-warm',
        scenario: 'weights already in the page cache (measured: the loader cold → warm)',
        phase: 'gpu-load',
        fromSeconds: load.seconds,
        toSeconds: load.seconds - load.byteSeconds * (1 - ratio),
        basis: `${load.basis}; × the loader's warm/cold ratio (${formatDuration(cw.coldSeconds)} → ${formatDuration(cw.warmSeconds)}, both measured)`,
        byteSeconds: load.byteSeconds,
        baseline: load.basis,
      });
    } else if (c !== null && r?.diskReadBytesPerSecond && (otherCache === 'cold' || fitsInRam)) {
      push({ id: `page-cache-${otherCache}`, scenario: otherCache === 'warm' ? 'weights already in the page cache' : 'weights not in the page cache (fresh node)', toSeconds: c });
    }
  }
  // Cached vs not.
  const dl = phaseSeconds(inp.phases, 'download');
  if (m && r) {
    const bytes = m.repoBytes ?? m.bytes;
    const pred = predictDownloadSeconds(r, bytes);
    if (m.source === 'downloaded' && dl !== null && dl > 0) rows.push({ id: 'cached', scenario: 'weights pre-cached (coldstart cache)', phase: 'download', fromSeconds: dl, toSeconds: 0, basis: 'measured download' });
    else if ((m.source === 'cached' || m.source === 'synthetic' || m.source === 'local') && pred !== null)
      rows.push({ id: 'not-cached', scenario: `not cached: download ${formatBytes(bytes)}`, phase: 'download', fromSeconds: dl ?? 0, toSeconds: pred, basis: 'measured network rate' });
  }
  return rows;
}

/** Ranked recommendations: each is the saving of a measured row; largest saving first. */
export function computeFindings(inp: FindingsInput, rows: readonly WhatIfRow[] = whatIfRows(inp)): Finding[] {
  const out: Finding[] = [];
  const m = inp.model;
  const row = (id: string) => rows.find((r) => r.id === id);
  const conv = row('format-safetensors');
  if (m?.format === 'bin' && conv && conv.toSeconds < conv.fromSeconds) {
    out.push({ id: 'convert-bin', savesSeconds: conv.fromSeconds - conv.toSeconds, message: `weights are .bin (pickle): converting to safetensors — expected gpu-load ${formatDuration(conv.fromSeconds)} → ${formatDuration(conv.toSeconds)}`, ...(m.arg ? { command: `coldstart convert ${m.arg}` } : {}) });
  }
  const cached = row('cached');
  if (cached && m) out.push({ id: 'not-cached', savesSeconds: cached.fromSeconds, message: `weights were not cached: pre-caching saves the ${formatDuration(cached.fromSeconds)} download`, command: `coldstart cache ${m.name}` });
  const fp = row('dtype-bf16');
  if (fp && m?.gpu && fp.toSeconds < fp.fromSeconds) out.push({ id: 'dtype-bf16', savesSeconds: fp.fromSeconds - fp.toSeconds, message: `weights are fp32: bf16 halves the bytes — gpu-load ${formatDuration(fp.fromSeconds)} → ${formatDuration(fp.toSeconds)}` });
  const q4 = row('quant-4bit');
  // Smaller weights change what the GPU holds: suggested only where a GPU load was measured.
  if (q4 && m?.gpu && q4.toSeconds < q4.fromSeconds) {
    out.push({ id: 'quant-4bit', savesSeconds: q4.fromSeconds - q4.toSeconds, message: `4-bit weights would cut gpu-load to ~${Math.round((q4.toSeconds / q4.fromSeconds) * 100)}% (${formatDuration(q4.fromSeconds)} → ${formatDuration(q4.toSeconds)}), if the accuracy loss is acceptable` });
  }
  const fr = firstRequest(inp.phases);
  if (fr && fr.saves > 0.05) {
    const than = fr.steady !== null ? `; a warmed one takes ${formatDuration(fr.steady)}` : ' (no steady request was timed: the saving is at most this)';
    out.push({ id: 'warmup', savesSeconds: fr.saves, message: `no warmup before traffic: the first request takes ${formatDuration(fr.first)}${than}. One request before taking traffic saves the first user ${formatDuration(fr.saves)}`, ...(m?.warmupCommand ? { command: m.warmupCommand } : {}) });
  }
  // Yours vs floor: a step of the stack that takes much longer than this machine allows for the same bytes.
  for (const p of inp.phases) {
    if (p.status !== 'ok' || p.seconds === null || !p.floor || p.floor.seconds <= 0) continue;
    if (p.seconds > p.floor.seconds * 1.5) {
      out.push({ id: `floor-${p.name}`, savesSeconds: p.seconds - p.floor.seconds, message: `${p.name}: your stack takes ${formatDuration(p.seconds)}; this machine does the same step in ${formatDuration(p.floor.seconds)} (${p.floor.source}; efficiency ${(p.floor.seconds / p.seconds).toPrecision(2)})` });
    }
  }
  // Weights read cold: measured cold vs warm read of the same files by the loader (prefetch overlaps the read with start-up).
  // The saving is the prefetch engine's own rule (estimatePrefetchSaving); no head start is measured here, so it is "up to".
  // The numbers are the page-cache-warm row's (both measured by the loader): the finding and the row agree.
  const cwRow = inp.coldWarmRead ? row('page-cache-warm') : undefined;
  const pf = cwRow && m?.cache === 'cold' ? estimatePrefetchSaving({ residentFractionBefore: null, coldLoadSeconds: cwRow.fromSeconds, warmLoadSeconds: cwRow.toSeconds, headStartSeconds: null }) : null;
  if (cwRow && m && pf?.upToSeconds) {
    out.push({ id: 'prefetch', savesSeconds: pf.upToSeconds, message: `weights were read cold: prefetching them during start-up takes gpu-load from ${formatDuration(cwRow.fromSeconds)} to ${formatDuration(cwRow.toSeconds)} (saves up to ${formatDuration(pf.upToSeconds)}; the loader measured ${formatDuration(inp.coldWarmRead!.coldSeconds)} cold, ${formatDuration(inp.coldWarmRead!.warmSeconds)} warm)`, ...(m.arg ? { command: `coldstart prefetch ${m.arg}` } : {}) });
  }
  const r = inp.rates;
  const gl = phaseSeconds(inp.phases, 'gpu-load');
  if (r?.diskReadBytesPerSecond && r.h2dBytesPerSecond && gl !== null && m?.cache === 'cold' && r.diskReadBytesPerSecond < r.h2dBytesPerSecond * 0.5) {
    const warmRow = row('page-cache-warm');
    if (warmRow && warmRow.toSeconds < warmRow.fromSeconds) {
      out.push({ id: 'disk-bound', savesSeconds: warmRow.fromSeconds - warmRow.toSeconds, message: `gpu-load is disk-bound (${formatRate(r.diskReadBytesPerSecond)} read vs ${formatRate(r.h2dBytesPerSecond)} to the GPU): faster local NVMe or a warm page cache takes the native loader from ${formatDuration(warmRow.fromSeconds)} to ${formatDuration(warmRow.toSeconds)}` });
    }
  }
  const ci = inp.phases.find((p) => p.name === 'cuda-init');
  const cuInit = ci?.steps.find((s) => s.name === 'cuInit')?.seconds;
  if (typeof cuInit === 'number' && cuInit > 1) {
    out.push({ id: 'cuda-persistence', savesSeconds: null, message: `cuInit alone takes ${formatDuration(cuInit)}: driver persistence (nvidia-smi -pm 1 or nvidia-persistenced) usually removes most of it`, command: 'nvidia-smi -pm 1' });
  }
  // An incomplete total still prices the pool from what was measured (or estimated), said as "at least".
  const pt = inp.total === null ? inp.partialTotal : null;
  const start = inp.total ?? pt?.seconds ?? null;
  if (start !== null && start >= WARM_POOL_MIN_SECONDS) {
    // The warm pool is a trade-off, not a saving to rank: what N idle instances cost against the start they avoid.
    const n = inp.warmInstances ?? 1;
    const saves = pt ? `at least ${formatDuration(start)} (the measured and estimated phases; ${pt.missing.join(', ')} not measured)` : formatDuration(start);
    if (inp.gpuPricePerHour) {
      const month = inp.gpuPricePerHour * HOURS_PER_MONTH * n;
      out.push({ id: 'warm-instance', savesSeconds: null, message: `warm pool: keeping ${n} warm instance(s) costs $${month.toFixed(0)}/month at $${inp.gpuPricePerHour}/h per GPU and saves ${saves} on each scale-up they absorb (up to ${n} at once)` });
    } else {
      out.push({ id: 'warm-instance', savesSeconds: null, message: `warm pool: each warm instance saves ${saves} per scale-up it absorbs; pass --gpu-price USD_PER_HOUR to see what keeping them costs per month` });
    }
  }
  // A finding must be worth acting on: at least 50 ms and 2% of the cold start.
  const floor = Math.max(MIN_SAVING_SECONDS, MIN_SAVING_FRACTION * (inp.total ?? 0));
  return out.filter((f) => f.savesSeconds === null || f.savesSeconds >= floor).sort((a, b) => (b.savesSeconds ?? -1) - (a.savesSeconds ?? -1));
}

export const MIN_SAVING_SECONDS = 0.05;
export const MIN_SAVING_FRACTION = 0.02;
/** A cold start shorter than this is not worth a warm pool. */
export const WARM_POOL_MIN_SECONDS = 1;
