import { intOption } from '../core/flags.js';
/**
 * The gpu-load engine: every tensor of a set of safetensors files into GPU memory at the hardware's limit, timed,
 * through the native loader (native/src/loader.cc). Headers are validated here first (readHeader), so a missing,
 * truncated or lying file is refused with exit 2 before a byte is read or allocated. With no CUDA driver the same
 * engine loads into host memory and the result says so (`mode: 'host'`).
 */
import { realpathSync } from 'node:fs';
import { availableParallelism, freemem } from 'node:os';
import { basename } from 'node:path';
import { ColdstartError, fromSystemError, invalidOption } from '../core/errors.js';
import { formatBytes, formatDuration, formatRate, formatPercent } from '../core/format.js';
import type { PhaseHandle } from '../core/phases.js';
import { readHeader, type SafetensorsHeader } from '../formats/safetensors.js';
import { planTp, readTpConfig } from './tp.js';
import { callNative, readProgress, requireNative, sharedProgress, withNativeCancel, type NativeAddon, type NativeLoadOptions, type NativeLoadResult } from '../native.js';

export type CacheMode = 'cold' | 'warm' | 'as-is';

export interface GpuLoadOptions {
  files: string[];
  /** CUDA ordinals (after CUDA_VISIBLE_DEVICES); files are spread over them. Default [0]. */
  devices?: number[];
  cache?: CacheMode;
  verify?: boolean;
  chunkBytes?: number;
  threads?: number;
  buffers?: number;
  /**
   * true: O_DIRECT reads (the page cache left as found: `--direct`); false: through the page cache, left resident for
   * the next start (`--buffered`). Default: O_DIRECT when the weights are not in the page cache.
   */
  direct?: boolean;
  limits?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** How the pinned ring is made: cuMemHostAlloc ('alloc') or huge-page memory + cuMemHostRegister ('register'). */
  ring?: 'alloc' | 'register';
  /** CUDA streams per device (default 4). */
  streams?: number;
  /** Load into host memory even when a GPU is present. */
  host?: boolean;
  /** Read-bandwidth limit is measured over at most this many bytes (default 16 GiB warm, 4 GiB cold). */
  limitBytes?: number;
  /**
   * Copy path: 'ring' (pread into pinned buffers, then DMA; the default) or 'mapped' (DMA straight from the page
   * cache, pinned in place with cuMemHostRegister READ_ONLY; GPU only, meant for a warm cache).
   */
  path?: 'ring' | 'mapped';
  /**
   * Host mode only: where the bytes go. Default: host memory when the weights fit in half of the free memory, else
   * discarded (the read alone). Probes that stand in for a larger load pass the sink that load will use, so both
   * pay the same copy; 'memory' that does not fit falls back to 'discard' with a note.
   */
  hostSink?: 'memory' | 'discard';
  /**
   * Tensor-parallel degree (src/load/tp.ts): each of `tp` ranks (the GPUs in `devices`, default 0..tp-1; host
   * buffers without a GPU) receives only its slices, and each byte of the files is read once.
   */
  tp?: number;
}

/** Host mode's default sink for a load of `bytes`: host memory when it fits in half the free memory, else discard. */
export function hostSinkFor(bytes: number): 'memory' | 'discard' {
  return bytes <= 0.5 * freemem() ? 'memory' : 'discard';
}

/** Why a load ran in host memory, as a stable value (decisions key on this, never on the driver's message). */
export type HostCause = 'requested' | 'no-driver' | 'driver-init' | 'no-device';
const HOST_CAUSE_TEXT: Record<HostCause, string> = {
  requested: 'host mode requested',
  'no-driver': 'no CUDA driver',
  'driver-init': 'CUDA driver failed to initialise',
  'no-device': 'no CUDA device',
};

