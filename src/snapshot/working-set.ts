/**
 * The server's working set of its files: which pages of its libraries (and any other file it maps) the server had in
 * memory when the snapshot was taken, so that a restore on a cold node reads exactly those before the server asks.
 *
 * Why: CRIU maps the server's libraries again but reads none of their pages; the resumed server faults them in one
 * by one, and on a cold disk each fault reads the whole readahead window around it — 8 MiB on the lent GPU hosts'
 * virtio disks. The 8B test server maps 0.08 GB of its libraries' pages, and a cold restore read 0.93 GB of them
 * (cuBLASLt 171 of its 542 MB, libtorch_cpu 95 MB, libtorch_cuda 76 MB, …), 0.96 GB more than image + weights in
 * all (H100 hosts, 2026-12-06, test/device/snapshot-gpu.sh CACHE_CENSUS=1). Read ahead as these exact ranges, the
 * faults find their pages and read nothing more.
 *
 * Recorded at snapshot time from /proc/<pid>/maps + pagemap (src/platform/procfs.ts) — after snapshot.ts's
 * learnWorkingSet paged the server's file pages out and sent the warmup again, so what answering touches (0.089 GB of
 * the 8B server's 0.57 GB) — kept in the manifest
 * (`workingSet`); at restore, a file whose size or mtime differs from the snapshot's is left out (it is not the file
 * the server had), and the ranges go to the addon's prefetch (`ranges`), read with posix_fadvise(WILLNEED): queued at
 * once, the server's faults wait only for pages still in flight. After its first answer the restored server's own
 * mapped pages (far fewer: 0.09 of 0.57 GB for the 8B server) are recorded the same way and kept beside the image
 * (manifest.ts keepRestoredWorkingSet, joined here by mergeWorkingSets): the next restore reads those instead.
 */
import { statSync } from 'node:fs';
import { stat as statAsync } from 'node:fs/promises';
import { formatBytes, formatDuration } from '../core/format.js';
import { callNative, requireNative, withNativeCancel } from '../native.js';
import { mappedFilePages } from '../platform/procfs.js';

export interface WorkingSetFile {
  /** Absolute path, as /proc/<pid>/maps named it. */
  path: string;
  /** The file's size and mtime at snapshot time: a different file at the same path is not read. */
  bytes: number;
  mtimeMs: number;
  /** Byte offset, length, offset, length… (page-aligned, sorted, non-overlapping, within `bytes`). */
  ranges: number[];
}

export interface WorkingSet {
  /** Every regular file the tree maps (one with no page in memory has no ranges: checked at restore, not read). */
  files: WorkingSetFile[];
  /** Sum of the ranges' lengths. */
  bytes: number;
  /** Files left out at snapshot time past WORKING_SET_MAX_FILES / WORKING_SET_MAX_RANGES (absent: none). */
  leftOut?: number;
  /**
   * true: `files` lists every regular file the tree mapped, with its size and mtime (images before it listed only the
   * files with pages in memory). Restore then checks the files itself and spares CRIU its build-ID reads (restore.ts).
   */
  complete?: true;
}

/** Runs closer than this are read as one (a few pages more read, far fewer requests). */
export const WORKING_SET_GAP = 128 * 1024;
/** At most this many files and ranges in a manifest (a torch server maps a few hundred files). */
export const WORKING_SET_MAX_FILES = 16384;
export const WORKING_SET_MAX_RANGES = 1 << 20;

type MappedPages = typeof mappedFilePages;
type Stat = (path: string) => { isFile(): boolean; size: number; mtimeMs: number } | null;

type AsyncStat = (path: string) => Promise<{ isFile(): boolean; size: number; mtimeMs: number } | null>;
const statAsyncOrNull: AsyncStat = (path) => statAsync(path).catch(() => null);

/** A stat for several plans of one restore (the manifest's working set and a kept one): each path asked once. */
export function statEachOnce(): AsyncStat {
  const asked = new Map<string, ReturnType<AsyncStat>>();
  return (path) => {
    let st = asked.get(path);
    if (!st) asked.set(path, (st = statAsyncOrNull(path)));
    return st;
  };
}

const statOrNull: Stat = (path) => {
  try {
    return statSync(path);
  } catch {
    return null;
  }
};

