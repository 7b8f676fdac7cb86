/** Outside the phases: the synthetic checkpoint and the rate probes. Each returns what it made or measured. */
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathEntryExists } from '../core/files.js';
import { fromSystemError } from '../core/errors.js';
import { makeDirs } from '../core/paths.js';
import { diskInfo } from '../platform/system.js';
import { Stopwatch } from '../core/clock.js';
import { formatBytes, formatDuration } from '../core/format.js';
import { pcieBandwidth } from '../platform/pcie.js';
import { ensureSyntheticModel, coldstartCacheDir, planSynthetic, syntheticDir } from '../models/synthetic.js';
import { hfEndpoint, hfOffline } from '../hub/env.js';
import { hubClient, repoUrl } from '../hub/api.js';
import type { CudaProbeResult } from '../native.js';
import { measureRates, type Rates } from './estimate.js';
import { hostSinkFor } from '../load/gpu-load.js';
import type { ProfileDeps } from './plan.js';
import type { Target } from './target.js';
import { findRates, isFresh, ratesCachePath, ratesKey, reusedLine, saveRates } from './rates-cache.js';

/**
 * Writes the demo / synthetic checkpoint when absent (outside the phases: it is not part of a cold start) and
 * returns the target with its files, and the seconds it took.
 */
export async function writeSynthetic(target: Target, deps: ProfileDeps): Promise<{ target: Target; seconds: number }> {
  const sw = new Stopwatch();
  const spec = target.spec!;
  // Already written: no "writing…" line; say which checkpoint is reused and when it was written.
  const existing = join(syntheticDir(coldstartCacheDir(deps.env), planSynthetic(spec, target.format!, target.dtype!)), 'config.json');
  const writtenAt = pathEntryExists(existing) ? statSync(existing).mtime : null;
  const bar = writtenAt ? undefined : deps.events?.progress?.(`writing synthetic ${spec.alias}`);
  let m: Awaited<ReturnType<typeof ensureSyntheticModel>>;
  try {
    m = await ensureSyntheticModel(spec, target.format!, coldstartCacheDir(deps.env), target.dtype!, { signal: deps.signal, onProgress: (done, total) => bar?.update(done, total) });
  } finally {
    bar?.end();
  }
  if (!m.created && writtenAt) deps.events?.note?.(`reusing synthetic ${spec.alias} (${formatBytes(m.bytes)}, ${target.format}) in ${m.dir} (written ${writtenAt.toISOString().slice(0, 10)})`);
  if (m.created) deps.events?.note?.(`wrote synthetic ${spec.alias} (${formatBytes(m.bytes)}, ${target.format}) to ${m.dir} in ${formatDuration(m.seconds)} (not part of the profile)`);
  return { target: { ...target, dir: m.dir, files: m.files }, seconds: sw.elapsed() };
}

/** What the rate probe needs to know about the weights whose load it predicts, and where it may run. */
export interface ProbeInputs {
  /** Where the weights are (synthetic ones: the probe file goes beside them) and how many bytes they hold. */
  dir: string | null;
  files: readonly string[];
  bytes: number | null;
  synthetic: boolean;
  /** A Hub repo whose tokenizer.json times the network (null: no network rate is measured). */
  repo: string | null;
  revision?: string;
  /** The native CUDA probe's result, when one ran: the PCIe link and whether the load has a GPU. */
  cuda: CudaProbeResult | null;
  devices?: readonly number[];
  /** The probe file's size; default: the model's, within 64 MiB–1 GiB. */
  probeBytes?: number;
  /** Measure again even when rates of this machine, disk and kernel younger than 7 days are kept (--remeasure). */
  remeasure?: boolean;
}

export interface RateFacts {
  rates: Rates;
  assumptions: string[];
  seconds: number;
  /** When the rates were kept from an earlier run (ISO date-time): nothing was probed now. */
  reusedFrom?: string;
}

/** The probe inputs of a model target: its weights, its Hub repo (never the demo's), the CUDA probe's result. */
export function probeInputsOf(target: Target, cuda: CudaProbeResult | null, o: { revision?: string; devices?: readonly number[]; probeBytes?: number; remeasure?: boolean }): ProbeInputs {
  return { dir: target.dir, files: target.files, bytes: target.bytes, synthetic: target.synthetic, repo: target.repo && target.kind !== 'demo' ? target.repo : null, cuda, revision: o.revision, devices: o.devices, probeBytes: o.probeBytes, remeasure: o.remeasure };
}

/**
 * Rates for --estimate, --no-download and the what-if rows, read by the native loader itself (its threads, its
 * chunks) from a probe file in coldstart's own cache (next to synthetic weights); a user's model directory is
 * never written to, even temporarily.
 */
