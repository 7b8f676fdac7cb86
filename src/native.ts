/**
 * The one typed boundary between TypeScript and the C++ addon (native/). Everything the addon exports is
 * declared here; nothing else imports the .node file. If the addon is missing or fails to load, `loadNative()`
 * says why and what to do, and commands that do not need it keep working.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { ColdstartError, type ErrorCode } from './core/errors.js';

// ---------------------------------------------------------------------------------------------- probe (cuda-init)
export interface PcieLink {
  currentGen: number;
  maxGen: number;
  /** The GPU's own maximum generation (the link may train lower than this on an older slot). */
  gpuMaxGen?: number;
  currentWidth: number;
  maxWidth: number;
}

export interface CudaDevice {
  index: number;
  name: string;
  totalMemory: number;
  freeMemory?: number;
  pciBusId: string;
  computeCapability: string;
  multiprocessors: number;
  /** Primary-context creation time on this device, seconds. */
  contextSeconds?: number;
  contextError?: string;
  pcie?: PcieLink;
  pcieError?: string;
  /** NVLink links NVML reports up; absent when it reports none (a PCIe card, or no NVML). */
  nvlinkActiveLinks?: number;
}

export interface CudaProbeResult {
  available: boolean;
  reason?: string;
  /** Where it stopped when unavailable: dlopen, cuInit or enumerate. */
  stage?: 'dlopen' | 'cuInit' | 'enumerate';
  /** e.g. 13000 for CUDA 13.0. */
  driverVersion?: number;
  /** Seconds: cuInit, device enumeration, primary-context creation (summed over probed devices). */
  timings: { init: number; enumerate: number; context: number };
  devices: CudaDevice[];
  nvml: { available: boolean; reason?: string; driverVersion?: string };
}

export interface CudaProbeOptions {
  /** Device indexes (after CUDA_VISIBLE_DEVICES) to create a primary context on; default all. */
  devices?: number[];
  /** Create (and release) the primary context to time it; default true. */
  context?: boolean;
}

// ---------------------------------------------------------------------------------------------- convert (fileio.cc)
/** One tensor to materialise: a view of a storage in a source file, written (or compared) at `dst`. */
export interface FileOp {
  /** Index into `FileJob.sources`. */
  src: number;
  /** Absolute offset of the storage's first byte in the source file, and the storage's length in bytes. */
  srcOffset: number;
  srcBytes: number;
  /** Absolute offset in the output file. */
  dst: number;
  /** safetensors dtype names; they differ only for F16/BF16/F32/F64 → F16/BF16/F32 conversion. */
  srcDtype: string;
  dstDtype: string;
  /** Elements; strides may be 0 (expanded) or describe any permutation. */
  shape: number[];
  strides: number[];
  storageOffset: number;
  /** Swap each element's bytes (big-endian checkpoint). */
  byteswap: boolean;
}

export interface FileJob {
  /** write: pwrite/copy_file_range into `output` (which must exist). verify: compare `output` with the sources. */
  mode: 'write' | 'verify';
  output: string;
  sources: string[];
  ops: FileOp[];
  /** Reserve this many bytes of `output` first (fallocate), so a full disk fails before any copying. */
  preallocate?: number;
  fsync?: boolean;
  /** Start writeback every 64 MiB (sync_file_range) so a final fsync has little left to do. */
  writeback?: boolean;
  /** Gather/convert buffer size (default 8 MiB). */
  chunkBytes?: number;
}

export interface FileJobResult {
  /** Bytes written (write) or compared (verify). */
  bytes: number;
  seconds: number;
  copyFileRange: boolean;
  /** Indexes of ops whose bytes differ (verify mode). */
  mismatches: number[];
}

/** The mappings holdResident locked, owned by the addon until releaseResident (or collection). */
export type NativeHold = { readonly nativeHold: unique symbol };

