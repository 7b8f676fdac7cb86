/** `coldstart profile`: the five phases (or a wrapped server), statistics, what-if rows, findings, exports. */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import type { Context } from '../context.js';
import { emitOptions, type ReportFlags } from '../context.js';
import { ERROR_CODES, ExitCode, fromSystemError, invalidArg, isColdstartError, type ErrorCode } from '../../core/errors.js';
import { diskInfo } from '../../core/system.js';
import { runPhase, skippedPhase, publicPhase, PHASES, isPhaseName, type PhaseResult, type PhaseHandle } from '../../core/phases.js';
import { newReport, summarizeRuns, type Report } from '../../core/report.js';
import { emitReport } from '../../core/emit.js';
import { Stopwatch } from '../../core/clock.js';
import { parseCount, repeatRuns } from '../../core/repeat.js';
import { intFlag } from '../../core/flags.js';
import { formatBytes, formatDuration, formatRate } from '../../core/format.js';
import { pcieBandwidth } from '../../core/pcie.js';
import { loadNative, type CudaProbeResult } from '../../native.js';
import { measureInsideContainer, recordInsideContainer, timeContainerStart, recordContainerStart, MAX_INIT_AGE_SECONDS, type RuntimeName } from '../../engines/container.js';
import { parseStageFlag, runWrapped, WRAP_PHASES, type WrapResult } from '../../engines/wrap.js';
import { ensureSyntheticModel, coldstartCacheDir, planSynthetic, type SyntheticFormat } from '../../formats/synthetic.js';
import { measureRates, predictDownloadSeconds, predictLoadSeconds, describeLoadModel, type Rates } from '../../core/estimate.js';
import { whatIfRows, computeFindings, type ModelFacts, type WhatIfRow } from '../../core/findings.js';
import { hfEndpoint, hfOffline, hfToken, hubCacheDir } from '../../hub/env.js';
import { ENGINE_MISSING, loadDownload, loadGpuLoad, loadWarmup, hostRead, skipWithHostRead, type GpuLoadResult, type WarmupOptions, type RepoFileSize } from './engines.js';
import { resolveTarget, weightFilesIn, describeFiles, bytesPerParam, type Target } from './target.js';
import { FRAMEWORKS, timeFramework, type Framework, type FrameworkResult } from './framework.js';

export interface ProfileFlags extends ReportFlags {
  runs: string;
  warmup: string;
  only?: string;
  synthetic?: boolean;
  format?: string;
  dtype?: string;
  estimate?: boolean;
  image?: string;
  containerRuntime?: string;
  containerArg?: string[];
  devices?: string;
  verify?: boolean;
  cache: string;
  download: boolean;
  revision?: string;
  framework?: string;
  url?: string;
  readyUrl?: string;
  readyLog?: string;
  readyTimeout: string;
  completionUrl?: string;
  completion: boolean;
  stopTimeout: string;
  stage?: string[];
  gpuPrice?: string;
  probeBytes?: string;
}

function posNum(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw invalidArg(flag, 'a positive number', v);
  return n;
}

interface Shared {
  ctx: Context;
  flags: ProfileFlags;
  target: Target;
  only: Set<string> | null;
  cache: 'cold' | 'warm' | 'as-is';
  devices?: number[];
  cuda: CudaProbeResult | null;
  cudaReason: string | null;
  rates: Rates | null;
  assumptions: string[];
  gpuLoad: GpuLoadResult | null;
  gpuLoadWarm: GpuLoadResult | null;
  downloaded: { bytes: number; fromCache: boolean; snapshotDir: string } | null;
  outside: Record<string, number>;
}

/** Splits `coldstart profile [model] -- cmd …`: what commander saw as operands, cut at the literal `--`. */
export function splitWrap(argv: readonly string[], operands: readonly string[]): { model?: string; command: string[] } {
  const i = argv.indexOf('--');
  if (i < 0) return { model: operands[0], command: [] };
  const command = argv.slice(i + 1);
  const before = operands.slice(0, Math.max(0, operands.length - command.length));
  return { model: before[0], command };
}

