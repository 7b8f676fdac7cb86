import { afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assignDevices,
  planChunks,
  planEntries,
  planSamples,
  prepareFiles,
  recordGpuLoadPhase,
  runGpuLoad,
  type GpuLoadResult,
} from '../../src/load/gpu-load.js';
import { ColdstartError } from '../../src/core/errors.js';
import { runPhase } from '../../src/core/phases.js';
import { buildHeader, readHeader } from '../../src/formats/safetensors.js';
import { requireNative, type NativeAddon } from '../../src/native.js';
import { peerPython, runPython } from '../helpers/python.js';

const fx = fileURLToPath(new URL('../../fixtures/gpuload/', import.meta.url));
const sharded = join(fx, 'sharded');
const single = join(fx, 'single.safetensors');
const shards = [join(sharded, 'model-00001-of-00002.safetensors'), join(sharded, 'model-00002-of-00002.safetensors')];
const allFiles = [...shards, single];

let addon: NativeAddon;
let tmp: string;
beforeAll(() => {
  addon = requireNative('tests');
  tmp = mkdtempSync(join(tmpdir(), 'cs-gpuload-'));
  return () => rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function rejects(p: Promise<unknown>): Promise<ColdstartError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ColdstartError);
    return e as ColdstartError;
  }
  throw new Error('expected a rejection');
}

/** The data section of a safetensors file as the loader should deliver it. */
function dataOf(path: string): Buffer {
  const h = readHeader(path);
  return readFileSync(path).subarray(h.dataOffset, h.dataOffset + h.dataSize);
}

// Which files are the weights (index, model*.safetensors, refusals): test/load/weights.test.ts.

describe('planChunks (the chunk/ring plan)', () => {
  const cases: Array<[number, number, number]> = [
    [8, 8, 4096], // empty range
    [8 + 96, 8 + 96 + 1, 4096],
    [8 + 96, 8 + 96 + 4096 * 3 + 17, 4096],
    [4096, 4096 * 9, 8192],
    [8 + 1000, 8 + 1000 + (16 << 20) + 12345, 1 << 20],
    [123456, 123456 + (5 << 20), 4 << 20],
  ];
  it.each(cases)('range [%i, %i) in %i-byte chunks tiles the range with 4096-aligned reads inside one chunk', (begin, end, chunk) => {
    const plan = planEntries(planChunks([{ begin, end }], chunk));
    let cursor = begin;
    for (const c of plan) {
      expect(c.file).toBe(0);
      expect(c.readOffset % 4096).toBe(0);
      expect(c.readOffset + c.skip).toBe(cursor);
      expect(c.dest).toBe(cursor - begin);
      expect(c.copyLength).toBeGreaterThan(0);
      expect(c.skip + c.copyLength).toBeLessThanOrEqual(c.readLength);
      expect(c.readLength).toBeLessThanOrEqual(chunk);
      // the read ends on a 4096 boundary (O_DIRECT) and never crosses into the next chunk
      expect((c.readOffset + c.readLength) % 4096).toBe(0);
      expect(Math.floor(c.readOffset / chunk)).toBe(Math.floor((c.readOffset + c.readLength - 1) / chunk));
      cursor += c.copyLength;
    }
    expect(cursor).toBe(end);
  });

  it('keeps files in order and refuses chunk sizes that are not multiples of 4096', () => {
    const plan = planEntries(planChunks([{ begin: 100, end: 9000 }, { begin: 50, end: 60 }], 4096));
    expect(plan.map((c) => c.file)).toEqual([0, 0, 0, 1]);
    expect(() => planChunks([{ begin: 0, end: 10 }], 1000)).toThrow(/multiple of 4096/);
  });

  it('samples every non-empty tensor: small ones whole, large ones at start, middle and end', () => {
    const headers = shards.map((p) => readHeader(p));
    const s = planSamples(headers, 4096);
    const rows = [];
    for (let i = 0; i < s.length; i += 3) rows.push([s[i]!, s[i + 1]!, s[i + 2]!]);
    const nonEmpty = headers.flatMap((h) => h.tensors.filter((t) => t.end > t.begin));
    const big = nonEmpty.filter((t) => t.end - t.begin > 3 * 4096).length;
    expect(rows.length).toBe(nonEmpty.length + 2 * big);
    for (const [f, off, len] of rows) expect(off! + len!).toBeLessThanOrEqual(headers[f!]!.dataSize);
  });

  it('spreads files over devices by size, largest first', () => {
    expect(assignDevices([10, 10, 10, 10], [0, 1])).toEqual([0, 1, 0, 1]);
    expect(assignDevices([100, 1, 1, 1], [0, 1])).toEqual([0, 1, 1, 1]);
    expect(assignDevices([5, 7], [3])).toEqual([3, 3]);
  });
});

