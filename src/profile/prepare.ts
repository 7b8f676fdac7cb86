/** Outside the phases: the synthetic checkpoint and the rate probes. */
import { dirname } from 'node:path';
import { fromSystemError } from '../core/errors.js';
import { makeDirs } from '../core/paths.js';
import { diskInfo } from '../platform/system.js';
import { Stopwatch } from '../core/clock.js';
import { formatBytes, formatDuration } from '../core/format.js';
import { pcieBandwidth } from '../platform/pcie.js';
import { ensureSyntheticModel, coldstartCacheDir } from '../formats/synthetic.js';
import { hfEndpoint, hfOffline } from '../hub/env.js';
import { hubClient, repoUrl } from '../hub/api.js';
import { measureRates } from './estimate.js';
import { hostSinkFor } from '../load/gpu-load.js';
import type { State } from './state.js';

/** Writes the demo / synthetic checkpoint (outside the phases: it is not part of a cold start). */
export async function prepare(s: State): Promise<void> {
  const { ctx, target, flags } = s;
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
}

/**
 * Rates for --estimate, --no-download and the what-if rows, read by the native loader itself (its threads, its
 * chunks) from a probe file in coldstart's own cache (next to synthetic weights); a user's model directory is
 * never written to, even temporarily.
 */
export async function probe(s: State, probeBytes: number | undefined): Promise<void> {
  const { ctx, target, flags } = s;
  if (s.only && !s.only.has('gpu-load') && !s.only.has('download')) return;
  const sw = new Stopwatch();
  const dir = target.synthetic && target.dir ? target.dir : coldstartCacheDir(ctx.env);
  try {
    makeDirs(dir);
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
  const repo = target.repo && target.kind !== 'demo' ? target.repo : null;
  // Probe size follows the model, within 64 MiB–1 GiB: long enough for the loader's threads to reach their rate.
  // The warm probe also spans up to the model's size (at most 8 GiB) through hard links: one disk write of 1 GiB.
  const size = probeBytes ?? Math.min(1 << 30, Math.max(64 << 20, target.bytes ?? 0));
  // Without a GPU the loader keeps the bytes in host memory when they fit, else discards them: the probes use the
  // sink the model's own load will, so the short and long spans (and the prediction) pay the same copy.
  const hostSink = hostSinkFor(target.bytes ?? 0);
  const r = await measureRates({
    dir,
    probeBytes: size,
    warmSpanBytes: Math.min(8 * 2 ** 30, target.bytes ?? 0),
    signal: ctx.signal,
    pcieBytesPerSecond: link,
    loaderRun: s.engines.native().ok
      ? async (files, cache) => {
          const r = await s.engines.gpuLoad.runGpuLoad({ files, devices: s.devices?.slice(0, 1), cache, limits: cache === 'cold' && !!s.cuda?.available, hostSink, signal: ctx.signal });
          const threads = r.config?.threads ?? 0;
          // Fixed per load: before the first read, and each reader's share of pinning its ring (lazy, on the critical path).
          const fixedSeconds = (r.setupSeconds ?? 0) + (threads > 0 ? (r.ringSeconds ?? 0) / threads : 0);
          return { bytes: r.bytes, seconds: r.seconds, threads, fixedSeconds, ...(r.limits?.h2dBytesPerSecond ? { h2dBytesPerSecond: r.limits.h2dBytesPerSecond } : {}) };
        }
      : undefined,
    network: repo && !hfOffline(ctx.env) ? { client: hubClient(ctx.env, { signal: ctx.signal }), url: `${repoUrl(hfEndpoint(ctx.env), repo)}/resolve/${encodeURIComponent(flags.revision ?? 'main')}/tokenizer.json` } : null,
  });
  s.rates = r.rates;
  s.assumptions.push(...r.assumptions);
  if (repo && hfOffline(ctx.env)) s.assumptions.push('network: HF_HUB_OFFLINE is set, so no rate to the Hub was measured and downloads are not predicted');
  s.outside.rates = sw.elapsed();
}