/** Sorted [offset, length) runs merged where they overlap or lie within `gap` bytes of each other. */
export function coalesce(runs: ReadonlyArray<readonly [number, number]>, gap = WORKING_SET_GAP): Array<[number, number]> {
  const sorted = [...runs].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [off, len] of sorted) {
    const last = out[out.length - 1];
    if (last && off <= last[0] + last[1] + gap) last[1] = Math.max(last[1], off + len - last[0]);
    else out.push([off, len]);
  }
  return out;
}

/**
 * The working set of `pids` now: every file they map, with the pages present in their memory, merged across the
 * processes and coalesced (a file with none has no ranges). Null when no process could be read (not root, or gone).
 */
export function recordWorkingSet(pids: readonly number[], read: MappedPages = mappedFilePages, stat: Stat = statOrNull): WorkingSet | null {
  const byPath = new Map<string, Array<[number, number]>>();
  let readable = 0;
  for (const pid of pids) {
    const maps = read(pid);
    if (maps === null) continue;
    readable++;
    for (const m of maps) {
      const runs = byPath.get(m.path) ?? [];
      runs.push(...m.runs);
      byPath.set(m.path, runs);
    }
  }
  if (readable === 0) return null;
  return workingSetOf(byPath, stat);
}

/**
 * Two working sets of one image as one: the restored server's kept one (`kept`) and what it touched this time (`now`),
 * every file's ranges joined (a file changed between them keeps only `now`'s), coalesced, within the same bounds.
 * Not `complete`: only the manifest's working set says which files the server maps (restore's file check).
 */
export function mergeWorkingSets(kept: WorkingSet, now: WorkingSet): WorkingSet {
  const byPath = new Map<string, Array<[number, number]>>();
  const meta = new Map<string, { size: number; mtimeMs: number }>();
  const runsOf = (f: WorkingSetFile) => Array.from({ length: f.ranges.length / 2 }, (_, k) => [f.ranges[2 * k]!, f.ranges[2 * k + 1]!] as [number, number]);
  for (const f of now.files) {
    byPath.set(f.path, runsOf(f));
    meta.set(f.path, { size: f.bytes, mtimeMs: f.mtimeMs });
  }
  for (const f of kept.files) {
    const m = meta.get(f.path);
    if (!m) {
      byPath.set(f.path, runsOf(f));
      meta.set(f.path, { size: f.bytes, mtimeMs: f.mtimeMs });
    } else if (m.size === f.bytes && m.mtimeMs === f.mtimeMs) byPath.get(f.path)!.push(...runsOf(f));
  }
  const { complete: _, ...merged } = workingSetOf(byPath, (p) => ({ isFile: () => true, ...meta.get(p)! }));
  return merged;
}

/** Each file's runs coalesced and clipped to its size (from `stat`), within WORKING_SET_MAX_FILES/_RANGES. */
function workingSetOf(byPath: Map<string, Array<[number, number]>>, stat: Stat): WorkingSet {
  const files: WorkingSetFile[] = [];
  let bytes = 0;
  let count = 0;
  let leftOut = 0;
  for (const [path, runs] of [...byPath].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const st = stat(path);
    if (!st?.isFile() || st.size === 0) continue;
    const ranges: number[] = [];
    let sum = 0;
    for (const [off, len] of coalesce(runs)) {
      const end = Math.min(off + len, st.size);
      if (off >= end) continue;
      ranges.push(off, end - off);
      sum += end - off;
    }
    // Within the bounds the manifest's check holds a restore to (manifest.ts), or restore would refuse the image.
    if (files.length >= WORKING_SET_MAX_FILES || count + ranges.length / 2 > WORKING_SET_MAX_RANGES) {
      leftOut++;
      continue;
    }
    files.push({ path, bytes: st.size, mtimeMs: st.mtimeMs, ranges });
    bytes += sum;
    count += ranges.length / 2;
  }
  return { files, bytes, ...(leftOut ? { leftOut } : { complete: true as const }) };
}

/** What a restore reads of a working set: the files still the same as at snapshot time, and those left out. */
export interface WorkingSetPlan {
  /** The files to read and their ranges (those still as the snapshot found them, with pages to read). */
  paths: string[];
  ranges: number[][];
  bytes: number;
  /** Files left out, and why (gone, not a regular file, changed since the snapshot). */
  skipped: Array<{ path: string; why: string }>;
}

