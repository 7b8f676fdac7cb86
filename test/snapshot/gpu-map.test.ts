/**
 * Restore onto other GPUs (src/snapshot/gpu-map.ts): the plan made before anything is touched, and the bytes the
 * addon hands the driver (CUcheckpointRestoreArgs / CUcheckpointGpuPair) and reads from NVML (nvmlProcessInfo_t),
 * checked against stand-in driver libraries written from cuda.h's and nvml.h's documented layouts
 * (test/fixtures/stub-driver/). On a GPU machine test/device/snapshot-gpu.sh restores with `--gpus` through the real
 * driver.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gpusUsed, movesText, planGpus, uuidHex } from '../../src/snapshot/gpu-map.js';
import type { Manifest } from '../../src/snapshot/manifest.js';
import type { GpuMemoryResult } from '../../src/native.js';
import { stubDriver } from '../helpers/stub-driver.js';

const A = 'GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9';
const B = 'GPU-f9e8d7c6-b5a4-9382-7160-5f4e3d2c1b0a';
const C = 'GPU-11111111-2222-3333-4444-555555555555';
const D = 'GPU-66666666-7777-8888-9999-aaaaaaaaaaaa';
const hex = (u: string) => uuidHex(u)!;
const H100 = 'NVIDIA H100 80GB HBM3';

/** The parts of a manifest the plan reads. */
function image(o: { devices: Array<[string, string]>; gpuPids: number[]; gpuUsed?: Manifest['gpuUsed'] }): Manifest {
  return {
    gpuPids: o.gpuPids,
    gpuUsed: o.gpuUsed,
    fingerprint: { arch: 'x64', kernel: '6.1', criu: '4.2.1', gpu: { driver: '580.1', cuda: 13000, devices: o.devices.map(([uuid, name], index) => ({ index, name, uuid })) } },
  } as unknown as Manifest;
}

function machine(devices: Array<[string, string, number?]>): GpuMemoryResult {
  return { available: true, devices: devices.map(([uuid, name, free], index) => ({ index, name, uuid, totalBytes: 80e9, freeBytes: free ?? 79e9, usedBytes: 1e9, processes: [] })) };
}

describe('uuidHex', () => {
  it("is the driver's 16 bytes of an NVML GPU UUID, in hex; MIG instances and anything else are not one", () => {
    expect(uuidHex(A)).toBe('0a1b2c3d4e5f60718293a4b5c6d7e8f9');
    expect(uuidHex(A.toUpperCase())).toBe('0a1b2c3d4e5f60718293a4b5c6d7e8f9');
    for (const bad of ['MIG-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9', '0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9', 'GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f', 'GPU-0a1b2c3d4e5f60718293a4b5c6d7e8f9', 'GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8fg', '']) expect(uuidHex(bad), bad).toBeNull();
  });
});

describe('gpusUsed (one NVML reading, before the lock)', () => {
  const mem = (procs: Array<Array<{ pid: number; usedBytes: number | null }> | null>): GpuMemoryResult => ({
    available: true,
    devices: procs.map((p, index) => ({ index, name: H100, uuid: [A, B][index]!, totalBytes: 80e9, freeBytes: 1e9, usedBytes: 79e9, processes: p })),
  });
  it('lists the GPUs each CUDA process of the server holds memory on, and nothing of other processes', () => {
    expect(gpusUsed(mem([[{ pid: 10, usedBytes: 5e9 }, { pid: 99, usedBytes: 1e9 }], [{ pid: 20, usedBytes: null }, { pid: 10, usedBytes: 2e9 }]]), [10, 20])).toEqual([
      { pid: 10, uuid: A, bytes: 5e9 },
      { pid: 20, uuid: B, bytes: null },
      { pid: 10, uuid: B, bytes: 2e9 },
    ]);
  });
  it('is null (not recorded) where NVML gave no process list, or lists a server process on no GPU (another pid namespace), or there is no GPU process', () => {
    expect(gpusUsed(mem([[{ pid: 10, usedBytes: 5e9 }], null]), [10])).toBeNull();
    expect(gpusUsed(mem([[{ pid: 10, usedBytes: 5e9 }], []]), [10, 20])).toBeNull();
    expect(gpusUsed(mem([[]]), [])).toBeNull();
    expect(gpusUsed({ available: false, reason: 'no NVML', devices: [] }, [10])).toBeNull();
    expect(gpusUsed(null, [10])).toBeNull();
  });
});

