/**
 * prefetch (issue 15): read a model's weight files into the page cache in parallel, at the disk's rate, so that
 * whatever opens them next — transformers, vLLM, TGI, llama.cpp, coldstart's own loader — reads memory.
 * Designed to start beside the server at container start: `coldstart prefetch DIR --quiet & exec server`; the
 * disk reads then overlap the interpreter start and framework imports instead of following them.
 *
 * The bytes are read by native/src/pagecache.cc (pread into a reused buffer by default; readahead(2) or
 * posix_fadvise(WILLNEED) on request) and residency is measured before and after with mincore.
 */
import { ColdstartError, invalidOption } from '../core/errors.js';
import { intOption } from '../core/flags.js';
import { formatBytes, formatDuration, formatPercent, formatRate } from '../core/format.js';
import { callNative, readProgress, requireNative, sharedProgress, withNativeCancel, type NativePrefetchResult, type PageCacheEntry } from '../native.js';
import { describeSkipped, resolveWeights, type WeightFiles } from './weights.js';
import { stackFiles, type StackFiles } from './stack-files.js';

export const PREFETCH_SCHEMA = 'coldstart/prefetch@1';
/** `coldstart prefetch A B…`: one document of several targets' (`targets`: each one's `coldstart/prefetch@1`). */
export const PREFETCH_SET_SCHEMA = 'coldstart/prefetch-set@1';
export type PrefetchStrategy = 'pread' | 'readahead' | 'fadvise';
export const PREFETCH_STRATEGIES: readonly PrefetchStrategy[] = ['pread', 'readahead', 'fadvise'];

/**
 * readahead(2) with 8 workers: on the 2-core dev host (virtio ext4, 800 MB cold, 2 interleaved rounds,
 * bench/gpu-load/prefetch-host.md) it read at 0.94-0.98 GB/s against 0.37-0.58 GB/s for pread into a buffer
 * (which spends CPU copying to user space) and 0.86-1.22 GB/s for fadvise(WILLNEED); test/device/gpuload-limit.sh
 * re-measures all three on the GPU host.
 */
export const PREFETCH_DEFAULTS = { strategy: 'readahead' as PrefetchStrategy, threads: 8, chunkBytes: 8 << 20 };