export async function planWorkingSet(ws: WorkingSet, stat: AsyncStat = statAsyncOrNull): Promise<WorkingSetPlan> {
  const plan: WorkingSetPlan = { paths: [], ranges: [], bytes: 0, skipped: [] };
  // Asked all at once (libuv's pool): on a cold node each stat may wait for the disk, and CRIU opens the same files.
  const sts = await Promise.all(ws.files.map((f) => stat(f.path)));
  ws.files.forEach((f, i) => {
    const st = sts[i];
    if (!st) plan.skipped.push({ path: f.path, why: 'gone' });
    else if (!st.isFile()) plan.skipped.push({ path: f.path, why: 'not a regular file' });
    else if (st.size !== f.bytes || st.mtimeMs !== f.mtimeMs) plan.skipped.push({ path: f.path, why: 'changed since the snapshot (size or mtime)' });
    else if (f.ranges.length) {
      plan.paths.push(f.path);
      plan.ranges.push(f.ranges);
      for (let k = 1; k < f.ranges.length; k += 2) plan.bytes += f.ranges[k]!;
    }
  });
  return plan;
}

/** What reading a working set ahead did (restore's `details.workingSet`, `prefetch IMAGE`'s `workingSet`). */
export interface WorkingSetDetail {
  /** Files read, and those left out (gone, or changed since the snapshot). */
  files: number;
  skipped: number;
  /** Bytes of their recorded ranges, and how many of them the page cache held before (null: not measured). */
  bytes: number;
  residentBefore: number | null;
  /** From the start of the read to every range in the page cache. */
  seconds: number;
  error: string | null;
}

/** A read of byte ranges into the page cache (SnapshotNative.readRanges; addonReadRanges is the real one). */
type ReadRanges = (paths: string[], ranges: number[][], signal: AbortSignal) => Promise<{ residentBefore: number | null }>;

/** What a read of byte ranges did: `residentBefore`, bytes already there; the rest as in NativePrefetchResult. */
export interface RangesRead {
  bytes: number;
  residentBefore: number | null;
  seconds: number;
  fallbackBytes: number;
  readvisedBytes: number;
}

/**
 * The addon's read of these byte ranges of these files into the page cache (posix_fadvise WILLNEED, queued at once,
 * then waited for), by restore (SnapshotNative.readRanges) and `prefetch IMAGE`.
 */
export async function addonReadRanges(paths: string[], ranges: number[][], signal: AbortSignal): Promise<RangesRead> {
  const r = await withNativeCancel(signal, (cancel) => callNative(() => requireNative('reading the working set').prefetch({ paths, ranges, strategy: 'fadvise', threads: 1, cancel }), 'working set'));
  return { bytes: r.bytes, residentBefore: r.residentBeforeBytes ?? null, seconds: r.seconds, fallbackBytes: r.fallbackBytes, readvisedBytes: r.readvisedBytes };
}

/**
 * Reads the files of `ws` still as the snapshot found them, exactly their ranges, into the page cache. Never
 * rejects: it is only a head start, so a failure comes back as `error` (the caller says it as a note).
 */
export async function readWorkingSet(ws: WorkingSet, readRanges: ReadRanges, signal: AbortSignal, now: () => number, planned?: WorkingSetPlan): Promise<WorkingSetDetail> {
  const t0 = now();
  try {
    const plan = planned ?? (await planWorkingSet(ws));
    const r = plan.paths.length ? await readRanges(plan.paths, plan.ranges, signal) : null;
    return { files: plan.paths.length, skipped: plan.skipped.length, bytes: plan.bytes, residentBefore: r?.residentBefore ?? null, seconds: now() - t0, error: null };
  } catch (e) {
    return { files: ws.files.length, skipped: 0, bytes: ws.bytes, residentBefore: null, seconds: now() - t0, error: e instanceof Error ? e.message : String(e) };
  }
}

/** One line for people: what was read ahead, how much was there already, what was left out. */
export function workingSetLine(w: WorkingSetDetail, where: string): string {
  const before = w.residentBefore === null ? '' : `, ${Math.round((100 * w.residentBefore) / Math.max(1, w.bytes))}% of them in the page cache before`;
  const left = w.skipped ? `; ${w.skipped} file(s) left out (gone or changed since the snapshot)` : '';
  return w.error ? `the server's library pages were not read ahead: ${w.error}` : `read ahead ${formatBytes(w.bytes)} of the server's library pages (${w.files} file(s)${before}) in ${formatDuration(w.seconds)}${where}${left}`;
}
