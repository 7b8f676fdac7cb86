/**
 * Rates measured on this machine without moving weight bytes (a probe file for disk and page cache, a
 * buffer copy for memory, the PCIe link or the loader's own limit for host→device, a small non-weight file
 * for the network) and a load-time model built on them. `--estimate` predicts phases from it; the what-if
 * rows and findings scale measured phases by its ratios. Every assumption is returned as text to print.
 */
import { closeSync, linkSync, openSync, readSync, writeSync, fsyncSync, statSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { Stopwatch } from '../core/clock.js';
import { tempPathFor, trackTemp, removeTemp, untrackTemp } from '../core/atomic.js';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import { buildHeader } from '../formats/safetensors.js';
import { hubRequest, bodyError } from '../hub/http.js';
import type { HubClient } from '../hub/api.js';

export interface Rates {
  /** Sequential read bypassing the page cache, bytes/s: the loader's own cold read when present, else O_DIRECT dd. */
  diskReadBytesPerSecond: number | null;
  diskSource: 'loader' | 'dd' | null;
  /** Sequential read of a file resident in the page cache, bytes/s. */
  pageCacheBytesPerSecond: number | null;
  /** Host memory copy, bytes/s. */
  memcpyBytesPerSecond: number | null;
  /** Pinned host→device copy, bytes/s, and where the number came from. */
  h2dBytesPerSecond: number | null;
  h2dSource: 'loader' | 'pcie-link' | null;
  /** Download rate to the Hub endpoint and its first-byte latency. */
  networkBytesPerSecond: number | null;
  networkLatencySeconds: number | null;
  probeBytes: number;
  probeDir: string;
  /** Standard deviation of the probes (bytes/s) and how many there were; null for a single probe. */
  diskSigma?: number | null;
  pageCacheSigma?: number | null;
  probes?: number;
  /** Reader threads of the probe reads (the loader's own count when the loader measured them). */
  threads?: number | null;
  /**
   * The loader's fixed cost per load (destination allocation, streams, pinning its ring), measured on the warm
   * probe. Rates above exclude it; a prediction adds it once. On a fast page cache a 1 GiB probe is ~25 ms of
   * streaming and about as much fixed cost: folding the two into one rate predicted a 16 GB warm load at 0.75 s
   * where the loader took 0.36 s (H200, 2026-11-28). The loader's own split of its time (setup + ring) still left
   * ~20 ms unaccounted (0.63 s predicted), so the warm probe is now two loads of different spans and the fixed cost
   * and the rate are their intercept and slope (`warmSpan`).
   */
  loaderFixedSeconds?: number | null;
  /** Bytes the warm rate was measured over: the probe read `warmSpan` times in one load (hard links to one file). */
  warmSpanBytes?: number | null;
}

/** One run of the native loader on the probe file: what `measureRates` needs from it. */
export interface LoaderProbe {
  bytes: number;
  seconds: number;
  threads: number;
  /** Fixed cost inside `seconds` as the loader splits it (set-up, ring); used when no two-span fit is possible. */
  fixedSeconds?: number;
  h2dBytesPerSecond?: number;
}

export interface RateProbeOptions {
  dir: string;
  probeBytes?: number;
  signal?: AbortSignal;
  /** Link bandwidth from NVML (bytes/s per direction), when a GPU is present. */
  pcieBytesPerSecond?: number | null;
  /** The GPU loader's own limits measured on the probe file (cold cache): H2D and read rates. */
  loaderLimits?: (probeFile: string) => Promise<{ h2dBytesPerSecond?: number; readBytesPerSecond?: number } | null>;
  /**
   * Runs the native loader on the probe files with a cold or warm page cache (its own threads, chunks, O_DIRECT):
   * the read rates then come from the same code path, thread count and span as the load they predict. Warm runs
   * may get several hard links to the one probe file (one load over a longer span, no more disk).
   */
  loaderRun?: (probeFiles: string[], cache: 'cold' | 'warm') => Promise<LoaderProbe>;
  /**
   * How many bytes the warm probe should span (default: the probe itself). Above the probe's size the warm probe
   * loads the probe once and then N times in one load (N = span / probe, at most 16), and takes the rate from the
   * difference: a short load is dominated by the loader's fixed cost, a long one by its rate.
   */
  warmSpanBytes?: number;
  /** Probe runs per cache state (default 3): their spread is the estimate's uncertainty. */
  samples?: number;
  /** A URL of a non-weight file on the Hub and the client to fetch it with, to time the network without moving weight bytes. */
  network?: { client: HubClient; url: string; maxBytes?: number } | null;
}

/** Practical pinned H2D as a fraction of the raw link rate (TLP/DLLP overhead), used only without a loader measurement. */
export const PCIE_PRACTICAL_FRACTION = 0.8;

function readAll(path: string, chunk = 16 << 20): number {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(chunk);
  let n = 0;
  try {
    for (;;) {
      const r = readSync(fd, buf, 0, buf.length, n);
      if (r === 0) break;
      n += r;
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** Times GET of a small non-weight file: first-byte latency and the rate after it. */
/**
 * Times one small file from the Hub (latency to the first byte, then the rate over at most `maxBytes`) through the
 * Hub client, so the one token rule (credentials only on the endpoint's origin, every hop) and its deadlines hold.
 */
export async function measureNetwork(client: HubClient, url: string, maxBytes = 32 << 20): Promise<{ bytesPerSecond: number; latencySeconds: number; bytes: number }> {
  const sw = new Stopwatch();
  const res = await hubRequest(url, { endpoint: client.endpoint, token: client.token, signal: client.signal, timeoutMs: client.apiTimeoutMs });
  const latency = sw.elapsed();
  const status = res.statusCode ?? 0;
  if (status >= 300) {
    res.resume();
    throw new Error(`HTTP ${status}`);
  }
  const t1 = new Stopwatch();
  let bytes = 0;
  try {
    for await (const c of res) {
      bytes += (c as Buffer).length;
      if (bytes >= maxBytes) break;
    }
  } catch (e) {
    throw bodyError(e, res, url, client.signal);
  } finally {
    res.destroy();
  }
  const t = t1.elapsed();
  return { bytesPerSecond: bytes / Math.max(t, 1e-6), latencySeconds: latency, bytes };
}

/**
 * Measures the rates. The probe file is a valid one-tensor safetensors file (so a loader can time H2D on
 * it), written to a temp name in `dir` and always removed.
 */
export async function measureRates(opts: RateProbeOptions): Promise<{ rates: Rates; assumptions: string[]; seconds: number }> {
  const sw = new Stopwatch();
  const assumptions: string[] = [];
  const probeBytes = opts.probeBytes ?? 256 << 20;
  const probe = tempPathFor(join(opts.dir, 'coldstart-rate-probe.safetensors'));
  trackTemp(probe);
  const rates: Rates = {
    diskReadBytesPerSecond: null,
    diskSource: null,
    pageCacheBytesPerSecond: null,
    memcpyBytesPerSecond: null,
    h2dBytesPerSecond: null,
    h2dSource: null,
    networkBytesPerSecond: null,
    networkLatencySeconds: null,
    probeBytes,
    probeDir: opts.dir,
  };
  try {
    // Write the probe (random bytes: no compression or dedup can flatter the numbers).
    const { bytes: header } = buildHeader([{ name: 'probe', dtype: 'U8', shape: [probeBytes] }]);
    const fd = openSync(probe, 'wx', 0o600);
    try {
      writeSync(fd, header, 0, header.length, 0);
      const buf = Buffer.allocUnsafe(Math.min(16 << 20, probeBytes));
      for (let done = 0; done < probeBytes; ) {
        opts.signal?.throwIfAborted();
        const n = Math.min(buf.length, probeBytes - done);
        randomFillSync(buf, 0, n);
        writeSync(fd, buf, 0, n, header.length + done);
        done += n;
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const size = statSync(probe).size;
    const k = Math.max(1, opts.samples ?? 3);
    const meanSd = (xs: number[]) => {
      const m = xs.reduce((a, b) => a + b, 0) / xs.length;
      return { m, sd: xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : null };
    };
    let loaderDone = false;
    const links: string[] = [];
    const dropLinks = () => {
      for (const l of links.splice(0)) removeTemp(l);
    };
    if (opts.loaderRun) {
      try {
        // The long warm span: hard links to the probe (the loader loads each path; the page cache holds one copy).
        const n = Math.max(1, Math.min(16, Math.floor((opts.warmSpanBytes ?? 0) / probeBytes)));
        for (let i = 1; i < n; i++) {
          const l = `${probe}.${i}`;
          try {
            trackTemp(l);
            linkSync(probe, l);
            links.push(l);
          } catch (e) {
            untrackTemp(l);
            assumptions.push(`page cache: the warm probe spans one ${formatBytes(probeBytes)} file (hard links are not possible in ${opts.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the loader's fixed cost is its own estimate`);
            break;
          }
        }
        const warm: number[] = [];
        const cold: number[] = [];
        const fixed: number[] = [];
        // Streaming time: the load minus its fixed cost (never below half the load, so a bad split cannot explode).
        const streaming = (r: LoaderProbe) => Math.max(r.seconds - (r.fixedSeconds ?? 0), r.seconds / 2);
        for (let i = 0; i < k; i++) {
          opts.signal?.throwIfAborted();
          const w = await opts.loaderRun([probe], 'warm');
          rates.threads = w.threads;
          let long: LoaderProbe | null = null;
          if (links.length > 0) {
            try {
              long = await opts.loaderRun([probe, ...links], 'warm');
            } catch (e) {
              // The long span did not fit (device memory, a limit): one span, and the loader's own split of its time.
              if (opts.signal?.aborted) throw e;
              assumptions.push(`page cache: the ${formatBytes((links.length + 1) * probeBytes)} warm span could not be loaded (${(e as Error).message.split('\n')[0]}); one ${formatBytes(probeBytes)} span was used`);
              dropLinks();
            }
          }
          // Two spans: slope = rate, intercept = fixed cost. A long load no slower than the short one is noise; then
          // the loader's own split is used for this sample.
          let fit: number | null = null;
          if (long && long.seconds > w.seconds && long.bytes > w.bytes) {
            const rate = (long.bytes - w.bytes) / (long.seconds - w.seconds);
            warm.push(rate);
            fit = Math.max(0, w.seconds - w.bytes / rate);
            fixed.push(fit);
          } else {
            warm.push(w.bytes / streaming(w));
            fixed.push(w.seconds - streaming(w));
          }
          // The cold load pays the same fixed cost (same code path, same allocation): its rate is what is left.
          const c = await opts.loaderRun([probe], 'cold');
          cold.push(c.bytes / (fit !== null ? Math.max(c.seconds - fit, c.seconds / 2) : streaming(c)));
          if (c.h2dBytesPerSecond) {
            rates.h2dBytesPerSecond = c.h2dBytesPerSecond;
            rates.h2dSource = 'loader';
          }
        }
        const w = meanSd(warm);
        const c = meanSd(cold);
        rates.pageCacheBytesPerSecond = w.m;
        rates.pageCacheSigma = w.sd;
        rates.loaderFixedSeconds = fixed.reduce((a, b) => a + b, 0) / fixed.length;
        rates.warmSpanBytes = (links.length + 1) * probeBytes;
        rates.diskReadBytesPerSecond = c.m;
        rates.diskSigma = c.sd;
        rates.diskSource = 'loader';
        rates.probes = k;
        loaderDone = true;
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        assumptions.push(`the native loader could not read the probe (${(e as Error).message}); rates from plain reads`);
      } finally {
        dropLinks();
      }
    }
    if (!loaderDone) {
      // Page cache: the file was just written, so its pages are resident.
      const xs: number[] = [];
      for (let i = 0; i < k; i++) {
        const t = new Stopwatch();
        readAll(probe);
        xs.push(size / t.elapsed());
      }
      const w = meanSd(xs);
      rates.pageCacheBytesPerSecond = w.m;
      rates.pageCacheSigma = w.sd;
      rates.probes = k;
      rates.threads = 1;
      // Disk: O_DIRECT through dd (aligned buffers, no page cache). Not every filesystem allows it.
      const t = new Stopwatch();
      const { execa } = await import('execa');
      const dd = await execa('dd', [`if=${probe}`, 'of=/dev/null', 'bs=16M', 'iflag=direct'], { reject: false, timeout: 120_000, cancelSignal: opts.signal });
      const ddSeconds = t.elapsed();
      if (dd.exitCode === 0) {
        rates.diskReadBytesPerSecond = size / ddSeconds;
        rates.diskSource = 'dd';
      } else assumptions.push(`disk: O_DIRECT reads are not possible on ${opts.dir} (${String(dd.stderr).split('\n')[0] || 'dd failed'}); cold reads are assumed to run at the page-cache rate, which flatters cold loads`);
    }
    // Memory copy (the extra host copy a .bin load pays).
    const a = Buffer.allocUnsafe(64 << 20);
    const b = Buffer.allocUnsafe(64 << 20);
    a.fill(1);
    b.fill(2);
    let mbest = Infinity;
    for (let i = 0; i < 3; i++) {
      const m = new Stopwatch();
      a.copy(b);
      mbest = Math.min(mbest, m.elapsed());
    }
    rates.memcpyBytesPerSecond = a.length / mbest;
    // Host → device.
    // The loader's own limits, when it is present: its cold read (threads, O_DIRECT, queue depth) beats a
    // single dd stream on NVMe, and its H2D is the real pinned-copy rate.
    const lim = !loaderDone && opts.loaderLimits ? await opts.loaderLimits(probe).catch(() => null) : null;
    if (lim?.readBytesPerSecond) {
      rates.diskReadBytesPerSecond = lim.readBytesPerSecond;
      rates.diskSource = 'loader';
    }
    if (rates.h2dSource === 'loader') {
      /* measured by the loader runs above */
    } else if (lim?.h2dBytesPerSecond) {
      rates.h2dBytesPerSecond = lim.h2dBytesPerSecond;
      rates.h2dSource = 'loader';
    } else if (opts.pcieBytesPerSecond) {
      rates.h2dBytesPerSecond = opts.pcieBytesPerSecond * PCIE_PRACTICAL_FRACTION;
      rates.h2dSource = 'pcie-link';
      assumptions.push(`host→device: ${Math.round(PCIE_PRACTICAL_FRACTION * 100)}% of the PCIe link's raw ${formatRate(opts.pcieBytesPerSecond)} (no loader measurement)`);
    } else {
      assumptions.push('host→device: no GPU measured; loads are predicted as host reads only');
    }
  } finally {
    removeTemp(probe);
  }
  if (opts.network) {
    try {
      const n = await measureNetwork(opts.network.client, opts.network.url, opts.network.maxBytes);
      rates.networkBytesPerSecond = n.bytesPerSecond;
      rates.networkLatencySeconds = n.latencySeconds;
      if (n.bytes < 4 << 20) assumptions.push(`network: rate from a ${formatBytes(n.bytes)} file; small files understate sustained throughput`);
    } catch (e) {
      assumptions.push(`network: could not time ${opts.network.url} (${(e as Error).message}); download not predicted`);
    }
  }
  assumptions.push(`rates from ${rates.probes ?? 1} run(s) per cache state on a ${formatBytes(probeBytes)} probe file in ${opts.dir}${rates.diskSource === 'loader' ? ` read by the native loader (${rates.threads} threads, as the load)` : ''}${rates.warmSpanBytes && rates.warmSpanBytes > probeBytes ? `; page cache over ${formatBytes(probeBytes)} and ${formatBytes(rates.warmSpanBytes)} loads (rate from the difference, the rest is the loader's fixed cost)` : ''}`);
  return { rates, assumptions, seconds: sw.elapsed() };
}

// ---------------------------------------------------------------------------------------------- load model
export type CacheState = 'cold' | 'warm';

export interface LoadModelInput {
  bytes: number;
  format: 'safetensors' | 'bin';
  cache: CacheState;
  gpu: boolean;
}

/** The fraction of pinned H2D a pageable copy gets (torch `.to('cuda')` from ordinary memory). */
export const PAGEABLE_FRACTION = 0.5;

/**
 * Predicted gpu-load seconds. safetensors: read and copy overlap, so the slower of read and H2D wins.
 * .bin: torch.load reads each storage into fresh memory (read + one host copy), then a pageable copy to the
 * GPU, one after the other. Returns null when a needed rate is missing.
 */
export function predictLoadSeconds(r: Rates, m: LoadModelInput): number | null {
  const read = m.cache === 'warm' ? r.pageCacheBytesPerSecond : (r.diskReadBytesPerSecond ?? r.pageCacheBytesPerSecond);
  if (!read) return null;
  const h2d = m.gpu ? r.h2dBytesPerSecond : null;
  if (m.format === 'safetensors') return (r.loaderFixedSeconds ?? 0) + m.bytes / (h2d ? Math.min(read, h2d) : read);
  const copy = r.memcpyBytesPerSecond ?? read;
  return m.bytes / read + m.bytes / copy + (h2d ? m.bytes / (h2d * PAGEABLE_FRACTION) : 0);
}

/** One standard deviation of a prediction, from the spread of the probes of the rate it used (null: one probe). */
export function predictLoadSigma(r: Rates, m: LoadModelInput, predicted: number): number | null {
  const rate = m.cache === 'warm' ? r.pageCacheBytesPerSecond : r.diskReadBytesPerSecond;
  const sd = m.cache === 'warm' ? r.pageCacheSigma : r.diskSigma;
  if (!rate || sd === null || sd === undefined) return null;
  return predicted * (sd / rate);
}

/** "2.7 s ± 0.3 s": a prediction with its uncertainty, at the precision the uncertainty allows. */
export function formatWithSigma(seconds: number, sigma: number | null): string {
  if (sigma === null) return `${formatDuration(seconds)} (one probe: uncertainty unknown)`;
  return `${formatDuration(seconds)} ± ${formatDuration(Math.max(sigma, seconds * 0.01))}`;
}

export function predictDownloadSeconds(r: Rates, bytes: number): number | null {
  if (!r.networkBytesPerSecond) return null;
  return bytes / r.networkBytesPerSecond + (r.networkLatencySeconds ?? 0);
}

export function describeLoadModel(r: Rates): string[] {
  const out: string[] = [];
  out.push(
    `gpu-load (safetensors) = the loader's fixed cost (${r.loaderFixedSeconds != null ? formatDuration(r.loaderFixedSeconds) : 'not measured'}) + bytes / min(read, host→device): read ${formatRate(r.diskReadBytesPerSecond ?? NaN)} cold${r.diskSource ? ` (${r.diskSource === 'loader' ? 'the loader on the probe' : 'O_DIRECT dd'})` : ''}, ${formatRate(r.pageCacheBytesPerSecond ?? NaN)} from page cache; host→device ${formatRate(r.h2dBytesPerSecond ?? NaN)}${r.h2dSource ? ` (${r.h2dSource})` : ''}`,
  );
  out.push(`gpu-load (.bin) = bytes/read + bytes/memcpy (${formatRate(r.memcpyBytesPerSecond ?? NaN)}) + bytes/(${PAGEABLE_FRACTION}×host→device, pageable)`);
  if (r.networkBytesPerSecond) out.push(`download = bytes / ${formatRate(r.networkBytesPerSecond)} + ${((r.networkLatencySeconds ?? 0) * 1000).toFixed(0)} ms first-byte latency`);
  return out;
}
