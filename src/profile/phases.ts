/**
 * The phases of the floor profile (no stack given, and the floor beside a stack): container, cuda-init,
 * download, gpu-load by the native loader, warmup of an ONNX model or a running server. Each takes the plan and
 * what earlier steps measured, and returns its row with the facts later steps and the report need: a value,
 * never a write into shared state.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runPhase, type PhaseResult, type PhaseHandle } from '../core/phases.js';
import { Stopwatch } from '../core/clock.js';
import { formatBytes, formatRate } from '../core/format.js';
import type { CudaProbeResult } from '../native.js';
import { recordInsideContainer, recordContainerStart, sinceInterval, recordSince } from '../platform/container.js';
import { hfEndpoint } from '../hub/env.js';
import { predictDownloadSeconds, predictLoadSeconds, predictLoadSigma, formatWithSigma, type Rates } from './estimate.js';
import { hostRead, type HostReadResult } from '../load/host-read.js';
import type { GpuLoadResult, WarmupOptions, RepoFileSize } from './engines.js';
import { localWeights, describeFiles, PROFILE_FORMATS, weightsArg, type Target } from './target.js';
import { selectWeightNames, weightGlobs } from '../formats/weights.js';
import type { ModelPlan, ProfileDeps } from './plan.js';

/** A phase's row (with the error that broke it, if one did). */
export type PhaseRow = PhaseResult & { cause?: unknown };

/** What a step returns: its row and what it measured for later steps and the report. */
export interface Step<F> {
  phase: PhaseRow;
  facts: F;
}

/** Seconds a step spent inside the measured sequence on work that is not part of a cold start, by name. */
export type Outside = Record<string, number>;

/** A Hub model fetched (or found cached) by the download phase. */
export interface Downloaded {
  bytes: number;
  fromCache: boolean;
  snapshotDir: string;
}

export async function containerPhase(plan: ModelPlan, deps: ProfileDeps): Promise<PhaseRow> {
  return runPhase('container', async (h: PhaseHandle) => {
    const c = plan.options.container;
    if (c.image) {
      const r = await deps.engines.container.timeContainerStart({ image: c.image, runtime: c.runtime, runArgs: c.runArgs ? [...c.runArgs] : undefined, env: deps.env, signal: deps.signal });
      recordContainerStart(h, r);
      return;
    }
    const inside = deps.engines.container.measureInsideContainer();
    if (c.since) {
      recordSince(h, sinceInterval(c.since.epochSeconds, inside), c.since.text);
      return;
    }
    if (!inside) h.notApplicable('not inside a container: pass --since TIME (when the start was scheduled) or --image IMG (time a container start with podman/docker)');
    recordInsideContainer(h, inside);
  });
}

/** cuda-init by the native probe (cuInit, enumeration, a primary context per device); its result is the floor's. */
export async function cudaInitPhase(plan: ModelPlan, deps: ProfileDeps): Promise<Step<{ cuda: CudaProbeResult | null }>> {
  let cuda: CudaProbeResult | null = null;
  const phase = await runPhase('cuda-init', async (h: PhaseHandle) => {
    const n = deps.engines.native();
    if (!n.ok) h.skip(`native addon unavailable: ${n.reason}`);
    const devices = plan.options.devices;
    const p = await n.addon.cudaProbe({ context: true, ...(devices ? { devices: [...devices] } : {}) });
    cuda = p;
    if (!p.available) h.skip('no CUDA driver', `${p.stage ?? 'probe'}: ${p.reason ?? 'unavailable'}`);
    h.addStep('cuInit', p.timings.init, p.driverVersion ? `driver API ${Math.floor(p.driverVersion / 1000)}.${(p.driverVersion % 1000) / 10}` : undefined);
    h.addStep('enumerate', p.timings.enumerate, `${p.devices.length} device(s)`);
    for (const d of p.devices) {
      if (typeof d.contextSeconds === 'number') h.addStep(`primary context gpu${d.index}`, d.contextSeconds, d.name);
      else if (d.contextError) h.addStep(`primary context gpu${d.index}`, 0, `failed: ${d.contextError}`);
    }
    h.metric('devices', p.devices.length);
    h.note = `${p.devices.length} device(s): ${[...new Set(p.devices.map((d) => d.name))].join(', ')}`;
    h.setSeconds(p.timings.init + p.timings.enumerate + p.timings.context);
  });
  return { phase, facts: { cuda } };
}

export interface DownloadFacts {
  /** The target as the download left it: the Hub's weight files and their size, or the files fetched. */
  target: Target;
  downloaded: Downloaded | null;
  assumptions: string[];
}