// ---------------------------------------------------------------------------------------------- the addon's exports
export interface NativeAddon {
  abiVersion: number;
  cudaProbe(options?: CudaProbeOptions): Promise<CudaProbeResult>;
  /** convert: runs the byte moving off the main thread; rejects with `code` = errno name (ENOSPC, EACCES…) or CORRUPT. */
  fileioRun(job: FileJob): Promise<FileJobResult>;
  /** gpu-load: pinned-ring loader (types below). */
  gpuLoad(options: NativeLoadOptions): Promise<NativeLoadResult>;
  /** Frees what a gpuLoad with `keep` left on the card; false when nothing is kept under that id. */
  gpuRelease(id: number): boolean;
  /** This process's CUDA ordinals and each GPU's UUID (32 hex digits); [] without a driver. */
  cudaDeviceUuids(): Promise<Array<{ ordinal: number; uuid: string }>>;
  /** query: resident bytes (mincore); evict: fdatasync + posix_fadvise(DONTNEED), then query. */
  pageCache(options: { paths: string[]; action: 'query' | 'evict' }): Promise<PageCacheEntry[]>;
  /** Reads whole files into the page cache in parallel (prefetch, issue 15). */
  prefetch(options: NativePrefetchOptions): Promise<NativePrefetchResult>;
  /**
   * prefetch --hold: maps and locks (mlock) whole files, so their page-cache pages stay however much memory is asked
   * for elsewhere, until releaseResident. Rejects PERMISSION (past RLIMIT_MEMLOCK without CAP_IPC_LOCK), CORRUPT_FILE
   * (not a regular file), NOT_FOUND; a link is followed, as prefetch reads (which files: the caller's decision).
   */
  holdResident(options: { paths: string[] }): Promise<{ files: number; bytes: number; seconds: number; hold: NativeHold }>;
  /** Unlocks and unmaps a hold at once; the bytes let go (0 the second time). */
  releaseResident(hold: NativeHold): number;
  transferLimits(options?: { device?: number; bytes?: number; iterations?: number }): Promise<TransferLimitsResult>;
  deviceMemInfo(device: number): Promise<{ free: number; total: number }>;
  /** Pinned H2D on all `devices` at the same moment: each card's rate and the aggregate over the wall time. */
  concurrentH2d(options: { devices: number[]; bytes?: number; iterations?: number }): Promise<{ devices: Array<{ device: number; name: string; h2dBytesPerSecond: number }>; bytes: number; seconds: number; aggregateBytesPerSecond: number }>;
}

// ---------------------------------------------------------------------------------------------- loader (gpu-load, issue 4)

/** One file's byte range to load (absolute offsets: the safetensors data section) and its CUDA ordinal. */
export interface NativeLoadFile {
  path: string;
  begin: number;
  end: number;
  device?: number;
}