export interface GpuLoadResult {
  mode: 'gpu' | 'host';
  /** Host mode: why, as a stable value, and the probe's own words. */
  hostCause?: HostCause;
  hostReason?: string;
  bytes: number;
  /** Wall time of the load: pinned ring and destination allocation, reads, copies, final synchronisation. */
  seconds: number;
  bytesPerSecond: number;
  /** Time at least one read was running (union over reader threads). */
  readSeconds: number;
  /** Time at least one host→device copy was in flight (memcpy time in host mode). */
  copySeconds: number;
  /** Share of the copy time during which reads were running too. */
  overlapFraction: number;
  /** Before the first read (destination allocation, streams), inside `seconds`. */
  setupSeconds: number;
  /** Destination allocation (the slowest device's), inside setupSeconds. */
  allocSeconds: number;
  /** Pinned ring allocation summed over reader threads; done lazily, it overlaps the reads. */
  ringSeconds: number;
  cache: {
    requested: CacheMode;
    residentFractionBefore: number;
    residentFractionInitial?: number;
    /**
     * After the load (mincore). A file that was cold as found (nothing resident but what reading its header brought
     * in) and read with O_DIRECT is evicted again after the load, so the page cache is left as found; `--buffered`
     * (direct: false) leaves what it read resident for the next start.
     */
    residentFractionAfter?: number;
    note?: string;
  };
  files: Array<{ path: string; bytes: number; seconds: number; device: number | null; tensors: number; direct: boolean }>;
  /** One entry per card (index -1, name 'host memory', in host mode). */
  devices: Array<{ index: number; name?: string; bytes: number; seconds: number; bytesPerSecond: number; h2dBytesPerSecond?: number }>;
  limits?: {
    /** Pinned host → device; with several cards, measured on all of them at once (then the alone-sum is set). */
    h2dBytesPerSecond?: number;
    /** Several cards: the sum of each card's H2D measured alone, beside the concurrent aggregate above. */
    h2dAloneSumBytesPerSecond?: number;
    d2hBytesPerSecond?: number;
    readBytesPerSecond?: number;
    /** Page-cache state the read limit was measured in, and over how many bytes. */
    readCache?: CacheMode;
    readBytes?: number;
    /**
     * Set when the load itself went faster than a probe: the probe's rate is kept here and the limit above is
     * the load's own rate, so efficiency never exceeds 1 (a limit the loader beats was not a limit).
     */
    probedBytesPerSecond?: { read?: number; h2d?: number };
  };
  efficiency: number | null;
  verify?: { checked: number; mismatches: number; checkedBytes: number; firstMismatch?: string };
  /** The settings the load ran with. */
  config: { chunkBytes: number; threads: number; buffers: number; streams: number; direct: boolean; ring: 'alloc' | 'register'; sink: 'device' | 'memory' | 'discard'; path: 'ring' | 'mapped' };
  /** Path mapped: cuMemHostRegister time summed over workers. */
  registerSeconds?: number;
  /**
   * Tensor-parallel loads: per rank its device (null: host memory), the bytes it received and when its last copy
   * ended; the load's time is the slowest rank's. readBytes were read once; deliveredBytes is what all ranks received.
   */
  tp?: { degree: number; ranks: Array<{ rank: number; device: number | null; bytes: number; seconds: number; bytesPerSecond: number }>; readBytes: number; deliveredBytes: number; slowestSeconds: number };
  notes: string[];
}

/**
 * Defaults from the sweeps on an H200 (bench/gpu-load/RESULTS.md, 2026-11-27): 8 MiB chunks, one reader thread per
 * core up to 16 (16 threads read the page cache at 45.5 GB/s where 8 read 36.0 on a 16-core H200 host,
 * bench/gpu-load/h200-2026-11-28),
 * threads + 2 ring buffers of huge-page memory pinned with cuMemHostRegister (pinning cuMemHostAlloc memory cost
 * 3-4× more and sits on the critical path of the first reads), 4 streams (1-8 made no difference), O_DIRECT only
 * when the files are not in the page cache.
 */
export const DEFAULTS = {
  chunkBytes: 8 << 20,
  threads: Math.max(2, Math.min(16, availableParallelism())),
  buffers: 0, // 0: threads + 2
  streams: 4,
  ring: 'register' as 'alloc' | 'register',
  limitBytes: 16 * 2 ** 30,
  /** A cold read limit costs a disk read: measured over the first 4 GiB only. */
  coldLimitBytes: 4 * 2 ** 30,
} as const;

const ALIGN = 4096;
const MIB = 1 << 20;

// ------------------------------------------------------------------------------------------------ planning
export interface PlanFile {
  /** Absolute byte range to load. */
  begin: number;
  end: number;
}

/** Numbers per chunk in a plan: file, readOffset, readLength, skip, copyLength, destOffset. */
export const PLAN_STRIDE = 6;

/**
 * Splits each file's range into chunks on chunkBytes-aligned file offsets. Reads start and end 4096-aligned (so the
 * same plan works with O_DIRECT) and never exceed chunkBytes; `skip` is where the wanted bytes start in the read,
 * `dest` where they go in the file's destination. Chunks tile every range exactly, in file order.
 */