describe('native ring (host mode, exact bytes)', () => {
  const prep = prepareFiles(allFiles);
  const files = prep.paths.map((path, i) => ({ path, begin: prep.headers[i]!.dataOffset, end: prep.headers[i]!.dataOffset + prep.headers[i]!.dataSize }));
  const settings = [
    { threads: 1, buffers: 1, chunkBytes: 4096, direct: false },
    { threads: 4, buffers: 2, chunkBytes: 4096, direct: false },
    { threads: 8, buffers: 3, chunkBytes: 8192, direct: true },
    { threads: 3, buffers: 16, chunkBytes: 65536, direct: true },
    { threads: 2, buffers: 4, chunkBytes: 1 << 20, direct: false },
  ];
  it.each(settings)('threads $threads, buffers $buffers, chunk $chunkBytes, direct $direct: every byte arrives', async (s) => {
    const r = await addon.gpuLoad({ mode: 'host', sink: 'memory', files, plan: planChunks(files, s.chunkBytes), ...s, returnHost: true });
    expect(r.mode).toBe('host');
    expect(r.bytes).toBe(prep.bytes);
    r.files.forEach((f, i) => expect(f.data!.equals(dataOf(allFiles[i]!))).toBe(true));
    expect(r.readSeconds).toBeGreaterThan(0);
    expect(r.overlapSeconds).toBeLessThanOrEqual(Math.min(r.readSeconds, r.copySeconds) + 1e-9);
  });

  it('verify compares with the file and catches a flipped byte', async () => {
    const base = { mode: 'host' as const, sink: 'memory' as const, files, plan: planChunks(files, 8192), samples: planSamples(prep.headers), chunkBytes: 8192, threads: 2, buffers: 2 };
    const ok = await addon.gpuLoad(base);
    expect(ok.verify).toMatchObject({ mismatches: 0 });
    expect(ok.verify!.checked).toBe(planSamples(prep.headers).length / 3);
    const bad = await addon.gpuLoad({ ...base, testCorrupt: true });
    expect(bad.verify!.mismatches).toBe(1);
    expect(bad.verify!.firstMismatch).toContain(shards[0]);
  });

  it('refuses a plan that reaches outside its file or the ring buffer (trust boundary)', async () => {
    const plan = planChunks(files, 4096);
    plan[4] = plan[4]! + 1; // copyLength one byte past the read
    expect(() => addon.gpuLoad({ mode: 'host', sink: 'memory', files, plan, chunkBytes: 4096, threads: 1, buffers: 1 })).toThrow(/options.plan/);
    expect(() => addon.gpuLoad({ mode: 'host', sink: 'device', files, plan: planChunks(files, 4096), chunkBytes: 4096, threads: 1, buffers: 1 })).toThrow(/sink/);
  });

  it('a cancel flag set before the start rejects with INTERRUPTED', async () => {
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    cancel[0] = 1;
    await expect(addon.gpuLoad({ mode: 'host', sink: 'memory', files, plan: planChunks(files, 4096), chunkBytes: 4096, threads: 2, buffers: 2, cancel })).rejects.toMatchObject({
      code: 'INTERRUPTED',
    });
  });

  it('the loaded bytes are the bytes safetensors (Python) reads, tensor by tensor', async (ctx) => {
    const py = peerPython();
    if (!py) return ctx.skip();
    const r = await addon.gpuLoad({ mode: 'host', sink: 'memory', files, plan: planChunks(files, 4096), chunkBytes: 4096, threads: 4, buffers: 3, returnHost: true });
    const ours: Record<string, string> = {};
    prep.headers.forEach((h, i) => {
      for (const t of h.tensors) ours[`${i}:${t.name}`] = createHash('sha256').update(r.files[i]!.data!.subarray(t.begin, t.end)).digest('hex');
    });
    const theirs = JSON.parse(
      runPython(
        py,
        `
import sys, json, hashlib, torch
from safetensors.torch import load_file
out = {}
for i, p in enumerate(sys.argv[1:]):
    for k, t in load_file(p).items():
        out[f"{i}:{k}"] = hashlib.sha256(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"").hexdigest()
print(json.dumps(out))`,
        allFiles,
      ),
    ) as Record<string, string>;
    expect(ours).toEqual(theirs);
  });
});