describe('planGpus', () => {
  const one = image({ devices: [[A, H100]], gpuPids: [10], gpuUsed: [{ pid: 10, uuid: A, bytes: 20e9 }] });

  it('the same GPU here: no pairs (the driver restores onto it by itself)', () => {
    const p = planGpus(one, machine([[A, H100]]), null, '/img');
    expect(p.pairs).toBeNull();
    expect(p.moves).toEqual([{ from: { index: 0, name: H100, uuid: A }, to: { index: 0, name: H100, uuid: A } }]);
    expect(movesText(p.moves)).toBe('');
  });

  it('another node: the first GPU of the same model in index order, handed to the driver as a pair', () => {
    const p = planGpus(one, machine([[C, 'NVIDIA A100-SXM4-80GB'], [B, H100], [D, H100]]), null, '/img');
    expect(p.pairs).toEqual(new Map([[10, [[hex(A), hex(B)]]]]));
    expect(movesText(p.moves)).toBe(`GPU 0 of the snapshot machine → GPU 1 here (${H100}, ${B})`);
  });

  it('--gpus picks by index or UUID (any case), and an identity choice is still handed over as pairs', () => {
    expect(planGpus(one, machine([[B, H100], [D, H100]]), ['1'], '/img').pairs).toEqual(new Map([[10, [[hex(A), hex(D)]]]]));
    expect(planGpus(one, machine([[A, H100], [D, H100]]), [A.toUpperCase()], '/img').pairs).toEqual(new Map([[10, [[hex(A), hex(A)]]]]));
  });

  it('two processes on two GPUs, one of them absent here: each process gets the pairs of the GPUs it held, the present one kept', () => {
    const two = image({ devices: [[A, H100], [B, H100]], gpuPids: [10, 20], gpuUsed: [{ pid: 10, uuid: A, bytes: 1e9 }, { pid: 20, uuid: B, bytes: 1e9 }, { pid: 20, uuid: A, bytes: 1e9 }] });
    // B is gone; C (index 0) is free; A stays where it is even though C comes first.
    const p = planGpus(two, machine([[C, H100], [A, H100]]), null, '/img');
    expect(p.pairs).toEqual(
      new Map([
        [10, [[hex(A), hex(A)]]],
        [20, [[hex(A), hex(A)], [hex(B), hex(C)]]],
      ]),
    );
  });

  it('an image that did not record which GPUs its server used: every GPU of the snapshot machine is paired, and said so', () => {
    const old = image({ devices: [[A, H100], [B, H100]], gpuPids: [10] });
    expect(planGpus(old, machine([[A, H100], [B, H100]]), null, '/img').pairs).toBeNull();
    const p = planGpus(old, machine([[C, H100], [D, H100]]), null, '/img');
    expect(p.pairs).toEqual(new Map([[10, [[hex(A), hex(C)], [hex(B), hex(D)]]]]));
    expect(p.notes.join(' ')).toMatch(/not recorded/);
    expect(() => planGpus(old, machine([[C, H100]]), null, '/img')).toThrow(expect.objectContaining({ code: 'NO_GPU', hint: expect.stringMatching(/does not record which GPUs/) }));
  });

  it('refuses before anything is touched: no GPU of the model, too little free memory, another model, a wrong --gpus, a MIG instance, --gpus for an image without GPU state', () => {
    expect(() => planGpus(one, machine([[C, 'NVIDIA A100-SXM4-80GB']]), null, '/img')).toThrow(expect.objectContaining({ code: 'NO_GPU', message: expect.stringContaining(`/img: the image's server used GPU 0 (${H100}, ${A}); this machine has no ${H100} left`) }));
    expect(() => planGpus(one, { available: false, reason: 'x', devices: [] }, null, '/img')).toThrow(expect.objectContaining({ code: 'NO_GPU', message: expect.stringContaining('(no GPU)') }));
    expect(() => planGpus(one, machine([[B, H100, 19e9]]), null, '/img')).toThrow(expect.objectContaining({ code: 'ENV', details: expect.objectContaining({ freeBytes: 19e9, needBytes: 20e9 }) }));
    expect(() => planGpus(one, machine([[C, 'NVIDIA A100-SXM4-80GB'], [B, H100]]), ['0'], '/img')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringMatching(/another model/) }));
    expect(() => planGpus(one, machine([[A, H100], [B, H100]]), ['0', '1'], '/img')).toThrow(expect.objectContaining({ code: 'BAD_FLAG', message: expect.stringMatching(/^--gpus: expected 1 GPU, one for each the image used/) }));
    expect(() => planGpus(one, machine([[A, H100]]), ['x'], '/img')).toThrow(expect.objectContaining({ code: 'BAD_FLAG' }));
    const two = image({ devices: [[A, H100], [B, H100]], gpuPids: [10], gpuUsed: [{ pid: 10, uuid: A, bytes: 1 }, { pid: 10, uuid: B, bytes: 1 }] });
    expect(() => planGpus(two, machine([[A, H100], [B, H100]]), ['0', '0'], '/img')).toThrow(expect.objectContaining({ code: 'BAD_FLAG', message: expect.stringMatching(/each GPU once/) }));
    const mig = image({ devices: [['MIG-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9', H100]], gpuPids: [10], gpuUsed: [{ pid: 10, uuid: 'MIG-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9', bytes: 1 }] });
    expect(() => planGpus(mig, machine([[B, H100]]), null, '/img')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringMatching(/MIG/) }));
    expect(() => planGpus(image({ devices: [], gpuPids: [] }), machine([[A, H100]]), ['0'], '/img')).toThrow(expect.objectContaining({ code: 'BAD_FLAG', message: expect.stringMatching(/holds no GPU state/) }));
  });
});

