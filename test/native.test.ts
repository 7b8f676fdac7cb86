import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callNative, loadNative, nativeCodeOf, nativeError, NATIVE_ERROR_CODES, readProgress, requireNative, sharedProgress, type NativeAddon } from '../src/native.js';
import { ColdstartError, ERROR_CODES } from '../src/core/errors.js';

const bin = fileURLToPath(new URL('../bin/coldstart.js', import.meta.url));
// (separate from the imports above so that merges with other branches touching them stay clean)
import { closeSync, ftruncateSync, openSync, rmSync as removeTree, symlinkSync } from 'node:fs';
import { planChunks } from '../src/load/gpu-load.js';
const hasDriver = (() => {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libcuda.so.1');
  } catch {
    return false;
  }
})();

describe('native addon', () => {
  it('loads on a machine without CUDA (libcuda is dlopened at run time, never linked)', () => {
    const n = loadNative();
    expect(n.ok).toBe(true);
    if (n.ok) expect(n.addon.abiVersion).toBe(1);
  });

  it('cudaProbe() resolves { available: false, reason } without a driver, never throws', async () => {
    const addon = requireNative('test');
    const r = await addon.cudaProbe();
    expect(typeof r.available).toBe('boolean');
    expect(r.nvml).toBeDefined();
    if (!hasDriver) {
      expect(r.available).toBe(false);
      expect(r.stage).toBe('dlopen');
      expect(r.reason).toMatch(/libcuda\.so\.1 could not be loaded/);
      expect(r.devices).toEqual([]);
      expect(r.nvml.available).toBe(false);
      expect(r.nvml.reason).toMatch(/libnvidia-ml\.so\.1/);
    }
  });

  it('a long native op runs off the main thread: timers keep ticking, and a timer can cancel it', async () => {
    // A 64 GiB sparse file read through the host loader: seconds of work, never finished before we stop it.
    const dir = mkdtempSync(join(tmpdir(), 'cs-native-'));
    try {
      const path = join(dir, 'sparse.bin');
      const size = 64 * 2 ** 30;
      const fd = openSync(path, 'w');
      ftruncateSync(fd, size);
      closeSync(fd);
      const files = [{ path, begin: 0, end: size }];
      const cancel = new Int32Array(new SharedArrayBuffer(4));
      let ticks = 0;
      let settled = false;
      const load = requireNative('test').gpuLoad({ mode: 'host', sink: 'discard', files, plan: planChunks(files, 1 << 20), chunkBytes: 1 << 20, threads: 1, buffers: 2, direct: false, cancel });
      void load.then(
        () => (settled = true),
        () => (settled = true),
      );
      // If the addon blocked the main thread, this timer could only run after the load had finished (resolved), and
      // the cancel it sets would come too late to make the load reject.
      const timer = setInterval(() => {
        if (!settled) ticks++;
        if (ticks === 3) Atomics.store(cancel, 0, 1);
      }, 5);
      try {
        await expect(load).rejects.toMatchObject({ code: 'INTERRUPTED' });
      } finally {
        clearInterval(timer);
      }
      expect(ticks).toBeGreaterThanOrEqual(3);
    } finally {
      removeTree(dir, { recursive: true, force: true });
    }
  });

  it('argument errors read alike', () => {
    const addon = requireNative('test');
    expect(() => addon.cudaProbe('nope' as never)).toThrow('cudaProbe: options expected an object');
    expect(() => addon.cudaProbe({ devices: ['a' as never] })).toThrow('cudaProbe: options.devices[] expected a device index');
  });
});

describe('missing or broken addon', () => {
  it('doctor still works and says why and how to fix it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-native-'));
    const bogus = join(dir, 'coldstart.node');
    writeFileSync(bogus, 'not an ELF file');
    const r = spawnSync(process.execPath, [bin, 'doctor', '--json'], { encoding: 'utf8', env: { ...process.env, COLDSTART_NATIVE_PATH: bogus } });
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.addon.loaded).toBe(false);
    expect(doc.addon.reason).toContain(`the native addon at ${bogus} failed to load`);
    expect(doc.addon.fixes[0]).toContain('npm rebuild coldstart');
    expect(doc.cuda).toMatchObject({ available: false, skipped: true });
  });
});

