/**
 * `coldstart doctor`'s facts about this machine: Node, the native addon, the CUDA driver and GPUs (PCIe link),
 * NVML, disks, the HF cache, Python and its peer packages, the container runtime, and what snapshot needs. Gathered
 * from platform/, native.ts, python/, hub/ and cache/; snapshot's part is passed in (it lives with snapshot).
 */
import { loadNative, type CudaProbeResult, type NativeAddon } from '../native.js';
import { version } from '../core/version.js';
import { pcieBandwidth, formatDriverVersion } from '../platform/pcie.js';
import { diskInfo, containerRuntime, type DiskInfo } from '../platform/system.js';
import { hubCacheDir, hfEndpoint, hfOffline, hfToken } from '../hub/env.js';
import { scanHubCache, type CacheScan } from '../cache/scan.js';
import { probePython, type PythonInfo } from '../python/runner.js';

type Env = Record<string, string | undefined>;

/** What doctor shows of snapshot/restore's needs (CRIU, `criu check`, the driver's checkpoint API, root). */
export interface SnapshotReadiness {
  criu: { found: boolean; path?: string; version?: string; reason?: string; check: string };
  checkpointApi: { available: boolean; reason?: string };
  root: boolean;
  /** Each missing piece with its fix; empty when snapshot/restore work here. */
  fixes: string[];
}

/** Snapshot's own check (src/snapshot/doctor.ts snapshotDoctor), given the addon when it loaded. */
export type SnapshotCheck = (env: Env, native: NativeAddon | null) => Promise<SnapshotReadiness>;

export interface DoctorReport {
  schema: 'coldstart/doctor@1';
  tool: { name: 'coldstart'; version: string };
  node: { version: string; platform: string; arch: string; supported: boolean };
  addon: { loaded: boolean; path?: string; reason?: string; fixes?: string[] };
  cuda: (CudaProbeResult & { driverVersionText?: string | null }) | { available: false; reason: string; skipped: true };
  gpus: Array<{
    index: number;
    name: string;
    memoryBytes: number;
    pciBusId: string;
    computeCapability: string;
    pcie: null | { currentGen: number; currentWidth: number; maxGen: number; maxWidth: number; bandwidthBytesPerSecond: number | null; currentBandwidthBytesPerSecond: number | null };
  }>;
  disks: DiskInfo[];
  hfCache: CacheScan & { source: string; endpoint: string; offline: boolean; token: boolean };
  python: PythonInfo;
  container: string | null;
  environment: Record<string, string | null>;
  snapshot: SnapshotReadiness;
}

/** Gathers the report; `cwd` is one of the disks shown (with the HF cache and the temp folder). */
export async function gatherDoctor(env: Env, cwd: string, snapshotCheck: SnapshotCheck): Promise<DoctorReport> {
  const native = loadNative();
  const pythonP = probePython(env);
  let cuda: DoctorReport['cuda'];
  if (native.ok) {
    const probe = await native.addon.cudaProbe({ context: true });
    cuda = { ...probe, driverVersionText: formatDriverVersion(probe.driverVersion) };
  } else {
    cuda = { available: false, reason: `native addon unavailable: ${native.reason}`, skipped: true };
  }
  const devices = 'devices' in cuda ? cuda.devices : [];
  const gpus = devices.map((d) => ({
    index: d.index,
    name: d.name,
    memoryBytes: d.totalMemory,
    pciBusId: d.pciBusId,
    computeCapability: d.computeCapability,
    pcie: d.pcie
      ? {
          currentGen: d.pcie.currentGen,
          currentWidth: d.pcie.currentWidth,
          maxGen: d.pcie.maxGen,
          maxWidth: d.pcie.maxWidth,
          bandwidthBytesPerSecond: pcieBandwidth(d.pcie.maxGen, d.pcie.maxWidth),
          currentBandwidthBytesPerSecond: pcieBandwidth(d.pcie.currentGen, d.pcie.currentWidth),
        }
      : null,
  }));
  const cacheDir = hubCacheDir(env);
  const diskPaths = [...new Set([cwd, cacheDir, env.TMPDIR || '/tmp'])];
  return {
    schema: 'coldstart/doctor@1',
    tool: { name: 'coldstart', version },
    node: { version: process.version, platform: process.platform, arch: process.arch, supported: Number(process.versions.node.split('.')[0]) >= 20 },
    addon: native.ok ? { loaded: true, path: native.path } : { loaded: false, reason: native.reason, fixes: native.fixes },
    cuda,
    gpus,
    disks: diskPaths.map(diskInfo),
    hfCache: {
      ...scanHubCache(cacheDir),
      source: env.HF_HUB_CACHE ? 'HF_HUB_CACHE' : env.HF_HOME ? 'HF_HOME' : 'default',
      endpoint: hfEndpoint(env),
      offline: hfOffline(env),
      token: hfToken(env) !== undefined,
    },
    python: await pythonP,
    container: containerRuntime(),
    environment: Object.fromEntries(['CUDA_VISIBLE_DEVICES', 'HF_HOME', 'HF_HUB_CACHE', 'HF_ENDPOINT', 'HF_HUB_OFFLINE'].map((k) => [k, env[k] ?? null])),
    snapshot: await snapshotCheck(env, native.ok ? native.addon : null),
  };
}