export async function downloadPhase(plan: ModelPlan, deps: ProfileDeps, before: { target: Target; rates: Rates | null }): Promise<Step<DownloadFacts>> {
  let t = before.target;
  let downloaded: Downloaded | null = null;
  const assumptions: string[] = [];
  const phase = await runPhase('download', async (h: PhaseHandle) => {
    // Nothing to download is a measurement (0 s, like a cached snapshot): a download budget is met, not unmeasured.
    const nothing = t.synthetic ? `nothing to download: synthetic checkpoint${t.dir ? ` in ${t.dir}` : ''}${t.repo && t.kind !== 'demo' ? ` (see the not-cached what-if row for ${t.repo})` : ''}` : t.kind === 'dir' || t.kind === 'file' ? 'local files: nothing to download' : null;
    if (nothing) {
      h.note = nothing;
      h.setSeconds(0);
      return;
    }
    const eng = deps.engines.download;
    const env = deps.env;
    const revision = plan.options.revision ?? 'main';
    const repo = t.repo!;
    const noBytes = !plan.options.download || plan.options.estimate;
    let include: string[] | undefined;
    let weightBytes = t.bytes ?? 0;
    if (noBytes) {
      // Move no weight bytes: zero when cached (checked first: it needs no network), else file sizes over the
      // measured rate to the endpoint.
      const cached = eng.findCachedSnapshot(repo, revision, env);
      if (cached) {
        h.note = `cached at ${cached}`;
        h.metric('cacheDir', cached);
        downloaded = { bytes: 0, fromCache: true, snapshotDir: cached };
        h.setSeconds(0);
        return;
      }
    }
    let sizes: RepoFileSize[] | null = null;
    try {
      sizes = await eng.repoFileSizes({ repo, revision, env });
    } catch (e) {
      // An estimate can do without the Hub's file list when the model table knows the weights' size.
      if (!(noBytes && t.bytes)) throw e;
      assumptions.push(`download size: the Hub's file list was not available (${(e as Error).message}); using the model table's ${formatBytes(t.bytes)} (parameters × dtype)`);
    }
    if (sizes) {
      // The Hub's file list through the same rule on names as a local folder (top level; no index read yet).
      const top = sizes.filter((f) => !f.path.includes('/'));
      const sel = selectWeightNames(top.map((f) => f.path), PROFILE_FORMATS);
      const chosen = new Set(sel.names);
      include = weightGlobs(sel);
      weightBytes = top.filter((f) => chosen.has(f.path)).reduce((a, f) => a + f.bytes, 0);
      t = { ...t, format: sel.format as Target['format'], bytes: weightBytes };
    }
    if (noBytes) {
      const rates = before.rates;
      const pred = rates ? predictDownloadSeconds(rates, weightBytes) : null;
      if (pred === null) h.skip(`not cached; no network rate to ${hfEndpoint(env)} could be measured, so the ${formatBytes(weightBytes)} download is not predicted`);
      h.estimated = true;
      h.note = `not cached: ${formatBytes(weightBytes)} at ${formatRate(rates!.networkBytesPerSecond!)} (measured on ${hfEndpoint(env)})`;
      h.metric('bytes', weightBytes);
      h.setSeconds(pred);
      return;
    }
    const r = await eng.downloadRepo({ repo, revision, include, env, signal: deps.signal });
    eng.recordDownloadPhase(h, r);
    downloaded = { bytes: r.bytesDownloaded, fromCache: r.fromCache, snapshotDir: r.snapshotDir };
    if (r.fromCache) h.note = h.note ?? `cached at ${r.snapshotDir}`;
    const local = localWeights(r.snapshotDir);
    if (local.skipped) assumptions.push(`weights: ${local.skipped}`);
    t = describeFiles({ ...t, ...local });
  });
  return { phase, facts: { target: t, downloaded, assumptions } };
}

export interface LoadFacts {
  /** The native loader's load of the weights (GPU mode, or host mode without a GPU), null when it did not run. */
  load: GpuLoadResult | null;
  outside: Outside;
}