export function planChunks(files: readonly PlanFile[], chunkBytes: number): Float64Array {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < ALIGN || chunkBytes % ALIGN !== 0) throw invalidOption('chunkBytes', 'a multiple of 4096', chunkBytes);
  let n = 0;
  for (const f of files) if (f.end > f.begin) n += Math.ceil(f.end / chunkBytes) - Math.floor(f.begin / chunkBytes);
  const plan = new Float64Array(n * PLAN_STRIDE);
  let i = 0;
  files.forEach((f, fi) => {
    if (f.end <= f.begin) return;
    for (let k = Math.floor(f.begin / chunkBytes); k * chunkBytes < f.end; k++) {
      const s = Math.max(f.begin, k * chunkBytes);
      const e = Math.min(f.end, (k + 1) * chunkBytes);
      const readOff = Math.floor(s / ALIGN) * ALIGN;
      const readEnd = Math.min(Math.ceil(e / ALIGN) * ALIGN, (k + 1) * chunkBytes);
      plan.set([fi, readOff, readEnd - readOff, s - readOff, e - s, s - f.begin], i);
      i += PLAN_STRIDE;
    }
  });
  return plan;
}

/** The chunks of a plan as objects (tests, debugging). */
export function planEntries(plan: Float64Array): Array<{ file: number; readOffset: number; readLength: number; skip: number; copyLength: number; dest: number }> {
  const out = [];
  for (let i = 0; i < plan.length; i += PLAN_STRIDE) {
    out.push({ file: plan[i]!, readOffset: plan[i + 1]!, readLength: plan[i + 2]!, skip: plan[i + 3]!, copyLength: plan[i + 4]!, dest: plan[i + 5]! });
  }
  return out;
}

/**
 * Verification samples, 3 numbers each (file, offset relative to the data section, length): every tensor's first,
 * middle and last `sampleBytes` (the whole tensor when it is small).
 */
export function planSamples(headers: readonly SafetensorsHeader[], sampleBytes = 4096): Float64Array {
  const out: number[] = [];
  headers.forEach((h, fi) => {
    for (const t of h.tensors) {
      const size = t.end - t.begin;
      if (size === 0) continue;
      if (size <= 3 * sampleBytes) {
        out.push(fi, t.begin, size);
        continue;
      }
      const mid = t.begin + Math.floor((size - sampleBytes) / 2 / 8) * 8;
      out.push(fi, t.begin, sampleBytes, fi, mid, sampleBytes, fi, t.end - sampleBytes, sampleBytes);
    }
  });
  return Float64Array.from(out);
}

/** Spreads files over devices, largest first onto the least-loaded device (tensor-parallel shards stay whole). */
export function assignDevices(sizes: readonly number[], devices: readonly number[]): number[] {
  const load = new Map(devices.map((d) => [d, 0]));
  const out = new Array<number>(sizes.length).fill(devices[0]!);
  const order = sizes.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [size, i] of order) {
    let best = devices[0]!;
    for (const d of devices) if (load.get(d)! < load.get(best)!) best = d;
    out[i] = best;
    load.set(best, load.get(best)! + size);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ running
/**
 * A probe measures a prefix of the files (and a cold disk can speed up after it); when the whole load beats a
 * probed rate, that rate was no limit. The load's own rate becomes the limit, the probe is kept beside it and a
 * note says so: efficiency is ≤ 1 by construction instead of a "1.09" that means nothing.
 */
export function raiseBeatenLimits(limits: NonNullable<GpuLoadResult['limits']>, bytesPerSecond: number, notes: string[]): void {
  for (const key of ['read', 'h2d'] as const) {
    const field = key === 'read' ? 'readBytesPerSecond' : 'h2dBytesPerSecond';
    const probed = limits[field];
    if (probed === undefined || !(bytesPerSecond > probed)) continue;
    limits.probedBytesPerSecond = { ...limits.probedBytesPerSecond, [key]: probed };
    limits[field] = bytesPerSecond;
    notes.push(`the ${key === 'read' ? 'read' : 'host→device'} probe measured ${formatRate(probed)} but the load itself moved ${formatRate(bytesPerSecond)}: the limit is the load's own rate`);
  }
}

function checkCount(option: string, v: number | undefined, min: number, max: number): void {
  if (v !== undefined) intOption(option, v, min, max);
}

/**
 * The most a cold file can have resident once its header was read (prepareFiles reads it through the page cache):
 * the header's pages plus the kernel's readahead window around them (up to 2 MiB with the defaults).
 */
function headerSpan(dataOffset: number, bytes: number): number {
  return Math.min(bytes, Math.ceil(dataOffset / ALIGN) * ALIGN + 2 * MIB);
}

function residentFraction(entries: Array<{ bytes: number; residentBytes: number | null }>): number {
  const total = entries.reduce((a, e) => a + e.bytes, 0);
  if (total === 0) return 1;
  const known = entries.filter((e) => e.residentBytes !== null);
  if (known.length === 0) return Number.NaN;
  return known.reduce((a, e) => a + (e.residentBytes ?? 0), 0) / total;
}

interface Prepared {
  paths: string[];
  headers: SafetensorsHeader[];
  bytes: number;
}

/** Validates every input before anything is read or allocated (exit 2 on the first bad file). */
export function prepareFiles(paths: readonly string[]): Prepared {
  if (paths.length === 0) throw new ColdstartError('BAD_INPUT', 'gpu-load: no files to load');
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of paths) {
    let real: string;
    try {
      real = realpathSync(p);
    } catch (e) {
      throw fromSystemError(e, p, 'read');
    }
    if (seen.has(real)) continue;
    seen.add(real);
    out.push(p);
  }
  const headers = out.map((p) => readHeader(p));
  return { paths: out, headers, bytes: headers.reduce((a, h) => a + h.dataSize, 0) };
}

