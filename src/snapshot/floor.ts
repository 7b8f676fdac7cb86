/**
 * `restore --floor` / `unpark --floor`: what this machine allows for the way back just taken, measured in the same run
 * by coldstart's own reader and copy probe, after the timed part (the server already serving; nothing here is added to
 * its times). DESIGN.md's "yours and the floor", for the three ways back of issue #26:
 *
 *   unpark                    GPU bytes ÷ pinned H2D
 *   restore, page cache       (image + weights read back) ÷ the page cache's read rate + GPU state ÷ pinned H2D
 *   restore, cold disk        (image + weights read back) ÷ the disk's read rate + GPU state ÷ pinned H2D
 *
 * The read rates are taken over the very files the restore read (the image's files, and apart the --prefetch or --stage weights),
 * each set from where the restore found it: from a cold disk they are dropped from the page cache first and read by one stream
 * of 16 MiB preads (RESTORE_PREFETCH: the fastest way on every disk measured), from the page cache by one reader per
 * core, best of two. The pinned H2D rate is the addon's copy probe on each GPU the image came back to (the slowest
 * one counts). The server's own work after the restore — its ready wait and its first answer — has no floor here and
 * stays out of it; the ratio compares the floor with the restore's total as the report counts it.
 */
import { availableParallelism } from 'node:os';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import type { SnapshotNative } from './native.js';

/** A part of the floor: bytes at a rate; or why it could not be measured. */
export type FloorPart = { bytes: number; bytesPerSecond: number; seconds: number; how: string } | { notMeasured: string };

/** Where a restore found a set of files: 'disk' (less than IMAGE_STREAM_BELOW of them in the page cache) or 'page cache'. */
export type From = 'disk' | 'page cache';

/** A read part of the floor: the files read again from where the restore found them. */
export type ReadPart = FloorPart & { from: From };

export interface RestoreFloor {
  /** The image's files. */
  image: ReadPart;
  /** The --prefetch or --stage weights the after-restore hook reads back; null: none given. */
  weights: ReadPart | null;
  /** The GPU state the driver restores, at pinned H2D; null: the image holds none. */
  gpu: FloorPart | null;
  /** image + weights + gpu; null when a part was not measured. */
  seconds: number | null;
  /** The restore's total ÷ the floor (1.0 = at the floor); null when either is missing. */
  ratio: number | null;
  notes: string[];
}

export interface UnparkFloor {
  /** The GPU memory the driver brought back (the process's own, as NVML lists it right after the unlock), at pinned H2D. */
  gpu: FloorPart;
  /** The driver's restore + unlock ÷ the floor; null when either is missing. */
  ratio: number | null;
}