describe('runGpuLoad (host path)', () => {
  it('loads every tensor into host memory, verifies, and says it ran without a GPU', async () => {
    const progress: number[] = [];
    const r = await runGpuLoad({ files: allFiles, host: true, verify: true, limits: true, chunkBytes: 8192, threads: 3, onProgress: (d) => progress.push(d) });
    const total = allFiles.reduce((a, f) => a + readHeader(f).dataSize, 0);
    expect(r.mode).toBe('host');
    expect(r.hostReason).toBe('host mode was requested');
    expect(r.hostCause).toBe('requested');
    expect(r.bytes).toBe(total);
    expect(r.bytesPerSecond).toBeCloseTo(r.bytes / r.seconds, 3);
    expect(r.files.map((f) => [f.bytes, f.device])).toEqual(allFiles.map((f) => [readHeader(f).dataSize, null]));
    expect(r.files.map((f) => f.tensors)).toEqual([4, 6, 25]);
    expect(r.verify).toMatchObject({ mismatches: 0 });
    expect(r.verify!.checked).toBeGreaterThan(30);
    expect(r.limits!.readBytesPerSecond).toBeGreaterThan(0);
    expect(r.limits!.h2dBytesPerSecond).toBeUndefined();
    expect(r.efficiency).toBeCloseTo(r.bytesPerSecond / r.limits!.readBytesPerSecond!, 6);
    expect(r.config).toMatchObject({ chunkBytes: 8192, threads: 3, buffers: 5, sink: 'memory' });
    expect(r.devices).toEqual([expect.objectContaining({ index: -1, name: 'host memory', bytes: total })]);
    expect(r.readSeconds).toBeGreaterThan(0);
    expect(r.overlapFraction).toBeGreaterThanOrEqual(0);
    expect(r.overlapFraction).toBeLessThanOrEqual(1);
    expect(progress.at(-1)).toBe(total);
  });

  it("hostSink 'discard' reads the same bytes without keeping them, and says nothing was verified", async () => {
    const r = await runGpuLoad({ files: allFiles, host: true, verify: true, hostSink: 'discard', chunkBytes: 8192, threads: 2 });
    expect(r.mode).toBe('host');
    expect(r.config.sink).toBe('discard');
    expect(r.bytes).toBe(allFiles.reduce((a, f) => a + readHeader(f).dataSize, 0));
    expect(r.notes.join('\n')).toMatch(/discarded .*nothing was verified/);
    expect(r.notes.join('\n')).toMatch(/verify skipped/);
    // 'memory' (and the default) keep them when they fit.
    const m = await runGpuLoad({ files: allFiles, host: true, hostSink: 'memory', chunkBytes: 8192, threads: 2 });
    expect(m.config.sink).toBe('memory');
  });

  it('without a driver it falls back to host mode with the driver error as the reason', async () => {
    const real = await addon.cudaProbe({ context: false });
    // On a GPU machine, stand in for one without a driver (the probe's own dlopen-failure result): the fallback is
    // what this test checks, so it runs on every host instead of returning early.
    const probe = real.available ? { ...real, available: false, stage: 'dlopen' as const, reason: 'libcuda.so.1 could not be loaded: simulated by the test', devices: [] } : real;
    if (real.available) {
      const spy = vi.spyOn(addon, 'cudaProbe').mockResolvedValue(probe);
      onTestFinished(() => spy.mockRestore());
    }

    const r = await runGpuLoad({ files: [single], devices: [1] });
    expect(r.mode).toBe('host');
    expect(r.hostReason).toBe(probe.reason);
    expect(r.hostCause).toBe(probe.stage === 'dlopen' ? 'no-driver' : probe.stage === 'cuInit' ? 'driver-init' : 'no-device');
    expect(r.notes.join(' ')).toContain('device(s) 1 ignored');
  });

  it('records a skipped gpu-load phase with metrics and the host read rate', async () => {
    const r = await runGpuLoad({ files: shards, host: true });
    const phase = await runPhase('gpu-load', (h) => recordGpuLoadPhase(h, r));
    expect(phase.status).toBe('skipped');
    expect(phase.reason).toMatch(/^host mode requested; host read measured: [\d.]+ [kMG]B\/s$/);
    expect(phase.steps.map((s) => s.name)).toEqual(['read', 'copy']);
    expect(phase.metrics).toMatchObject({ mode: 'host', bytes: r.bytes, files: 2, cache: 'as-is' });
  });

  it('records an ok phase with the load time for a GPU result', async () => {
    const r = await runGpuLoad({ files: shards, host: true });
    const gpu: GpuLoadResult = { ...r, mode: 'gpu', hostReason: undefined, hostCause: undefined, devices: [{ index: 0, name: 'Test GPU', bytes: r.bytes, seconds: 2, bytesPerSecond: r.bytes / 2 }], seconds: 2, efficiency: 0.93 };
    const phase = await runPhase('gpu-load', (h) => recordGpuLoadPhase(h, gpu));
    expect(phase.status).toBe('ok');
    expect(phase.seconds).toBe(2);
    expect(phase.metrics).toMatchObject({ mode: 'gpu', efficiency: 0.93, target: 'GPU 0 (Test GPU)' });
  });

  it('a verify mismatch is exit 1 (VERIFY_MISMATCH) with the result attached', async () => {
    const orig = addon.gpuLoad.bind(addon);
    vi.spyOn(addon, 'gpuLoad').mockImplementation((o) => orig({ ...o, testCorrupt: true }));
    const e = await rejects(runGpuLoad({ files: shards, host: true, verify: true }));
    expect(e.code).toBe('VERIFY_MISMATCH');
    expect(e.exitCode).toBe(1);
    expect((e.details!.result as GpuLoadResult).verify!.mismatches).toBe(1);
  });

  it('an aborted signal stops the load with INTERRUPTED', async () => {
    const ac = new AbortController();
    ac.abort();
    expect((await rejects(runGpuLoad({ files: shards, host: true, signal: ac.signal }))).code).toBe('INTERRUPTED');
    // aborted while the native load runs: the flag reaches the reader threads
    const big = join(tmp, 'big.safetensors');
    const { bytes } = buildHeader([{ name: 'w', dtype: 'U8', shape: [32 << 20] }]);
    writeFileSync(big, Buffer.concat([bytes, Buffer.alloc(32 << 20, 7)]));
    const orig = addon.gpuLoad.bind(addon);
    const ac2 = new AbortController();
    vi.spyOn(addon, 'gpuLoad').mockImplementation((o) => {
      const p = orig(o);
      if (o.sink === 'memory') setImmediate(() => ac2.abort());
      return p;
    });
    const e = await rejects(runGpuLoad({ files: [big], host: true, chunkBytes: 4096, threads: 1, buffers: 1, signal: ac2.signal }));
    expect(e.code).toBe('INTERRUPTED');
  });
});

