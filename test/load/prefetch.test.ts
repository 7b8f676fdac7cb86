import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adviceNotes, estimatePrefetchSaving, runPrefetch, PREFETCH_STRATEGIES } from '../../src/load/prefetch.js';
import { resolveWeights } from '../../src/load/weights.js';
import { requireNative } from '../../src/native.js';
import { buildHeader } from '../../src/formats/safetensors.js';
import { peerPython } from '../helpers/python.js';
import { evict, evictableDir, resident, residentBytes } from '../helpers/pagecache.js';

const bin = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
let tmp: string;
let files: string[];
const SIZE = 24 << 20;
const FILES = 2;
/** The bytes of the set: each file is its safetensors header and SIZE bytes. */
const SET_BYTES = FILES * (SIZE + 8 + buildHeader([{ name: 'w0', dtype: 'U8', shape: [SIZE] }]).bytes.length - 8);

beforeAll(async () => {
  tmp = await evictableDir();
  const dir = join(tmp, 'model');
  mkdirSync(dir);
  files = [];
  for (let i = 0; i < FILES; i++) {
    const { bytes } = buildHeader([{ name: `w${i}`, dtype: 'U8', shape: [SIZE] }]);
    const data = Buffer.alloc(SIZE);
    for (let k = 0; k < SIZE; k += 4096) data.writeUInt32LE((k * 2654435761) >>> 0, k);
    const p = join(dir, `model-0000${i + 1}-of-00002.safetensors`);
    writeFileSync(p, Buffer.concat([bytes, data]));
    files.push(p);
  }
  return () => rmSync(tmp, { recursive: true, force: true });
});

