/**
 * The phases of the floor profile (no stack given, and the floor beside a stack): container, cuda-init,
 * download, gpu-load by the native loader, warmup of an ONNX model or a running server. Each returns its
 * PhaseResult; what later steps need (the probe, the load) is kept on the State.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { invalidArg } from '../core/errors.js';
import { runPhase, type PhaseResult, type PhaseHandle } from '../core/phases.js';
import { Stopwatch } from '../core/clock.js';
import { formatBytes, formatRate } from '../core/format.js';
import { recordInsideContainer, recordContainerStart, parseSince, sinceInterval, recordSince, type RuntimeName } from '../platform/container.js';
import { hfEndpoint } from '../hub/env.js';
import { predictDownloadSeconds, predictLoadSeconds, predictLoadSigma, formatWithSigma } from './estimate.js';
import { hostRead, skipWithHostRead, type WarmupOptions, type RepoFileSize } from './engines.js';
import { localWeights, describeFiles, PROFILE_FORMATS } from './target.js';
import { selectWeightNames, weightGlobs } from '../formats/weights.js';
import type { State } from './state.js';

export async function containerPhase(s: State): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('container', async (h: PhaseHandle) => {
    const f = s.flags;
    if (f.image) {
      const rt = f.containerRuntime;
      if (rt && rt !== 'podman' && rt !== 'docker') throw invalidArg('--container-runtime', 'podman or docker', rt);
      const r = await s.engines.container.timeContainerStart({ image: f.image, runtime: rt as RuntimeName | undefined, runArgs: f.containerArg, env: s.ctx.env, signal: s.ctx.signal });
      recordContainerStart(h, r);
      return;
    }
    const inside = s.engines.container.measureInsideContainer();
    if (f.since) {
      recordSince(h, sinceInterval(parseSince(f.since), inside), f.since);
      return;
    }
    if (!inside) h.notApplicable('not inside a container: pass --since TIME (when the start was scheduled) or --image IMG (time a container start with podman/docker)');
    recordInsideContainer(h, inside);
  });
}

export async function cudaInitPhase(s: State): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('cuda-init', async (h: PhaseHandle) => {
    const n = s.engines.native();
    if (!n.ok) {
      s.cudaReason = `native addon unavailable: ${n.reason}`;
      h.skip(s.cudaReason);
    }
    const p = await n.addon.cudaProbe({ context: true, ...(s.devices ? { devices: s.devices } : {}) });
    s.cuda = p;
    if (!p.available) {
      s.cudaReason = `no CUDA driver (${p.stage ?? 'probe'}: ${p.reason ?? 'unavailable'})`;
      h.skip(s.cudaReason);
    }
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
}

export async function downloadPhase(s: State): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('download', async (h: PhaseHandle) => {
    const t = s.target;
    if (t.synthetic) h.notApplicable(`synthetic checkpoint${t.dir ? ` in ${t.dir}` : ''}: nothing to download${t.repo && t.kind !== 'demo' ? ` (see the not-cached what-if row for ${t.repo})` : ''}`);
    if (t.kind === 'dir' || t.kind === 'file') h.notApplicable('local files: nothing to download');
    const eng = { ok: true as const, mod: s.engines.download };
    const env = s.ctx.env;
    const revision = s.flags.revision ?? 'main';
    const repo = t.repo!;
    const noBytes = !s.flags.download || s.flags.estimate;
    let include: string[] | undefined;
    let weightBytes = t.bytes ?? 0;
    if (noBytes) {
      // Move no weight bytes: zero when cached (checked first: it needs no network), else file sizes over the
      // measured rate to the endpoint.
      const cached = eng.mod.findCachedSnapshot(repo, revision, env);
      if (cached) {
        h.note = `cached at ${cached}`;
        h.metric('cacheDir', cached);
        s.downloaded = { bytes: 0, fromCache: true, snapshotDir: cached };
        h.setSeconds(0);
        return;
      }
    }
    if (eng.ok) {
      let sizes: RepoFileSize[] | null = null;
      try {
        sizes = await eng.mod.repoFileSizes({ repo, revision, env });
      } catch (e) {
        // An estimate can do without the Hub's file list when the model table knows the weights' size.
        if (!(noBytes && t.bytes)) throw e;
        s.assumptions.push(`download size: the Hub's file list was not available (${(e as Error).message}); using the model table's ${formatBytes(t.bytes)} (parameters × dtype)`);
      }
      if (sizes) {
        // The Hub's file list through the same rule on names as a local folder (top level; no index read yet).
        const top = sizes.filter((f) => !f.path.includes('/'));
        const sel = selectWeightNames(top.map((f) => f.path), PROFILE_FORMATS);
        const chosen = new Set(sel.names);
        include = weightGlobs(sel);
        weightBytes = top.filter((f) => chosen.has(f.path)).reduce((a, f) => a + f.bytes, 0);
        t.format = sel.format as typeof t.format;
        t.bytes = weightBytes;
      }
    }
    if (noBytes) {
      const pred = s.rates ? predictDownloadSeconds(s.rates, weightBytes) : null;
      if (pred === null) h.skip(`not cached; no network rate to ${hfEndpoint(env)} could be measured, so the ${formatBytes(weightBytes)} download is not predicted`);
      h.estimated = true;
      h.note = `not cached: ${formatBytes(weightBytes)} at ${formatRate(s.rates!.networkBytesPerSecond!)} (measured on ${hfEndpoint(env)})`;
      h.metric('bytes', weightBytes);
      h.setSeconds(pred);
      return;
    }
    const r = await eng.mod.downloadRepo({ repo, revision, include, env, signal: s.ctx.signal });
    eng.mod.recordDownloadPhase(h, r);
    s.downloaded = { bytes: r.bytesDownloaded, fromCache: r.fromCache, snapshotDir: r.snapshotDir };
    if (r.fromCache) h.note = h.note ?? `cached at ${r.snapshotDir}`;
    const local = localWeights(r.snapshotDir);
    Object.assign(t, local);
    if (local.skipped) s.assumptions.push(`weights: ${local.skipped}`);
    describeFiles(t);
  });
}

export async function gpuLoadPhase(s: State): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('gpu-load', async (h: PhaseHandle) => {
    const t = s.target;
    if (s.flags.estimate) {
      if (!s.rates || !t.bytes || !t.format) h.skip('no rates or model size to predict from');
      const gpu = !!s.cuda?.available;
      const cache = s.cache === 'warm' ? 'warm' : 'cold';
      const p = predictLoadSeconds(s.rates, { bytes: t.bytes, format: t.format, cache, gpu });
      if (p === null) h.skip('no read rate measured');
      h.estimated = true;
      const sigma = predictLoadSigma(s.rates, { bytes: t.bytes, format: t.format, cache, gpu }, p);
      h.metric('bytes', t.bytes);
      h.metric('sigmaSeconds', sigma);
      h.note = `${formatWithSigma(p, sigma)}: ${formatBytes(t.bytes)} ${t.format}, ${cache} page cache${gpu ? '' : ', no GPU (host read only)'}`;
      h.setSeconds(p);
      return;
    }
    if (t.files.length === 0) h.skip('no weight files to load (the download phase did not provide them)');
    const eng = s.engines.gpuLoad;
    if (t.format === 'safetensors') {
      // The loader decides GPU or host mode itself (and says why in host mode).
      const sw = new Stopwatch();
      const r = await eng.runGpuLoad({ files: t.files, devices: s.devices, cache: s.cache, limits: true, verify: !!s.flags.verify, signal: s.ctx.signal });
      // The phase is the load itself; measuring the limits, evicting/warming the page cache and checking headers
      // happen in the same call but are not part of a cold start: they are accounted outside the phases.
      s.outside.gpuLoadSetup = (s.outside.gpuLoadSetup ?? 0) + Math.max(0, sw.elapsed() - r.seconds);
      s.floorLoad = r;
      if (r.mode === 'gpu') s.gpuLoad = r;
      eng.recordGpuLoadPhase(h, r);
      return;
    }
    const r = hostRead(t.files, 16 << 20, s.ctx.signal);
    h.metric('bytes', r.bytes);
    skipWithHostRead(h, r, 'weights are .bin (pickle): the native loader reads safetensors only (see --framework torch and the convert finding)');
  });
}

export async function warmupPhase(s: State): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('warmup', async (h: PhaseHandle) => {
    if (s.flags.estimate) h.skip('not predictable from rates (kernel compile and graph capture depend on the model code): run without --estimate');
    const t = s.target;
    const onnx = t.dir && existsSync(t.dir) ? readdirSync(t.dir).filter((n) => n.endsWith('.onnx')).sort()[0] : undefined;
    // Without a stack there is no first request to time: an ONNX model (onnxruntime) or a running server (--url) is one.
    if (!s.flags.url && !onnx) h.skip('no stack: pass --framework transformers|torch|safetensors, --url of a running server, or wrap your server (profile -- CMD)');
    const eng = s.engines.warmup;
    // Two requests after the first: what a warmed request takes, so the warmup finding can say what warming saves.
    // They are not part of the cold start: their time is accounted outside the phases.
    const steadyRuns = 2;
    const opts: WarmupOptions = s.flags.url ? { url: s.flags.url, runs: steadyRuns, env: s.ctx.env, signal: s.ctx.signal } : { model: join(t.dir!, onnx!), runs: steadyRuns, env: s.ctx.env, signal: s.ctx.signal };
    const r = await eng.runWarmup(opts);
    if (r.steady) s.outside.steadyRequests = (s.outside.steadyRequests ?? 0) + r.steady.n * r.steady.mean;
    eng.recordWarmupPhase(h, r);
  });
}
