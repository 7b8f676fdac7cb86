import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureInsideContainer, procStartTicks, diagnoseRunFailure } from '../../src/engines/container.js';
import { ENGINE_MISSING, loadDownload, loadGpuLoad, loadWarmup, hostRead } from '../../src/commands/profile/engines.js';
import { splitWrap } from '../../src/commands/profile/run.js';
import { predictLoadSeconds, type Rates } from '../../src/core/estimate.js';
import { computeFindings, whatIfRows } from '../../src/core/findings.js';
import type { PhaseSummary } from '../../src/core/report.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('cs-units-');
afterAll(() => tmp.done());

// The log-line stage tests moved to test/wrap-stages.test.ts (rules as data, issue #13).

describe('container phase from /proc', () => {
  it('reads start ticks (field 22, process names with spaces and parentheses) and measures init → process', () => {
    const root = join(tmp.dir, 'proc');
    const stat = (pid: string, name: string, start: number) => {
      mkdirSync(join(root, pid), { recursive: true });
      const fields = ['S', ...Array.from({ length: 18 }, (_, i) => String(i)), String(start), '0'];
      writeFileSync(join(root, pid, 'stat'), `${pid === 'self' ? 77 : 1} (${name}) ${fields.join(' ')}\n`);
    };
    stat('1', 'tini (init) x', 1000);
    stat('self', 'node', 1234);
    expect(procStartTicks(1, root)).toBe(1000);
    const m = measureInsideContainer(root, 'kubepods')!;
    expect(m.runtime).toBe('kubepods');
    expect(m.initToProcessSeconds).toBeCloseTo(2.34, 9);
    expect(m.processToNowSeconds).toBeGreaterThan(0);
    expect(measureInsideContainer(root, null)).toBeNull();
  });

  it('names the setting to change for known runtime failures, and nothing for unknown ones', () => {
    expect(diagnoseRunFailure('podman', 'error setting rlimit type 7: operation not permitted', {})).toMatch(/--ulimit=nofile=.*default_ulimits/);
    expect(diagnoseRunFailure('podman', 'crun: cannot set cgroup: hybrid layout', { CONTAINERS_CONF: '/x.conf' })).toMatch(/--runtime=runc.*\/x\.conf/);
    expect(diagnoseRunFailure('docker', 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock', {})).toMatch(/daemon/);
    expect(diagnoseRunFailure('podman', 'exec: "nope": executable file not found', {})).toBeNull();
  });
});

describe('engines adapter', () => {
  it('turns an engine absent from the build into a skip reason, never a crash', async () => {
    process.env.COLDSTART_DISABLE_ENGINES = 'gpuload,download,warmup';
    try {
      for (const l of [loadGpuLoad, loadDownload, loadWarmup]) expect(await l()).toEqual({ ok: false, reason: ENGINE_MISSING });
    } finally {
      delete process.env.COLDSTART_DISABLE_ENGINES;
    }
  });

  it('host read fallback reads every byte', () => {
    const f = join(tmp.dir, 'w.bin');
    writeFileSync(f, Buffer.alloc(3_000_001, 7));
    const r = hostRead([f, f], 1 << 20);
    expect(r.bytes).toBe(6_000_002);
    expect(r.files.map((x) => x.bytes)).toEqual([3_000_001, 3_000_001]);
  });

  it('splits the wrapped command at the literal --', () => {
    expect(splitWrap(['node', 'cs', 'profile', '--ready-url', 'u', '--', 'vllm', 'serve', 'm'], ['vllm', 'serve', 'm'])).toEqual({ model: undefined, command: ['vllm', 'serve', 'm'] });
    expect(splitWrap(['node', 'cs', 'profile', 'llama3-8b'], ['llama3-8b'])).toEqual({ model: 'llama3-8b', command: [] });
  });
});

describe('load model, what-if rows and findings', () => {
  const rates: Rates = {
    diskReadBytesPerSecond: 2e9,
    diskSource: 'dd',
    pageCacheBytesPerSecond: 10e9,
    memcpyBytesPerSecond: 8e9,
    h2dBytesPerSecond: 25e9,
    h2dSource: 'loader',
    networkBytesPerSecond: 500e6,
    networkLatencySeconds: 0.1,
    probeBytes: 1,
    probeDir: '/tmp',
  };
  const phase = (name: string, seconds: number | null, extra: Partial<PhaseSummary> = {}): PhaseSummary => ({ name, status: seconds === null ? 'skipped' : 'ok', seconds, steps: [], metrics: {}, share: null, ...(seconds === null ? { reason: 'x' } : {}), ...extra });

  it('safetensors loads at min(read, H2D); .bin pays read + copy + pageable H2D', () => {
    expect(predictLoadSeconds(rates, { bytes: 16e9, format: 'safetensors', cache: 'cold', gpu: true })).toBeCloseTo(8, 9);
    expect(predictLoadSeconds(rates, { bytes: 16e9, format: 'safetensors', cache: 'warm', gpu: true })).toBeCloseTo(1.6, 9);
    expect(predictLoadSeconds(rates, { bytes: 16e9, format: 'bin', cache: 'warm', gpu: true })).toBeCloseTo(1.6 + 2 + 1.28, 9);
  });

  it('ranks findings by measured savings: convert a .bin, pre-cache, warm up, 4-bit, warm instance at a price', () => {
    const phases = [phase('container', null), phase('cuda-init', 0.4, { steps: [{ name: 'cuInit', seconds: 0.3 }] }), phase('download', 40), phase('gpu-load', 12), phase('warmup', 4.2)];
    const inp = {
      phases,
      total: 56.6,
      rates,
      model: { name: 'llama3-8b', bytes: 16e9, format: 'bin' as const, bytesPerParam: 2, dtype: 'BF16', source: 'downloaded' as const, gpu: true, cache: 'warm' as const },
      gpuPricePerHour: 2,
    };
    const rows = whatIfRows(inp);
    const conv = rows.find((r) => r.id === 'format-safetensors')!;
    // Scaled from the measured 12 s by the model's ratio 1.6 / 4.88.
    expect(conv.toSeconds).toBeCloseTo((12 * 1.6) / 4.88, 6);
    const f = computeFindings(inp, rows);
    expect(f.map((x) => x.id)).toEqual(['warm-instance', 'not-cached', 'quant-4bit', 'convert-bin', 'warmup']);
    expect(f.find((x) => x.id === 'not-cached')!.command).toBe('coldstart cache llama3-8b');
    expect(f.find((x) => x.id === 'warm-instance')!.message).toContain('$1460/month at $2/h');
    expect(f.find((x) => x.id === 'warmup')!.message).toContain('4.20 s');
  });

  it('drops findings too small to act on', () => {
    const inp = { phases: [phase('gpu-load', 0.02)], total: 0.02, rates, model: { name: 'demo', bytes: 1e7, format: 'safetensors' as const, bytesPerParam: 2, dtype: 'BF16', source: 'local' as const, gpu: true, cache: 'cold' as const } };
    expect(computeFindings(inp)).toEqual([]);
  });
});

describe('bounded memory', () => {
  it('streams a 2.1 GB tensor (llama3-70b embeddings) through the torch writer in chunk-sized memory', async () => {
    const { openSync, closeSync } = await import('node:fs');
    const { writeTorchCheckpoint } = await import('../../src/formats/torch-writer.js');
    const { tensorsFor, findModel } = await import('../../src/models/table.js');
    const embed = tensorsFor(findModel('llama3-70b')!).slice(0, 1);
    expect(embed[0]).toMatchObject({ name: 'model.embed_tokens.weight', shape: [128256, 8192] });
    const before = process.resourceUsage().maxRSS * 1024;
    const fd = openSync('/dev/null', 'w');
    let seen = 0;
    try {
      const size = await writeTorchCheckpoint(fd, embed, (_i, chunk) => void (seen += chunk.length), { chunkBytes: 8 << 20 });
      expect(size).toBeGreaterThan(128256 * 8192 * 2);
    } finally {
      closeSync(fd);
    }
    expect(seen).toBe(128256 * 8192 * 2);
    const grew = process.resourceUsage().maxRSS * 1024 - before;
    expect(grew).toBeLessThan(64 << 20);
  }, 120_000);
});