export async function gpuLoadPhase(plan: ModelPlan, deps: ProfileDeps, before: { target: Target; cuda: CudaProbeResult | null; rates: Rates | null }): Promise<Step<LoadFacts>> {
  let load: GpuLoadResult | null = null;
  const outside: Outside = {};
  const t = before.target;
  const cache = plan.options.cache;
  const phase = await runPhase('gpu-load', async (h: PhaseHandle) => {
    if (plan.options.estimate) {
      const rates = before.rates;
      if (!rates || !t.bytes || !t.format) h.skip('no rates or model size to predict from');
      const gpu = !!before.cuda?.available;
      const state = cache === 'warm' ? 'warm' : 'cold';
      const input = { bytes: t.bytes, format: t.format, cache: state, gpu } as const;
      const p = predictLoadSeconds(rates, input);
      if (p === null) h.skip('no read rate measured');
      h.estimated = true;
      const sigma = predictLoadSigma(rates, input, p);
      h.metric('bytes', t.bytes);
      h.metric('sigmaSeconds', sigma);
      h.note = `${formatWithSigma(p, sigma)}: ${formatBytes(t.bytes)} ${t.format}, ${state} page cache${gpu ? '' : ', no GPU (host read only)'}`;
      h.setSeconds(p);
      return;
    }
    if (t.files.length === 0) h.skip('no weight files to load (the download phase did not provide them)');
    const eng = deps.engines.gpuLoad;
    if (t.format === 'safetensors') {
      // The loader decides GPU or host mode itself (and says why in host mode).
      const sw = new Stopwatch();
      const bar = deps.events?.progress?.('gpu-load: the native loader');
      const r = await eng.runGpuLoad({ files: [...t.files], devices: plan.options.devices ? [...plan.options.devices] : undefined, ...(plan.options.tp ? { tp: plan.options.tp } : {}), cache, limits: true, verify: plan.options.verify, ...(plan.options.direct !== undefined ? { direct: plan.options.direct } : {}), signal: deps.signal, onProgress: (d, n) => bar?.update(d, n) }).finally(() => bar?.end());
      // The phase is the load itself; measuring the limits, evicting/warming the page cache and checking headers
      // happen in the same call but are not part of a cold start: they are accounted outside the phases.
      outside.gpuLoadSetup = Math.max(0, sw.elapsed() - r.seconds);
      load = r;
      eng.recordGpuLoadPhase(h, r);
      return;
    }
    const r = hostRead(t.files, 16 << 20, deps.signal);
    h.metric('bytes', r.bytes);
    skipWithHostRead(h, r, `weights are .bin (pickle): the native loader reads safetensors only (${weightsArg(t) ? `\`coldstart convert ${weightsArg(t)}\` makes them; ` : ''}--framework torch loads .bin as it is)`);
  });
  return { phase, facts: { load, outside } };
}

export async function warmupPhase(plan: ModelPlan, deps: ProfileDeps, t: Target): Promise<Step<{ outside: Outside }>> {
  const outside: Outside = {};
  const phase = await runPhase('warmup', async (h: PhaseHandle) => {
    if (plan.options.estimate) h.skip('not predictable from rates (kernel compile and graph capture depend on the model code): run without --estimate');
    const url = plan.options.url;
    const onnx = t.dir && existsSync(t.dir) ? readdirSync(t.dir).filter((n) => n.endsWith('.onnx')).sort()[0] : undefined;
    // Without a stack there is no first request to time: an ONNX model (onnxruntime) or a running server (--url) is one.
    if (!url && !onnx) h.skip('no stack: pass --framework transformers|torch|safetensors, --url of a running server, or wrap your server (profile -- CMD)');
    const eng = deps.engines.warmup;
    // Two requests after the first: what a warmed request takes, so the warmup finding can say what warming saves.
    // They are not part of the cold start: their time is accounted outside the phases.
    const steadyRuns = 2;
    const opts: WarmupOptions = url ? { url, runs: steadyRuns, env: deps.env, signal: deps.signal } : { model: join(t.dir!, onnx!), runs: steadyRuns, env: deps.env, signal: deps.signal };
    const r = await eng.runWarmup(opts);
    if (r.steady) outside.steadyRequests = r.steady.n * r.steady.mean;
    eng.recordWarmupPhase(h, r);
  });
  return { phase, facts: { outside } };
}

/** Records the host read and skips the phase: no GPU bytes were moved, so no gpu-load time is claimed. */
export function skipWithHostRead(h: PhaseHandle, r: HostReadResult, why: string): never {
  h.addStep('host read (page cache as found)', r.seconds, `${r.files.length} file(s)`);
  h.metric('hostReadBytes', r.bytes);
  h.metric('hostReadSeconds', r.seconds);
  h.metric('hostReadBytesPerSecond', r.bytesPerSecond);
  h.skip(`${why}; host read measured: ${formatRate(r.bytesPerSecond)}`);
}