export interface NativeLoadOptions {
  /** 'gpu' (needs the driver) or 'host' (plain aligned host buffers, no CUDA at all). */
  mode: 'gpu' | 'host';
  /** device: into GPU memory; memory: into host memory; discard: read only (read-bandwidth limits, cache warming). */
  sink?: 'device' | 'memory' | 'discard';
  files: NativeLoadFile[];
  /** 6 numbers per chunk: file index, readOffset, readLength, skip, copyLength, destOffset (see planChunks). */
  plan: Float64Array;
  /** 3 numbers per verify sample: file index, offset (relative to the file's begin), length. */
  samples?: Float64Array;
  chunkBytes: number;
  threads: number;
  buffers: number;
  streams?: number;
  direct?: boolean;
  /** Pinned ring: cuMemHostAlloc (alloc, default) or huge-page malloc + cuMemHostRegister (register). */
  ring?: 'alloc' | 'register';
  /**
   * ring: pread into pinned buffers, then DMA (the default). mapped: mmap the files, pin each chunk of the
   * page cache in place with cuMemHostRegister(READ_ONLY) and DMA from it (gpu mode, sink device only).
   */
  path?: 'ring' | 'mapped';
  /** cancel[0] != 0 stops the load (memory is released, the promise rejects with code INTERRUPTED). On a SharedArrayBuffer. */
  cancel?: Int32Array;
  /** The workers add each chunk's bytes to progress[0] atomically; allocate it on a SharedArrayBuffer and read it with Atomics.load. */
  progress?: BigUint64Array;
  /** Tests: return each file's loaded bytes (sink memory only). */
  returnHost?: boolean;
  /** Tests: flip one loaded byte so verification must report a mismatch. */
  testCorrupt?: boolean;
  /**
   * A tensor-parallel load (src/load/tp.ts planTp): rank → device (-1 each in host mode) and buffer size, and the
   * copies (8 numbers each: chunk, rank, src, width, height, pitch, dst, dstPitch, grouped by chunk). Each chunk
   * is read once; `samples` (any) asks for each copy's first row to be compared with the file.
   */
  tp?: { devices: number[]; bytes: number[]; ops: Float64Array };
  /**
   * Leave each file's allocation on the card after the load, with a CUDA IPC handle another process opens
   * (files[i].ipcHandle), until gpuRelease(keptId): restore --stage (gpu mode, sink device, no tp).
   */
  keep?: boolean;
}

export interface NativeLoadResult {
  mode: 'gpu' | 'host';
  path: 'ring' | 'mapped';
  bytes: number;
  /** Wall time of the whole load: ring and destination allocation, reads, copies, final synchronisation. */
  seconds: number;
  setupSeconds: number;
  /** Time at least one read was in progress (union over threads). */
  readSeconds: number;
  /** Time at least one copy was in flight (GPU event timeline, or memcpy time in host mode). */
  copySeconds: number;
  /** Time reads and copies were both in progress. */
  overlapSeconds: number;
  /** Sum of every chunk's read time over all threads. */
  readThreadSeconds: number;
  devices: Array<{
    index: number;
    name?: string;
    bytes: number;
    seconds: number;
    /** Before the first read: destination allocation, streams, events. */
    setupSeconds: number;
    /** Destination allocation (cuMemAlloc per file, or host memory). */
    allocSeconds: number;
    /** Ring allocation, summed over the reader threads that did it lazily (overlaps the reads). */
    ringSeconds: number;
    /** Path mapped: cuMemHostRegister time summed over the workers (it faults the page-cache pages in). */
    registerSeconds: number;
    readSeconds: number;
    copySeconds: number;
  }>;
  files: Array<{ bytes: number; seconds: number; direct: boolean; data?: Buffer; ipcHandle?: string }>;
  /** options.keep: the id gpuRelease frees, and the bytes left on the card. */
  keptId?: number;
  keptBytes?: number;
  verify?: { checked: number; checkedBytes: number; mismatches: number; firstMismatch?: string };
  notes: string[];
  /** Tensor-parallel loads: each rank's device, bytes received and finish (seconds from the first read). */
  tp?: { ranks: Array<{ device: number; bytes: number; seconds: number; data?: Buffer }> };
}

export interface PageCacheEntry {
  path: string;
  bytes: number;
  /** null when mincore could not tell. */
  residentBytes: number | null;
  note?: string;
}

export interface TransferLimitsResult {
  device: number;
  name: string;
  bytes: number;
  h2dBytesPerSecond: number;
  d2hBytesPerSecond: number;
  /** cuMemHostRegister of already-faulted memory of the same size: bytes pinned per second (absent if it failed). */
  registerBytesPerSecond?: number;
}

