/**
 * Every call snapshot, restore, park and unpark make into the native addon — the driver's CUDA checkpoint API
 * (cuCheckpointProcess*), NVML's GPU memory, the driver version, page-cache residency — each through `callNative`
 * (src/native.ts), so every failure is a ColdstartError whose native code (`details.nativeCode`: NO_DRIVER,
 * NO_CHECKPOINT_API, CUDA_ERROR_…) is what decisions are made on, never message text. `SnapshotNative` is the seam
 * tests replace (src/snapshot/engines.ts).
 */
import { ColdstartError, isColdstartError } from '../core/errors.js';
import { callNative, loadNative, nativeCodeOf, readProgress, sharedProgress, withNativeCancel, type CudaCheckpointResult, type GpuMemoryResult, type NativeAddon } from '../native.js';
import type { Fingerprint } from './manifest.js';
import { addonReadRanges, type RangesRead } from './working-set.js';
import { runPrefetch, type PrefetchOptions, type PrefetchResult } from '../load/prefetch.js';
import { DEFAULTS, planChunks } from '../load/gpu-load.js';
import { statSync } from 'node:fs';

/** restore --stage: what the addon left on the card (stage.ts): each file's bytes [0, size) behind one CUDA IPC handle. */
export interface StagedLoad {
  id: number;
  bytes: number;
  seconds: number;
  files: Array<{ path: string; handle: string }>;
}

export type CheckpointAction = 'state' | 'lock' | 'checkpoint' | 'restore' | 'unlock';

export interface SnapshotNative {
  /** null when the addon is loaded; else why not and what to do. */
  unavailable(): { reason: string; fixes: string[] } | null;
  /**
   * One cuCheckpointProcess* call on `pid`; rejects with a ColdstartError carrying the native code. `timeoutMs`: lock's
   * wait; `gpuPairs`: restore's GPU remapping (gpu-map.ts).
   */
  checkpoint(pid: number, action: CheckpointAction, o?: { timeoutMs?: number; gpuPairs?: Array<[string, string]> }): Promise<CudaCheckpointResult>;
  /** GPU memory per device (NVML); null when it could not be asked. */
  gpuMemory(): Promise<GpuMemoryResult | null>;
  /** The CUDA driver API version (e.g. 12080) without creating a context; null when unknown. */
  cudaDriverVersion(): Promise<number | null>;
  /** Bytes of `paths` in the page cache (mincore); null when not measured. */
  residentBytes(paths: string[]): Promise<number | null>;
  /** Resumes a stopped restored process with its Intel AMX permission given back (restore.ts decides where). */
  resumeGrantingAmx(pid: number): Promise<{ granted: boolean; result: number }>;
  /**
   * Pages out these address ranges of `pid` (address, length pairs): snapshot's narrowing of the working set
   * (snapshot.ts learnWorkingSet). Rejects with a ColdstartError carrying the native code.
   */
  pageOut(pid: number, ranges: number[]): Promise<{ bytes: number; skipped: number; seconds: number }>;
  /**
   * Reads these byte ranges of these files into the page cache (posix_fadvise WILLNEED, queued at once, then waited
   * for): restore's read of the server's working set (working-set.ts). `residentBefore`: bytes of them already there.
   */
  readRanges(paths: string[], ranges: number[][], signal: AbortSignal): Promise<RangesRead>;
  /**
   * Reads `paths` whole into the page cache, file after file, by one thread of `chunkBytes` preads (advised
   * sequential): restore's read of an image not in the page cache, which the verification hashes behind. `read()`: the
   * bytes read so far, from the first file's start on (one reader: its pieces finish in order); Infinity once it has
   * stopped, finished or not. `done`: what it read; rejects on a failure (a ColdstartError) or when `signal` aborts.
   */
  readInOrder(paths: string[], chunkBytes: number, signal: AbortSignal): { read: () => number; done: Promise<{ bytes: number; seconds: number }> };
  /** Reads files into the page cache (src/load/prefetch.ts runPrefetch): `restore --prefetch`'s weights, and the read rate of `--floor`. */
  prefetch(o: PrefetchOptions): Promise<PrefetchResult>;
  /**
   * Loads whole files onto the GPU with this NVML UUID (32 hex digits) in this process and leaves them there, each with
   * a CUDA IPC handle: restore --stage (stage.ts). Rejects with a ColdstartError (ENV: no CUDA ordinal for the GPU;
   * GPU_OOM; UNSUPPORTED: no IPC in this driver; INTERRUPTED when `signal` aborts, nothing left on the card).
   */
  stage(files: string[], gpuUuid: string, signal: AbortSignal): Promise<StagedLoad>;
  /** Frees what stage() left on the card (a second call does nothing). */
  unstage(id: number): void;
  /** The pinned host-to-device copy rate of GPU `device`, bytes/s (the addon's transferLimits, in this process's own context): `--floor`'s H2D. */
  h2dBytesPerSecond(device: number): Promise<number>;
}

