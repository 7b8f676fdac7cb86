/**
 * The GPU path of `coldstart profile` as it runs on a GPU machine, with the engines of the other parts (GPU
 * loader, Hub download, warmup; overrideEnginesForTests) and the native probe (vi.mock) replaced by stand-ins
 * that keep their contracts: checks
 * what profile passes to them and how their results become phases, what-if rows and findings.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from './helpers.js';
import type { PhaseHandle } from '../../src/core/phases.js';
import { overrideEnginesForTests } from '../../src/commands/profile/engines.js';

const calls: Record<string, unknown[]> = { gpuload: [], download: [], warmup: [] };
const tmp = tempDir('cs-mock-');
const snapshot = join(tmp.dir, 'hub', 'snap');

vi.mock('../../src/native.js', () => ({
  loadNative: () => ({
    ok: true,
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
    },
  }),
  requireNative: () => {
    throw new Error('not used');
  },
}));

const gpuload = {
  resolveSafetensorsInputs: (p: string) => {
    calls.gpuload.push({ resolve: p });
    return [join(p, 'model.safetensors')];
  },
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
      files: [],
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
    return { backend: 'http', target: o.url ?? '', steps: [{ name: 'first request', seconds: 1.5 }], firstSeconds: 1.5, details: {} };
  },
  recordWarmupPhase: (h: PhaseHandle, r: { firstSeconds: number }) => h.setSeconds(r.firstSeconds),
};

const env = { COLDSTART_CACHE: join(tmp.dir, 'cache'), HF_HUB_OFFLINE: '1', COLDSTART_PROBE_BYTES: String(2 << 20), HF_HOME: join(tmp.dir, 'hf') };
beforeAll(async () => {
  overrideEnginesForTests({ gpuload, download, warmup });
  // A real demo checkpoint to stand in for the downloaded snapshot.
  const r = await runCli(['profile', '--only', 'cuda-init', '-q'], { env });
  expect(r.code).toBe(0);
  mkdirSync(snapshot, { recursive: true });
  cpSync(join(env.COLDSTART_CACHE, 'synthetic', 'demo-bf16-safetensors'), snapshot, { recursive: true });
});
afterAll(() => {
  overrideEnginesForTests(null);
  tmp.done();
});

describe('profile with the engines present (stand-ins) on a GPU machine', () => {
  it('cuda-init from the probe, gpu-load from the loader (cold cache), warmup from --url, rates from the loader', async () => {
    calls.gpuload = [];
    calls.warmup = [];
    const r = await runCli(['profile', '--url', 'http://127.0.0.1:9/v1', '--json', '--devices', '0'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const ph = Object.fromEntries(doc.phases.map((p: { name: string }) => [p.name, p]));
    expect(ph['cuda-init']).toMatchObject({ status: 'ok', note: '1 device(s): NVIDIA H100 80GB HBM3' });
    expect(ph['cuda-init'].seconds).toBeCloseTo(0.38, 9);
    expect(ph['cuda-init'].steps.map((s: { name: string }) => s.name)).toEqual(['cuInit', 'enumerate', 'primary context gpu0']);
    expect(ph['gpu-load']).toMatchObject({ status: 'ok', seconds: 0.5 });
    expect(ph['warmup']).toMatchObject({ status: 'ok', seconds: 1.5 });
    expect(calls.gpuload[0]).toEqual({ resolve: join(env.COLDSTART_CACHE, 'synthetic', 'demo-bf16-safetensors') });
    expect(calls.gpuload[1]).toEqual({ run: { files: ['model.safetensors'], cache: 'cold', limits: true, devices: [0] } });
    // The rate probe goes through the loader too (its own H2D limit), after the measured run.
    expect((calls.gpuload[2] as { run: { files: string[] } }).run.files[0]).toMatch(/rate-probe/);
    // Then the same files with a warm page cache: a measured what-if row, not a prediction.
    expect(calls.gpuload[4]).toEqual({ run: { files: ['model.safetensors'], cache: 'warm', limits: false, devices: [0] } });
    expect(doc.details.whatIf.find((w: { id: string }) => w.id === 'page-cache-warm')).toMatchObject({ fromSeconds: 0.5, toSeconds: 0.2, basis: 'measured: the loader again, warm page cache' });
    expect(doc.details.wall.outside.warmLoad).toBeGreaterThanOrEqual(0);
    expect(doc.details.rates).toMatchObject({ h2dBytesPerSecond: 50e9, h2dSource: 'loader', diskReadBytesPerSecond: 3e9, diskSource: 'loader' });
    // A server URL is warmed as a server: no local model path is sent as its model name.
    expect(calls.warmup).toEqual([{ url: 'http://127.0.0.1:9/v1', model: undefined }]);
    expect(doc.findings.map((f: { id: string }) => f.id)).toContain('warmup');
    expect(doc.total.seconds).toBeCloseTo(0.38 + 0.5 + 1.5, 9);
  });

  it('--framework warms the transformers model directory through the warmup engine', async () => {
    calls.warmup = [];
    const r = await runCli(['profile', '--framework', 'safetensors', '--only', 'warmup', '--json'], { env: { ...env, COLDSTART_PYTHON: 'python3' } });
    const doc = JSON.parse(r.stdout);
    expect(doc.phases.find((p: { name: string }) => p.name === 'warmup')).toMatchObject({ status: 'ok', seconds: 1.5 });
    expect(calls.warmup).toEqual([{ url: undefined, model: join(env.COLDSTART_CACHE, 'synthetic', 'demo-bf16-safetensors'), framework: 'transformers' }]);
  });

  it('a Hub repo: sizes → download of the weight files only → load from the snapshot', async () => {
    calls.download = [];
    calls.gpuload = [];
    const r = await runCli(['profile', 'someorg/somemodel', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(calls.download).toEqual([{ sizes: 'someorg/somemodel' }, { download: 'someorg/somemodel', include: ['*.safetensors', '*.json', 'tokenizer*', '*.model', '*.txt'] }]);
    expect(doc.target).toMatchObject({ kind: 'repo', dir: snapshot, format: 'safetensors', dtype: 'BF16' });
    expect(doc.phases.find((p: { name: string }) => p.name === 'download')).toMatchObject({ status: 'ok', seconds: 2 });
    expect(calls.gpuload[0]).toEqual({ resolve: snapshot });
    expect(doc.findings.find((f: { id: string }) => f.id === 'not-cached')).toMatchObject({ savesSeconds: 2, command: 'coldstart cache someorg/somemodel' });
  });

  it('--estimate on a GPU machine: sizes from the Hub listing, H2D from the loader, gpu-load = bytes / min(disk, H2D)', async () => {
    const r = await runCli(['profile', 'llama3-8b', '--estimate', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const gl = doc.phases.find((p: { name: string }) => p.name === 'gpu-load');
    const rates = doc.details.rates;
    expect(gl.status).toBe('estimated');
    // The Hub's file list (the stand-in's 10 MB model.safetensors) wins over the alias table's 16 GB.
    expect(doc.target.bytes).toBe(10_003_032);
    expect(rates.diskSource).toBe('loader');
    expect(gl.seconds).toBeCloseTo(10_003_032 / Math.min(3e9, 50e9), 9);
    expect(doc.phases.find((p: { name: string }) => p.name === 'download')).toMatchObject({ status: 'skipped' });
    expect(doc.phases.find((p: { name: string }) => p.name === 'cuda-init').status).toBe('ok');
  });
});