export interface NativePrefetchOptions {
  paths: string[];
  /** Per path: byte offset, length, offset, length… to read instead of the whole file (parts past its end left out). */
  ranges?: number[][];
  /** pread into a reused buffer (default), readahead(2), or posix_fadvise(WILLNEED) + wait on mincore. */
  strategy?: 'pread' | 'readahead' | 'fadvise';
  threads?: number;
  chunkBytes?: number;
  /** Bytes read (or found resident) so far, added to atomically: a BigUint64Array on a SharedArrayBuffer. */
  progress?: BigUint64Array;
  cancel?: Int32Array;
  /**
   * Tests only: advice that is not issued, as if the kernel had dropped it — every other piece of the first pass
   * ('odd-pieces': a failed readahead page allocation) or all of it ('all': a squashfs fragment tail), so that
   * advising again and the pread fallback are checked on any disk.
   */
  testDropAdvice?: 'odd-pieces' | 'all';
}

export interface NativePrefetchResult {
  strategy: 'pread' | 'readahead' | 'fadvise';
  bytes: number;
  /** From the first read to every byte resident. */
  seconds: number;
  /** Until the last read/hint was issued (readahead/fadvise return before the data is in). */
  issueSeconds: number;
  /** readahead/fadvise: bytes the kernel left out and that were read with pread afterwards. */
  fallbackBytes: number;
  /** readahead/fadvise: bytes still missing when nothing arrived for 50 ms, advised again (pages the kernel dropped). */
  readvisedBytes: number;
  threads: number;
  /** With `ranges`: bytes of them in the page cache before (mincore); null: not measured. */
  residentBeforeBytes?: number | null;
  files: Array<{ path: string; bytes: number; seconds: number }>;
}

// ---------------------------------------------------------------------------------------------- errors
/**
 * The addon's one error vocabulary (native/src/common.h `Err`, plus the errno names fileio.cc reports) and the
 * ColdstartError code each becomes. Every native rejection or thrown argument error carries one of these as
 * `code`; nothing decides on message text.
 */
export const NATIVE_ERROR_CODES: Readonly<Record<string, ErrorCode>> = {
  BAD_ARG: 'BAD_INPUT',
  NOT_FOUND: 'NOT_FOUND',
  CORRUPT_FILE: 'CORRUPT_FILE',
  CORRUPT: 'CORRUPT_FILE',
  PERMISSION: 'PERMISSION',
  DISK_FULL: 'DISK_FULL',
  ENV: 'ENV',
  NO_GPU: 'NO_GPU',
  GPU_OOM: 'GPU_OOM',
  UNSUPPORTED: 'ENV',
  INTERRUPTED: 'INTERRUPTED',
  NATIVE: 'INTERNAL',
  // checkpoint.cc (issue 16): no libcuda / cuInit failed; a driver without the cuCheckpoint* API (< 570)
  NO_DRIVER: 'NO_GPU',
  NO_CHECKPOINT_API: 'NO_GPU',
  // fileio.cc: errno names
  ENOENT: 'NOT_FOUND',
  ENOTDIR: 'NOT_FOUND',
  EACCES: 'PERMISSION',
  EPERM: 'PERMISSION',
  EROFS: 'PERMISSION',
  ENOSPC: 'DISK_FULL',
  EDQUOT: 'DISK_FULL',
  EFBIG: 'DISK_FULL',
  EINVAL: 'BAD_INPUT',
};

const NATIVE_HINTS: Partial<Record<ErrorCode, string>> = {
  BAD_INPUT: 'A value handed to the native layer was refused (NaN, negative, fractional, above 2^53 or overflowing); this is a bug in the caller, please report it.',
  GPU_OOM: 'Free GPU memory (other processes?), spread the files over more cards (--devices 0,1) or load a smaller dtype.',
  CORRUPT_FILE: 'The file changed while it was being read; read it again once it is complete.',
  NO_GPU: 'Check `coldstart doctor`: the driver or the device is not usable.',
  DISK_FULL: 'Free space on the target filesystem and run it again.',
  PERMISSION: 'Check the file permissions.',
};

/**
 * The one mapping from a native error to a ColdstartError: `what` prefixes the message; the native code is kept
 * in `details.nativeCode` (e.g. UNSUPPORTED, for callers that fall back to another path on it).
 */
