// GPU placement from sysfs (issue #29's doctor topology): NUMA node and the PCIe switch a GPU is behind, read from a
// sysfs tree laid out as the kernel lays it out (a bus-id link into /sys/devices/pciDDDD:BB/…), including a VM's
// flat one and bus ids as CUDA and NVML print them.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpuPlacement, sharedSwitches, sysfsBusId } from '../../src/platform/topology.js';
import { gatherDoctor } from '../../src/doctor/doctor.js';
import { doctorText } from '../../src/doctor/render.js';

const root = mkdtempSync(join(tmpdir(), 'cs-sysfs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A device at /sys/devices/<path…> with its /sys/bus/pci/devices link and numa_node. */
function device(path: string[], numa: string | null): void {
  const dir = join(root, 'devices', ...path);
  mkdirSync(dir, { recursive: true });
  if (numa !== null) writeFileSync(join(dir, 'numa_node'), `${numa}\n`);
  mkdirSync(join(root, 'bus', 'pci', 'devices'), { recursive: true });
  symlinkSync(join('..', '..', '..', 'devices', ...path), join(root, 'bus', 'pci', 'devices', path[path.length - 1]!));
}

// An 8-GPU host's shape: two GPUs behind each switch, two switches per root port / NUMA node; and a VM's GPU.
device(['pci0000:15', '0000:15:01.0', '0000:16:00.0', '0000:17:00.0', '0000:18:00.0'], '0');
device(['pci0000:15', '0000:15:01.0', '0000:16:00.0', '0000:17:04.0', '0000:19:00.0'], '0');
device(['pci0000:97', '0000:97:01.0', '0000:98:00.0', '0000:99:00.0', '0000:9a:00.0'], '1');
device(['pci0000:00', '0000:00:05.0'], '-1');

describe('gpu placement from sysfs', () => {
  it('normalises CUDA and NVML bus ids to sysfs names', () => {
    expect(sysfsBusId('00000000:18:00.0')).toBe('0000:18:00.0');
    expect(sysfsBusId('0000:9A:00.0')).toBe('0000:9a:00.0');
    expect(sysfsBusId('not a bus id')).toBeNull();
  });

  it('reads the NUMA node and the switch each GPU is behind; groups the GPUs that share one', () => {
    const a = gpuPlacement('00000000:18:00.0', root);
    expect(a).toEqual({ busId: '0000:18:00.0', numaNode: 0, bridges: ['0000:15:01.0', '0000:16:00.0', '0000:17:00.0'], switch: '0000:16:00.0' });
    const b = gpuPlacement('0000:19:00.0', root);
    expect(b).toMatchObject({ numaNode: 0, switch: '0000:16:00.0' });
    const c = gpuPlacement('0000:9A:00.0', root);
    expect(c).toMatchObject({ numaNode: 1, switch: '0000:98:00.0' });
    // A VM: the GPU hangs off the root complex, the kernel knows no NUMA node.
    expect(gpuPlacement('0000:00:05.0', root)).toEqual({ busId: '0000:00:05.0', numaNode: null, bridges: [], switch: null });
    // Not there, or not a bus id: null, never a guess.
    expect(gpuPlacement('0000:42:00.0', root)).toBeNull();
    expect(gpuPlacement('garbage', root)).toBeNull();
    expect(sharedSwitches([{ index: 0, placement: a }, { index: 1, placement: b }, { index: 2, placement: c }, { index: 3, placement: null }])).toEqual([{ switch: '0000:16:00.0', gpus: [0, 1] }]);
  });
});

describe('doctor shows the topology', () => {
  it('each GPU with its NUMA node, switch and NVLink links, and the GPUs sharing a switch', async () => {
    const base = await gatherDoctor(process.env, process.cwd(), async () => ({ criu: { found: false, check: 'not run' }, checkpointApi: { available: false }, root: true, fixes: [] }));
    const gpu = (index: number, busId: string, nvlink: number | null) => ({
      index,
      name: 'NVIDIA H100 80GB HBM3',
      memoryBytes: 80e9,
      pciBusId: busId,
      computeCapability: '9.0',
      pcie: null,
      placement: gpuPlacement(busId, root),
      nvlinkActiveLinks: nvlink,
    });
    const gpus = [gpu(0, '00000000:18:00.0', 18), gpu(1, '00000000:19:00.0', 18), gpu(2, '00000000:9A:00.0', null)];
    const plain = { bold: (x: string) => x, dim: (x: string) => x, red: (x: string) => x, green: (x: string) => x, yellow: (x: string) => x, cyan: (x: string) => x };
    const text = doctorText({ ...base, gpus, sharedSwitches: sharedSwitches(gpus) }, plain);
    expect(text).toMatch(/^gpu 0 .*; NUMA node 0, behind PCIe switch 0000:16:00\.0; NVLink: 18 link\(s\) up$/m);
    expect(text).toMatch(/^gpu 2 .*; NUMA node 1, behind PCIe switch 0000:98:00\.0$/m);
    expect(text).toMatch(/^topology +GPUs 0, 1 share PCIe switch 0000:16:00\.0: one uplink for their loads together/m);
  });
});