describe('page cache (posix_fadvise / mincore)', () => {
  it('cold evicts the files (or says how much stayed), warm makes them resident', async () => {
    const p = join(tmp, 'cache.safetensors');
    copyFileSync(single, p);
    readFileSync(p);
    const cold = await runGpuLoad({ files: [p], host: true, cache: 'cold' });
    expect(cold.cache.requested).toBe('cold');
    expect(cold.cache.residentFractionInitial).toBeGreaterThan(0.9);
    if (cold.cache.residentFractionBefore > 0.02) expect(cold.cache.note).toMatch(/stayed in the page cache/);
    else expect(cold.cache.note).toBeUndefined();
    expect(cold.config.direct).toBe(true); // cold reads bypass the page cache unless told otherwise
    const warm = await runGpuLoad({ files: [p], host: true, cache: 'warm' });
    expect(warm.cache.residentFractionBefore).toBe(1);
    expect(warm.config.direct).toBe(false);
    const q = await addon.pageCache({ paths: [p], action: 'evict' });
    expect(q[0]!.bytes).toBe(readFileSync(p).length);
    expect(q[0]!.residentBytes === null || q[0]!.residentBytes <= q[0]!.bytes).toBe(true);
  });
});

describe('refused input: nothing is loaded', () => {
  function expectNothingLoaded(): { load: ReturnType<typeof vi.spyOn>; cache: ReturnType<typeof vi.spyOn> } {
    return { load: vi.spyOn(addon, 'gpuLoad'), cache: vi.spyOn(addon, 'pageCache') };
  }
  const cases: Array<[string, () => string, string]> = [
    ['missing file', () => join(tmp, 'missing.safetensors'), 'NOT_FOUND'],
    [
      'truncated file',
      () => {
        const p = join(tmp, 'truncated.safetensors');
        const b = readFileSync(single);
        writeFileSync(p, b.subarray(0, b.length - 100));
        return p;
      },
      'CORRUPT_FILE',
    ],
    [
      'header that claims more data than the file has',
      () => {
        const p = join(tmp, 'lying.safetensors');
        const { bytes } = buildHeader([{ name: 'w', dtype: 'F32', shape: [1024, 1024] }]);
        writeFileSync(p, Buffer.concat([bytes, Buffer.alloc(4096)]));
        return p;
      },
      'CORRUPT_FILE',
    ],
    [
      'header whose offsets overlap',
      () => {
        const p = join(tmp, 'overlap.safetensors');
        let json = JSON.stringify({ a: { dtype: 'U8', shape: [8], data_offsets: [0, 8] }, b: { dtype: 'U8', shape: [8], data_offsets: [4, 12] } });
        json += ' '.repeat((8 - (json.length % 8)) % 8);
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(json.length));
        writeFileSync(p, Buffer.concat([len, Buffer.from(json), Buffer.alloc(12)]));
        return p;
      },
      'CORRUPT_FILE',
    ],
    [
      'header length past the end of the file',
      () => {
        const p = join(tmp, 'hdrlen.safetensors');
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(1000n);
        writeFileSync(p, Buffer.concat([len, Buffer.from('{}')]));
        return p;
      },
      'CORRUPT_FILE',
    ],
  ];
  it.each(cases)('%s → exit 2, before any read or allocation (even when listed after a good file)', async (_name, make, code) => {
    const bad = make();
    const spies = expectNothingLoaded();
    const e = await rejects(runGpuLoad({ files: [shards[0]!, bad], host: true, verify: true }));
    expect(e.code).toBe(code);
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(bad);
    expect(spies.load).not.toHaveBeenCalled();
    expect(spies.cache).not.toHaveBeenCalled();
  });

  it('bad options are usage errors (exit 2) named as the library names them (chunkBytes), never by a CLI flag', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ threads: 0 }, 'threads'],
      [{ buffers: 1.5 }, 'buffers'],
      [{ chunkBytes: 1000 }, 'chunkBytes'],
      [{ cache: 'hot' }, 'cache'],
      [{ devices: [-1] }, 'devices'],
      [{ devices: [0, 0] }, 'devices'],
      [{ path: 'zero-copy' }, 'path'],
    ];
    for (const [o, option] of bad) {
      const e = await rejects(runGpuLoad({ files: [single], host: true, ...o }));
      expect(e.code).toBe('BAD_FLAG');
      expect(e.exitCode).toBe(2);
      expect(e.details).toEqual({ option });
      expect(e.message.startsWith(`${option}: expected `)).toBe(true);
      expect(e.message).not.toContain('--');
    }
    expect(() => planChunks([{ begin: 0, end: 10 }], 1000)).toThrow(/^chunkBytes: expected a multiple of 4096/);
    expect((await rejects(runGpuLoad({ files: [], host: true }))).exitCode).toBe(2);
  });
});