function addon(): NativeAddon {
  const n = loadNative();
  if (!n.ok) throw new ColdstartError('NATIVE_UNAVAILABLE', `not available: ${n.reason}`, { hint: `To fix: ${n.fixes.join('; or ')}.` });
  return n.addon;
}

/** The real addon. */
export const addonNative: SnapshotNative = {
  unavailable: () => {
    const n = loadNative();
    return n.ok ? null : { reason: n.reason, fixes: n.fixes };
  },
  checkpoint: (pid, action, o) =>
    callNative(() => addon().cudaCheckpoint({ pid, action, ...(o?.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}), ...(o?.gpuPairs ? { gpuPairs: o.gpuPairs } : {}) }), `pid ${pid}`).catch((e: unknown) => {
      throw explainCheckpointFailure(e, action);
    }),
  gpuMemory: () => callNative(() => addon().gpuMemory(), 'GPU memory').catch(() => null),
  cudaDriverVersion: async () => (await callNative(() => addon().cudaProbe({ context: false }), 'CUDA driver').catch(() => null))?.driverVersion ?? null,
  resumeGrantingAmx: (pid) => callNative(() => addon().resumeGrantingAmx({ pid }), `pid ${pid}: AMX permission`),
  pageOut: (pid, ranges) => callNative(() => addon().pageOut({ pid, ranges: Float64Array.from(ranges) }), `pid ${pid}: page out`),
  readRanges: addonReadRanges,
  readInOrder: (paths, chunkBytes, signal) => {
    const progress = sharedProgress();
    let stopped = false;
    const done = withNativeCancel(signal, (cancel) => callNative(() => addon().prefetch({ paths, strategy: 'pread', threads: 1, chunkBytes, progress, cancel }), 'image read')).then(
      (r) => ((stopped = true), { bytes: r.bytes, seconds: r.seconds }),
      (e: unknown) => {
        stopped = true;
        throw e;
      },
    );
    return { read: () => (stopped ? Infinity : readProgress(progress)), done };
  },
  prefetch: (o) => runPrefetch(o),
  stage: async (files, gpuUuid, signal) => {
    const a = addon();
    const ordinal = (await callNative(() => a.cudaDeviceUuids(), 'CUDA devices')).find((d) => d.uuid === gpuUuid)?.ordinal;
    if (ordinal === undefined) throw new ColdstartError('ENV', `GPU ${gpuUuid}: no CUDA device of this process has that UUID (hidden by CUDA_VISIBLE_DEVICES?)`);
    const sized = files.map((path) => ({ path, bytes: statSync(path).size })).filter((f) => f.bytes > 0);
    const { chunkBytes, threads, streams, ring } = DEFAULTS;
    const plan = planChunks(sized.map((f) => ({ begin: 0, end: f.bytes })), chunkBytes);
    const r = await withNativeCancel(signal, (cancel) =>
      callNative(
        () => a.gpuLoad({ mode: 'gpu', sink: 'device', files: sized.map((f) => ({ path: f.path, begin: 0, end: f.bytes, device: ordinal })), plan, chunkBytes, threads, buffers: threads + 2, streams, ring, keep: true, cancel }),
        'stage',
      ),
    );
    return { id: r.keptId!, bytes: r.keptBytes ?? r.bytes, seconds: r.seconds, files: sized.map((f, i) => ({ path: f.path, handle: r.files[i]!.ipcHandle! })) };
  },
  unstage: (id) => void addon().gpuRelease(id),
  h2dBytesPerSecond: async (device) => (await callNative(() => addon().transferLimits({ device }), `pinned H2D of GPU ${device}`)).h2dBytesPerSecond,
  residentBytes: async (paths) => {
    const pc = await callNative(() => addon().pageCache({ paths, action: 'query' }), 'page cache').catch(() => null);
    return pc && pc.every((e) => e.residentBytes !== null) ? pc.reduce((a, e) => a + (e.residentBytes ?? 0), 0) : null;
  },
};

/**
 * What a failed cuCheckpointProcess* call means, by the driver's error name and the step that failed: from the CUDA
 * driver API's documentation, NVIDIA's cuda-checkpoint README and what users reported on its tracker (each reason
 * names its source; test/snapshot/checkpoint-errors.test.ts). null: nothing known beyond the driver's own words.
 */