describe('prefetch on a host: residency before/after by mincore', () => {
  for (const strategy of PREFETCH_STRATEGIES) {
    it(`${strategy}: evicted files end up resident`, async () => {
      const before = await evict(files);
      // The control must work for the test to mean anything (ext4/xfs honour DONTNEED; tmpfs does not).
      expect(before).toBeLessThan(0.05);
      const r = await runPrefetch({ files, strategy, threads: 4 });
      expect(r.strategy).toBe(strategy);
      expect(r.bytes).toBe(SET_BYTES);
      expect(r.residency.before).toBeLessThan(0.05);
      expect(r.residency.after).toBeGreaterThan(0.98);
      expect(await resident(files)).toBeGreaterThan(0.98); // measured independently of the result
      // Per file, measured after the read: all of it, less the few pages a loaded machine may reclaim meanwhile.
      for (const f of r.files) expect(f.residentAfter! / f.bytes).toBeGreaterThan(0.98);
      expect(r.seconds).toBeGreaterThan(0);
      expect(r.coldBytesPerSecond).toBeGreaterThan(0);
      // pread reads every byte itself: nothing is advised, so nothing is left over or advised again.
      if (strategy === 'pread') {
        expect([r.fallbackBytes, r.readvisedBytes]).toEqual([0, 0]);
        expect(adviceNotes(strategy, r)).toEqual([]);
      }
    });
  }

  // The kernel cuts each readahead(2)/posix_fadvise(WILLNEED) call to its device's limit (the larger of
  // read_ahead_kb and max_sectors_kb; 8 MiB on this project's machines, 128 KiB on many an NVMe disk) and drops the
  // rest silently: a chunk larger than that was read mostly by the slow single-threaded fallback, after 0.5 s of wait.
  for (const strategy of ['readahead', 'fadvise'] as const) {
    it(`${strategy}: a chunk larger than the kernel reads per call is still read by the kernel (nothing left to the fallback)`, async () => {
      expect(await evict(files)).toBeLessThan(0.05);
      const r = await requireNative('t').prefetch({ paths: files, strategy, threads: 2, chunkBytes: 1 << 30 });
      expect(r.fallbackBytes).toBe(0);
      expect(await resident(files)).toBeGreaterThan(0.98);
    });
  }

  // What the kernel drops is made here on any disk (testDropAdvice): pages it leaves out are advised again once
  // nothing has arrived for 50 ms, and what it never reads ahead (a squashfs file's fragment tail) is read with pread.
  for (const strategy of ['readahead', 'fadvise'] as const) {
    it(`${strategy}: pieces the kernel dropped are advised again and read by the kernel, not by the fallback`, async () => {
      expect(await evict(files)).toBeLessThan(0.05);
      const chunkBytes = 1 << 20;
      const r = await requireNative('t').prefetch({ paths: files, strategy, threads: 2, chunkBytes, testDropAdvice: 'odd-pieces' });
      // Every odd piece was missing when advising again; pages of the even ones still in flight may be counted too.
      const oddPieces = files.length * Math.floor(Math.ceil(SET_BYTES / files.length / chunkBytes) / 2) * chunkBytes;
      expect(r.readvisedBytes).toBeGreaterThanOrEqual(oddPieces - 2 * chunkBytes);
      expect(r.readvisedBytes).toBeLessThanOrEqual(SET_BYTES);
      expect(r.fallbackBytes).toBe(0);
      expect(await resident(files)).toBeGreaterThan(0.98);
      // The command says so, with the share advised again, and says nothing of a fallback that did not happen.
      const notes = adviceNotes(strategy, r);
      expect(notes).toHaveLength(1);
      expect(notes[0]).toMatch(new RegExp(`^${strategy}: \\d+(\\.\\d+)?% of the bytes had not come .* advised again, they were read$`));
    });
    it(`${strategy}: what is never read ahead is advised once more, then read with pread`, async () => {
      expect(await evict(files)).toBeLessThan(0.05);
      const r = await requireNative('t').prefetch({ paths: files, strategy, threads: 2, testDropAdvice: 'all' });
      expect(r.readvisedBytes).toBe(SET_BYTES);
      expect(r.fallbackBytes).toBe(SET_BYTES);
      expect(r.bytes).toBe(SET_BYTES);
      expect(await resident(files)).toBeGreaterThan(0.98);
      // Advised again and still not read: only the fallback is told, for every byte.
      expect(adviceNotes(strategy, r)).toEqual([`${strategy} left 100% of the bytes unread; they were read with pread`]);
    });
  }
  it('testDropAdvice takes odd-pieces or all, and nothing else', async () => {
    expect(() => requireNative('t').prefetch({ paths: files, strategy: 'readahead', testDropAdvice: 'some' as 'all' })).toThrow(/options\.testDropAdvice/);
  });

  it('--evict in the engine drops the files first, and progress ends at the total', async () => {
    await runPrefetch({ files, threads: 2 });
    expect(await resident(files)).toBeGreaterThan(0.98);
    const seen: number[] = [];
    const r = await runPrefetch({ files, threads: 2, evictFirst: true, onProgress: (d) => seen.push(d) });
    expect(r.residency.before).toBeLessThan(0.05);
    expect(r.residency.after).toBeGreaterThan(0.98);
    expect(seen.at(-1)).toBe(r.bytes);
  });

  it('an aborted signal stops it with INTERRUPTED (exit 3)', async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await runPrefetch({ files, signal: ac.signal }).catch((x) => x);
    expect(e.code).toBe('INTERRUPTED');
  });
});