// ---------------------------------------------------------------------------------------------- phases
async function containerPhase(s: Shared): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('container', async (h: PhaseHandle) => {
    const f = s.flags;
    if (f.image) {
      const rt = f.containerRuntime;
      if (rt && rt !== 'podman' && rt !== 'docker') throw invalidArg('--container-runtime', 'podman or docker', rt);
      const r = await timeContainerStart({ image: f.image, runtime: rt as RuntimeName | undefined, runArgs: f.containerArg, env: s.ctx.env, signal: s.ctx.signal });
      recordContainerStart(h, r);
      return;
    }
    const inside = measureInsideContainer();
    if (!inside) h.skip('not inside a container; pass --image IMG to time a container start with podman/docker');
    if (inside.initToProcessSeconds > MAX_INIT_AGE_SECONDS) {
      h.skip(`inside ${inside.runtime}, but its init started ${formatDuration(inside.initToProcessSeconds)} before coldstart: not a cold start (run coldstart as the entrypoint, or time a start with --image)`);
    }
    recordInsideContainer(h, inside);
  });
}

async function cudaInitPhase(s: Shared): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('cuda-init', async (h: PhaseHandle) => {
    const n = loadNative();
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

/** The snapshot dir of `repo` in the HF cache when it holds weight files (used only without the download engine). */
function cachedSnapshotDir(repo: string, revision: string, env: Record<string, string | undefined>): string | null {
  const base = join(hubCacheDir(env), `models--${repo.replace('/', '--')}`);
  let commit = revision;
  try {
    commit = readFileSync(join(base, 'refs', revision), 'utf8').trim();
  } catch {
    /* a commit hash, or not cached */
  }
  const dir = join(base, 'snapshots', commit);
  return existsSync(dir) && weightFilesIn(dir).files.length > 0 ? dir : null;
}

const WEIGHT_GLOBS_ST = ['*.safetensors', '*.json', 'tokenizer*', '*.model', '*.txt'];
const WEIGHT_GLOBS_BIN = ['*.bin', '*.json', 'tokenizer*', '*.model', '*.txt'];

async function downloadPhase(s: Shared): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('download', async (h: PhaseHandle) => {
    const t = s.target;
    if (t.synthetic) h.skip(`synthetic checkpoint${t.dir ? ` in ${t.dir}` : ''}: nothing to download${t.repo && t.kind !== 'demo' ? ` (see the not-cached what-if row for ${t.repo})` : ''}`);
    if (t.kind === 'dir' || t.kind === 'file') h.skip('local files: nothing to download');
    const eng = await loadDownload();
    const env = s.ctx.env;
    const revision = s.flags.revision ?? 'main';
    const repo = t.repo!;
    const noBytes = !s.flags.download || s.flags.estimate;
    if (!eng.ok && !(noBytes && t.bytes)) h.skip(`${eng.reason} (Hub download)`);
    let include: string[] | undefined;
    let weightBytes = t.bytes ?? 0;
    if (noBytes) {
      // Move no weight bytes: zero when cached (checked first: it needs no network), else file sizes over the
      // measured rate to the endpoint.
      const cached = eng.ok ? eng.mod.findCachedSnapshot(repo, revision, env) : cachedSnapshotDir(repo, revision, env);
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
        const hasSt = sizes.some((f) => f.path.endsWith('.safetensors') && !f.path.includes('/'));
        include = hasSt ? WEIGHT_GLOBS_ST : WEIGHT_GLOBS_BIN;
        const weights = sizes.filter((f) => !f.path.includes('/') && (hasSt ? f.path.endsWith('.safetensors') : /\.bin$/.test(f.path)));
        weightBytes = weights.reduce((a, f) => a + f.bytes, 0);
        t.format = hasSt ? 'safetensors' : 'bin';
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
    if (!eng.ok) h.skip(eng.reason);
    const r = await eng.mod.downloadRepo({ repo, revision, include, env, signal: s.ctx.signal });
    eng.mod.recordDownloadPhase(h, r);
    s.downloaded = { bytes: r.bytesDownloaded, fromCache: r.fromCache, snapshotDir: r.snapshotDir };
    if (r.fromCache) h.note = h.note ?? `cached at ${r.snapshotDir}`;
    const local = weightFilesIn(r.snapshotDir);
    t.dir = r.snapshotDir;
    t.files = local.files;
    t.format = local.format;
    describeFiles(t);
  });
}

async function gpuLoadPhase(s: Shared): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('gpu-load', async (h: PhaseHandle) => {
    const t = s.target;
    if (s.flags.estimate) {
      if (!s.rates || !t.bytes || !t.format) h.skip('no rates or model size to predict from');
      const gpu = !!s.cuda?.available;
      const cache = s.cache === 'warm' ? 'warm' : 'cold';
      const p = predictLoadSeconds(s.rates, { bytes: t.bytes, format: t.format, cache, gpu });
      if (p === null) h.skip('no read rate measured');
      h.estimated = true;
      h.metric('bytes', t.bytes);
      h.note = `${formatBytes(t.bytes)} ${t.format}, ${cache} page cache${gpu ? '' : ', no GPU (host read only)'}`;
      h.setSeconds(p);
      return;
    }
    if (t.files.length === 0) h.skip('no weight files to load (the download phase did not provide them)');
    const eng = await loadGpuLoad();
    const gpu = !!s.cuda?.available;
    if (eng.ok && t.format === 'safetensors') {
      // The loader engine decides GPU or host mode itself (and says why in host mode).
      const files = t.dir ? eng.mod.resolveSafetensorsInputs(t.dir) : t.files;
      const sw = new Stopwatch();
      const r = await eng.mod.runGpuLoad({ files, devices: s.devices, cache: s.cache, limits: true, verify: !!s.flags.verify, signal: s.ctx.signal });
      // The phase is the load itself; measuring the limits, evicting/warming the page cache and checking headers
      // happen in the same call but are not part of a cold start: they are accounted outside the phases.
      s.outside.gpuLoadSetup = (s.outside.gpuLoadSetup ?? 0) + Math.max(0, sw.elapsed() - r.seconds);
      eng.mod.recordGpuLoadPhase(h, r);
      if (r.mode === 'gpu') s.gpuLoad = r;
      return;
    }
    const why = !gpu
      ? (s.cudaReason ?? 'no CUDA driver')
      : t.format !== 'safetensors'
        ? 'weights are .bin (pickle): the native loader reads safetensors only (see --framework torch and the convert finding)'
        : `GPU loader ${ENGINE_MISSING}`;
    const r = hostRead(t.files, 16 << 20, s.ctx.signal);
    h.metric('bytes', r.bytes);
    skipWithHostRead(h, r, why.startsWith('no CUDA driver') ? why.replace(/ \(.*\)$/, '') : why);
  });
}

async function warmupPhase(s: Shared): Promise<PhaseResult & { cause?: unknown }> {
  return runPhase('warmup', async (h: PhaseHandle) => {
    if (s.flags.estimate) h.skip('not predictable from rates (kernel compile and graph capture depend on the model code): run without --estimate');
    const t = s.target;
    const onnx = t.dir && existsSync(t.dir) ? readdirSync(t.dir).filter((n) => n.endsWith('.onnx')).sort()[0] : undefined;
    const hfDir = t.dir && existsSync(join(t.dir, 'config.json')) ? t.dir : undefined;
    // What the model has: a running server (--url), a transformers model (config.json) for --framework, or ONNX.
    const fwWarm = s.flags.framework ? (hfDir ? 'transformers' : null) : null;
    if (!s.flags.url && !fwWarm && !onnx) {
      h.skip(
        s.flags.framework && !hfDir
          ? `--framework ${s.flags.framework}: a forward pass needs a transformers model directory (config.json); none here`
          : 'nothing to warm up: no ONNX model, no --framework and no --url of a running server',
      );
    }
    const eng = await loadWarmup();
    if (!eng.ok) h.skip(eng.reason);
    const opts: WarmupOptions = s.flags.url
      ? { url: s.flags.url, runs: 0, env: s.ctx.env, signal: s.ctx.signal }
      : fwWarm
        ? { model: hfDir, framework: fwWarm, runs: 0, env: s.ctx.env, signal: s.ctx.signal }
        : { model: join(t.dir!, onnx!), runs: 0, env: s.ctx.env, signal: s.ctx.signal };
    const r = await eng.mod.runWarmup(opts);
    eng.mod.recordWarmupPhase(h, r);
  });
}

const PHASE_BODIES: Record<string, (s: Shared) => Promise<PhaseResult & { cause?: unknown }>> = {
  container: containerPhase,
  'cuda-init': cudaInitPhase,
  download: downloadPhase,
  'gpu-load': gpuLoadPhase,
  warmup: warmupPhase,
};

async function oneRun(s: Shared): Promise<PhaseResult[]> {
  const out: PhaseResult[] = [];
  for (const name of PHASES) {
    if (s.only && !s.only.has(name)) {
      out.push(skippedPhase(name, 'not selected (--only)'));
      continue;
    }
    const p = await PHASE_BODIES[name]!(s);
    if (p.status === 'failed' && isColdstartError(p.cause) && p.cause.exitCode === ExitCode.USAGE) throw p.cause;
    out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- rendering
function whatIfLines(rows: readonly WhatIfRow[], ctx: Context): string[] {
  if (rows.length === 0) return [];
  const s = ctx.out.style;
  const w = Math.max(...rows.map((r) => r.scenario.length));
  const out = ['', s.bold('what if')];
  for (const r of rows) {
    const pct = r.fromSeconds > 0 ? ` (${r.toSeconds >= r.fromSeconds ? '+' : ''}${(((r.toSeconds - r.fromSeconds) / r.fromSeconds) * 100).toFixed(0)}%)` : '';
    out.push(`  ${r.scenario.padEnd(w)}  ${r.phase.padEnd(8)} ${formatDuration(r.fromSeconds).padStart(9)} → ${formatDuration(r.toSeconds).padStart(9)}${pct}`);
  }
  return out;
}

function frameworkLine(fw: FrameworkResult, floor: number | null, floorLabel: string): string {
  const total = fw.loadSeconds;
  const stack = `your stack (${fw.framework} on ${fw.device}) takes ${formatDuration(total)} to load (+${formatDuration(fw.importSeconds)} import, ${formatDuration(fw.deviceInitSeconds)} device init)`;
  return floor !== null ? `${stack}; this machine can do ${formatDuration(floor)} (${floorLabel})` : stack;
}

function modelFacts(s: Shared, source: ModelFacts['source']): ModelFacts | null {
  const t = s.target;
  if (!t.bytes || !t.format) return null;
  const repoBytes = t.spec ? planSynthetic(t.spec, 'safetensors').bytes : null;
  return {
    name: t.kind === 'file' || t.kind === 'dir' ? (t.dir ?? t.files[0] ?? t.name) : t.name,
    path: t.dir ?? t.files[0] ?? null,
    bytes: t.bytes,
    format: t.format,
    bytesPerParam: bytesPerParam(t.dtype),
    dtype: t.dtype ?? 'unknown',
    source,
    repoBytes,
    gpu: !!s.cuda?.available,
    cache: s.cache === 'warm' ? 'warm' : 'cold',
  };
}

// ---------------------------------------------------------------------------------------------- main
export async function profileCommand(ctx: Context, modelArg: string | undefined, wrapCommand: string[], flags: ProfileFlags): Promise<number> {
  const startupSeconds = performance.now() / 1000;
  const wall = new Stopwatch();
  const runs = parseCount('--runs', flags.runs, 1);
  const warmup = parseCount('--warmup', flags.warmup, 0);
  const only = flags.only ? new Set(flags.only.split(',').map((x) => x.trim()).filter(Boolean)) : null;
  for (const p of only ?? []) if (!isPhaseName(p)) throw invalidArg('--only', `phases from ${PHASES.join(', ')}`, p);
  if (flags.format && flags.format !== 'safetensors' && flags.format !== 'bin') throw invalidArg('--format', 'safetensors or bin', flags.format);
  if (!['cold', 'warm', 'as-is'].includes(flags.cache)) throw invalidArg('--cache', 'cold, warm or as-is', flags.cache);
  if (flags.framework && !(FRAMEWORKS as readonly string[]).includes(flags.framework)) throw invalidArg('--framework', FRAMEWORKS.join(', '), flags.framework);
  const gpuPrice = flags.gpuPrice !== undefined ? posNum('--gpu-price', flags.gpuPrice) : null;
  const devices = flags.devices ? flags.devices.split(',').map((d) => intFlag('--devices', d.trim(), 0)) : undefined;
  const probeBytes = flags.probeBytes ? intFlag('--probe-bytes', flags.probeBytes, 1 << 20) : Number(ctx.env.COLDSTART_PROBE_BYTES) || undefined;
  const opts = emitOptions(ctx, flags);

  if (wrapCommand.length > 0) return wrapMode(ctx, wrapCommand, flags, runs, warmup, opts, wall);

  const target = resolveTarget(modelArg, ctx.cwd, { synthetic: flags.synthetic, format: flags.format as SyntheticFormat | undefined, dtype: flags.dtype });
  const report: Report = newReport('profile');
  const s: Shared = {
    ctx,
    flags,
    target,
    only,
    cache: flags.cache as Shared['cache'],
    devices,
    cuda: null,
    cudaReason: null,
    rates: null,
    assumptions: [],
    gpuLoad: null,
    gpuLoadWarm: null,
    downloaded: null,
    outside: {},
  };
  const extra: string[] = [];

  // Prepare: the demo / synthetic checkpoint (outside the phases: it is not part of a cold start).
  if (target.synthetic && !flags.estimate) {
    const sw = new Stopwatch();
    const cacheRoot = coldstartCacheDir(ctx.env);
    let lastShown = 0;
    const spin = await ctx.out.spinner(`writing synthetic ${target.spec!.alias} (${formatBytes(target.bytes!)})…`);
    const m = await ensureSyntheticModel(target.spec!, target.format!, cacheRoot, target.dtype!, {
      signal: ctx.signal,
      onProgress: (done, total) => {
        spin.update(`writing synthetic ${target.spec!.alias}: ${formatBytes(done)} of ${formatBytes(total)}`);
        if (!ctx.out.interactive && sw.elapsed() - lastShown > 5) {
          lastShown = sw.elapsed();
          ctx.out.progressLine(`synthetic ${target.spec!.alias}: ${formatBytes(done)} of ${formatBytes(total)} written`);
        }
      },
    });
    spin.stop();
    target.dir = m.dir;
    target.files = m.files;
    s.outside.prepare = sw.elapsed();
    if (m.created) ctx.out.info(`wrote synthetic ${target.spec!.alias} (${formatBytes(m.bytes)}, ${target.format}) to ${m.dir} in ${formatDuration(m.seconds)} (not part of the profile)`);
  }

  // Rates for --estimate, --no-download and the what-if rows. The probe file goes to coldstart's own cache (next
  // to synthetic weights); a user's model directory is never written to, even temporarily.
  const probe = async () => {
    if (s.only && !s.only.has('gpu-load') && !s.only.has('download')) return;
    const sw = new Stopwatch();
    const dir = target.synthetic && target.dir ? target.dir : coldstartCacheDir(ctx.env);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw fromSystemError(e, dir, 'create');
    }
    const weightsAt = target.dir ?? (target.files[0] ? dirname(target.files[0]) : null);
    if (weightsAt && !target.synthetic) {
      const a = diskInfo(dir);
      const b = diskInfo(weightsAt);
      if (a.mount !== b.mount) s.assumptions.push(`disk rates were measured on ${a.mount} (${a.fsType ?? '?'}) but the weights are on ${b.mount} (${b.fsType ?? '?'}): set COLDSTART_CACHE to a directory on the weights' filesystem for a like-for-like probe`);
    }
    const dev = s.cuda?.devices?.[0];
    const link = dev?.pcie ? pcieBandwidth(dev.pcie.maxGen, dev.pcie.maxWidth) : null;
    const gl = await loadGpuLoad();
    const repo = target.repo && target.kind !== 'demo' ? target.repo : null;
    const token = hfToken(ctx.env);
    // Probe size follows the model (a tiny demo needs no 256 MiB probe), within 32–256 MiB.
    const size = probeBytes ?? Math.min(256 << 20, Math.max(32 << 20, target.bytes ?? 0));
    const r = await measureRates({
      dir,
      probeBytes: size,
      signal: ctx.signal,
      pcieBytesPerSecond: link,
      loaderLimits:
        gl.ok && s.cuda?.available
          ? async (file) => (await gl.mod.runGpuLoad({ files: [file], devices: s.devices?.slice(0, 1), cache: 'cold', limits: true, signal: ctx.signal })).limits ?? null
          : undefined,
      network: repo && !hfOffline(ctx.env) ? { url: `${hfEndpoint(ctx.env)}/${repo}/resolve/${flags.revision ?? 'main'}/tokenizer.json`, headers: token ? { authorization: `Bearer ${token}` } : {} } : null,
    });
    s.rates = r.rates;
    s.assumptions.push(...r.assumptions);
    if (repo && hfOffline(ctx.env)) s.assumptions.push('network: HF_HUB_OFFLINE is set, so no rate to the Hub was measured and downloads are not predicted');
    s.outside.rates = sw.elapsed();
  };

  const measured: PhaseResult[][] = [];
  if (flags.estimate) {
    // Container and cuda-init move no weight bytes: they are measured; the rest is predicted.
    const c = only && !only.has('container') ? skippedPhase('container', 'not selected (--only)') : await containerPhase(s);
    const ci = only && !only.has('cuda-init') ? skippedPhase('cuda-init', 'not selected (--only)') : await cudaInitPhase(s);
    await probe();
    const rest: PhaseResult[] = [];
    for (const name of ['download', 'gpu-load', 'warmup'] as const) rest.push(only && !only.has(name) ? skippedPhase(name, 'not selected (--only)') : await PHASE_BODIES[name]!(s));
    measured.push([c, ci, ...rest]);
  } else {
    // --no-download needs the network rate before the download phase; otherwise rates come after the runs,
    // so the probe file cannot disturb the measured (cold) page cache.
    const probeFirst = !flags.download;
    if (probeFirst) await probe();
    const onRun = ({ index, warmup: w, phases }: { index: number; warmup: boolean; phases: readonly PhaseResult[] }) => {
      if (runs + warmup > 1) ctx.out.progressLine(`run ${index + 1}/${warmup + runs}${w ? ' (warmup, not counted)' : ''}: ${formatDuration(phases.reduce((a, p) => a + (p.seconds ?? 0), 0))}`);
    };
    measured.push(...(await repeatRuns({ runs, warmup, signal: ctx.signal, onRun }, () => oneRun(s))));
    if (!probeFirst) await probe();
    // The same load with a warm page cache, measured (outside the phases: it is not part of a cold start).
    const gl = await loadGpuLoad();
    if (gl.ok && s.gpuLoad && s.cache === 'cold' && target.format === 'safetensors' && (target.bytes ?? Infinity) < report.host.memoryBytes * 0.8) {
      const sw = new Stopwatch();
      const files = target.dir ? gl.mod.resolveSafetensorsInputs(target.dir) : target.files;
      s.gpuLoadWarm = await gl.mod.runGpuLoad({ files, devices: s.devices, cache: 'warm', limits: false, signal: ctx.signal });
      s.outside.warmLoad = sw.elapsed();
    }
  }

  const sum = summarizeRuns(measured.map((r) => r.map(publicPhase)));
  // A failed phase keeps its error in the table; what to do about it (the setting to change) goes to warnings.
  for (const p of measured[measured.length - 1] ?? []) {
    const c = (p as { cause?: unknown }).cause;
    if (p.status === 'failed' && isColdstartError(c) && c.hint) report.warnings.push(`${p.name}: ${c.hint}`);
  }
  report.phases = sum.phases;
  report.total = sum.total;
  report.warnings.push(...sum.warnings);
  report.runs = {
    count: measured.length,
    warmup: flags.estimate ? 0 : warmup,
    samples: measured.map((r, index) => ({ index, total: r.reduce((a, p) => a + (p.seconds ?? 0), 0), phases: Object.fromEntries(r.map((p) => [p.name, p.seconds])) })),
  };

  // Framework path next to the floor.
  let fw: FrameworkResult | null = null;
  let fwSkipped: string | null = null;
  if (flags.framework && !flags.estimate && target.files.length > 0) {
    const sw = new Stopwatch();
    try {
      fw = await timeFramework(flags.framework as Framework, target.dir ?? dirname(target.files[0]!), target.files, s.cache, ctx.env, ctx.signal);
    } catch (e) {
      // The framework path is timed "when present": a missing Python package is a warning, not a failed profile.
      if (!isColdstartError(e) || e.code !== 'MISSING_DEPENDENCY') throw e;
      report.warnings.push(`${e.message}${e.hint ? ` (${e.hint})` : ''}`);
      fwSkipped = e.message;
    }
    s.outside.framework = sw.elapsed();
  }

  const source: ModelFacts['source'] = target.synthetic ? 'synthetic' : target.kind === 'dir' || target.kind === 'file' ? 'local' : s.downloaded && !s.downloaded.fromCache && s.downloaded.bytes > 0 ? 'downloaded' : 'cached';
  const facts = modelFacts(s, source);
  const glPhase = report.phases.find((p) => p.name === 'gpu-load');
  const floor = glPhase?.status === 'ok' && glPhase.seconds !== null ? { s: glPhase.seconds, label: 'native gpu-load floor' } : typeof glPhase?.metrics.hostReadSeconds === 'number' ? { s: glPhase.metrics.hostReadSeconds, label: 'host read of the same files; no GPU floor measured' } : null;
  const inputs = { phases: report.phases, total: report.total.seconds, rates: s.rates, model: facts, framework: fw ? { name: fw.framework, seconds: fw.loadSeconds } : null, gpuPricePerHour: gpuPrice, hostMemoryBytes: report.host.memoryBytes, warmLoadSeconds: s.gpuLoadWarm?.seconds ?? null };
  const rows = whatIfRows(inputs);
  report.findings = computeFindings(inputs, rows);
  report.target = {
    name: target.name,
    kind: target.kind,
    ...(target.spec ? { alias: target.spec.alias } : {}),
    ...(target.repo ? { repo: target.repo } : {}),
    synthetic: target.synthetic,
    dir: target.dir,
    files: target.files,
    format: target.format,
    dtype: target.dtype,
    bytes: target.bytes,
    parameters: target.parameters,
  };
  const wallSeconds = wall.elapsed();
  // Node's own start-up (process start → this command) is outside the phases unless the container phase counted it.
  const ctr = report.phases.find((p) => p.name === 'container');
  if (!(ctr?.status === 'ok' && ctr.metrics.source === 'proc')) s.outside.nodeStartup = startupSeconds;
  report.details = {
    mode: flags.estimate ? 'estimate' : 'measure',
    cache: s.cache,
    rates: s.rates,
    assumptions: flags.estimate ? [...describeLoadModel(s.rates ?? ({} as Rates)), ...s.assumptions] : s.assumptions,
    whatIf: rows,
    framework: fw ?? (fwSkipped ? { skipped: fwSkipped } : null),
    gpuLoad: s.gpuLoad,
    gpuLoadWarm: s.gpuLoadWarm,
    wall: { seconds: wallSeconds, phasesSeconds: measured.reduce((a, r) => a + r.reduce((b, p) => b + (p.status === 'ok' ? (p.seconds ?? 0) : 0), 0), 0), outside: s.outside },
  };

  extra.push(...whatIfLines(rows, ctx));
  if (fw) extra.push('', frameworkLine(fw, floor?.s ?? null, floor?.label ?? ''));
  if (flags.estimate && !ctx.out.opts.quiet) extra.push('', ctx.out.style.bold('assumptions'), ...(report.details.assumptions as string[]).map((a) => `  - ${a}`));
  const code = emitReport(ctx.out, report, ctx.cwd, { ...opts, extraHuman: extra });
  // A phase that broke (pull failure, runtime refused, …) is reported in the table and decides the exit code.
  const failed = report.phases.find((p) => p.status === 'failed');
  if (failed?.error) return Math.max(code, ERROR_CODES[failed.error.code as ErrorCode] ?? ExitCode.ENV);
  return code;
}

// ---------------------------------------------------------------------------------------------- wrap mode
function wrapPhases(r: WrapResult): PhaseResult[] {
  const phases: PhaseResult[] = [];
  phases.push(skippedPhase('container', 'wrap mode: the server was started as a process on this host'));
  phases.push(skippedPhase('cuda-init', 'wrap mode: inside the server process, not separable from its logs'));
  for (const name of WRAP_PHASES) {
    const st = r.stages.filter((x) => x.phase === name);
    if (st.length === 0) {
      phases.push(skippedPhase(name, r.engine ? `no ${r.engine} log line for this phase` : r.engineNote ?? 'no known engine log lines (vLLM, TGI, SGLang, llama.cpp)'));
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

async function wrapMode(ctx: Context, command: string[], flags: ProfileFlags, runs: number, warmup: number, opts: ReturnType<typeof emitOptions>, wall: Stopwatch): Promise<number> {
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
    last = await runWrapped({
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
  const inputs = { phases: report.phases, total: report.total.seconds, rates: null, model: null, framework: null, gpuPricePerHour: flags.gpuPrice ? posNum('--gpu-price', flags.gpuPrice) : null };
  const rows = whatIfRows(inputs);
  // The server's own warmup runs before ready; the first request's cost is the first-completion row.
  report.findings = computeFindings(inputs, rows).filter((f) => f.id !== 'warmup');
  const un = report.phases.find((p) => p.name === 'unexplained');
  if (un?.seconds && report.total.seconds > 0 && un.seconds / report.total.seconds > 0.3) {
    report.findings.push({ id: 'unexplained', savesSeconds: null, message: `${formatDuration(un.seconds)} of the start-up is not explained by the server's log lines: run with --debug to see the timed log, or profile the pieces (coldstart profile MODEL)` });
  }
  report.details = {
    mode: 'wrap',
    readyBy: last!.readyBy,
    readySeconds: last!.readySeconds,
    stages: last!.stages,
    stop: last!.stop,
    whatIf: rows,
    wall: { seconds: wall.elapsed() },
  };
  return emitReport(ctx.out, report, ctx.cwd, { ...opts, extraHuman: [...(last!.engineNote ? [last!.engineNote, ...last!.timeline.map((l) => `  ${l.t.toFixed(3).padStart(9)} s  ${l.text.slice(0, 160)}`)] : []), `server ${last!.engine ?? '(engine not recognised)'}: ready after ${formatDuration(last!.readySeconds)} (by ${last!.readyBy}); stopped with ${last!.stop.signal} in ${formatDuration(last!.stop.seconds)}${last!.engineVersion ? `; ${last!.engine} ${last!.engineVersion}` : ''}`] });
}