export function nativeError(e: unknown, what: string): ColdstartError {
  if (e instanceof ColdstartError) return e;
  const err = e as (Error & { code?: unknown }) | undefined;
  const nativeCode = typeof err?.code === 'string' ? err.code : undefined;
  // checkpoint.cc rejects with the CUDA error's own name (CUDA_ERROR_NOT_INITIALIZED…): the driver failed us (exit 3).
  const code: ErrorCode = (nativeCode && (NATIVE_ERROR_CODES[nativeCode] ?? (nativeCode.startsWith('CUDA_ERROR') ? 'ENV' : undefined))) || 'INTERNAL';
  const message = err?.message ?? String(e);
  return new ColdstartError(code, `${what}: ${message}`, { cause: e, hint: NATIVE_HINTS[code], ...(nativeCode ? { details: { nativeCode } } : {}) });
}

/** Runs a native call (its synchronous argument checks and its promise alike) and maps any failure with nativeError. */
export async function callNative<T>(p: () => Promise<T>, what: string): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw nativeError(e, what);
  }
}

/** The native code behind a ColdstartError made by nativeError (undefined otherwise). */
export function nativeCodeOf(e: unknown): string | undefined {
  return e instanceof ColdstartError && typeof e.details?.nativeCode === 'string' ? e.details.nativeCode : undefined;
}

/**
 * Runs a native call with a cancel flag its workers poll (an Int32Array on a SharedArrayBuffer), set when `signal`
 * aborts — at once if it already has — for as long as the call runs.
 */
