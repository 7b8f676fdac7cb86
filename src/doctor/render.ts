/** How `coldstart doctor` reads: one row per fact, what to fix in yellow. */
import type { Style } from '../core/output.js';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import type { DoctorReport } from './doctor.js';
import { dirname } from 'node:path';

export function doctorText(r: DoctorReport, s: Style): string {
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
    const pl = g.placement;
    const where = pl ? `; NUMA node ${pl.numaNode ?? '—'}, ${pl.switch ? `behind PCIe switch ${pl.switch}` : pl.bridges.length ? `on root port ${pl.bridges[0]}` : 'on the root complex'}` : '';
    const nvlink = g.nvlinkActiveLinks === null ? '' : `; NVLink: ${g.nvlinkActiveLinks} link(s) up`;
    rows.push([`gpu ${g.index}`, `${g.name}, ${formatBytes(g.memoryBytes)}, cc ${g.computeCapability}, ${g.pciBusId}, ${link}${where}${nvlink}`]);
  }
  for (const sw of r.sharedSwitches) rows.push(['topology', `GPUs ${sw.gpus.join(', ')} share PCIe switch ${sw.switch}: one uplink for their loads together (gpu-load measures their H2D concurrently)`]);
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
  rows.push(['', p.chosenBy === 'COLDSTART_PYTHON' ? 'chosen by COLDSTART_PYTHON (set)' : 'the first python3/python on PATH; COLDSTART_PYTHON=/path/to/python chooses another (not set)']);
  const sl = p.serverLoader;
  if (sl)
    rows.push([
      'server loader',
      sl.library
        ? `${sl.library}, for a server's wake-up: PYTHONPATH=${dirname(sl.module)} then import coldstart_load (docs/snapshot.md)`
        : `not available (only a server's wake-up that calls coldstart_load needs it): ${sl.reason}`,
    ]);
  const o = r.onnx;
  rows.push(['onnx', o.usable ? `${o.module} ${o.version}${o.path ? ` (${o.path})` : ''}; CUDA provider ${o.cuda.available ? 'available' : `not available: ${o.cuda.reason}`}` : bad(`${o.module} not usable: ${o.reason}`)]);
  if (!o.usable) rows.push(['', bad(`to fix: ${o.fix}`)]);
  const cf = r.config;
  const budgets = Object.entries(cf.budgets).map(([k, v]) => `${k}=${formatDuration(v as number)}`).join(', ');
  rows.push(['config', cf.error ? bad(cf.error) : cf.path ? `${cf.path}${budgets ? `: budgets ${budgets}` : ': no budgets'}` : 'no coldstart.config.json here or in a parent folder']);
  rows.push(['container', r.container ?? 'none detected']);
  const sn = r.snapshot;
  rows.push([
    'snapshot',
    `CRIU ${sn.criu.found ? `${sn.criu.version} (${sn.criu.path}), criu check ${sn.criu.check}` : bad(sn.criu.reason ?? 'not found')}; CUDA checkpoint API ${sn.checkpointApi.available ? 'available' : bad(sn.checkpointApi.reason ?? 'not available')}${sn.workingSetLearning ? `; working-set learning ${sn.workingSetLearning.available ? 'available' : bad('not available')}` : ''}; ${sn.root ? 'root' : bad('not root')}${sn.freePageReporting ? "; this VM hands free memory back to its hypervisor (free page reporting): CRIU's page restore with --huge-pages waits on the host's faults (docs/snapshot.md)" : ''}`,
  ]);
  for (const f of sn.fixes) rows.push(['', bad(`to fix: ${f}`)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return [s.bold(`coldstart ${r.tool.version} doctor`), ...rows.map(([k, v]) => `${s.cyan(k.padEnd(w))}  ${v}`)].join('\n');
}