// ------------------------------------------------------------------------------------------------ issue 15
// Every number from JS is validated before it becomes a uint64_t, on the main thread, before the baton is queued:
// a refused call throws synchronously (nothing was opened, allocated or read) with code BAD_ARG, which
// nativeError maps to BAD_INPUT, exit 2.
describe('native validation (host mode, no GPU needed)', () => {
  const addon = (): NativeAddon => requireNative('test');
  let dir: string;
  let file: string;
  const SIZE = 64 << 10;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cs-native-val-'));
    file = join(dir, 'w.bin');
    writeFileSync(file, Buffer.alloc(SIZE, 3));
    return () => rmSync(dir, { recursive: true, force: true });
  });
  const okPlan = () => new Float64Array([0, 0, 4096, 0, 4096, 0]);
  const base = () => ({ mode: 'host' as const, sink: 'memory' as const, files: [{ path: file, begin: 0, end: 4096 }], plan: okPlan(), chunkBytes: 4096, threads: 1, buffers: 1 });

  /** Calls fn, expects a synchronous throw with code BAD_ARG, and returns the mapped ColdstartError. */
  function refused(fn: () => unknown, what: RegExp): ColdstartError {
    let thrown: unknown;
    try {
      const p = fn();
      if (p instanceof Promise) p.catch(() => {});
    } catch (e) {
      thrown = e;
    }
    expect(thrown, 'expected a synchronous refusal').toBeDefined();
    expect((thrown as { code?: string }).code).toBe('BAD_ARG');
    expect((thrown as Error).message).toMatch(what);
    const mapped = nativeError(thrown, 'test');
    expect(mapped.code).toBe('BAD_INPUT');
    expect(mapped.exitCode).toBe(2);
    return mapped;
  }

  it('the valid baseline loads (so the refusals below are about the one bad number)', async () => {
    const r = await addon().gpuLoad({ ...base(), returnHost: true });
    expect(r.bytes).toBe(4096);
    expect(r.files[0]!.data!.equals(Buffer.alloc(4096, 3))).toBe(true);
  });

  const bad: Array<[string, number]> = [
    ['NaN', Number.NaN],
    ['negative', -4096],
    ['fraction', 4096.5],
    ['2^53', 2 ** 53],
    ['huge', 2 ** 64],
    ['Infinity', Number.POSITIVE_INFINITY],
  ];
  for (const [name, v] of bad) {
    it(`file ranges: ${name} is refused`, () => {
      refused(() => addon().gpuLoad({ ...base(), files: [{ path: file, begin: v, end: 4096 }] }), /options\.files\[0\]\.begin expected a whole number/);
      refused(() => addon().gpuLoad({ ...base(), files: [{ path: file, begin: 0, end: v }] }), /options\.files\[0\]\.end expected a whole number/);
    });
    it(`plans: ${name} in any of the six numbers is refused`, () => {
      for (let k = 0; k < 6; k++) {
        const plan = okPlan();
        plan[k] = v;
        refused(() => addon().gpuLoad({ ...base(), plan }), /options\.plan\[0\]/);
      }
    });
    it(`sizes and counts: ${name} is refused`, () => {
      refused(() => addon().gpuLoad({ ...base(), chunkBytes: v }), /options\.chunkBytes/);
      refused(() => addon().gpuLoad({ ...base(), threads: v }), /options\.threads/);
      refused(() => addon().gpuLoad({ ...base(), buffers: v }), /options\.buffers/);
      refused(() => addon().transferLimits({ bytes: v }), /transferLimits: options\.bytes/);
      refused(() => addon().transferLimits({ device: v }), /transferLimits: options\.device/);
      refused(() => addon().concurrentH2d({ devices: [0, v] }), /concurrentH2d: options\.devices\[1\]/);
      refused(() => addon().concurrentH2d({ devices: [0], bytes: v }), /concurrentH2d: options\.bytes/);
      refused(() => addon().prefetch({ paths: [file], threads: v }), /prefetch: options\.threads/);
      refused(() => addon().prefetch({ paths: [file], chunkBytes: v }), /prefetch: options\.chunkBytes/);
      refused(() => addon().gpuLoad({ ...base(), samples: new Float64Array([0, 0, v]) }), /options\.samples\[0\]/);
    });
  }

  it('plans that reach past their file or the ring, or would allocate without bound, are refused', () => {
    const near = 2 ** 53 - 1;
    // a chunk whose end passes the file's range, with values near 2^53
    refused(
      () => addon().gpuLoad({ ...base(), files: [{ path: file, begin: 0, end: near }], plan: new Float64Array([0, near - 4095, 4096, 0, 8192, near - 4095]) }),
      /options\.plan\[0\] expected a chunk inside its file/,
    );
    // copy longer than the read, read longer than a ring buffer, source and destination that disagree
    refused(() => addon().gpuLoad({ ...base(), plan: new Float64Array([0, 0, 4096, 1, 4096, 1]) }), /chunk inside/);
    refused(() => addon().gpuLoad({ ...base(), plan: new Float64Array([0, 0, 8192, 0, 4096, 0]) }), /chunk inside/);
    refused(() => addon().gpuLoad({ ...base(), plan: new Float64Array([0, 4096, 4096, 0, 4096, 0]) }), /chunk inside/);
    // a file index that does not exist
    refused(() => addon().gpuLoad({ ...base(), plan: new Float64Array([1, 0, 4096, 0, 4096, 0]) }), /plan\[0\]\.file/);
    // 4096 buffers of 1 GiB: a 4 TiB ring
    refused(() => addon().gpuLoad({ ...base(), chunkBytes: 2 ** 30, buffers: 4096 }), /at most 64 GiB of ring/);
    // a verify sample that would allocate 2^52 bytes twice
    refused(() => addon().gpuLoad({ ...base(), files: [{ path: file, begin: 0, end: 2 ** 52 }], samples: new Float64Array([0, 0, 2 ** 52]) }), /at most 64 MiB/);
    // the mapped path needs a GPU and a device sink
    refused(() => addon().gpuLoad({ ...base(), path: 'mapped' }), /options\.path/);
    // progress must be the shared, atomic kind
    refused(() => addon().gpuLoad({ ...base(), progress: new Float64Array(1) as never }), /BigUint64Array/);
  });

  it('concurrentH2d: 1 to 64 devices; without a driver it rejects NO_GPU (never a rate of 0)', async () => {
    refused(() => addon().concurrentH2d({ devices: [] }), /concurrentH2d: options\.devices expected 1 to 64/);
    refused(() => addon().concurrentH2d({} as never), /concurrentH2d: options\.devices expected an array/);
    if (!existsSync('/dev/nvidiactl')) await expect(addon().concurrentH2d({ devices: [0, 1] })).rejects.toMatchObject({ code: 'NO_GPU' });
  });

  it('cancel and progress are checked alike by gpuLoad and prefetch: the shared kind, at least one element', () => {
    const callers: Array<[string, (o: object) => unknown]> = [
      ['gpuLoad', (o) => addon().gpuLoad({ ...base(), ...o })],
      ['prefetch', (o) => addon().prefetch({ paths: [file], ...o })],
    ];
    for (const [fn, call] of callers) {
      refused(() => call({ cancel: new Float64Array(1) }), new RegExp(`${fn}: options\\.cancel expected an Int32Array`));
      refused(() => call({ cancel: new Int32Array(new SharedArrayBuffer(0)) }), new RegExp(`${fn}: options\\.cancel expected at least one element`));
      refused(() => call({ progress: new Int32Array(1) }), new RegExp(`${fn}: options\\.progress expected a BigUint64Array`));
      refused(() => call({ progress: new BigUint64Array(new SharedArrayBuffer(0)) }), new RegExp(`${fn}: options\\.progress expected at least one element`));
    }
  });

  it('a valid plan for a file shorter than it claims fails at open, before any allocation, as CORRUPT_FILE (exit 2)', async () => {
    const e = await callNative(() => addon().gpuLoad({ ...base(), files: [{ path: file, begin: 0, end: 2 ** 52 }], plan: new Float64Array([0, 0, 4096, 0, 4096, 0]) }), 'load').catch((x) => x);
    expect(e).toBeInstanceOf(ColdstartError);
    expect(e.code).toBe('CORRUPT_FILE');
    expect(e.exitCode).toBe(2);
  });

  it('progress is added to atomically in a shared BigUint64Array and ends at the bytes loaded', async () => {
    const progress = sharedProgress();
    expect(progress.buffer).toBeInstanceOf(SharedArrayBuffer);
    const plan = new Float64Array(16 * 6);
    for (let i = 0; i < 16; i++) plan.set([0, i * 4096, 4096, 0, 4096, i * 4096], i * 6);
    const r = await addon().gpuLoad({ ...base(), files: [{ path: file, begin: 0, end: SIZE }], plan, threads: 4, buffers: 4, progress });
    expect(r.bytes).toBe(SIZE);
    expect(readProgress(progress)).toBe(SIZE);
  });
});