export interface PrefetchOptions {
  files: string[];
  strategy?: PrefetchStrategy;
  threads?: number;
  chunkBytes?: number;
  /** Drop the files from the page cache first (benchmarks and tests; fdatasync + posix_fadvise DONTNEED). */
  evictFirst?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface PrefetchResult {
  schema: typeof PREFETCH_SCHEMA;
  strategy: PrefetchStrategy;
  threads: number;
  bytes: number;
  seconds: number;
  /** bytes / seconds: the whole set, including bytes that were already resident. */
  bytesPerSecond: number;
  /** Bytes that were not resident before, read per second: the disk rate prefetch ran at. */
  coldBytesPerSecond: number | null;
  residency: { before: number | null; after: number | null };
  /** readahead/fadvise: bytes the kernel left out and that were read with pread afterwards. */
  fallbackBytes: number;
  /** readahead/fadvise: bytes still missing 50 ms after the last growth and advised again before the pread fallback. */
  readvisedBytes: number;
  files: Array<{ path: string; bytes: number; residentBefore: number | null; residentAfter: number | null }>;
  notes: string[];
}

/** Fraction of the files' bytes resident in the page cache (mincore); null when any file's residency is unknown. */
export function pageCacheFraction(entries: readonly PageCacheEntry[]): number | null {
  const total = entries.reduce((a, e) => a + e.bytes, 0);
  if (entries.some((e) => e.residentBytes === null)) return null;
  return total === 0 ? 1 : entries.reduce((a, e) => a + (e.residentBytes ?? 0), 0) / total;
}

/**
 * What readahead/fadvise left to be done again: pages the kernel dropped and brought in when advised again (memory
 * pressure: a readahead page allocation fails without a word), and pages it never read, which pread read (a squashfs
 * file's fragment-packed tail). Empty when the kernel read everything it was advised.
 */
export function adviceNotes(strategy: PrefetchStrategy, r: Pick<NativePrefetchResult, 'bytes' | 'fallbackBytes' | 'readvisedBytes'>): string[] {
  const share = (n: number) => formatPercent(n / Math.max(1, r.bytes));
  const notes: string[] = [];
  if (r.readvisedBytes > r.fallbackBytes) notes.push(`${strategy}: ${share(r.readvisedBytes - r.fallbackBytes)} of the bytes had not come when the kernel stopped reading (it drops readahead under memory pressure); advised again, they were read`);
  if (r.fallbackBytes > 0) notes.push(`${strategy} left ${share(r.fallbackBytes)} of the bytes unread; they were read with pread`);
  return notes;
}

/** Reads every file into the page cache and reports residency before/after (mincore). */
export async function runPrefetch(opts: PrefetchOptions): Promise<PrefetchResult> {
  const strategy = opts.strategy ?? PREFETCH_DEFAULTS.strategy;
  if (!PREFETCH_STRATEGIES.includes(strategy)) throw invalidOption('strategy', PREFETCH_STRATEGIES.join(', '), strategy);
  const threads = opts.threads ?? PREFETCH_DEFAULTS.threads;
  intOption('threads', threads, 1, 256);
  const chunkBytes = opts.chunkBytes ?? PREFETCH_DEFAULTS.chunkBytes;
  if (opts.files.length === 0) throw new ColdstartError('BAD_INPUT', 'prefetch: no files to read');
  const paths = [...new Set(opts.files)];
  const addon = requireNative('prefetch');
  const notes: string[] = [];
  if (opts.evictFirst) {
    const ev = await callNative(() => addon.pageCache({ paths, action: 'evict' }), 'prefetch: evicting');
    for (const e of ev) if (e.note && !notes.includes(e.note)) notes.push(e.note);
  }
  const before = await callNative(() => addon.pageCache({ paths, action: 'query' }), 'prefetch: page cache');
  if (opts.signal?.aborted) throw new ColdstartError('INTERRUPTED', 'prefetch: cancelled before it started');
  const progress = sharedProgress();
  const total = before.reduce((a, e) => a + e.bytes, 0);
  const timer = opts.onProgress ? setInterval(() => opts.onProgress!(Math.min(total, readProgress(progress)), total), 200) : undefined;
  let r: NativePrefetchResult;
  try {
    r = await withNativeCancel(opts.signal, (cancel) => callNative(() => addon.prefetch({ paths, strategy, threads, chunkBytes, progress, cancel }), 'prefetch'));
  } finally {
    if (timer) clearInterval(timer);
  }
  opts.onProgress?.(total, total);
  const after = await callNative(() => addon.pageCache({ paths, action: 'query' }), 'prefetch: page cache');
  const fb = pageCacheFraction(before);
  const fa = pageCacheFraction(after);
  if (fa === null) notes.push('mincore could not report residency for some files');
  else if (fa < 0.98) notes.push(`only ${formatPercent(fa)} of the weights stayed in the page cache after reading them (not enough free memory, or a cgroup memory limit)`);
  notes.push(...adviceNotes(strategy, r));
  const notResident = before.reduce((a, e) => a + (e.residentBytes === null ? e.bytes : e.bytes - e.residentBytes), 0);
  return {
    schema: PREFETCH_SCHEMA,
    strategy,
    threads,
    bytes: r.bytes,
    seconds: r.seconds,
    bytesPerSecond: r.seconds > 0 ? r.bytes / r.seconds : 0,
    coldBytesPerSecond: r.seconds > 0 && notResident > 0 ? notResident / r.seconds : null,
    residency: { before: fb, after: fa },
    fallbackBytes: r.fallbackBytes,
    readvisedBytes: r.readvisedBytes,
    files: paths.map((path, i) => ({ path, bytes: before[i]!.bytes, residentBefore: before[i]!.residentBytes, residentAfter: after[i]!.residentBytes })),
    notes,
  };
}

/** `--stack`: the stack's own files, read before the weights. */
export interface StackPrefetch {
  python: string;
  version: string;
  packages: StackFiles['packages'];
  files: number;
  bytes: number;
  seconds: number;
  coldBytesPerSecond: number | null;
  residency: PrefetchResult['residency'];
}

/** What `coldstart prefetch` reports of a model: the prefetch, what was named, where its files came from and what was left out. */
export interface PrefetchRun extends PrefetchResult {
  target: string;
  /** Where the files came from: the weights resolver's answer. */
  source: WeightFiles['source'];
  skipped: WeightFiles['skipped'];
  /** With --stack: the interpreter's standard library and packages, read first. */
  stack?: StackPrefetch;
}

export interface PrefetchModelOptions extends Omit<PrefetchOptions, 'files'> {
  env: Record<string, string | undefined>;
  /** Where a relative path is resolved (default the process's). */
  cwd?: string;
  /** Hub revision of a repo id in the HF cache. */
  revision?: string;
  /** Read this Python's standard library and inference packages first (src/load/stack-files.ts). */
  stack?: string;
}

/**
 * Prefetches what a user names: any file as it is; a folder, the demo or a repo in the HF cache gives its weights
 * (the one resolver, src/load/weights.ts); what the resolver left out is a note. (A snapshot image is read by
 * snapshot/prefetch-image.ts, which the command picks first.)
 */
export async function prefetchModel(target: string, opts: PrefetchModelOptions): Promise<PrefetchRun> {
  const { env, cwd, revision, stack: python, ...prefetch } = opts;
  const w = await resolveWeights(target, { env, cwd, revision, anyFile: true, signal: opts.signal });
  const r = await prefetchAfterStack({ ...prefetch, files: w.files }, python, env);
  const skipped = describeSkipped(w);
  if (skipped) r.notes.push(skipped);
  return { ...r, target, source: w.source, skipped: w.skipped };
}

/**
 * The files, after the Python stack's own files when `python` is given: on a cold node the stack's imports come
 * before any weight is read, and they must not queue behind them (H100, 2026-12-05: weights alone 21.0 → 22.4 s,
 * stack first 17.1 s). What `prefetch --stack` and optimize's prefetched start both do.
 */
export async function prefetchAfterStack(opts: PrefetchOptions, python: string | undefined | null, env: Record<string, string | undefined>): Promise<PrefetchResult & { stack?: StackPrefetch }> {
  let stack: StackPrefetch | undefined;
  if (python) {
    const found = await stackFiles(python, env, opts.signal);
    const s = await runPrefetch({ ...opts, evictFirst: false, files: found.files, onProgress: undefined });
    stack = { python: found.python, version: found.version, packages: found.packages, files: found.files.length, bytes: s.bytes, seconds: s.seconds, coldBytesPerSecond: s.coldBytesPerSecond, residency: s.residency };
  }
  const r = await runPrefetch(opts);
  return { ...r, ...(stack ? { stack } : {}) };
}

/** The human lines of a prefetch: how much at what rate, residency before and after, `more` (a caller's own lines), the notes. */
export function prefetchText(r: PrefetchResult & { stack?: StackPrefetch }, more: readonly string[] = []): string {
  const pct = (x: number | null) => (x === null ? 'unknown' : formatPercent(x));
  const st = r.stack;
  const lines = [
    ...(st
      ? [`stack first: Python ${st.version} (${st.python}), ${st.files} files of ${st.packages.map((p) => p.name).join(', ')}: ${formatBytes(st.bytes)} in ${formatDuration(st.seconds)} (${pct(st.residency.before)} → ${pct(st.residency.after)} resident)`]
      : []),
    `prefetched ${r.files.length} file${r.files.length === 1 ? '' : 's'}, ${formatBytes(r.bytes)} in ${formatDuration(r.seconds)} (${formatRate(r.bytesPerSecond)}, ${r.strategy}, ${r.threads} threads)`,
    `page cache: ${pct(r.residency.before)} resident before, ${pct(r.residency.after)} after`,
  ];
  if (r.coldBytesPerSecond !== null) lines.push(`disk read rate: ${formatRate(r.coldBytesPerSecond)}`);
  lines.push(...more);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

// ------------------------------------------------------------------------------------------------ profile's finding
export interface PrefetchSavingInput {
  /** Fraction of the weights resident in the page cache when the stack started loading them (mincore). */
  residentFractionBefore: number | null;
  /** The stack's load time as measured (cold or partly cold). */
  coldLoadSeconds: number;
  /** The same load from a warm cache (measured in the same run), or null when it was not measured. */
  warmLoadSeconds: number | null;
  /** Seconds between process start and the first weight read (imports, cuda-init): the head start prefetch gets. */
  headStartSeconds: number | null;
}

export interface PrefetchSaving {
  /** Seconds prefetch saves: min(cold − warm, head start); null when it cannot be said (with `reason`). */
  seconds: number | null;
  /** cold − warm: what a fully warm cache would save. */
  upToSeconds: number | null;
  reason?: string;
}

/**
 * What `coldstart prefetch` started beside the stack would save: the load from a warm cache instead of a cold one,
 * as far as the prefetch can finish during the stack's head start (imports, cuda-init). For profile's findings.
 */
export function estimatePrefetchSaving(i: PrefetchSavingInput): PrefetchSaving {
  if (i.residentFractionBefore !== null && i.residentFractionBefore >= 0.9) return { seconds: 0, upToSeconds: 0, reason: 'the weights were already in the page cache' };
  if (i.warmLoadSeconds === null) return { seconds: null, upToSeconds: null, reason: 'not measured: no warm load to compare with' };
  const upTo = Math.max(0, i.coldLoadSeconds - i.warmLoadSeconds);
  if (i.headStartSeconds === null) return { seconds: upTo, upToSeconds: upTo, reason: 'head start not measured: assumes the prefetch finishes before the load starts' };
  return { seconds: Math.min(upTo, Math.max(0, i.headStartSeconds)), upToSeconds: upTo };
}
