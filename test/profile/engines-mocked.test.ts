/**
 * The GPU path of `coldstart profile` as it runs on a GPU machine, with the engines of the other parts (GPU
 * loader, Hub download, warmup; overrideEnginesForTests) and the native probe (vi.mock) replaced by stand-ins
 * that keep their contracts: checks
 * what profile passes to them and how their results become phases, what-if rows and findings.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir, runProfileWith } from './helpers.js';
import type { PhaseHandle } from '../../src/core/phases.js';
import { recordWarmupPhase } from '../../src/warmup/warmup.js';
import { summarize } from '../../src/core/stats.js';
import { nowSeconds } from '../../src/core/clock.js';
import { withEngines, type Engines } from '../../src/profile/engines.js';

const calls: Record<string, unknown[]> = { gpuload: [], download: [], warmup: [], pageCache: [], python: [] };
const tmp = tempDir('cs-mock-');
const snapshot = join(tmp.dir, 'hub', 'snap');

const fakeNative = () => ({
  ok: true as const,
  path: '/fake/coldstart.node',
  addon: {
    abiVersion: 1,
    cudaProbe: async (o: { devices?: number[] }) => ({
      available: true,
      driverVersion: 13000,
      timings: { init: 0.25, enumerate: 0.01, context: 0.12 },
      devices: (o.devices ?? [0]).map((i) => ({ index: i, name: 'NVIDIA H100 80GB HBM3', totalMemory: 85e9, pciBusId: '0000:1b:00.0', computeCapability: '9.0', multiprocessors: 132, contextSeconds: 0.12, pcie: { currentGen: 5, maxGen: 5, currentWidth: 16, maxWidth: 16 } })),
      nvml: { available: true },
    }),
    pageCache: async (o: { paths: string[]; action: string }) => {
      calls.pageCache.push({ action: o.action, files: o.paths.map((f) => f.split('/').pop()) });
      return o.paths.map((path) => ({ path, resident: 0, pages: 1 }));
    },
  },
});

const gpuload = {
  runGpuLoad: async (o: { files: string[]; cache?: string; limits?: boolean; devices?: number[] }) => {
    calls.gpuload.push({ run: { files: o.files.map((f) => f.split('/').pop()), cache: o.cache, limits: o.limits, devices: o.devices } });
    const probe = o.files[0]!.includes('rate-probe');
    return {
      mode: 'gpu',
      bytes: 10_000_000,
      seconds: probe ? 0.01 : o.cache === 'warm' ? 0.2 : 0.5,
      bytesPerSecond: 2e7,
      readSeconds: 0.4,
      copySeconds: 0.2,
      overlapFraction: 0.2,
      cache: { requested: o.cache ?? 'as-is', residentFractionBefore: 0 },
      files: o.files.map((path) => ({ path, bytes: 10_000_000, seconds: 0.5, device: 0, tensors: 1, direct: true })),
      config: { chunkBytes: 8 << 20, threads: 8, buffers: 10, streams: 4, direct: true, ring: 'register', sink: 'device' },
      notes: [],
      devices: [{ index: 0, bytes: 10_000_000, seconds: 0.5, bytesPerSecond: 2e7 }],
      limits: { h2dBytesPerSecond: 50e9, readBytesPerSecond: 3e9 },
      efficiency: 0.8,
    };
  },
  recordGpuLoadPhase: (h: PhaseHandle, r: { seconds: number; bytes: number }) => {
    h.addStep('read + copy', r.seconds);
    h.metric('bytes', r.bytes);
    h.setSeconds(r.seconds);
  },
};

const download = {
  repoFileSizes: async (o: { repo: string }) => {
    calls.download.push({ sizes: o.repo });
    return [
      { path: 'model.safetensors', bytes: 10_003_032 },
      { path: 'config.json', bytes: 700 },
      { path: 'original/consolidated.00.pth', bytes: 16e9 },
    ];
  },
  findCachedSnapshot: () => null,
  downloadRepo: async (o: { repo: string; include?: string[] }) => {
    calls.download.push({ download: o.repo, include: o.include });
    return { repo: o.repo, revision: 'main', commit: 'c0ffee', cacheDir: join(tmp.dir, 'hub'), snapshotDir: snapshot, files: [], bytesDownloaded: 10_003_032, bytesTotal: 10_003_032, seconds: 2, bytesPerSecond: 5e6, fromCache: false };
  },
  recordDownloadPhase: (h: PhaseHandle, r: { seconds: number }) => h.setSeconds(r.seconds),
};

const warmup = {
  runWarmup: async (o: { url?: string; model?: string; framework?: string; runs?: number }) => {
    if (o.url && o.framework) throw new Error('url and framework exclude each other');
    calls.warmup.push({ url: o.url, model: o.model, ...(o.framework ? { framework: o.framework } : {}) });
    // The first request, then the warmed ones asked for (the warmup finding's "a warmed one takes").
    const steady = o.runs ? { steady: summarize(Array.from({ length: o.runs }, () => 0.1)) } : {};
    return { backend: 'http', target: o.url ?? '', steps: [{ name: 'first request', seconds: 1.5 }], firstSeconds: 1.5, ...steady, details: { startupSeconds: 1.5 } };
  },
  recordWarmupPhase,
};

// The stack's own process, standing in for Python: events at fixed offsets from the spawn, then the process ends.
const python = {
  runScript: async (_env: unknown, _script: string, args: readonly string[]) => {
    calls.python.push({ args: args.slice(0, 1) });
    const t0 = nowSeconds(); // the clock stack.py stamps with (time.monotonic)
    await new Promise((r) => setTimeout(r, 620));
    const ev = (name: string, at: number, extra: Record<string, unknown> = {}) => ({ event: name, t: t0 + at, ...extra });
    return {
      executable: 'python3',
      exitCode: 0,
      timedOut: false,
      stderr: '',
      events: [
        ev('start', 0.005),
        ev('imports', 0.105, { steps: [['import torch', 0.07], ['import transformers', 0.03]] }),
        ev('cuda', 0.155, { call: "torch.zeros(1, device='cuda') + synchronize" }),
        ev('load', 0.455, { bytes: 10_000_000, call: "from_pretrained(dir, device_map='cuda')", device: 'cuda', dtype: 'bfloat16' }),
        ev('first', 0.555),
        ev('steady', 0.6, { seconds: 0.04 }),
        ev('end', 0.605, { python: '/usr/bin/python3' }),
      ],
    };
  },
};

const engines: Engines = withEngines({ native: fakeNative as unknown as Engines['native'], gpuLoad: gpuload as unknown as Engines['gpuLoad'], download: download as unknown as Engines['download'], warmup: warmup as unknown as Engines['warmup'], python: python as unknown as Engines['python'] });
const runCliM = (args: string[], o: { env?: Record<string, string | undefined> }) => runProfileWith(engines, args.slice(1), o);

const env = { COLDSTART_CACHE: join(tmp.dir, 'cache'), HF_HUB_OFFLINE: '1', COLDSTART_PROBE_BYTES: String(2 << 20), HF_HOME: join(tmp.dir, 'hf') };
beforeAll(async () => {
  // A real demo checkpoint to stand in for the downloaded snapshot.
  const r = await runCli(['profile', '--only', 'cuda-init', '-q'], { env });
  expect(r.code).toBe(0);
  mkdirSync(snapshot, { recursive: true });
  cpSync(join(env.COLDSTART_CACHE, 'synthetic', 'demo-bf16-safetensors'), snapshot, { recursive: true });
});
afterAll(() => tmp.done());

describe('profile with the engines present (stand-ins) on a GPU machine', () => {
  it('the warm probe spans the model up to 8 GiB (hard links to the probe: 16 × 64 MiB for llama3-8b)', async () => {
    calls.gpuload = [];
    const r = await runCliM(['profile', 'llama3-8b', '--synthetic', '--estimate', '--probe-bytes', String(64 << 20), '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const runs = (calls.gpuload as Array<{ run?: { files: string[]; cache: string } }>).filter((c) => c.run).map((c) => c.run!);
    const long = runs.filter((x) => x.cache === 'warm' && x.files.length > 1);
    expect(long).toHaveLength(3);
    expect(long[0]!.files).toHaveLength(16);
    expect(JSON.parse(r.stdout).details.rates.warmSpanBytes).toBe(16 * (64 << 20));
  });

  it('cuda-init from the probe, gpu-load from the loader (cold cache), warmup from --url, rates from the loader', async () => {
    calls.gpuload = [];
    calls.warmup = [];
    const r = await runCliM(['profile', '--url', 'http://127.0.0.1:9/v1', '--json', '--devices', '0'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const ph = Object.fromEntries(doc.phases.map((p: { name: string }) => [p.name, p]));
    expect(ph['cuda-init']).toMatchObject({ status: 'ok', note: '1 device(s): NVIDIA H100 80GB HBM3' });
    expect(ph['cuda-init'].seconds).toBeCloseTo(0.38, 9);
    expect(ph['cuda-init'].steps.map((s: { name: string }) => s.name)).toEqual(['cuInit', 'enumerate', 'primary context gpu0']);
    expect(ph['gpu-load']).toMatchObject({ status: 'ok', seconds: 0.5 });
    expect(ph['warmup']).toMatchObject({ status: 'ok', seconds: 1.5 });
    // The weights come from the one resolver (the target's files); the loader gets them as they are.
    expect(doc.target.files).toEqual([join(env.COLDSTART_CACHE, 'synthetic', 'demo-bf16-safetensors', 'model.safetensors')]);
    expect(calls.gpuload[0]).toEqual({ run: { files: ['model.safetensors'], cache: 'cold', limits: true, devices: [0] } });
    // The rate probes go through the loader too (its own threads), after the measured run: three rounds of warm over
    // the probe, warm over the model's span (hard links to the probe), cold.
    const probes = calls.gpuload.slice(1, 10) as Array<{ run: { files: string[]; cache: string } }>;
    expect(probes.every((p) => /rate-probe/.test(p.run.files[0]!))).toBe(true);
    expect(probes.map((p) => `${p.run.cache}×${p.run.files.length}`)).toEqual(Array(3).fill(['warm×1', `warm×${doc.details.rates.warmSpanBytes / (2 << 20)}`, 'cold×1']).flat());
    // Then the same files with a warm page cache: a measured what-if row, not a prediction.
    expect(calls.gpuload[10]).toEqual({ run: { files: ['model.safetensors'], cache: 'warm', limits: false, devices: [0] } });
    // read 0.4 + copy 0.2 − 0.04 overlapped is more than the 0.5 s load: all of it scales, by the measured 0.2/0.5.
    const warmRow = doc.details.whatIf.find((w: { id: string }) => w.id === 'page-cache-warm');
    expect(warmRow).toMatchObject({ fromSeconds: 0.5, byteSeconds: 0.5 });
    expect(warmRow.toSeconds).toBeCloseTo(0.2, 9);
    expect(warmRow.basis).toMatch(/warm\/cold ratio \(500 ms → 200 ms, both measured\)/);
    expect(doc.details.wall.outside.warmLoad).toBeGreaterThanOrEqual(0);
    expect(doc.details.rates).toMatchObject({ h2dBytesPerSecond: 50e9, h2dSource: 'loader', diskReadBytesPerSecond: 1e9, diskSource: 'loader', pageCacheBytesPerSecond: 1e9, probes: 3, threads: 8 });
    expect(doc.details.rates.diskSigma).toBe(0);
    // A server URL is warmed as a server: no local model path is sent as its model name.
    expect(calls.warmup).toEqual([{ url: 'http://127.0.0.1:9/v1', model: undefined }]);
    expect(doc.findings.map((f: { id: string }) => f.id)).toContain('warmup');
    // The total is the measured wall clock of the floor run: its phases plus what no phase explains.
    expect(doc.total.complete).toBe(true);
    expect(doc.total.seconds).toBeCloseTo(0.38 + 0.5 + 1.5 + doc.total.unexplainedSeconds, 9);
    expect(doc.total.unexplainedSeconds).toBeLessThan(0.5);
  });

  it('--framework: the stack\'s own process gives yours, the loader gives the floor and is never added to the total', async () => {
    calls.gpuload = [];
    calls.pageCache = [];
    calls.python = [];
    const r = await runCliM(['profile', '--framework', 'transformers', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const ph = Object.fromEntries(doc.phases.map((p: { name: string }) => [p.name, p]));
    expect(doc.details.mode).toBe('stack');
    // yours, from the stack's events (offsets from its spawn)
    expect(ph.imports.seconds).toBeCloseTo(0.105, 2);
    expect(ph.imports.steps.map((x: { name: string }) => x.name)).toEqual(['interpreter start', 'import torch', 'import transformers']);
    expect(ph['cuda-init'].seconds).toBeCloseTo(0.05, 2);
    expect(ph['cuda-init'].floor).toEqual({ seconds: 0.38, source: 'native cuInit + primary context' });
    expect(ph['gpu-load'].seconds).toBeCloseTo(0.3, 2);
    expect(ph['gpu-load'].floor.seconds).toBe(0.5);
    expect(ph.warmup.seconds).toBeCloseTo(0.1, 2);
    expect(ph.warmup.metrics.steadyForwardSeconds).toBe(0.04);
    // The loader ran first on the same files with the same (cold) cache; the page cache was dropped before the stack.
    expect(calls.gpuload[0]).toEqual({ run: { files: ['model.safetensors'], cache: 'cold', limits: true, devices: undefined } });
    expect(calls.pageCache).toEqual([{ action: 'evict', files: ['model.safetensors'] }]);
    // total = the stack's wall clock (spawn → first forward + unexplained), without the loader's 0.5 s.
    expect(doc.total.complete).toBe(true);
    expect(doc.total.seconds).toBeCloseTo(0.555 + doc.total.unexplainedSeconds, 2);
    expect(doc.total.unexplainedSeconds).toBeLessThan(0.2);
    expect(doc.total.seconds).toBeLessThan(0.555 + 0.2);
    // No phase row holds the loader's time; the steady forward (after the cold start) is not in the total either.
    expect(doc.phases.map((p: { name: string }) => p.name)).toEqual(['container', 'download', 'imports', 'cuda-init', 'gpu-load', 'warmup', 'unexplained']);
  });

  it('a Hub repo: sizes → download of the weight files only → load from the snapshot', async () => {
    calls.download = [];
    calls.gpuload = [];
    const r = await runCliM(['profile', 'someorg/somemodel', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(calls.download).toEqual([{ sizes: 'someorg/somemodel' }, { download: 'someorg/somemodel', include: ['*.safetensors', '*.json', 'tokenizer*', '*.model', '*.txt'] }]);
    expect(doc.target).toMatchObject({ kind: 'repo', dir: snapshot, format: 'safetensors', dtype: 'BF16' });
    expect(doc.phases.find((p: { name: string }) => p.name === 'download')).toMatchObject({ status: 'ok', seconds: 2 });
    expect(doc.target.files).toEqual([join(snapshot, 'model.safetensors')]);
    expect(calls.gpuload[0]).toEqual({ run: { files: ['model.safetensors'], cache: 'cold', limits: true, devices: undefined } });
    expect(doc.findings.find((f: { id: string }) => f.id === 'not-cached')).toMatchObject({ savesSeconds: 2, command: 'coldstart cache someorg/somemodel' });
  });

  it('--estimate on a GPU machine: sizes from the Hub listing, H2D from the loader, gpu-load = bytes / min(disk, H2D)', async () => {
    const r = await runCliM(['profile', 'llama3-8b', '--estimate', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const gl = doc.phases.find((p: { name: string }) => p.name === 'gpu-load');
    const rates = doc.details.rates;
    expect(gl.status).toBe('estimated');
    // The Hub's file list (the stand-in's 10 MB model.safetensors) wins over the alias table's 16 GB.
    expect(doc.target.bytes).toBe(10_003_032);
    expect(rates.diskSource).toBe('loader');
    expect(gl.seconds).toBeCloseTo(10_003_032 / Math.min(1e9, 50e9), 9);
    expect(gl.note).toMatch(/± /);
    // Warmup cannot be predicted: the estimate's total says incomplete instead of leaving it out silently.
    expect(doc.total).toMatchObject({ seconds: null, complete: false });
    expect(doc.total.missing).toContain('warmup');
    expect(doc.phases.find((p: { name: string }) => p.name === 'download')).toMatchObject({ status: 'skipped' });
    expect(doc.phases.find((p: { name: string }) => p.name === 'cuda-init').status).toBe('ok');
  });
});

describe('profile as a capability: options in, a report out; the plan never changes; nothing printed', () => {
  /** Freezes an object and everything in it: a write anywhere throws (ES modules are strict). */
  const deepFreeze = <T>(o: T): T => {
    if (o && typeof o === 'object' && !Object.isFrozen(o)) {
      Object.freeze(o);
      for (const v of Object.values(o as object)) deepFreeze(v);
    }
    return o;
  };

  it('runProfile on frozen options (a Hub repo downloaded, --runs 2): the report holds what the steps returned; events, never stdout/stderr', async () => {
    const { runProfile } = await import('../../src/profile/run.js');
    const { planProfile } = await import('../../src/profile/plan.js');
    calls.download = [];
    const options = deepFreeze({ model: 'someorg/somemodel', runs: 2, warmup: 0, only: null, synthetic: false, format: 'safetensors' as const, estimate: false, container: {}, verify: false, cache: 'cold' as const, download: true, floor: true, gpuPricePerHour: 2, warmInstances: 1, probeBytes: 2 << 20 });
    const plan = deepFreeze(planProfile(options, process.cwd()));
    const before = JSON.stringify(plan);
    const runLines: string[] = [];
    const written: string[] = [];
    const spies = [vi.spyOn(process.stdout, 'write').mockImplementation((s) => (written.push(String(s)), true)), vi.spyOn(process.stderr, 'write').mockImplementation((s) => (written.push(String(s)), true))];
    let out: Awaited<ReturnType<typeof runProfile>>;
    try {
      out = await runProfile(options, { engines, env, cwd: process.cwd(), events: { run: (t) => runLines.push(t) } });
    } finally {
      for (const s of spies) s.mockRestore();
    }
    expect(written).toEqual([]);
    expect(JSON.stringify(plan)).toBe(before);
    // The plan's target is the repo as named; the report's is what the download step returned (its files).
    expect(plan).toMatchObject({ mode: 'floor', target: { kind: 'repo', files: [] } });
    expect(out.report.target).toMatchObject({ kind: 'repo', dir: snapshot, files: [join(snapshot, 'model.safetensors')], format: 'safetensors' });
    expect(calls.download.filter((c) => (c as { download?: string }).download)).toHaveLength(2);
    expect(out.report.runs).toMatchObject({ count: 2, warmup: 0 });
    expect(runLines).toHaveLength(2);
    expect(runLines[0]).toMatch(/^run 1\/2: /);
    // Time outside the cold start, added up over both runs, with the rates and the warm load after them.
    const outside = out.report.details!.wall as { outside: Record<string, number> };
    expect(Object.keys(outside.outside).sort()).toEqual(['gpuLoadSetup', 'rates', 'warmLoad']);
    expect(out.lines({ style: { bold: (s) => s, dim: (s) => s, red: (s) => s, green: (s) => s, yellow: (s) => s, cyan: (s) => s }, quiet: false })[0]).toMatch(/^floor: /);
  });
});

describe('profile flags are parsed once, before anything runs (exit 2)', () => {
  it('a bad --gpu-price in wrap mode is refused before the server starts; a bad --container-runtime without --image; a bad --dtype for a folder', async () => {
    const marker = join(tmp.dir, 'server-started');
    const server = ['--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`];
    for (const args of [['--gpu-price', 'free', '--ready-log', 'x', ...server], ['--container-runtime', 'rkt', '--only', 'container'], [snapshot, '--dtype', 'fp12', '--only', 'container']]) {
      const r = await runProfileWith(engines, ['--json', ...args], { env });
      expect(r.code, args.join(' ')).toBe(2);
      expect(JSON.parse(r.stdout).error.code).toBe('BAD_FLAG');
    }
    expect(existsSync(marker)).toBe(false);
  });
});