describe('one error vocabulary (nativeError)', () => {
  it('maps every native code to a ColdstartError code with the DESIGN.md exit code', () => {
    const want: Record<string, [string, number]> = {
      BAD_ARG: ['BAD_INPUT', 2],
      NOT_FOUND: ['NOT_FOUND', 2],
      CORRUPT_FILE: ['CORRUPT_FILE', 2],
      CORRUPT: ['CORRUPT_FILE', 2],
      PERMISSION: ['PERMISSION', 3],
      DISK_FULL: ['DISK_FULL', 3],
      NO_GPU: ['NO_GPU', 3],
      GPU_OOM: ['GPU_OOM', 3],
      UNSUPPORTED: ['ENV', 3],
      INTERRUPTED: ['INTERRUPTED', 3],
      NATIVE: ['INTERNAL', 3],
      ENOSPC: ['DISK_FULL', 3],
      EACCES: ['PERMISSION', 3],
      ENOENT: ['NOT_FOUND', 2],
      NO_DRIVER: ['NO_GPU', 3],
      NO_CHECKPOINT_API: ['NO_GPU', 3],
    };
    for (const [native, [code, exit]] of Object.entries(want)) {
      const e = nativeError(Object.assign(new Error('x'), { code: native }), 'op');
      expect([native, e.code, e.exitCode]).toEqual([native, code, exit]);
      expect(nativeCodeOf(e)).toBe(native);
    }
    // every entry of the table is a real ColdstartError code
    for (const code of Object.values(NATIVE_ERROR_CODES)) expect(ERROR_CODES).toHaveProperty(code);
    // an unknown code is INTERNAL, never silently something else
    expect(nativeError(Object.assign(new Error('x'), { code: 'WHAT' }), 'op').code).toBe('INTERNAL');
  });

  it('a missing file is NOT_FOUND from both the loader and the page-cache control', async () => {
    const missing = join(tmpdir(), `cs-missing-${process.pid}.bin`);
    const a = await callNative(() => requireNative('t').pageCache({ paths: [missing], action: 'query' }), 'q').catch((x) => x);
    expect(a.code).toBe('NOT_FOUND');
    const b = await callNative(() => requireNative('t').prefetch({ paths: [missing] }), 'p').catch((x) => x);
    expect(b.code).toBe('NOT_FOUND');
    const c = await callNative(
      () => requireNative('t').gpuLoad({ mode: 'host', sink: 'memory', files: [{ path: missing, begin: 0, end: 0 }], plan: new Float64Array(0), chunkBytes: 4096, threads: 1, buffers: 1 }),
      'l',
    ).catch((x) => x);
    expect(c.code).toBe('NOT_FOUND');
  });
});

