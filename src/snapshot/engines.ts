/**
 * What snapshot, restore, park and unpark drive, as one object of functions (`registerSnapshot(program, run,
 * engines)`): CRIU, the addon's checkpoint calls, the server lifecycle, this host's /proc and disks, and the clock.
 * The defaults are the real ones; tests pass stand-ins so the orchestration (refusals, clean-up on failure, the
 * steps and the report) runs without root, CRIU or a GPU.
 */
import { adoptServer, startServer } from '../server/lifecycle.js';
import { readThp, writeThp, type ThpControl } from '../platform/thp.js';
import { freePageReporting } from '../platform/balloon.js';
import { nowSeconds } from '../core/clock.js';
import { diskInfo, memoryRoom } from '../platform/system.js';
import { cpuFlags, filePagesPresent, pidAlive, processEnded, processTree, tracerPermissions, type TracerPermissions } from '../platform/procfs.js';
import { criuCheck, criuDump, criuRestore, findCriu, gpuDeviceHolders, kernelRelease, portInUse, requireCriu, treeMemoryBytes } from './criu.js';
import { listeningPorts, type ListeningPort } from '../platform/sockets.js';
import { addonNative, type SnapshotNative } from './native.js';
import { recordWorkingSet, type WorkingSet } from './working-set.js';

export interface SnapshotHost {
  /** Whether coldstart runs as root (CRIU and the driver act on other processes). */
  isRoot(): boolean;
  arch(): string;
  kernelRelease(): string;
  /** The pid and every descendant, from /proc. */
  processTree(root: number): number[];
  listeningPorts(pids: readonly number[]): ListeningPort[];
  /** Resident plus swapped bytes of the processes. */
  treeMemoryBytes(pids: readonly number[]): number;
  pidAlive(pid: number): boolean;
  portInUse(port: number, address: string): Promise<boolean>;
  memAvailableBytes(): number | null;
  /** Free bytes on the filesystem holding `path` (null: unknown). */
  diskFreeBytes(path: string): number | null;
  /** Processes of `pids` with an NVIDIA device file open (CRIU cannot save one). */
  gpuDeviceHolders(pids: readonly number[]): Array<{ pid: number; devices: string[]; command: string }>;
  /** The CPU's feature flags (/proc/cpuinfo): restore explains a server that died after it on a CPU with AMX. */
  cpuFlags(): ReadonlySet<string>;
  /** Whether a process ended (gone or a zombie) and the signal that ended a zombie (procfs.ts processEnded). */
  processEnded(pid: number): { ended: boolean; signal: number | null };
  /** Address ranges of `pid`'s file pages present in memory (procfs.ts filePagesPresent; null: not readable). */
  filePagesPresent(pid: number): number[] | null;
  /** The pages of their files the processes have mapped now (working-set.ts; null: not readable). */
  workingSet(pids: readonly number[]): WorkingSet | null;
  /** The system-wide transparent-huge-pages mode (null: no THP here), and setting it (restore and park --huge-pages). */
  thp: ThpControl;
  /** Whether this VM's memory balloon hands free pages back to the hypervisor (platform/balloon.ts). */
  freePageReporting(): boolean;
  /** What this process may do as the tracer of a server it starts (procfs.ts tracerPermissions; doctor.ts judges it). */
  tracerPermissions(): TracerPermissions;
}

export interface SnapshotEngines {
  criu: { find: typeof findCriu; require: typeof requireCriu; check: typeof criuCheck; dump: typeof criuDump; restore: typeof criuRestore };
  native: SnapshotNative;
  server: { start: typeof startServer; adopt: typeof adoptServer };
  host: SnapshotHost;
  /** Monotonic seconds for every duration reported, and the wall clock for the manifest's date. */
  clock: { now(): number; date(): Date };
}

export const realHost: SnapshotHost = {
  isRoot: () => process.getuid?.() === 0,
  arch: () => process.arch,
  kernelRelease,
  processTree,
  listeningPorts,
  treeMemoryBytes,
  pidAlive,
  portInUse,
  memAvailableBytes: () => memoryRoom()?.availableBytes ?? null,
  diskFreeBytes: (path) => diskInfo(path).freeBytes,
  gpuDeviceHolders,
  cpuFlags: () => cpuFlags(),
  processEnded: (pid) => processEnded(pid),
  filePagesPresent: (pid) => filePagesPresent(pid),
  workingSet: (pids) => recordWorkingSet(pids),
  thp: { read: () => readThp(), write: (mode) => writeThp(mode) },
  freePageReporting: () => freePageReporting(),
  tracerPermissions: () => tracerPermissions(),
};

export const defaultSnapshotEngines: SnapshotEngines = {
  criu: { find: findCriu, require: requireCriu, check: criuCheck, dump: criuDump, restore: criuRestore },
  native: addonNative,
  server: { start: startServer, adopt: adoptServer },
  host: realHost,
  clock: { now: nowSeconds, date: () => new Date() },
};

/** The default engines with some replaced (tests). */
export function withSnapshotEngines(over: { [K in keyof SnapshotEngines]?: Partial<SnapshotEngines[K]> }): SnapshotEngines {
  const out = { ...defaultSnapshotEngines } as Record<string, unknown>;
  for (const [k, v] of Object.entries(over)) out[k] = { ...(defaultSnapshotEngines as unknown as Record<string, object>)[k], ...(v as object) };
  return out as unknown as SnapshotEngines;
}

/** A stopwatch on the engines' clock. */
export function stopwatch(clock: SnapshotEngines['clock']): () => number {
  const t0 = clock.now();
  return () => clock.now() - t0;
}