async function detectMode(addon: NativeAddon, opts: GpuLoadOptions): Promise<{ mode: 'gpu' | 'host'; reason?: string; cause?: HostCause; short?: string; count: number }> {
  if (opts.host) return { mode: 'host', reason: 'host mode was requested', cause: 'requested', short: HOST_CAUSE_TEXT.requested, count: 0 };
  const probe = await addon.cudaProbe({ context: false });
  if (probe.available) return { mode: 'gpu', count: probe.devices.length };
  const cause: HostCause = probe.stage === 'dlopen' ? 'no-driver' : probe.stage === 'cuInit' ? 'driver-init' : 'no-device';
  return { mode: 'host', reason: probe.reason ?? HOST_CAUSE_TEXT[cause], cause, short: HOST_CAUSE_TEXT[cause], count: 0 };
}

/** Loads every tensor of `opts.files` (validated first) and returns the timing breakdown. */
export async function runGpuLoad(opts: GpuLoadOptions): Promise<GpuLoadResult> {
  checkCount('threads', opts.threads, 1, 256);
  checkCount('buffers', opts.buffers, 1, 4096);
  checkCount('streams', opts.streams, 1, 64);
  if (opts.chunkBytes !== undefined && (!Number.isSafeInteger(opts.chunkBytes) || opts.chunkBytes < ALIGN || opts.chunkBytes % ALIGN !== 0 || opts.chunkBytes > 1024 * MIB)) {
    throw invalidOption('chunkBytes', 'a multiple of 4096 up to 1 GiB', opts.chunkBytes);
  }
  const copyPath = opts.path ?? 'ring';
  if (copyPath !== 'ring' && copyPath !== 'mapped') throw invalidOption('path', 'ring or mapped', copyPath);
  const cacheMode: CacheMode = opts.cache ?? 'as-is';
  if (!['cold', 'warm', 'as-is'].includes(cacheMode)) throw invalidOption('cache', 'cold, warm or as-is', cacheMode);
  const tp = opts.tp;
  if (tp !== undefined && (!Number.isSafeInteger(tp) || tp < 1 || tp > 1024)) throw invalidOption('tp', 'a whole number from 1 to 1024', tp);
  if (tp !== undefined && opts.devices && opts.devices.length !== tp) throw invalidOption('devices', `${tp} device indexes (one per tensor-parallel rank)`, opts.devices.join(','));
  if (tp !== undefined && opts.path === 'mapped') throw invalidOption('path', 'ring for a tensor-parallel load (its copies are strided)', 'mapped');
  const devicesAsked = opts.devices ?? (tp ? Array.from({ length: tp }, (_, i) => i) : [0]);
  if (devicesAsked.length === 0 || devicesAsked.some((d) => !Number.isSafeInteger(d) || d < 0) || new Set(devicesAsked).size !== devicesAsked.length) {
    throw invalidOption('devices', 'distinct device indexes like 0,1', devicesAsked.join(','));
  }

  // 1. Every header is validated before anything else happens.
  const prep = prepareFiles(opts.files);
  const addon = requireNative('gpu-load');
  if (opts.signal?.aborted) throw new ColdstartError('INTERRUPTED', 'gpu-load: cancelled before it started');

  const mode = await detectMode(addon, opts);
  const notes: string[] = [];
  if (mode.mode === 'gpu') {
    const missing = devicesAsked.filter((d) => d >= mode.count);
    if (missing.length) throw invalidOption('devices', `device indexes below ${mode.count} (the GPUs this process sees)`, devicesAsked.join(','));
  } else if (opts.devices && opts.devices.length > 0) {
    notes.push(`device(s) ${opts.devices.join(',')} ignored: ${mode.short}`);
  }
  if (mode.mode === 'host' && copyPath === 'mapped') notes.push(`path mapped needs a GPU (${mode.short}): the ring path was used`);

  const threads = opts.threads ?? DEFAULTS.threads;
  const buffers = opts.buffers ?? (DEFAULTS.buffers || threads + 2);
  const streams = opts.streams ?? DEFAULTS.streams;
  const chunkBytes = opts.chunkBytes ?? DEFAULTS.chunkBytes;

  const ranges = prep.headers.map((h) => ({ begin: h.dataOffset, end: h.dataOffset + h.dataSize }));
  const sizes = prep.headers.map((h) => h.dataSize);
  const devOf = mode.mode === 'gpu' ? assignDevices(sizes, devicesAsked) : sizes.map(() => -1);
  const files = prep.paths.map((path, i) => ({ path, begin: ranges[i]!.begin, end: ranges[i]!.end, device: devOf[i]! }));
  const plan = planChunks(ranges, chunkBytes);
  const tpPlan = tp ? planTp(prep.headers, prep.paths, tp, chunkBytes, prep.paths.length ? readTpConfig(prep.paths[0]!) : {}) : null;

  let sink: 'device' | 'memory' | 'discard' = 'device';
  if (mode.mode === 'host') {
    // Host memory stands in for the card; when the checkpoint does not fit, measure the read alone.
    const fits = hostSinkFor(tpPlan ? tpPlan.deliveredBytes : prep.bytes) === 'memory';
    sink = opts.hostSink === 'discard' || !fits ? 'discard' : 'memory';
    if (!fits) notes.push('host memory is too small to hold the weights: the read alone was measured and nothing could be verified');
    else if (sink === 'discard') notes.push('the bytes read were discarded (as the load this stands in for does): nothing was verified');
  }
  // 2. Page-cache state.
  const paths = prep.paths;
  const found = await callNative(() => addon.pageCache({ paths, action: 'query' }), 'page cache');
  const initial = residentFraction(found);
  const coldAsFound = found.map((e, i) => e.residentBytes !== null && e.residentBytes <= headerSpan(prep.headers[i]!.dataOffset, e.bytes) && (e.residentBytes === 0 || e.residentBytes < e.bytes));
  // Unless told, read with O_DIRECT when the weights are not in the page cache (one copy less on the way from
  // the disk), through the page cache when they are.
  const direct = opts.direct ?? (cacheMode === 'cold' || (cacheMode === 'as-is' && !(initial >= 0.5)));
  const ring = opts.ring ?? DEFAULTS.ring;
  const base = { mode: mode.mode, files, plan, chunkBytes, threads, buffers, streams, direct, ring } satisfies Partial<NativeLoadOptions>;
  const evict = async (): Promise<number> => {
    const after = await callNative(() => addon.pageCache({ paths, action: 'evict' }), 'page cache');
    const failedNote = after.find((e) => e.note)?.note;
    if (failedNote && !notes.includes(failedNote)) notes.push(failedNote);
    return residentFraction(after);
  };
  const warm = async (): Promise<void> => {
    await callNative(() => addon.gpuLoad({ ...base, mode: 'host', sink: 'discard', threads: Math.max(threads, 4), buffers: Math.max(buffers, 8) }), 'warming the page cache');
  };
  const checkAbort = (): void => {
    if (opts.signal?.aborted) throw new ColdstartError('INTERRUPTED', 'gpu-load: cancelled');
  };
  const prepareCache = async (): Promise<void> => {
    checkAbort();
    if (cacheMode === 'cold') await evict();
    else if (cacheMode === 'warm') await warm();
  };

  // 3. Limits, measured in the same page-cache state the load will see.
  let limits: GpuLoadResult['limits'];
  const perDeviceH2d = new Map<number, number>();
  if (opts.limits) {
    limits = {};
    await prepareCache();
    let limitPlan = plan;
    const cap = opts.limitBytes ?? (cacheMode === 'cold' ? DEFAULTS.coldLimitBytes : DEFAULTS.limitBytes);
    let readBytes = 0;
    for (let i = 0; i < plan.length; i += PLAN_STRIDE) {
      readBytes += plan[i + 4]!;
      if (readBytes >= cap) {
        limitPlan = plan.subarray(0, i + PLAN_STRIDE);
        break;
      }
    }
    // Raw read bandwidth into the same kind of ring: bytes over the time from the first read to the last (the
    // allocation before it is the loader's overhead, not the disk's). Warm reads are cheap and noisy: best of two.
    let best = 0;
    for (let k = 0; k < (cacheMode === 'cold' ? 1 : 2); k++) {
      const rd = await callNative(
        () => addon.gpuLoad({ ...base, plan: limitPlan, sink: 'discard', threads: Math.max(threads, 8), buffers: Math.max(buffers, 16) }),
        'read-bandwidth limit',
      );
      const t = rd.seconds - rd.setupSeconds;
      if (t > 0) best = Math.max(best, rd.bytes / t);
      limits.readBytes = rd.bytes;
    }
    limits.readBytesPerSecond = best;
    limits.readCache = cacheMode;
    if (mode.mode === 'gpu') {
      let h2d = 0;
      let d2h = 0;
      const cards = tp ? [...new Set(devicesAsked)] : [...new Set(devOf)];
      for (const d of cards) {
        const t = await callNative(() => addon.transferLimits({ device: d }), `transfer limits of GPU ${d}`);
        perDeviceH2d.set(d, t.h2dBytesPerSecond);
        h2d += t.h2dBytesPerSecond;
        d2h += t.d2hBytesPerSecond;
      }
      limits.h2dBytesPerSecond = h2d;
      limits.d2hBytesPerSecond = d2h;
      if (cards.length > 1) {
        // Several cards load at once: their links measured together are the floor (a shared switch uplink or the
        // host's memory bandwidth can hold them below the sum of each measured alone).
        const c = await callNative(() => addon.concurrentH2d({ devices: cards }), `concurrent H2D on GPUs ${cards.join(',')}`);
        for (const x of c.devices) perDeviceH2d.set(x.device, x.h2dBytesPerSecond);
        limits.h2dAloneSumBytesPerSecond = h2d;
        limits.h2dBytesPerSecond = c.aggregateBytesPerSecond;
      }
    }
  }
  await prepareCache();
  checkAbort();
  const before = residentFraction(await callNative(() => addon.pageCache({ paths, action: 'query' }), 'page cache'));
  let cacheNote: string | undefined;
  if (cacheMode === 'cold' && before > 0.02) {
    cacheNote = `${formatPercent(before)} of the weights stayed in the page cache after posix_fadvise(DONTNEED) (mapped by another process, or a filesystem that keeps them)`;
  } else if (cacheMode === 'warm' && before < 0.98) {
    cacheNote = `only ${formatPercent(before)} of the weights fit in the page cache`;
  } else if (cacheMode === 'as-is' && opts.limits) {
    cacheNote = 'measuring the read limit first read the files, so the load found them warmer than before';
  }

  // 4. The load. A tensor-parallel plan whose slices do not fit in host memory is measured as the read alone.
  const tpRun = tpPlan && sink !== 'discard' ? tpPlan : null;
  if (tpPlan && !tpRun) notes.push(`tensor-parallel ${tpPlan.tp}: the ranks' slices were not kept (the read alone was measured)`);
  const progress = sharedProgress();
  const timer = opts.onProgress ? setInterval(() => opts.onProgress!(readProgress(progress), prep.bytes), 200) : undefined;
  let r: NativeLoadResult;
  try {
    r = await withNativeCancel(opts.signal, (cancel) =>
      callNative(
        () =>
          addon.gpuLoad({
            ...base,
            sink,
            cancel,
            progress,
            ...(mode.mode === 'gpu' && sink === 'device' && copyPath === 'mapped' ? { path: 'mapped' as const } : {}),
            ...(opts.verify ? { samples: planSamples(prep.headers) } : {}),
            ...(tpRun ? { tp: { devices: mode.mode === 'gpu' ? [...devicesAsked] : tpRun.ranks.map(() => -1), bytes: tpRun.ranks.map((k) => k.bytes), ops: tpRun.ops } } : {}),
          }),
        'gpu-load',
      ),
    );
  } finally {
    if (timer) clearInterval(timer);
  }
  opts.onProgress?.(r.bytes, prep.bytes);
  for (const n of r.notes) notes.push(n);
  // Leave the page cache as found: a file that was cold and read with O_DIRECT holds only the pages its header read
  // (or a buffered fallback) brought in; they go again.
  const ours = paths.filter((_, i) => coldAsFound[i] && r.files[i]!.direct);
  if (ours.length) await callNative(() => addon.pageCache({ paths: ours, action: 'evict' }), 'page cache');
  const after = residentFraction(await callNative(() => addon.pageCache({ paths, action: 'query' }), 'page cache'));

  const bytesPerSecond = r.seconds > 0 ? r.bytes / r.seconds : 0;
  let efficiency: number | null = null;
  if (limits?.readBytesPerSecond) {
    raiseBeatenLimits(limits, bytesPerSecond, notes);
    const floor = Math.min(limits.readBytesPerSecond, limits.h2dBytesPerSecond ?? Number.POSITIVE_INFINITY);
    efficiency = floor > 0 ? Math.min(1, bytesPerSecond / floor) : null;
    if (tpRun && r.tp && r.seconds > 0) {
      // Tensor-parallel: the floor is the slower of reading every byte once and the busiest rank's link (each rank
      // receives its own slices, replicated tensors included, over its card's concurrently measured H2D).
      const linkSeconds = Math.max(0, ...r.tp.ranks.map((k) => (mode.mode === 'gpu' && perDeviceH2d.get(k.device) ? k.bytes / perDeviceH2d.get(k.device)! : 0)));
      efficiency = Math.min(1, Math.max(tpRun.readBytes / limits.readBytesPerSecond, linkSeconds) / r.seconds);
    }
  }
  const result: GpuLoadResult = {
    mode: mode.mode,
    ...(mode.cause ? { hostCause: mode.cause } : {}),
    ...(mode.reason ? { hostReason: mode.reason } : {}),
    bytes: r.bytes,
    seconds: r.seconds,
    bytesPerSecond,
    readSeconds: r.readSeconds,
    copySeconds: r.copySeconds,
    overlapFraction: r.copySeconds > 0 ? Math.min(1, r.overlapSeconds / r.copySeconds) : 0,
    setupSeconds: r.setupSeconds,
    allocSeconds: Math.max(0, ...r.devices.map((d) => d.allocSeconds)),
    ringSeconds: r.devices.reduce((a, d) => a + d.ringSeconds, 0),
    cache: { requested: cacheMode, residentFractionBefore: before, residentFractionInitial: initial, ...(Number.isFinite(after) ? { residentFractionAfter: after } : {}), ...(cacheNote ? { note: cacheNote } : {}) },
    files: prep.paths.map((path, i) => ({
      path,
      bytes: r.files[i]!.bytes,
      seconds: r.files[i]!.seconds,
      device: mode.mode === 'gpu' ? devOf[i]! : null,
      tensors: prep.headers[i]!.tensors.length,
      direct: r.files[i]!.direct,
    })),
    devices: (r.tp && mode.mode === 'gpu' ? r.tp.ranks.map((k) => ({ index: k.device, name: undefined as string | undefined, bytes: k.bytes, seconds: k.seconds })) : r.devices).map((d) => ({
      index: d.index,
      ...(d.name ? { name: d.name } : mode.mode === 'host' ? { name: 'host memory' } : {}),
      bytes: d.bytes,
      seconds: d.seconds,
      bytesPerSecond: d.seconds > 0 ? d.bytes / d.seconds : 0,
      ...(perDeviceH2d.has(d.index) ? { h2dBytesPerSecond: perDeviceH2d.get(d.index)! } : {}),
    })),
    ...(limits ? { limits } : {}),
    efficiency,
    ...(r.verify ? { verify: { checked: r.verify.checked, mismatches: r.verify.mismatches, checkedBytes: r.verify.checkedBytes, ...(r.verify.firstMismatch ? { firstMismatch: r.verify.firstMismatch } : {}) } } : {}),
    config: { chunkBytes, threads, buffers, streams, direct, ring, sink, path: r.path ?? 'ring' },
    ...(r.path === 'mapped' ? { registerSeconds: r.devices.reduce((a, d) => a + (d.registerSeconds ?? 0), 0) } : {}),
    ...(r.tp && tpRun
      ? {
          tp: {
            degree: tpRun.tp,
            ranks: r.tp.ranks.map((k, rank) => ({ rank, device: mode.mode === 'gpu' ? k.device : null, bytes: k.bytes, seconds: k.seconds, bytesPerSecond: k.seconds > 0 ? k.bytes / k.seconds : 0 })),
            readBytes: tpRun.readBytes,
            deliveredBytes: tpRun.deliveredBytes,
            slowestSeconds: Math.max(0, ...r.tp.ranks.map((k) => k.seconds)),
          },
        }
      : {}),
    notes,
  };
  if (opts.verify && sink === 'discard') notes.push('verify skipped: nothing was kept to compare');
  if (result.verify && result.verify.mismatches > 0) {
    throw new ColdstartError(
      'VERIFY_MISMATCH',
      `gpu-load: ${result.verify.mismatches} of ${result.verify.checked} sampled ranges on the ${mode.mode === 'gpu' ? 'GPU' : 'host'} differ from the file (first: ${result.verify.firstMismatch})`,
      { hint: 'The loaded bytes are not the file bytes: check the hardware (ECC errors in nvidia-smi) and report it.', details: { result } },
    );
  }
  return result;
}

