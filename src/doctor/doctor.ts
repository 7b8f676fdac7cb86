/**
 * `coldstart doctor`'s facts about this machine: Node, the native addon, the CUDA driver and GPUs (PCIe link),
 * NVML, disks, the HF cache, Python and its peer packages, the container runtime, and what snapshot needs. Gathered
 * from platform/, native.ts, python/, hub/ and cache/; snapshot's part is passed in (it lives with snapshot).
 */
import { loadNative, type CudaProbeResult, type NativeAddon } from '../native.js';
import type { SnapshotDoctor } from '../snapshot/doctor.js';
import { version, versionAtLeast, PACKAGE_ROOT } from '../core/version.js';
import { loadConfig } from '../core/config.js';
import { isColdstartError } from '../core/errors.js';
import type { Budgets } from '../core/budgets.js';
import { cudaProviderStatus, loadOrt, ortModuleName } from '../warmup/onnx.js';
import { readFileSync } from 'node:fs';
import { pcieBandwidth, formatDriverVersion } from '../platform/pcie.js';
import { gpuPlacement, sharedSwitches, type GpuPlacement } from '../platform/topology.js';
import { diskInfo, containerRuntime, type DiskInfo } from '../platform/system.js';
import { hubCacheDir, hfEndpoint, hfOffline, hfToken } from '../hub/env.js';
import { scanHubCache, type CacheScan } from '../cache/scan.js';
import { probePython, type PythonInfo } from '../python/runner.js';

type Env = Record<string, string | undefined>;

/** Snapshot's own check (src/snapshot/doctor.ts snapshotDoctor), given the addon when it loaded. */
export type SnapshotCheck = (env: Env, native: NativeAddon | null) => Promise<SnapshotDoctor>;

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
    /** Its NUMA node and PCIe path from sysfs (platform/topology.ts); null when sysfs does not have it. */
    placement: GpuPlacement | null;
    /** NVLink links up (NVML); null when NVML reports none (a PCIe card, or no NVML). */
    nvlinkActiveLinks: number | null;
  }>;
  /** GPUs behind one PCIe switch share its uplink: their concurrent loads are bounded by it. */
  sharedSwitches: Array<{ switch: string; gpus: number[] }>;
  disks: DiskInfo[];
  hfCache: CacheScan & { source: string; endpoint: string; offline: boolean; token: boolean };
  python: PythonInfo & { chosenBy: 'COLDSTART_PYTHON' | 'PATH' };
  /** onnxruntime-node (an optional dependency: an install without network drops it silently). */
  onnx: { usable: true; module: string; version: string; path: string | null; cuda: { available: boolean; reason?: string } } | { usable: false; module: string; reason: string; fix: string };
  /** The coldstart.config.json in force from this folder (found walking up), and the budgets it sets. */
  config: { path: string | null; budgets: Budgets; error?: string };
  container: string | null;
  environment: Record<string, string | null>;
  /** What snapshot/restore need here: snapshot's own answer (src/snapshot/doctor.ts). */
  snapshot: SnapshotDoctor;
}

/** The exact line that puts onnxruntime-node back beside this coldstart (its package folder, its pinned range). */
export function ortReinstallLine(): string {
  let range = '';
  try {
    const pkg = JSON.parse(readFileSync(`${PACKAGE_ROOT}/package.json`, 'utf8')) as { optionalDependencies?: Record<string, string> };
    range = pkg.optionalDependencies?.['onnxruntime-node'] ?? '';
  } catch {
    // no package.json beside the code: the line without a version range
  }
  return `npm install --prefix ${PACKAGE_ROOT} --no-save onnxruntime-node${range ? `@${range}` : ''}`;
}

async function onnxFacts(env: Env): Promise<DoctorReport['onnx']> {
  const module = ortModuleName(env);
  try {
    const o = await loadOrt(env);
    return { usable: true, module, version: o.version, path: o.path, cuda: cudaProviderStatus(o.ort, o.path) };
  } catch (e) {
    return { usable: false, module, reason: isColdstartError(e) ? e.message : String(e), fix: ortReinstallLine() };
  }
}

function configFacts(cwd: string): DoctorReport['config'] {
  try {
    const c = loadConfig(cwd);
    return { path: c.path, budgets: c.budgets };
  } catch (e) {
    return { path: null, budgets: {}, error: isColdstartError(e) ? e.message : String(e) };
  }
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
    placement: gpuPlacement(d.pciBusId),
    nvlinkActiveLinks: d.nvlinkActiveLinks ?? null,
  }));
  const cacheDir = hubCacheDir(env);
  const diskPaths = [...new Set([cwd, cacheDir, env.TMPDIR || '/tmp'])];
  return {
    schema: 'coldstart/doctor@1',
    tool: { name: 'coldstart', version },
    node: { version: process.version, platform: process.platform, arch: process.arch, supported: versionAtLeast(process.versions.node, 20) === true },
    addon: native.ok ? { loaded: true, path: native.path } : { loaded: false, reason: native.reason, fixes: native.fixes },
    cuda,
    gpus,
    sharedSwitches: sharedSwitches(gpus.map((g) => ({ index: g.index, placement: g.placement }))),
    disks: diskPaths.map(diskInfo),
    hfCache: {
      ...scanHubCache(cacheDir),
      source: env.HF_HUB_CACHE ? 'HF_HUB_CACHE' : env.HF_HOME ? 'HF_HOME' : 'default',
      endpoint: hfEndpoint(env),
      offline: hfOffline(env),
      token: hfToken(env) !== undefined,
    },
    python: { ...(await pythonP), chosenBy: env.COLDSTART_PYTHON ? 'COLDSTART_PYTHON' : 'PATH' },
    onnx: await onnxFacts(env),
    config: configFacts(cwd),
    container: containerRuntime(),
    environment: Object.fromEntries(['CUDA_VISIBLE_DEVICES', 'HF_HOME', 'HF_HUB_CACHE', 'HF_ENDPOINT', 'HF_HUB_OFFLINE'].map((k) => [k, env[k] ?? null])),
    snapshot: await snapshotCheck(env, native.ok ? native.addon : null),
  };
}