describe('copy path option (issue 15)', () => {
  it('an unknown path is a usage error (exit 2); mapped without a GPU runs the ring path and says so', async () => {
    const e = await rejects(runGpuLoad({ files: shards, host: true, path: 'zero-copy' as never }));
    expect(e.code).toBe('BAD_FLAG');
    expect(e.exitCode).toBe(2);
    const r = await runGpuLoad({ files: shards, host: true, path: 'mapped', verify: true });
    expect(r.config.path).toBe('ring');
    expect(r.notes).toContain('path mapped needs a GPU (host mode requested): the ring path was used');
    expect(r.verify).toMatchObject({ mismatches: 0 });
  });

  it('the native layer refuses mapped in host mode and with a non-device sink (BAD_ARG)', () => {
    const files = shards.map((p) => {
      const h = readHeader(p);
      return { path: p, begin: h.dataOffset, end: h.dataOffset + h.dataSize };
    });
    const plan = planChunks(files, 4096);
    for (const o of [{ mode: 'host' as const, sink: 'memory' as const }, { mode: 'gpu' as const, sink: 'discard' as const }]) {
      let err: (Error & { code?: string }) | undefined;
      try {
        void addon.gpuLoad({ ...o, files, plan, chunkBytes: 4096, threads: 1, buffers: 1, path: 'mapped' });
      } catch (x) {
        err = x as Error & { code?: string };
      }
      // options are checked before the driver is looked at: a refusal before any work, with or without a GPU
      expect(err?.code).toBe('BAD_ARG');
      expect(err?.message).toMatch(/options\.path/);
    }
  });
});

describe('limits the load itself beats', () => {
  it('become the load rate, keep the probe and say so, so efficiency cannot exceed 1', async () => {
    const { raiseBeatenLimits } = await import('../../src/load/gpu-load.js');
    const limits = { readBytesPerSecond: 1.8e9, h2dBytesPerSecond: 55e9 };
    const notes: string[] = [];
    raiseBeatenLimits(limits, 2.1e9, notes);
    expect(limits).toEqual({ readBytesPerSecond: 2.1e9, h2dBytesPerSecond: 55e9, probedBytesPerSecond: { read: 1.8e9 } });
    expect(notes).toEqual(["the read probe measured 1.80 GB/s but the load itself moved 2.10 GB/s: the limit is the load's own rate"]);
    const untouched = { readBytesPerSecond: 42e9, h2dBytesPerSecond: 55e9 };
    raiseBeatenLimits(untouched, 36e9, notes);
    expect(untouched).toEqual({ readBytesPerSecond: 42e9, h2dBytesPerSecond: 55e9 });
    expect(notes).toHaveLength(1);
  });
});