describe('prefetch inputs (the one weight resolver, src/load/weights.ts)', () => {
  const prefetchInputs = (target: string, env: Record<string, string | undefined> = {}) => resolveWeights(target, { env, anyFile: true });

  it('a directory gives its safetensors; a file gives itself; other weights are found too', async () => {
    expect((await prefetchInputs(join(tmp, 'model'))).files).toEqual(files);
    expect((await prefetchInputs(files[0]!)).files).toEqual([files[0]]);
    const gg = join(tmp, 'gguf');
    mkdirSync(gg);
    writeFileSync(join(gg, 'llama.Q4.gguf'), 'x');
    writeFileSync(join(gg, 'README.md'), 'x');
    expect((await prefetchInputs(gg)).files).toEqual([join(gg, 'llama.Q4.gguf')]);
    // Any file named is read as it is.
    expect((await prefetchInputs(join(gg, 'README.md'))).files).toEqual([join(gg, 'README.md')]);
  });

  it('a model id resolves through the HF cache layout', async () => {
    const hub = join(tmp, 'hub');
    const snap = join(hub, 'models--org--tiny', 'snapshots', 'a'.repeat(40));
    mkdirSync(snap, { recursive: true });
    mkdirSync(join(hub, 'models--org--tiny', 'refs'));
    writeFileSync(join(hub, 'models--org--tiny', 'refs', 'main'), 'a'.repeat(40));
    symlinkSync(files[0]!, join(snap, 'model.safetensors'));
    const r = await prefetchInputs('org/tiny', { HF_HUB_CACHE: hub });
    expect(r.source).toBe('hf-cache');
    expect(r.files).toEqual([join(snap, 'model.safetensors')]);
  });

  it('CLI: --json is one coldstart/prefetch@1 document; bad flags and missing models exit 2', () => {
    const ok = spawnSync(process.execPath, [bin, 'prefetch', join(tmp, 'model'), '--evict', '--json'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    const doc = JSON.parse(ok.stdout);
    expect(doc).toMatchObject({ schema: 'coldstart/prefetch@1', strategy: 'readahead' });
    expect(doc.residency.before).toBeLessThan(0.05);
    expect(doc.residency.after).toBeGreaterThan(0.98);
    // What the kernel left out and what was advised again are reported, as byte counts within the set.
    for (const k of ['fallbackBytes', 'readvisedBytes']) {
      expect(doc[k]).toBeGreaterThanOrEqual(0);
      expect(doc[k]).toBeLessThanOrEqual(doc.bytes);
    }
    expect(ok.stderr).toBe(''); // no progress off a TTY
    for (const args of [['--threads', 'NaN'], ['--threads', '-1'], ['--threads', '1.5'], ['--strategy', 'mmap']]) {
      const r = spawnSync(process.execPath, [bin, 'prefetch', join(tmp, 'model'), ...args], { encoding: 'utf8' });
      expect([args.join(' '), r.status]).toEqual([args.join(' '), 2]);
      expect(r.stderr).toMatch(/--(threads|strategy)/);
    }
    // Several targets: each read in turn, one coldstart/prefetch-set@1 document of their own; --revision takes one.
    const two = spawnSync(process.execPath, [bin, 'prefetch', join(tmp, 'model'), files[0]!, '--json'], { encoding: 'utf8' });
    expect(two.status, two.stderr).toBe(0);
    const set = JSON.parse(two.stdout);
    expect(set.schema).toBe('coldstart/prefetch-set@1');
    expect(set.targets.map((t: { schema: string; target: string; bytes: number }) => [t.schema, t.target, t.bytes])).toEqual([
      ['coldstart/prefetch@1', join(tmp, 'model'), SET_BYTES],
      ['coldstart/prefetch@1', files[0], SET_BYTES / FILES],
    ]);
    const rev = spawnSync(process.execPath, [bin, 'prefetch', 'a/b', 'c/d', '--revision', 'main'], { encoding: 'utf8' });
    expect(rev.status).toBe(2);
    expect(rev.stderr).toMatch(/--revision: names the revision of one Hub repo id, and 2 targets were given/);
    const missing = spawnSync(process.execPath, [bin, 'prefetch', 'no-such-org/no-such-model'], { encoding: 'utf8', env: { ...process.env, HF_HUB_CACHE: join(tmp, 'empty-hub') } });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/not in the Hugging Face cache/);
  });

  it('CLI: `prefetch demo` reads the built-in demo (its synthetic checkpoint, written first when absent, like profile)', () => {
    const env = { ...process.env, COLDSTART_CACHE: join(tmp, 'cs-cache'), HF_HUB_CACHE: join(tmp, 'empty-hub') };
    for (let i = 0; i < 2; i++) {
      const r = spawnSync(process.execPath, [bin, 'prefetch', 'demo', '--json'], { encoding: 'utf8', env, cwd: tmp });
      expect(r.status, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc).toMatchObject({ schema: 'coldstart/prefetch@1', target: 'demo', source: 'synthetic', skipped: [] });
      expect(doc.files.map((f: { path: string }) => f.path)).toEqual([join(tmp, 'cs-cache', 'synthetic', 'demo-bf16-safetensors', 'model.safetensors')]);
      expect(doc.residency.after).toBeGreaterThan(0.98);
    }
  });
});

describe("profile's finding: what prefetch saves", () => {
  it('min(cold − warm, head start); nothing when already warm; not measured without a warm load', () => {
    expect(estimatePrefetchSaving({ residentFractionBefore: 0, coldLoadSeconds: 23.2, warmLoadSeconds: 12.5, headStartSeconds: 30 }).seconds).toBeCloseTo(10.7, 6);
    expect(estimatePrefetchSaving({ residentFractionBefore: 0, coldLoadSeconds: 23.2, warmLoadSeconds: 12.5, headStartSeconds: 4 })).toMatchObject({ seconds: 4, upToSeconds: expect.closeTo(10.7, 6) });
    expect(estimatePrefetchSaving({ residentFractionBefore: 0.97, coldLoadSeconds: 5, warmLoadSeconds: 4, headStartSeconds: 9 }).seconds).toBe(0);
    const nm = estimatePrefetchSaving({ residentFractionBefore: 0, coldLoadSeconds: 5, warmLoadSeconds: null, headStartSeconds: 9 });
    expect(nm.seconds).toBeNull();
    expect(nm.reason).toMatch(/^not measured/);
  });
});

describe.skipIf(!peerPython())('prefetch --stack: the Python stack first, then the weights', () => {
  it("finds the interpreter's stdlib and packages without importing them (shared libraries first; tests and headers left out), reads them, then the weights", async () => {
    const py = peerPython()!;
    // A package named torch earlier on the path than the real one: what the interpreter would import is what is read.
    const site = join(tmp, 'site');
    const pkg = join(site, 'torch');
    for (const d of ['lib', 'include', 'test', '__pycache__']) mkdirSync(join(pkg, d), { recursive: true });
    writeFileSync(join(pkg, '__init__.py'), 'raise SystemExit("imported: the stack must not be imported")\n');
    writeFileSync(join(pkg, 'lib', 'libtorch_cpu.so'), Buffer.alloc(4 << 20, 7));
    writeFileSync(join(pkg, 'lib', 'libc10.so.2'), Buffer.alloc(1 << 20, 3));
    writeFileSync(join(pkg, '__pycache__', '__init__.cpython-311.pyc'), Buffer.alloc(4096, 1));
    writeFileSync(join(pkg, 'include', 'ATen.h'), 'x');
    writeFileSync(join(pkg, 'test', 'test_x.py'), 'x');
    const env = { ...process.env, PYTHONPATH: site };
    const { stackFiles } = await import('../../src/load/stack-files.js');
    const found = await stackFiles(py, env);
    const torch = found.files.filter((f) => f.startsWith(`${pkg}/`));
    expect(torch.map((f) => f.slice(pkg.length + 1))).toEqual(['lib/libc10.so.2', 'lib/libtorch_cpu.so', '__init__.py', '__pycache__/__init__.cpython-311.pyc']);
    expect(found.packages[0]!.name).toBe('python'); // the standard library comes first
    expect(found.packages.find((p) => p.name === 'torch')).toEqual({ name: 'torch', files: 4, bytes: (5 << 20) + 4096 + Buffer.byteLength('raise SystemExit("imported: the stack must not be imported")\n') });
    expect(found.files.some((f) => f.includes('/site-packages/') && !f.startsWith(site))).toBe(found.packages.some((p) => p.name !== 'python' && p.name !== 'torch'));

    // Through the CLI: the stack's files end up resident as well as the weights, and the report says what was read.
    await evict([...torch, ...files]);
    const r = spawnSync(process.execPath, [bin, 'prefetch', join(tmp, 'model'), '--stack', py, '--json'], { env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { stack: { files: number; bytes: number; packages: Array<{ name: string }>; residency: { after: number } }; residency: { after: number } };
    expect(doc.stack.packages.map((p) => p.name)).toContain('torch');
    expect(doc.stack.residency.after).toBeGreaterThan(0.9);
    expect(await resident(torch)).toBeGreaterThan(0.98);
    expect(doc.residency.after).toBeGreaterThan(0.98);
    const human = spawnSync(process.execPath, [bin, 'prefetch', join(tmp, 'model'), '--stack', py], { env, encoding: 'utf8' });
    expect(human.stdout.split('\n')[0]).toMatch(/^stack first: Python \d+\.\d+\.\d+ \(.+\), \d+ files of python, .*torch/);
  }, 120_000);

  it('an interpreter that does not exist: exit 3 naming it, nothing read', () => {
    const r = spawnSync(process.execPath, [bin, 'prefetch', join(tmp, 'model'), '--stack', join(tmp, 'no-python'), '--json'], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout).error.code).toBe('MISSING_DEPENDENCY');
    expect(r.stderr).toContain(join(tmp, 'no-python'));
  });
});

describe('prefetch of byte ranges (options.ranges: restore reads a snapshot server\'s library pages ahead)', () => {
  const MiB = 1 << 20;

  for (const strategy of PREFETCH_STRATEGIES) {
    it(`${strategy}: only the ranges are read (the rest of the file stays out of the page cache); residentBefore counts what was there`, async () => {
      const f = files[0]!;
      await evict([f]);
      expect(await residentBytes(f)).toBeLessThan(MiB / 2);
      // three ranges: a page at 0, 12 KiB at 4 MiB, 1 MiB at 16 MiB
      const ranges = [[0, 4096, 4 * MiB, 12288, 16 * MiB, MiB]];
      const want = 4096 + 12288 + MiB;
      const r = await requireNative('t').prefetch({ paths: [f], ranges, strategy, threads: 2 });
      expect(r.bytes).toBe(want);
      expect(r.files[0]!.bytes).toBe(want);
      expect(r.residentBeforeBytes).toBe(0);
      const after = await residentBytes(f);
      expect(after).toBeGreaterThanOrEqual(want);
      // The file is 24 MiB: reading whole would make it resident; the ranges (plus at most a readahead window of the
      // kernel's own, for pread) leave most of it out.
      expect(after).toBeLessThan(12 * MiB);
      // asked again, all of it is there already
      const again = await requireNative('t').prefetch({ paths: [f], ranges, strategy, threads: 1 });
      expect(again.residentBeforeBytes).toBe(want);
    });
  }

  it('ranges past the end of the file are left out; without ranges there is no residentBeforeBytes', async () => {
    const f = files[1]!;
    await evict([f]);
    const size = (await requireNative('t').pageCache({ paths: [f], action: 'query' }))[0]!.bytes;
    const r = await requireNative('t').prefetch({ paths: [f], ranges: [[size - 4096, 8192, size + 4096, 4096]], strategy: 'fadvise' });
    expect(r.bytes).toBe(4096);
    const whole = await requireNative('t').prefetch({ paths: [f], strategy: 'fadvise' });
    expect(whole.residentBeforeBytes).toBeUndefined();
  });

  it('malformed ranges are refused before anything is read (BAD_ARG naming options.ranges)', () => {
    const f = files[0]!;
    const bad: unknown[] = [
      'x',
      [], // one list per path
      [[0, 4096], [0, 4096]],
      [[0]], // offset without a length
      [[-4096, 4096]],
      [[0.5, 4096]],
      [[0, 2 ** 53]],
      [['0', 4096]],
      ['0, 4096'],
    ];
    for (const ranges of bad) {
      let err: unknown;
      try {
        void requireNative('t').prefetch({ paths: [f], ranges: ranges as number[][] });
      } catch (e) {
        err = e;
      }
      expect((err as Error | undefined)?.message, JSON.stringify(ranges)).toMatch(/prefetch: options\.ranges/);
    }
  });
});
