import type { Command } from 'commander';
import type { Context, Runner } from '../cli/context.js';
import { loadNative, type CudaProbeResult } from '../native.js';
import { version } from '../core/version.js';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import { pcieBandwidth, formatDriverVersion } from '../platform/pcie.js';
import { diskInfo, containerRuntime, type DiskInfo } from '../platform/system.js';
import { hubCacheDir, hfEndpoint, hfOffline, hfToken } from '../hub/env.js';
import { scanHubCache, type CacheScan } from '../cache/scan.js';
import { probePython, type PythonInfo } from '../python/runner.js';
import { ExitCode } from '../core/errors.js';
import { snapshotDoctor, type SnapshotDoctor } from '../snapshot/doctor.js';
import { defaultSnapshotEngines } from '../snapshot/engines.js';

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
  snapshot: SnapshotDoctor;
}

async function gather(ctx: Context): Promise<DoctorReport> {
  const env = ctx.env;
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
  const diskPaths = [...new Set([ctx.cwd, cacheDir, env.TMPDIR || '/tmp'])];
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
    snapshot: await snapshotDoctor(env, defaultSnapshotEngines),
  };
}

function render(r: DoctorReport, ctx: Context): string {
  const s = ctx.out.style;
  const rows: Array<[string, string]> = [];
  const bad = (t: string) => s.yellow(t);
  rows.push(['node', `${r.node.version} (${r.node.platform} ${r.node.arch})${r.node.supported ? '' : bad(' — unsupported, need ≥ 20')}`]);
  rows.push(['addon', r.addon.loaded ? `loaded (${r.addon.path})` : bad(`not loaded: ${r.addon.reason}. To fix: ${r.addon.fixes?.join('; or ')}`)]);
  const c = r.cuda;
  if (c.available && 'timings' in c) {
    rows.push(['cuda', `driver API ${c.driverVersionText ?? '?'}${c.nvml.driverVersion ? `, driver ${c.nvml.driverVersion}` : ''}, ${c.devices.length} device(s)`]);
    rows.push(['cuda-init', `cuInit ${formatDuration(c.timings.init)} · enumerate ${formatDuration(c.timings.enumerate)} · primary context ${formatDuration(c.timings.context)}`]);
  } else {
    rows.push(['cuda', bad(`not available: ${c.reason}`)]);
  }
  if ('nvml' in c) rows.push(['nvml', c.nvml.available ? `available${c.nvml.driverVersion ? ` (driver ${c.nvml.driverVersion})` : ''}` : bad(`not available: ${c.nvml.reason}`)]);
  for (const g of r.gpus) {
    const link = g.pcie
      ? `PCIe Gen${g.pcie.maxGen} x${g.pcie.maxWidth} → ${formatRate(g.pcie.bandwidthBytesPerSecond ?? NaN)} per direction (now Gen${g.pcie.currentGen} x${g.pcie.currentWidth}; idle links train down)`
      : 'PCIe link unknown (NVML unavailable)';
    rows.push([`gpu ${g.index}`, `${g.name}, ${formatBytes(g.memoryBytes)}, cc ${g.computeCapability}, ${g.pciBusId}, ${link}`]);
  }
  for (const d of r.disks) {
    const kind = d.rotational === null ? '' : d.rotational ? ', rotational' : ', SSD';
    const space = d.freeBytes === null ? 'size unknown' : `${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes ?? NaN)}`;
    rows.push(['disk', `${d.path} → ${d.mount ?? '?'} (${d.fsType ?? '?'}${d.device ? `, ${d.device}` : ''}${kind}): ${space}`]);
  }
  const h = r.hfCache;
  rows.push(['hf cache', `${h.dir} (${h.source}): ${h.exists ? `${h.repos} repo(s), ${formatBytes(h.sizeBytes)}` : 'does not exist yet'}; endpoint ${h.endpoint}${h.offline ? ', offline' : ''}; token ${h.token ? 'set' : 'not set'}`]);
  const p = r.python;
  if (p.found) {
    const pk = Object.entries(p.packages)
      .map(([k, v]) => `${k} ${v ?? s.dim('—')}`)
      .join(', ');
    rows.push(['python', `${p.version} (${p.executable}): ${pk}`]);
  } else rows.push(['python', bad(`not found: ${p.reason}`)]);
  rows.push(['container', r.container ?? 'none detected']);
  const sn = r.snapshot;
  rows.push([
    'snapshot',
    `CRIU ${sn.criu.found ? `${sn.criu.version} (${sn.criu.path}), criu check ${sn.criu.check}` : bad(sn.criu.reason ?? 'not found')}; CUDA checkpoint API ${sn.checkpointApi.available ? 'available' : bad(sn.checkpointApi.reason ?? 'not available')}; ${sn.root ? 'root' : bad('not root')}`,
  ]);
  for (const f of sn.fixes) rows.push(['', bad(`to fix: ${f}`)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return [s.bold(`coldstart ${r.tool.version} doctor`), ...rows.map(([k, v]) => `${s.cyan(k.padEnd(w))}  ${v}`)].join('\n');
}

export function registerDoctor(program: Command, run: Runner): void {
  program
    .command('doctor')
    .description('check this machine: Node, native addon, CUDA driver and GPUs (PCIe link), NVML, disks, HF cache, Python peers')
    .action(
      run(async (ctx) => {
        const spin = await ctx.out.spinner('probing CUDA, disks and Python…');
        const report = await gather(ctx);
        spin.stop();
        if (ctx.out.json) ctx.out.writeJson(report);
        else ctx.out.print(render(report, ctx));
        return ExitCode.OK;
      }),
    );
}
