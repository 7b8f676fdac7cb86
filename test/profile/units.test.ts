import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureInsideContainer, diagnoseRunFailure, parseSince, sinceInterval } from '../../src/platform/container.js';
import { procStartTicks } from '../../src/platform/procfs.js';
import { hostRead } from '../../src/load/host-read.js';
import { splitWrap } from '../../src/commands/wrap-flags.js';
import { wrapWeights } from '../../src/profile/wrapmode.js';
import { measureRates, predictLoadSeconds, predictLoadSigma, formatWithSigma, type Rates } from '../../src/profile/estimate.js';
import { computeFindings, whatIfRows } from '../../src/profile/findings.js';
import type { PhaseSummary } from '../../src/core/report.js';
import type { ColdstartError } from '../../src/core/errors.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('cs-units-');
afterAll(() => tmp.done());

// The log-line stage tests moved to test/server/wrap-stages.test.ts (rules as data, issue #13).

describe('container phase from /proc', () => {
  // A fake /proc: pid, comm, ppid, start ticks (USER_HZ 100); /proc/uptime in seconds.
  const fakeProc = (name: string, procs: Array<{ pid: number | 'self'; realPid?: number; comm: string; ppid: number; start: number }>, uptime: number) => {
    const root = join(tmp.dir, name);
    for (const p of procs) {
      mkdirSync(join(root, String(p.pid)), { recursive: true });
      const fields = ['S', String(p.ppid), ...Array.from({ length: 17 }, (_, i) => String(i)), String(p.start), '0'];
      writeFileSync(join(root, String(p.pid), 'stat'), `${p.realPid ?? p.pid} (${p.comm}) ${fields.join(' ')}\n`);
    }
    writeFileSync(join(root, 'uptime'), `${uptime} 1.0\n`);
    return root;
  };

  it('reads start ticks (field 22, process names with spaces and parentheses)', () => {
    const root = fakeProc('p0', [{ pid: 1, comm: 'tini (init) x', ppid: 0, start: 1000 }, { pid: 'self', realPid: 77, comm: 'node', ppid: 1, start: 1234 }], 20);
    expect(procStartTicks(1, root)).toBe(1000);
  });

  it('counts PID 1 → coldstart only when a minimal init started coldstart directly', () => {
    const root = fakeProc('p1', [{ pid: 1, comm: 'tini', ppid: 0, start: 1000 }, { pid: 'self', realPid: 7, comm: 'node', ppid: 1, start: 1234 }], 20);
    const m = measureInsideContainer(root, 'kubepods', 0.5)!;
    expect(m.counted).toBe(true);
    expect(m.entrypointSeconds).toBeCloseTo(2.34, 9);
  });

  it('does not count what a shell PID 1 (or a shell between) did before coldstart', () => {
    // sh -c 'sleep 30; coldstart …': PID 1 is the shell, started 30 s before coldstart.
    const direct = fakeProc('p2', [{ pid: 1, comm: 'sh', ppid: 0, start: 1000 }, { pid: 'self', realPid: 9, comm: 'node', ppid: 1, start: 4000 }], 45);
    const a = measureInsideContainer(direct, 'docker', 0.5)!;
    expect(a.counted).toBe(false);
    expect(a.entrypointSeconds).toBeNull();
    expect(a.why).toMatch(/sh/);
    const via = fakeProc('p3', [{ pid: 1, comm: 'tini', ppid: 0, start: 1000 }, { pid: 5, comm: 'bash', ppid: 1, start: 1001 }, { pid: 'self', realPid: 9, comm: 'node', ppid: 5, start: 4000 }], 45);
    expect(measureInsideContainer(via, 'docker', 0.5)!.counted).toBe(false);
  });

  it('coldstart as PID 1 (exec): the entrypoint time is PID 1 start → the exec, from uptime minus the process clock', () => {
    // PID 1 forked at 10.00 s after boot; Node (exec'd into PID 1) has run 0.5 s; uptime now 13.5 s → exec at 13.0 s.
    const root = fakeProc('p4', [{ pid: 1, comm: 'node', ppid: 0, start: 1000 }, { pid: 'self', realPid: 1, comm: 'node', ppid: 0, start: 1000 }], 13.5);
    const m = measureInsideContainer(root, 'docker', 0.5)!;
    expect(m.counted).toBe(true);
    expect(m.entrypointSeconds).toBeCloseTo(3.0, 6);
  });

  it("never counts a machine's uptime: PID 1 systemd outside a container is no container", () => {
    const root = fakeProc('p5', [{ pid: 1, comm: 'systemd', ppid: 0, start: 10 }, { pid: 'self', realPid: 4242, comm: 'node', ppid: 4000, start: 900000 }], 9100);
    expect(measureInsideContainer(root, null, 0.5)).toBeNull();
    expect(measureInsideContainer(root, 'docker', 0.5)!.counted).toBe(false);
    // A fresh PID namespace without runtime markers (unshare) is recognised by its PID 1.
    const ns = fakeProc('p6', [{ pid: 1, comm: 'sh', ppid: 0, start: 100 }, { pid: 'self', realPid: 3, comm: 'node', ppid: 1, start: 300 }], 5);
    expect(measureInsideContainer(ns, null, 0.5)!.runtime).toBe('pid namespace');
  });

  it('--since takes RFC 3339 or epoch seconds within the last day and refuses anything else with one clear line', () => {
    const now = Date.UTC(2026, 10, 28, 8) / 1000;
    expect(parseSince('2026-11-28T07:00:00Z', now)).toBe(Date.UTC(2026, 10, 28, 7) / 1000);
    expect(parseSince('2026-11-28T08:00:00.500+01:00', now)).toBe(Date.UTC(2026, 10, 28, 7) / 1000 + 0.5);
    expect(parseSince(String(now - 3600.25), now)).toBe(now - 3600.25);
    const refused = (v: string) => {
      try {
        parseSince(v, now, '--since');
      } catch (e) {
        return [(e as ColdstartError).code, (e as ColdstartError).exitCode, (e as ColdstartError).message.startsWith('--since: expected an RFC 3339 time')];
      }
      return 'accepted';
    };
    for (const bad of ['yesterday', '2026-11-28', '12:00', '-5', '']) expect(refused(bad)).toEqual(['BAD_FLAG', 2, true]);
    expect(refused(String(now + 60))).toEqual(['BAD_FLAG', 2, true]); // in the future
    expect(refused('0')).toEqual(['BAD_FLAG', 2, true]); // 1970: not a 56-year container phase
    expect(refused(String(now - 86_401))).toEqual(['BAD_FLAG', 2, true]); // more than a day ago
    // A pod created before its node booted (a scale-up) is a real start: the boot is no bound.
    expect(parseSince(String(now - 600), now)).toBe(now - 600);
    // t0 10 s before the process started; the process has run 0.4 s.
    const r = sinceInterval(1000, null, 1_010_400, 0.4);
    expect(r.scheduledToStartedSeconds).toBeCloseTo(10, 9);
    expect(r.processToNowSeconds).toBe(0.4);
  });

  it('names the setting to change for known runtime failures, and nothing for unknown ones', () => {
    expect(diagnoseRunFailure('podman', 'error setting rlimit type 7: operation not permitted', {})).toMatch(/--ulimit=nofile=.*default_ulimits/);
    expect(diagnoseRunFailure('podman', 'crun: cannot set cgroup: hybrid layout', { CONTAINERS_CONF: '/x.conf' })).toMatch(/--runtime=runc.*\/x\.conf/);
    expect(diagnoseRunFailure('docker', 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock', {})).toMatch(/daemon/);
    expect(diagnoseRunFailure('podman', 'exec: "nope": executable file not found', {})).toBeNull();
  });
});

describe('engines adapter', () => {
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
    const phases = [phase('container', null), phase('cuda-init', 0.4, { steps: [{ name: 'cuInit', seconds: 0.3 }] }), phase('download', 40), phase('gpu-load', 12), phase('warmup', 4.2, { metrics: { firstForwardSeconds: 4.2, steadyForwardSeconds: 0.5 } })];
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
    // The warm pool is a trade-off (no saving to rank): last, with its monthly cost and the seconds it saves.
    expect(f.map((x) => x.id)).toEqual(['not-cached', 'quant-4bit', 'convert-bin', 'warmup', 'warm-instance']);
    expect(f.find((x) => x.id === 'warm-instance')!.savesSeconds).toBeNull();
    expect(f.find((x) => x.id === 'warm-instance')!.message).toContain('saves 56.6 s on each scale-up');
    expect(rows.some((r) => r.toSeconds === 0 && r.phase === 'total')).toBe(false);
    expect(f.find((x) => x.id === 'not-cached')!.command).toBe('coldstart cache llama3-8b');
    expect(f.find((x) => x.id === 'warm-instance')!.message).toContain('$1460/month at $2/h');
    expect(f.find((x) => x.id === 'warmup')!.message).toContain('the first request takes 4.20 s; a warmed one takes 500 ms');
    expect(f.find((x) => x.id === 'warmup')!.savesSeconds).toBeCloseTo(3.7, 9);
  });

  it('a warm span that cannot be loaded falls back to one span, says so, and keeps the loader rates', async () => {
    const loaderRun = async (files: string[], cache: 'cold' | 'warm') => {
      if (files.length > 1) throw new Error('CUDA_ERROR_OUT_OF_MEMORY');
      return { bytes: 8 << 20, seconds: 0.0001 + (8 << 20) / (cache === 'warm' ? 20e9 : 1e9), threads: 4, fixedSeconds: 0.0001 };
    };
    const dir = join(tmp.dir, 'span-oom');
    mkdirSync(dir, { recursive: true });
    const r = await measureRates({ dir, probeBytes: 8 << 20, warmSpanBytes: 64 << 20, loaderRun, samples: 2 });
    expect(r.rates.diskSource).toBe('loader');
    expect(r.rates.warmSpanBytes).toBe(8 << 20);
    expect(r.rates.pageCacheBytesPerSecond! / 20e9).toBeCloseTo(1, 6);
    expect(r.assumptions.some((a) => /warm span could not be loaded \(CUDA_ERROR_OUT_OF_MEMORY\); one 8\.00 MiB span was used/.test(a))).toBe(true);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the warmup finding saves the first request over a warmed one, never the start-up every instance pays', () => {
    // ONNX: the phase is session creation (5 s) + first run (1 s); a warmed run takes 200 ms.
    const onnx = [phase('gpu-load', 1), phase('warmup', 6, { metrics: { backend: 'onnx', firstSeconds: 1, steadyMeanSeconds: 0.2 } })];
    const f = computeFindings({ phases: onnx, total: 7, rates: null, model: null });
    expect(f.find((x) => x.id === 'warmup')!.savesSeconds).toBeCloseTo(0.8, 9);
    // No steady request timed: at most the first request, and it says so.
    const noSteady = [phase('warmup', 6, { metrics: { firstSeconds: 1 } })];
    expect(computeFindings({ phases: noSteady, total: 7, rates: null, model: null }).find((x) => x.id === 'warmup')!.message).toMatch(/at most/);
    // A phase with no first-request metric proposes nothing (its seconds are not a first request).
    expect(computeFindings({ phases: [phase('warmup', 6)], total: 7, rates: null, model: null }).find((x) => x.id === 'warmup')).toBeUndefined();
  });

  it('suggests nothing that needs a GPU on a machine without one; no finding from an incomplete total', () => {
    const phases = [phase('gpu-load', null, { metrics: { hostReadSeconds: 12 } }), phase('warmup', null)];
    const inp = { phases, total: null, rates, gpuPricePerHour: 2, model: { name: 'llama3-8b', bytes: 16e9, format: 'safetensors' as const, bytesPerParam: 4, dtype: 'F32', source: 'local' as const, gpu: false, cache: 'cold' as const } };
    const rows = whatIfRows(inp);
    expect(rows.find((r) => r.id === 'quant-4bit')).toBeTruthy();
    const ids = computeFindings(inp, rows).map((f) => f.id);
    expect(ids).not.toContain('quant-4bit');
    expect(ids).not.toContain('dtype-bf16');
    expect(ids).not.toContain('warm-instance');
  });

  it('yours vs floor and cold vs warm read become findings with the seconds they save and the command', () => {
    const phases = [phase('gpu-load', 9, { floor: { seconds: 3, source: 'native loader, cold page cache' } }), phase('warmup', 1)];
    const inp = { phases, total: 10, rates, coldWarmRead: { coldSeconds: 3, warmSeconds: 0.5 }, model: { name: 'llama3-8b', arg: '/models/llama3-8b', bytes: 16e9, format: 'safetensors' as const, bytesPerParam: 2, dtype: 'BF16', source: 'local' as const, gpu: true, cache: 'cold' as const } };
    const f = computeFindings(inp);
    expect(f.find((x) => x.id === 'floor-gpu-load')!.savesSeconds).toBeCloseTo(6, 9);
    expect(f.find((x) => x.id === 'floor-gpu-load')!.message).toContain('efficiency 0.33');
    const pf = f.find((x) => x.id === 'prefetch')!;
    expect(pf.savesSeconds).toBeCloseTo(2.5, 9);
    expect(pf.command).toBe('coldstart prefetch /models/llama3-8b');
    // Weights not on disk under a name other commands resolve: no command rather than one that fails.
    expect(computeFindings({ ...inp, model: { ...inp.model, arg: null } }).find((x) => x.id === 'prefetch')!.command).toBeUndefined();
  });

  it('an estimate carries the spread of its probes, not false precision', () => {
    const r2 = { ...rates, diskSigma: 0.2e9, pageCacheSigma: null };
    const p = predictLoadSeconds(r2, { bytes: 16e9, format: 'safetensors', cache: 'cold', gpu: true })!;
    expect(predictLoadSigma(r2, { bytes: 16e9, format: 'safetensors', cache: 'cold', gpu: true }, p)).toBeCloseTo(0.8, 9);
    expect(formatWithSigma(p, 0.8)).toBe('8.00 s ± 800 ms');
    expect(predictLoadSigma(r2, { bytes: 16e9, format: 'safetensors', cache: 'warm', gpu: true }, 1.6)).toBeNull();
    expect(formatWithSigma(1.6, null)).toMatch(/uncertainty unknown/);
  });

  it('the warm probe fits the fixed cost and the rate from two spans (hard links to one probe file)', async () => {
    // A loader whose every load costs 30 ms before its first byte and then streams at 45 GB/s; it splits off only
    // 5 ms of that itself (the H200 case of 2026-11-28: one-span probes said 26 GB/s and predicted 16 GB at 0.63 s).
    const seen: string[][] = [];
    const inodes = new Set<number>();
    const { statSync } = await import('node:fs');
    const loaderRun = async (files: string[], cache: 'cold' | 'warm') => {
      seen.push(files);
      for (const f of files) inodes.add(statSync(f).ino);
      const bytes = files.reduce((a, f) => a + statSync(f).size, 0);
      return { bytes, seconds: 0.03 + bytes / (cache === 'warm' ? 45e9 : 0.2e9), threads: 16, fixedSeconds: 0.005 };
    };
    const dir = join(tmp.dir, 'span');
    mkdirSync(dir, { recursive: true });
    const { rates } = await measureRates({ dir, probeBytes: 8 << 20, warmSpanBytes: 64 << 20, loaderRun, samples: 2 });
    const warmLong = seen.find((f) => f.length > 1)!;
    expect(warmLong).toHaveLength(8);
    expect(new Set(warmLong).size).toBe(8);
    expect(inodes.size).toBe(1);
    expect(rates.warmSpanBytes).toBe(8 * (8 << 20));
    expect(rates.pageCacheBytesPerSecond! / 45e9).toBeCloseTo(1, 6);
    expect(rates.loaderFixedSeconds!).toBeCloseTo(0.03, 6);
    // The cold probe pays the same fixed cost: taken out, its rate is the disk's (0.2 GB/s), not diluted by it.
    expect(rates.diskReadBytesPerSecond! / 0.2e9).toBeCloseTo(1, 6);
    expect(predictLoadSeconds(rates, { bytes: 16e9, format: 'safetensors', cache: 'warm', gpu: false })).toBeCloseTo(0.03 + 16e9 / 45e9, 6);
    // Cold is one span (a second link would be warm); nothing is left behind.
    expect(seen.filter((f) => f.length === 1)).toHaveLength(4);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir)).toEqual([]);
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

describe("wrap mode: the server's weights, for the floor beside its weights loading", () => {
  it('finds them in the command line: a local .gguf after -m, --model=org/name in the HF cache; skips the script and ports', async () => {
    const root = join(tmp.dir, 'wrap-weights');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'server.py'), 'print(1)\n');
    writeFileSync(join(root, 'tiny.gguf'), Buffer.alloc(4096, 1));
    const gguf = await wrapWeights(undefined, ['llama-server', '--port', '8080', '-m', 'tiny.gguf'], { cwd: root, env: {} });
    expect(gguf).toMatchObject({ from: 'tiny.gguf', bytes: 4096, format: 'other', files: [join(root, 'tiny.gguf')] });
    // A repo in the HF cache (HF_HOME/hub/models--org--name/{refs/main,snapshots/<commit>/…}).
    const hf = join(root, 'hf');
    const commit = 'a'.repeat(40);
    const snap = join(hf, 'hub', 'models--org--name', 'snapshots', commit);
    mkdirSync(snap, { recursive: true });
    mkdirSync(join(hf, 'hub', 'models--org--name', 'refs'), { recursive: true });
    writeFileSync(join(hf, 'hub', 'models--org--name', 'refs', 'main'), commit);
    writeFileSync(join(snap, 'pytorch_model.bin'), Buffer.alloc(1000, 2));
    const repo = await wrapWeights(undefined, ['python3', 'server.py', '--port=8000', '--model=org/name'], { cwd: root, env: { HF_HOME: hf } });
    expect(repo).toMatchObject({ from: 'org/name', bytes: 1000, format: 'bin' });
    // Nothing that names weights: the reason, not a guess.
    const none = await wrapWeights(undefined, ['python3', 'server.py', '--port', '8000', 'other/repo'], { cwd: root, env: { HF_HOME: hf } });
    expect(none).toEqual({ reason: expect.stringMatching(/^no weights found in the server command/) });
  });
});
