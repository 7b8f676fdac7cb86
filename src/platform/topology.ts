/**
 * Where each GPU sits on the host (issue #29): its NUMA node and its PCIe path from sysfs, and which GPUs share a
 * PCIe switch — GPUs behind one switch share its uplink, so their loads together can run below the sum of their links
 * (the concurrent H2D of gpu-load measures that). From /sys/bus/pci/devices/<bus id> (a link into /sys/devices/
 * pciDDDD:BB/<root port>/<switch upstream>/<switch downstream>/<gpu>) and its numa_node. Nothing here needs a driver.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface GpuPlacement {
  busId: string;
  /** NUMA node of the GPU's PCIe root, null when the kernel does not say (-1, a VM, no sysfs). */
  numaNode: number | null;
  /** The bridges from the root port down to the GPU (bus ids), [] when it hangs off the root complex directly. */
  bridges: string[];
  /** The PCIe switch's upstream port the GPU is behind, null when there is none. */
  switch: string | null;
}

const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** CUDA's and NVML's bus ids ("00000000:65:00.0", upper case) as sysfs names them ("0000:65:00.0"). */
export function sysfsBusId(id: string): string | null {
  const m = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(id.trim());
  if (!m) return null;
  return `${m[1]!.toLowerCase().padStart(8, '0').slice(-4)}:${m[2]!.toLowerCase()}:${m[3]!.toLowerCase()}.${m[4]}`;
}

/** One GPU's placement; null when sysfs has no such device. */
export function gpuPlacement(busId: string, sysRoot = '/sys'): GpuPlacement | null {
  const id = sysfsBusId(busId);
  if (!id) return null;
  let real: string;
  try {
    real = realpathSync(join(sysRoot, 'bus', 'pci', 'devices', id));
  } catch {
    return null;
  }
  const chain = real.split('/').filter((c) => BDF.test(c));
  if (chain[chain.length - 1] !== basename(real)) return null;
  const bridges = chain.slice(0, -1);
  let numaNode: number | null = null;
  try {
    const n = Number(readFileSync(join(real, 'numa_node'), 'utf8').trim());
    numaNode = Number.isInteger(n) && n >= 0 ? n : null;
  } catch {
    numaNode = null;
  }
  // root port → switch upstream port → switch downstream port → GPU: the switch is named by its upstream port.
  return { busId: id, numaNode, bridges, switch: bridges.length >= 3 ? bridges[bridges.length - 2]! : null };
}

/** GPUs (by index) that share a PCIe switch, each group of two or more, by switch. */
export function sharedSwitches(placements: ReadonlyArray<{ index: number; placement: GpuPlacement | null }>): Array<{ switch: string; gpus: number[] }> {
  const by = new Map<string, number[]>();
  for (const p of placements) {
    const sw = p.placement?.switch;
    if (!sw) continue;
    if (!by.has(sw)) by.set(sw, []);
    by.get(sw)!.push(p.index);
  }
  return [...by].filter(([, g]) => g.length > 1).map(([sw, gpus]) => ({ switch: sw, gpus }));
}