// ------------------------------------------------------------------------------------------------ reporting
/** Fills a gpu-load phase: steps read/copy, metrics; in host mode calls h.skip('<why>; host read measured: X GB/s') after recording metrics. */
export function recordGpuLoadPhase(h: PhaseHandle, r: GpuLoadResult): void {
  const device = r.mode === 'gpu' ? r.devices.map((d) => `GPU ${d.index}${d.name ? ` (${d.name})` : ''}`).join(', ') : 'host memory';
  h.addStep('read', r.readSeconds, `${r.files.some((f) => f.direct) ? 'O_DIRECT' : 'page cache / buffered'}${r.config.sink === 'discard' ? '; discarded after the read (not copied)' : ''}`, { threads: r.config.threads, chunkBytes: r.config.chunkBytes });
  // Bytes discarded after the read were never copied: no copy step (never a "0 s memcpy").
  if (r.config.sink !== 'discard') h.addStep('copy', r.copySeconds, r.mode === 'gpu' ? 'cuMemcpyHtoDAsync from pinned buffers' : 'memcpy into host memory', { streams: r.config.streams, buffers: r.config.buffers });
  else h.metric('copy', 'discarded (not copied)');
  h.metric('mode', r.mode);
  h.metric('target', device);
  h.metric('bytes', r.bytes);
  h.metric('files', r.files.length);
  h.metric('bytesPerSecond', r.bytesPerSecond);
  h.metric('overlapFraction', r.overlapFraction);
  h.metric('setupSeconds', r.setupSeconds);
  h.metric('cache', r.cache.requested);
  h.metric('residentFractionBefore', Number.isFinite(r.cache.residentFractionBefore) ? r.cache.residentFractionBefore : null);
  if (r.limits?.readBytesPerSecond !== undefined) h.metric('readLimitBytesPerSecond', r.limits.readBytesPerSecond);
  if (r.limits?.h2dBytesPerSecond !== undefined) h.metric('h2dBytesPerSecond', r.limits.h2dBytesPerSecond);
  if (r.limits?.d2hBytesPerSecond !== undefined) h.metric('d2hBytesPerSecond', r.limits.d2hBytesPerSecond);
  h.metric('efficiency', r.efficiency);
  if (r.verify) {
    h.metric('verifyChecked', r.verify.checked);
    h.metric('verifyMismatches', r.verify.mismatches);
  }
  if (r.devices.length > 1) for (const d of r.devices) h.metric(`device${d.index}BytesPerSecond`, d.bytesPerSecond);
  let tpNote: string | null = null;
  if (r.tp) {
    // Tensor-parallel: each rank's slices, read once; the load ends with the slowest rank.
    h.metric('tp', r.tp.degree);
    h.metric('tpDeliveredBytes', r.tp.deliveredBytes);
    h.metric('tpSlowestSeconds', r.tp.slowestSeconds);
    for (const k of r.tp.ranks) h.metric(`rank${k.rank}BytesPerSecond`, k.bytesPerSecond);
    const slow = r.tp.ranks.reduce((a, k) => (k.seconds > a.seconds ? k : a), r.tp.ranks[0]!);
    tpNote = `tensor-parallel ${r.tp.degree}: ${formatBytes(r.tp.readBytes)} read once, ${formatBytes(r.tp.deliveredBytes)} delivered to ${r.tp.degree} ranks; slowest rank ${slow.rank}${slow.device !== null ? ` (GPU ${slow.device})` : ''} done at ${formatDuration(slow.seconds)}`;
  }
  const notes = [...(tpNote ? [tpNote] : []), ...(r.cache.note ? [r.cache.note] : []), ...r.notes];
  if (notes.length) h.note = notes.join('; ');
  h.setSeconds(r.seconds);
  if (r.mode === 'host') {
    // The same metric names as any host-read measurement, so consumers (profile's floor line) need no special case.
    h.metric('hostReadBytes', r.bytes);
    h.metric('hostReadSeconds', r.seconds);
    h.metric('hostReadBytesPerSecond', r.bytesPerSecond);
    const why = r.hostCause ? HOST_CAUSE_TEXT[r.hostCause] : 'no CUDA driver';
    h.skip(`${why}; host read measured: ${formatRate(r.bytesPerSecond)}`);
  }
}

/** One line for humans: "9.8 GiB in 0.41 s = 25.6 GB/s on GPU 0 (NVIDIA H100), efficiency 0.93". */
export function describeGpuLoad(r: GpuLoadResult): string {
  const where = r.mode === 'gpu' ? r.devices.map((d) => `GPU ${d.index}`).join('+') : 'host memory';
  const eff = r.efficiency === null ? '' : `, efficiency ${r.efficiency.toFixed(2)}`;
  return `${basename(r.files[0]?.path ?? '')}${r.files.length > 1 ? ` (+${r.files.length - 1} files)` : ''}: ${formatRate(r.bytesPerSecond)} into ${where}${eff}`;
}