describe('holdResident / releaseResident (prefetch --hold)', () => {
  it('refuses what is not a list of regular files (a link is followed, as prefetch reads): nothing held; a release frees once', async () => {
    const addon = requireNative('t');
    expect(() => addon.holdResident('x' as never)).toThrow('holdResident: options expected {paths}');
    expect(() => addon.holdResident({ paths: [1 as never] })).toThrow('holdResident: options.paths[] expected a string');
    expect(() => addon.releaseResident({} as never)).toThrow('releaseResident: hold expected the hold holdResident returned');
    const d = mkdtempSync(join(tmpdir(), 'cs-hold-'));
    try {
      const file = join(d, 'f.bin');
      writeFileSync(file, Buffer.alloc(3 * 4096 + 5, 7));
      const link = join(d, 'link');
      symlinkSync(file, link);
      const code = (p: string) => callNative(() => addon.holdResident({ paths: [file, p] }), 'h').catch((x) => x.details?.nativeCode);
      expect(await code('/dev/zero')).toBe('CORRUPT_FILE');
      expect(await code(join(d, 'missing'))).toBe('NOT_FOUND');
      const h = await addon.holdResident({ paths: [file, link] });
      expect([h.files, h.bytes]).toEqual([2, 2 * (3 * 4096 + 5)]);
      expect(addon.releaseResident(h.hold)).toBe(2 * (3 * 4096 + 5));
      expect(addon.releaseResident(h.hold)).toBe(0);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('prefetch checks its files in parallel and names the first bad one', () => {
  it('with many threads, of a missing file, a FIFO and another missing file after good ones, the first in order is named; good files alone read', async () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-pfcheck-'));
    try {
      const good = Array.from({ length: 24 }, (_, i) => join(d, `good-${i}.bin`));
      for (const g of good) writeFileSync(g, Buffer.alloc(8192, 1));
      const fifo = join(d, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const paths = [...good.slice(0, 12), join(d, 'missing-1.bin'), fifo, ...good.slice(12), join(d, 'missing-2.bin')];
      for (const threads of [1, 8, 64]) {
        const e = await callNative(() => requireNative('t').prefetch({ paths, threads }), 'p').catch((x) => x);
        expect(e.code, `threads ${threads}`).toBe('NOT_FOUND');
        expect(e.message, `threads ${threads}`).toContain('missing-1.bin: cannot open');
        const f = await callNative(() => requireNative('t').prefetch({ paths: [...good, fifo, join(d, 'missing-2.bin')], threads }), 'p').catch((x) => x);
        expect(f.message, `threads ${threads}`).toMatch(/fifo: not a regular file/);
      }
      const r = await callNative(() => requireNative('t').prefetch({ paths: good, ranges: good.map(() => [0, 4096]), strategy: 'fadvise', threads: 8 }), 'p');
      expect(r.bytes).toBe(24 * 4096);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('prefetch does not wait for a memory filesystem', () => {
  // A hole in a tmpfs file reads as zeros and never becomes resident: the fadvise wait saw no progress, waited out its
  // 0.5 s and "read" the hole with pread (fallbackBytes), on every restore whose working set held such a file.
  it.runIf(existsSync('/dev/shm'))('a sparse /dev/shm file beside a disk file: no fallback read, the disk file resident', async () => {
    const shm = mkdtempSync('/dev/shm/cs-pfmem-');
    const d = mkdtempSync(join(tmpdir(), 'cs-pfmem-'));
    try {
      const sparse = join(shm, 'sparse.bin');
      const fd = openSync(sparse, 'w');
      ftruncateSync(fd, 1 << 20); // 1 MiB of hole, one written page at its start
      closeSync(fd);
      writeFileSync(sparse, Buffer.alloc(4096, 7), { flag: 'r+' });
      const disk = join(d, 'disk.bin');
      writeFileSync(disk, Buffer.alloc(64 * 1024, 1));
      const addon = requireNative('t');
      const r = await callNative(() => addon.prefetch({ paths: [sparse, disk], ranges: [[0, 1 << 20], [0, 64 * 1024]], strategy: 'fadvise', threads: 2 }), 'p');
      expect(r.fallbackBytes).toBe(0);
      expect(r.residentBeforeBytes).toBeGreaterThanOrEqual(4096);
      const q = await callNative(() => addon.pageCache({ paths: [sparse, disk], action: 'query' }), 'q');
      expect(q[1]!.residentBytes).toBe(64 * 1024);
    } finally {
      removeTree(shm, { recursive: true, force: true });
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('plan validation agrees with an exact oracle (seeded, bounded)', () => {
  it('native accepts a random chunk exactly when the BigInt oracle does', async () => {
    const addon = requireNative('test');
    const dir = mkdtempSync(join(tmpdir(), 'cs-native-fuzz-'));
    try {
      const file = join(dir, 'f.bin');
      writeFileSync(file, Buffer.alloc(3 * 4096, 1));
      let seed = 0x15;
      const rnd = (n: number): number => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return seed % n;
      };
      const edges = [0, 1, 100, 4095, 4096, 4196, 8192, 12288, 2 ** 53 - 1, 2 ** 53, -1, Number.NaN, 0.5, 4096.5, 1e300, Number.POSITIVE_INFINITY];
      const pick = (extra: number[]): number => (rnd(3) === 0 ? extra[rnd(extra.length)]! : edges[rnd(edges.length)]!);
      const safe = (x: number): boolean => Number.isSafeInteger(x) && x >= 0;
      const iterations = Number(process.env.COLDSTART_FUZZ_ITERATIONS ?? 400);
      let accepted = 0;
      let refused = 0;
      for (let i = 0; i < iterations; i++) {
        const begin = [0, 100, 4096][rnd(3)]!;
        const end = begin + [0, 1, 4096, 8192][rnd(4)]!;
        const related = [begin, end, end - begin, begin % 4096, begin - (begin % 4096), 4096 - (begin % 4096)];
        // a valid chunk (as planChunks would cut it), then 0-2 of its numbers replaced by edge values
        const skip = begin % 4096;
        const copy = Math.min(end - begin, 8192 - skip);
        const c = [0, begin - skip, Math.min(8192, Math.ceil((skip + copy) / 4096) * 4096), skip, copy, 0];
        for (let m = rnd(3); m > 0; m--) {
          const k = rnd(6);
          c[k] = k === 0 ? pick([1, -1, 0]) : pick(related);
        }
        let want = c.every(safe) && c[0] === 0;
        if (want) {
          const [, ro, rl, sk, cl, de] = c.map((x) => BigInt(x));
          want = rl! <= 8192n && sk! + cl! <= rl! && de! + cl! <= BigInt(end - begin) && ro! + sk! === BigInt(begin) + de!;
        }
        const cancel = new Int32Array(new SharedArrayBuffer(4));
        cancel[0] = 1; // an accepted plan stops before reading: the test is about the checks
        let got: boolean;
        try {
          const p = addon.gpuLoad({ mode: 'host', sink: 'memory', files: [{ path: file, begin, end }], plan: Float64Array.from(c), chunkBytes: 8192, threads: 1, buffers: 1, cancel });
          got = true;
          await p.catch(() => undefined);
        } catch (e) {
          expect((e as { code?: string }).code).toBe('BAD_ARG');
          got = false;
        }
        expect([i, c, got]).toEqual([i, c, want]);
        if (got) accepted++;
        else refused++;
      }
      // the generator must exercise both sides
      expect(accepted).toBeGreaterThan(5);
      expect(refused).toBeGreaterThan(50);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