describe('the bytes the addon exchanges with the driver (stand-in libcuda / libnvidia-ml)', () => {
  const { withStubs, dir, dispose } = stubDriver();
  afterAll(dispose);

  it("restore hands the driver its pairs at CUcheckpointRestoreArgs' offsets (pointer 0, count 8, the rest zero), each pair two 16-byte UUIDs; none: a zeroed struct", () => {
    const log = join(dir, 'restore.log');
    withStubs(
      `await addon.cudaCheckpoint({ pid: 4242, action: 'restore', gpuPairs: [[${JSON.stringify(hex(A))}, ${JSON.stringify(hex(B))}], [${JSON.stringify(hex(C))}, ${JSON.stringify(hex(D))}]] });
       await addon.cudaCheckpoint({ pid: 4243, action: 'restore' });
       return null;`,
      { STUB_CUDA_LOG: log },
    );
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      `restore pid=4242 count=2 reservedZero=1 pairs=${hex(A)}${hex(B)}${hex(C)}${hex(D)}`,
      'restore pid=4243 count=0 reservedZero=1 pairs=',
    ]);
  });

  it('gpuPairs are refused unless well-formed, and only with restore; a driver error names the call', () => {
    const r = withStubs(
      `const tries = [
         { pid: 1, action: 'restore', gpuPairs: [['0A1B2C3D4E5F60718293A4B5C6D7E8F9', ${JSON.stringify(hex(B))}]] },
         { pid: 1, action: 'restore', gpuPairs: [[${JSON.stringify(hex(A))}]] },
         { pid: 1, action: 'restore', gpuPairs: Array.from({ length: 65 }, () => [${JSON.stringify(hex(A))}, ${JSON.stringify(hex(B))}]) },
         { pid: 1, action: 'restore', gpuPairs: 'x' },
         { pid: 1, action: 'lock', gpuPairs: [] },
       ];
       const out = tries.map((t) => { try { addon.cudaCheckpoint(t); return 'accepted'; } catch (e) { return e.message; } });
       out.push(await addon.cudaCheckpoint({ pid: 7, action: 'restore', gpuPairs: [[${JSON.stringify(hex(A))}, ${JSON.stringify(hex(B))}]] }).then(() => 'ok', (e) => e.code + ': ' + e.message));
       return out;`,
      { STUB_CUDA_LOG: join(dir, 'fail.log'), STUB_CUDA_RESTORE_FAILS: '1' },
    ) as string[];
    const want = 'cudaCheckpoint: gpuPairs expected an array of at most 64 [old, new] pairs of 32 lowercase hex digits each';
    expect(r.slice(0, 4)).toEqual([want, want, want, want]);
    expect(r[4]).toBe('cudaCheckpoint: gpuPairs expected only with action restore');
    expect(r[5]).toBe('CUDA_ERROR_INVALID_VALUE: cuCheckpointProcess restore of pid 7 failed: CUDA_ERROR_INVALID_VALUE (1): invalid argument');
  });

  it("gpuMemory reads each device's compute processes from nvmlProcessInfo_t (24 bytes; NVML's 'not available' as null), past 64 of them too", () => {
    const many = Array.from({ length: 70 }, (_, i) => `1:${1000 + i}:${i}`).join(',');
    const m = withStubs('return await addon.gpuMemory();', { STUB_NVML_PROCS: `0:111:123456789012,0:222:-1,${many}` }) as GpuMemoryResult;
    expect(m.devices.map((d) => d.uuid)).toEqual([A, B]);
    expect(m.devices[0]!.processes).toEqual([
      { pid: 111, usedBytes: 123456789012 },
      { pid: 222, usedBytes: null },
    ]);
    expect(m.devices[1]!.processes).toHaveLength(70);
    expect(m.devices[1]!.processes![69]).toEqual({ pid: 1069, usedBytes: 69 });
    expect(gpusUsed(m, [222, 1069])).toEqual([
      { pid: 222, uuid: A, bytes: null },
      { pid: 1069, uuid: B, bytes: 69 },
    ]);
  });
});