const measured = (p: FloorPart | null): p is Exclude<FloorPart, { notMeasured: string }> => p !== null && !('notMeasured' in p);
const why = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Pinned H2D over `devices` (the slowest one's rate), timing `bytes`; null device list: which GPUs is not known.
 */
export async function h2dFloor(native: SnapshotNative, bytes: number | null, devices: number[] | null, what: string): Promise<FloorPart> {
  if (bytes === null) return { notMeasured: `the ${what} is not known` };
  if (!devices?.length) return { notMeasured: 'which GPUs the state came back to is not known (NVML listed none)' };
  try {
    let rate = Infinity;
    for (const d of devices) rate = Math.min(rate, await native.h2dBytesPerSecond(d));
    if (!(rate > 0) || !Number.isFinite(rate)) return { notMeasured: 'the copy probe returned no rate' };
    return { bytes, bytesPerSecond: rate, seconds: bytes / rate, how: `pinned H2D on GPU ${devices.join(', ')}` };
  } catch (e) {
    return { notMeasured: `pinned H2D probe failed: ${why(e)}` };
  }
}

/**
 * The read part: `files` read again from where the restore found them (see the module comment). `signal` stops it
 * (the command's Ctrl-C: then "not measured", never an error that would stop the restored server).
 */
export async function readFloor(native: SnapshotNative, files: string[], from: From, signal: AbortSignal, notes: string[]): Promise<FloorPart> {
  if (!files.length) return { notMeasured: 'no files to read' };
  try {
    if (from === 'disk') {
      const r = await native.prefetch({ files, strategy: 'pread', threads: 1, chunkBytes: 16 << 20, evictFirst: true, signal });
      const left = r.residency.before === null ? null : r.residency.before * r.bytes;
      if (left !== null && left > 0.05 * r.bytes) notes.push(`${formatBytes(left)} of the ${formatBytes(r.bytes)} stayed in the page cache when dropped (pages a running process maps stay): the disk rate is over the rest`);
      if (r.coldBytesPerSecond === null) return { notMeasured: 'nothing could be dropped from the page cache to read from the disk' };
      return { bytes: r.bytes, bytesPerSecond: r.coldBytesPerSecond, seconds: r.bytes / r.coldBytesPerSecond, how: 'from the disk, dropped from the page cache first, one stream of 16 MiB reads' };
    }
    const threads = Math.min(16, Math.max(1, availableParallelism()));
    let best = 0;
    let bytes = 0;
    let partly: number | null = null;
    for (let k = 0; k < 2; k++) {
      const r = await native.prefetch({ files, strategy: 'pread', threads, chunkBytes: 16 << 20, signal });
      best = Math.max(best, r.bytesPerSecond);
      bytes = r.bytes;
      if (r.residency.before !== null && r.residency.before < 0.98) partly = Math.min(partly ?? 1, r.residency.before);
    }
    if (partly !== null) notes.push(`only ${Math.round(100 * partly)}% of the files were in the page cache when read again: the page-cache rate may be partly the disk's`);
    if (!(best > 0)) return { notMeasured: 'the read returned no rate' };
    return { bytes, bytesPerSecond: best, seconds: bytes / best, how: `from the page cache, ${threads} readers, best of two` };
  } catch (e) {
    // Never a reason to stop the restored server: the floor is a measurement after the fact.
    return { notMeasured: signal.aborted ? 'interrupted' : `the read failed: ${why(e)}` };
  }
}

export function restoreFloor(image: ReadPart, weights: ReadPart | null, gpu: FloorPart | null, restoredSeconds: number, notes: string[]): RestoreFloor {
  const parts = [image, weights, gpu].filter((p) => p !== null);
  const seconds = parts.every(measured) ? parts.reduce((a, p) => a + (p as { seconds: number }).seconds, 0) : null;
  return { image, weights, gpu, seconds, ratio: seconds && seconds > 0 ? restoredSeconds / seconds : null, notes };
}

export function unparkFloor(gpu: FloorPart, driverSeconds: number): UnparkFloor {
  return { gpu, ratio: measured(gpu) && gpu.seconds > 0 ? driverSeconds / gpu.seconds : null };
}

/** One part as a phase's `floor`; null: not measured. */
export function partFloor(p: FloorPart | null): { seconds: number; source: string } | null {
  return measured(p) ? { seconds: p.seconds, source: `${formatBytes(p.bytes)} at ${formatRate(p.bytesPerSecond)} (${p.how})` } : null;
}

/** The GPUs NVML lists `pids` on now (the restored server's); null when NVML could not be asked. */
export async function gpusOf(native: SnapshotNative, pids: readonly number[]): Promise<number[] | null> {
  const mem = await native.gpuMemory();
  if (!mem?.available) return null;
  return mem.devices.filter((d) => (d.processes ?? []).some((p) => pids.includes(p.pid))).map((d) => d.index);
}

/**
 * A restore's floor: the image's files and the --prefetch or --stage weights each read again from where the restore found them,
 * and `gpuBytes` of GPU state at pinned H2D on the GPUs `gpuPids` are on now (no GPU state: no GPU part).
 */
export async function measureRestoreFloor(
  native: SnapshotNative,
  o: { image: { files: string[]; from: From }; weights: { files: string[]; from: From } | null; gpuBytes: number | null; gpuPids: readonly number[]; restoredSeconds: number; signal: AbortSignal; notes?: string[] },
): Promise<RestoreFloor> {
  const notes = [...(o.notes ?? [])];
  // GPU first: reading the files again from a cold disk drops them from the page cache before it, and the copy probe
  // should not run beside that read.
  const gpu = o.gpuPids.length ? await h2dFloor(native, o.gpuBytes, await gpusOf(native, o.gpuPids), 'GPU state in the image') : null;
  const image: ReadPart = { ...(await readFloor(native, o.image.files, o.image.from, o.signal, notes)), from: o.image.from };
  const weights: ReadPart | null = o.weights ? { ...(await readFloor(native, o.weights.files, o.weights.from, o.signal, notes)), from: o.weights.from } : null;
  return restoreFloor(image, weights, gpu, o.restoredSeconds, notes);
}

function partText(name: string, p: FloorPart | null): string {
  if (p === null) return '';
  return measured(p) ? `${name} ${formatBytes(p.bytes)} at ${formatRate(p.bytesPerSecond)} (${p.how}) ${formatDuration(p.seconds)}` : `${name} not measured (${p.notMeasured})`;
}

/** The floor's lines under a restore's table. */
export function restoreFloorLines(f: RestoreFloor, total: string): string[] {
  const head =
    f.seconds === null
      ? 'floor (this machine): not measured'
      : `floor (this machine): ${formatDuration(f.seconds)}; this restore took ${f.ratio === null ? '—' : `${f.ratio.toFixed(2)}×`} it (${total}; the server's own ready wait and first answer have no floor)`;
  return [head, `  ${[partText('image', f.image), partText('weights', f.weights), partText('GPU state', f.gpu)].filter(Boolean).join('; ')}`, ...f.notes.map((n) => `  ${n}`)];
}

/** The floor's line under unpark's. */
export function unparkFloorLine(f: UnparkFloor, driverSeconds: number): string {
  if (!measured(f.gpu)) return `floor: not measured (${f.gpu.notMeasured})`;
  return `floor: ${partText('GPU memory', f.gpu)}; the driver's restore + unlock took ${formatDuration(driverSeconds)}, ${f.ratio === null ? '—' : `${f.ratio.toFixed(2)}×`} it`;
}