export async function withNativeCancel<T>(signal: AbortSignal | undefined, run: (cancel: Int32Array) => Promise<T>): Promise<T> {
  const cancel = new Int32Array(new SharedArrayBuffer(4));
  const onAbort = (): void => void Atomics.store(cancel, 0, 1);
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  try {
    return await run(cancel);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** A progress counter the native workers add to atomically: read it with readProgress(). */
export function sharedProgress(): BigUint64Array {
  return new BigUint64Array(new SharedArrayBuffer(8));
}
export function readProgress(a: BigUint64Array): number {
  return Number(Atomics.load(a, 0));
}

// ---------------------------------------------------------------------------------------------- end of loader section

export type NativeLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string; fixes: string[] };

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
let cached: NativeLoad | undefined;

/**
 * Loads the addon once. Never throws. `COLDSTART_NATIVE_PATH` overrides the location; otherwise node-gyp-build picks
 * build/Release (a source build) or the shipped prebuild for this platform (prebuilds/<platform>-<arch>/).
 */
export function loadNative(): NativeLoad {
  if (cached) return cached;
  const req = createRequire(import.meta.url);
  let path = process.env.COLDSTART_NATIVE_PATH;
  if (path && !existsSync(path)) path = undefined;
  if (!path) {
    try {
      path = (req('node-gyp-build') as { path(dir: string): string }).path(root);
    } catch {
      // No build and no fitting prebuild (or node-gyp-build itself missing from an old install): a source build, if any.
      path = [join(root, 'build', 'Release', 'coldstart.node')].find((p) => existsSync(p));
    }
  }
  if (!path) {
    cached = {
      ok: false,
      reason: `the native addon is not built and no prebuilt one fits ${process.platform}-${process.arch} (build/Release/coldstart.node and prebuilds/ are missing)`,
      fixes: [
        'run `npm rebuild coldstart` (or `npm run build:native` in a checkout)',
        'make sure a C++ compiler is installed (Debian/Ubuntu: apt-get install g++)',
        'if COLDSTART_SKIP_NATIVE=1 was set at install time, unset it and reinstall',
      ],
    };
    return cached;
  }
  try {
    const addon = req(path) as NativeAddon;
    cached = { ok: true, addon, path };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    cached = {
      ok: false,
      reason: `the native addon at ${path} failed to load: ${msg}`,
      fixes: [
        'rebuild it for this Node.js version: `npm rebuild coldstart`',
        msg.includes('GLIBC') ? 'it was built on a newer system than this one; rebuild it here' : 'check that the file is not truncated or built for another platform',
      ],
    };
  }
  return cached;
}

/** The addon, or a NATIVE_UNAVAILABLE error that lists the fixes (for commands that cannot do without it). */
export function requireNative(feature: string): NativeAddon {
  const n = loadNative();
  if (n.ok) return n.addon;
  throw new ColdstartError('NATIVE_UNAVAILABLE', `${feature} needs the native addon, but ${n.reason}`, { hint: `To fix: ${n.fixes.join('; or ')}.` });
}

/** For tests: forget the cached load result. */
export function resetNativeForTests(): void {
  cached = undefined;
}

// ---------------------------------------------------------------------------------------------- snapshot (checkpoint.cc, issue 16)
/** CUDA process state as cuCheckpointProcessGetState reports it. */
export type CudaProcessState = 'running' | 'locked' | 'checkpointed' | 'failed' | 'unknown';

export interface CudaCheckpointResult {
  pid: number;
  action: string;
  /** Wall time of the driver call, seconds. */
  seconds: number;
  /** State after the call (read back with cuCheckpointProcessGetState when it answers). */
  state?: CudaProcessState;
  restoreThreadId?: number;
}

export interface GpuMemoryResult {
  available: boolean;
  reason?: string;
  driverVersion?: string;
  devices: Array<{
    index: number;
    name: string;
    uuid: string;
    totalBytes: number;
    freeBytes: number;
    usedBytes: number;
    /** The compute processes on it and their memory (null bytes: NVML cannot say); null: NVML gave no list. */
    processes?: Array<{ pid: number; usedBytes: number | null }> | null;
  }>;
}

export interface NativeAddon {
  /**
   * One cuCheckpointProcess* call on another process. Rejects with `code` NO_DRIVER (no libcuda / cuInit failed),
   * NO_CHECKPOINT_API (driver < 570) or the CUDA error name (e.g. CUDA_ERROR_NOT_INITIALIZED: the pid holds no context).
   */
  cudaCheckpoint(options: {
    pid: number;
    action: 'state' | 'lock' | 'checkpoint' | 'restore' | 'unlock' | 'restoreThread';
    timeoutMs?: number;
    /** restore only: [old, new] GPU UUIDs as 32 lowercase hex digits (src/snapshot/gpu-map.ts), at most 64. */
    gpuPairs?: Array<[string, string]>;
  }): Promise<CudaCheckpointResult>;
  /** GPU memory per device from NVML (never creates a CUDA context). */
  gpuMemory(): Promise<GpuMemoryResult>;
  /**
   * Resumes a process CRIU left stopped with Intel AMX permission given back (native/src/amx.cc: ptrace, x86-64):
   * `result` is arch_prctl(ARCH_REQ_XCOMP_PERM)'s return (0, or -errno). Rejects (UNSUPPORTED off x86-64, PERMISSION
   * without ptrace rights, ENV) having sent SIGCONT or not; the caller sends it again either way.
   */
  resumeGrantingAmx(options: { pid: number }): Promise<{ pid: number; result: number; granted: boolean }>;
  /**
   * Pages out these address ranges (address, length pairs, page-aligned) of another process: process_madvise(2)
   * MADV_PAGEOUT (native/src/pageout.cc). `bytes`: advised; `skipped`: bytes of ranges the kernel refused (unmapped
   * by then, mlock'ed, huge pages), gone past. Rejects UNSUPPORTED
   * (kernel < 5.10), PERMISSION (no CAP_SYS_NICE or ptrace right), NOT_FOUND (no such process).
   */
  pageOut(options: { pid: number; ranges: Float64Array }): Promise<{ pid: number; bytes: number; skipped: number; seconds: number }>;
}