export async function measureProbe(inp: ProbeInputs, deps: ProfileDeps): Promise<RateFacts> {
  const { env, signal, engines } = deps;
  const assumptions: string[] = [];
  const sw = new Stopwatch();
  const dir = inp.synthetic && inp.dir ? inp.dir : coldstartCacheDir(env);
  try {
    makeDirs(dir);
  } catch (e) {
    throw fromSystemError(e, dir, 'create');
  }
  const weightsAt = inp.dir ?? (inp.files[0] ? dirname(inp.files[0]) : null);
  if (weightsAt && !inp.synthetic) {
    const a = diskInfo(dir);
    const b = diskInfo(weightsAt);
    if (a.mount !== b.mount) assumptions.push(`disk rates were measured on ${a.mount} (${a.fsType ?? '?'}) but the weights are on ${b.mount} (${b.fsType ?? '?'}): set COLDSTART_CACHE to a directory on the weights' filesystem for a like-for-like probe`);
  }
  const dev = inp.cuda?.devices?.[0];
  const link = dev?.pcie ? pcieBandwidth(dev.pcie.maxGen, dev.pcie.maxWidth) : null;
  const repo = inp.repo;
  // Probe size follows the model, within 64 MiB–1 GiB: long enough for the loader's threads to reach their rate.
  // The warm probe also spans up to the model's size (at most 8 GiB) through hard links: one disk write of 1 GiB.
  const size = inp.probeBytes ?? Math.min(1 << 30, Math.max(64 << 20, inp.bytes ?? 0));
  // Without a GPU the loader keeps the bytes in host memory when they fit, else discards them: the probes use the
  // sink the model's own load will, so the short and long spans (and the prediction) pay the same copy.
  const hostSink = hostSinkFor(inp.bytes ?? 0);
  const devices = inp.devices?.slice(0, 1);
  const warmSpanBytes = Math.min(8 * 2 ** 30, inp.bytes ?? 0);
  const network = repo && !hfOffline(env) ? hfEndpoint(env) : null;
  // Rates of this machine, disk and kernel are kept with their date and reused for a week (rates-cache.ts).
  const cachePath = ratesCachePath(coldstartCacheDir(env));
  const key = ratesKey({ cuda: inp.cuda, devices, dir, probeBytes: size, warmSpanBytes, sink: engines.native().ok ? hostSink : 'dd', network });
  const kept = findRates(cachePath, key);
  if (kept && !inp.remeasure && isFresh(kept, new Date())) {
    deps.events?.note?.(reusedLine(kept));
    return { rates: kept.rates, assumptions: [...assumptions, ...kept.assumptions, reusedLine(kept)], seconds: sw.elapsed(), reusedFrom: kept.measuredAt };
  }
  // Said before it starts: how long the probes took last time under this key, else what they will do.
  if (kept) deps.events?.note?.(`measuring rates again (about ${formatDuration(kept.seconds)}, as on ${kept.measuredAt.slice(0, 10)})`);
  const bar = deps.events?.progress?.(`measuring rates (disk, page cache${link ? ', GPU link' : ''}${repo ? ', network' : ''})`);
  bar?.say(`writing a ${formatBytes(size)} probe file in ${dir}…`);
  let loads = 0;
  const r = await measureRates({
    dir,
    probeBytes: size,
    warmSpanBytes,
    signal,
    pcieBytesPerSecond: link,
    loaderRun: engines.native().ok
      ? async (files, cache) => {
          bar?.say(`probe load ${++loads}: ${formatBytes(size * files.length)} ${cache === 'cold' ? 'cold (from disk)' : 'from the page cache'}…`);
          const r = await engines.gpuLoad.runGpuLoad({ files, devices, cache, limits: cache === 'cold' && !!inp.cuda?.available, hostSink, signal });
          const threads = r.config?.threads ?? 0;
          // Fixed per load: before the first read, and each reader's share of pinning its ring (lazy, on the critical path).
          const fixedSeconds = (r.setupSeconds ?? 0) + (threads > 0 ? (r.ringSeconds ?? 0) / threads : 0);
          return { bytes: r.bytes, seconds: r.seconds, threads, fixedSeconds, ...(r.limits?.h2dBytesPerSecond ? { h2dBytesPerSecond: r.limits.h2dBytesPerSecond } : {}) };
        }
      : undefined,
    network: repo && !hfOffline(env) ? { client: hubClient(env, { signal }), url: `${repoUrl(hfEndpoint(env), repo)}/resolve/${encodeURIComponent(inp.revision ?? 'main')}/tokenizer.json` } : null,
  }).finally(() => bar?.end());
  assumptions.push(...r.assumptions);
  const seconds = sw.elapsed();
  try {
    saveRates(cachePath, { key, measuredAt: new Date().toISOString(), rates: r.rates, assumptions: r.assumptions, seconds });
  } catch (e) {
    assumptions.push(`rates not kept for the next run: ${cachePath}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (repo && hfOffline(env)) assumptions.push('network: HF_HUB_OFFLINE is set, so no rate to the Hub was measured and downloads are not predicted');
  return { rates: r.rates, assumptions, seconds };
}