export function checkpointHint(nativeCode: string | undefined, action: CheckpointAction): string | null {
  switch (nativeCode) {
    case 'CUDA_ERROR_NOT_SUPPORTED':
      return action === 'restore'
        ? "The driver could not restore this process's GPU state here. It restores onto GPUs of the model and layout the checkpoint saw (NVIDIA/cuda-checkpoint#18); users saw this refusal in containers that were given only some of the machine's GPUs (#12) and for a vLLM server on 2 GPUs (#27). Restore where the image's GPUs are (`coldstart restore --gpus` pairs others of the same model), with every GPU visible."
        : "The driver cannot checkpoint this process. NVIDIA's cuda-checkpoint README lists memory it does not checkpoint (UVM/managed memory, CUDA IPC memory); PyTorch processes failed this way on drivers 570.86 and 570.158 and worked on 575.57.08 (NVIDIA/cuda-checkpoint#34), and aarch64 drivers lacked the checkpoint step (GB10, 580.142: #51). Use an x86-64 driver 575.57.08 or newer and a server without managed or IPC memory.";
    case 'CUDA_ERROR_OPERATING_SYSTEM':
      return "An OS call inside the driver's checkpoint failed. Users saw this when the checkpoint was asked from inside a container (runc and gVisor alike) while the same call from the host worked (NVIDIA/cuda-checkpoint#37, google/gvisor#12600): run coldstart on the host, as root.";
    case 'CUDA_ERROR_NOT_PERMITTED':
      return "The driver refused this caller: run coldstart as root. A user's checkpoint failed this way until persistence mode was on (NVIDIA/cuda-checkpoint#25: `nvidia-smi -pm 1`).";
    case 'CUDA_ERROR_ILLEGAL_STATE':
      return `The process is not in the state this step needs (the CUDA driver API: lock needs RUNNING, checkpoint LOCKED, restore CHECKPOINTED, unlock LOCKED): another tool may be working on it (a second coldstart, cuda-checkpoint, CRIU's cuda_plugin): let it finish or stop it, then try again.`;
    case 'CUDA_ERROR_TIMEOUT':
      return action === 'lock' ? 'The GPU work the server had in flight did not finish within --lock-timeout (the driver waits for submitted work before it locks; the process stays RUNNING): snapshot when the server is idle, or give it longer.' : null;
    default:
      return null;
  }
}

/** `e` (a failed cuCheckpointProcess* call on the real addon) with checkpointHint's hint when it has none of its own. */
function explainCheckpointFailure(e: unknown, action: CheckpointAction): unknown {
  if (!isColdstartError(e) || e.hint) return e;
  const hint = checkpointHint(nativeCodeOf(e), action);
  return hint ? new ColdstartError(e.code, e.message, { cause: e.cause ?? e, hint, details: e.details }) : e;
}

/** The driver has no checkpoint API here (no driver at all, or one older than 570): a fact about the machine. */
export function noCheckpointApi(e: unknown): boolean {
  const code = nativeCodeOf(e);
  return code === 'NO_DRIVER' || code === 'NO_CHECKPOINT_API';
}

/** The process holds no CUDA context (the driver does not know it). */
function noContext(e: unknown): boolean {
  const code = nativeCodeOf(e);
  return code === 'CUDA_ERROR_NOT_INITIALIZED' || code === 'CUDA_ERROR_NOT_FOUND';
}

/** Every process of the tree that holds a CUDA context (its checkpoint state answers `running`). */
export async function cudaProcesses(native: SnapshotNative, pids: readonly number[]): Promise<{ pids: number[]; note?: string }> {
  const why = native.unavailable();
  if (why) return { pids: [], note: 'native addon unavailable: GPU state not checked' };
  const out: number[] = [];
  for (const pid of pids) {
    try {
      if ((await native.checkpoint(pid, 'state')).state === 'running') out.push(pid);
    } catch (e) {
      if (noCheckpointApi(e)) return { pids: [], note: (e as Error).message };
      // Any other answer (e.g. CUDA_ERROR_NOT_INITIALIZED / NOT_FOUND): this process holds no context.
    }
  }
  return { pids: out };
}

/**
 * The GPU part of a machine fingerprint: driver, CUDA version and devices; null without a usable driver. `reading`:
 * an NVML reading the caller already holds (its devices are the same a second one would list); absent: read here.
 */
export async function gpuFingerprint(native: SnapshotNative, reading?: GpuMemoryResult | null): Promise<Fingerprint['gpu']> {
  if (native.unavailable()) return null;
  const mem = reading === undefined ? await native.gpuMemory() : reading;
  if (!mem?.available || !mem.devices.length) return null;
  return { driver: mem.driverVersion ?? null, cuda: await native.cudaDriverVersion(), devices: mem.devices.map((d) => ({ index: d.index, name: d.name, uuid: d.uuid })) };
}

/** park/unpark's error for a failed checkpoint call on `pid`, decided on the native code. */
export function checkpointFailure(e: unknown, pid: number, alive: boolean): ColdstartError {
  if (!alive) return noSuchProcess(pid);
  const msg = (e as Error).message;
  if (noCheckpointApi(e)) return new ColdstartError('NO_GPU', msg, { cause: e, hint: 'park/unpark need an NVIDIA driver 570 or newer on this machine.', details: { nativeCode: nativeCodeOf(e) } });
  const hint = noContext(e) ? `pid ${pid} holds no CUDA context.` : ((isColdstartError(e) && e.hint) || 'Run as root (or as the process owner).');
  return new ColdstartError('ENV', msg, { cause: e, hint, details: { nativeCode: nativeCodeOf(e) } });
}

export function noSuchProcess(pid: number): ColdstartError {
  return new ColdstartError('NOT_FOUND', `pid ${pid}: no such process`, { hint: 'Give the pid of a running process (e.g. from `nvidia-smi` or `pgrep`).' });
}

