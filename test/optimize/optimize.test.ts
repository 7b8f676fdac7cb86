/**
 * `coldstart optimize` end to end on real servers: the fake vLLM (its torch.compile honours VLLM_CACHE_ROOT) and a
 * real torch.compile server (Inductor on CPU). The optimized start's compile phase shrinks and the credit goes to
 * the compile cache, the answers match, and the generated entrypoint, run as printed (under `coldstart profile`),
 * starts the server from the cache. Then the refusals: no command, no ready signal, DIR not a folder / not
 * writable, a server that never becomes ready (exit 3, tree stopped, the earlier caches put back), --snapshot
 * without CRIU (exit 3 before anything starts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { peerPython } from '../helpers/python.js';
import { FAKE_VLLM, freePort, tempDir, validateOptimizeReport } from '../profile/helpers.js';
import { criuPath, criuReady } from '../helpers/criu.js';
import { running } from '../helpers/procs.js';

const TORCH_SERVER = fileURLToPath(new URL('../fixtures-servers/torch_compile_server.py', import.meta.url));
const py = peerPython();

interface Credit { phase: string; baseline: number | null; optimized: number | null; saved: number | null; remedy: string }
interface Doc {
  schema: string;
  exitCode: number;
  phases: Array<{ name: string; seconds: number | null; floor?: { seconds: number } }>;
  details: {
    credits: Credit[];
    remedies: Array<{ id: string; applied: boolean; why: string }>;
    answers: { verdict: string; kind: string | null };
    caches: { filled: Array<{ engine: string; files: number }>; misses: string[] };
    fingerprint: { key: string; fingerprint: Record<string, string | null> };
    recipe: { env: { path: string; text: string }; entrypoint: { path: string; text: string }; k8s: { path: string; text: string } };
  };
}


const credit = (d: Doc, phase: string) => d.details.credits.find((c) => c.phase === phase)!;
const phaseOf = (doc: { phases: Array<{ name: string; seconds: number | null }> }, name: string) => doc.phases.find((p) => p.name === name)!.seconds;

let t: { dir: string; done: () => void };
beforeAll(() => {
  t = tempDir('cs-optimize-');
});
afterAll(() => t.done());

describe('optimize: the fake vLLM server (VLLM_CACHE_ROOT)', () => {
  let doc: Doc;
  let port: number;
  let persist: string;
  it('the optimized start is faster by the compile time, credited to the compile cache; the answers match; the recipe is written', async () => {
    port = await freePort();
    persist = join(t.dir, 'vllm-dir');
    const r = await runCli(['--json', 'optimize', '--persist', persist, '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, FAKE_VLLM, String(port), '--compile-cache'], { env: { FAKE_VLLM_COMPILE_MS: '2000' }, cwd: t.dir });
    expect(r.code, r.stderr).toBe(0);
    doc = JSON.parse(r.stdout) as Doc;
    expect(doc.schema).toBe('coldstart/optimize@1');
    expect(validateOptimizeReport(doc)).toEqual([]);
    const c = credit(doc, 'compile');
    expect(c.baseline!).toBeGreaterThan(1.5);
    expect(c.optimized!).toBeLessThan(c.baseline! / 2);
    expect(c.remedy).toBe('compile-cache');
    expect(doc.details.remedies.find((x) => x.id === 'compile-cache')!.applied).toBe(true);
    expect(doc.details.caches.filled.find((u) => u.engine === 'vllm')!.files).toBeGreaterThan(0);
    expect(doc.details.caches.misses).toEqual([]);
    expect(doc.details.answers.verdict).toBe('identical');
    // no weights named: the weights remedies say why they were skipped
    expect(doc.details.remedies.find((x) => x.id === 'prefetch')!.applied).toBe(false);
    for (const f of ['coldstart.env', 'entrypoint.sh', 'k8s.yaml', 'fingerprint.json']) expect(existsSync(join(persist, f))).toBe(true);
    expect(readFileSync(join(persist, 'coldstart.env'), 'utf8')).toContain(`VLLM_CACHE_ROOT=${join(persist, 'caches', 'vllm')}`);
    expect(doc.details.recipe.entrypoint.text).toBe(readFileSync(join(persist, 'entrypoint.sh'), 'utf8'));
    expect(doc.details.recipe.k8s.text).toContain('readinessProbe');
  }, 120_000);

  it('with the weights named, the floor of gpu-load is measured for each start (profile\'s rate probes, after the starts) and sits beside the phase', async () => {
    const p2 = await freePort();
    const model = fileURLToPath(new URL('../../fixtures/gpuload/sharded', import.meta.url));
    const r = await runCli(['--json', 'optimize', model, '--persist', join(t.dir, 'floor-dir'), '--ready-url', `http://127.0.0.1:${p2}/health`, '--', process.execPath, FAKE_VLLM, String(p2)], { env: { FAKE_VLLM_COMPILE_MS: '100', COLDSTART_PROBE_BYTES: String(4 << 20), COLDSTART_CACHE: join(t.dir, 'cs-cache') }, cwd: t.dir });
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as Doc & { details: { floor: { measured: boolean; baselineSeconds: number; optimizedSeconds: number; source: string } } };
    expect(validateOptimizeReport(d)).toEqual([]);
    expect(d.details.floor.measured).toBe(true);
    expect(d.details.floor.baselineSeconds).toBeGreaterThan(0);
    expect(d.details.floor.source).toMatch(/÷ measured rates/);
    expect(d.phases.find((p) => p.name === 'gpu-load')!.floor!.seconds).toBe(d.details.floor.optimizedSeconds);
    const human = await runCli(['optimize', model, '--persist', join(t.dir, 'floor-dir'), '--ready-url', `http://127.0.0.1:${p2}/health`, '--', process.execPath, FAKE_VLLM, String(p2)], { env: { FAKE_VLLM_COMPILE_MS: '100', COLDSTART_PROBE_BYTES: String(4 << 20), COLDSTART_CACHE: join(t.dir, 'cs-cache') }, cwd: t.dir });
    expect(human.stdout).toMatch(/^floor of gpu-load: baseline .+, optimized .+ \(.+÷ measured rates/m);
  }, 120_000);

  it.skipIf(!py)('a Python server with its weights cold: the prefetched start reads its stack first, as the entrypoint does', async () => {
    const p3 = await freePort();
    const model = fileURLToPath(new URL('../../fixtures/gpuload/sharded', import.meta.url));
    // The fake vLLM behind a Python interpreter (exec'd): the server command is a Python program.
    const cmd = [py!, '-c', 'import os, sys; os.execv(sys.argv[1], sys.argv[1:])', process.execPath, FAKE_VLLM, String(p3)];
    const r = await runCli(['--json', 'optimize', model, '--persist', join(t.dir, 'stack-dir'), '--ready-url', `http://127.0.0.1:${p3}/health`, '--', ...cmd], { env: { FAKE_VLLM_COMPILE_MS: '100', COLDSTART_PROBE_BYTES: String(4 << 20), COLDSTART_CACHE: join(t.dir, 'cs-cache') }, cwd: t.dir });
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as Doc & { details: { optimized: { prefetch?: { stack?: { python: string; files: number; bytes: number } } } } };
    expect(validateOptimizeReport(d)).toEqual([]);
    const st = d.details.optimized.prefetch!.stack!;
    expect(st.python).toMatch(/python/); // the interpreter as the stack reports it (a venv's base interpreter)
    expect(st.files).toBeGreaterThan(100);
    // Any prefetch line of the entrypoint reads the same stack first (buildRecipe's text: test/optimize/units).
    for (const line of d.details.recipe.entrypoint.text.split('\n').filter((l) => / prefetch /.test(l))) expect(line).toContain(`--stack ${py}`);
  }, 120_000);

  it('the generated entrypoint, run as printed, starts the server from the cache (compile phase as short as the optimized start\'s)', async () => {
    expect(doc).toBeDefined();
    const r = await runCli(['--json', 'profile', '--no-floor', '--ready-url', `http://127.0.0.1:${port}/health`, '--', 'sh', join(persist, 'entrypoint.sh')], { cwd: t.dir });
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as { phases: Array<{ name: string; seconds: number | null }> };
    expect(phaseOf(p, 'compile')!).toBeLessThan(credit(doc, 'compile').baseline! / 2);
  }, 120_000);
});

describe.skipIf(!py)('optimize: a real torch.compile server (Inductor on CPU)', () => {
  let doc: Doc;
  let port: number;
  let persist: string;
  const stage = ['--stage', 'compile:compile=torch\\.compile took ([\\d.]+) s'];
  // One compile thread: no worker pool to start on a loaded 2-core machine.
  const env = { TORCHINDUCTOR_COMPILE_THREADS: '1', OMP_NUM_THREADS: '1' };
  it('Inductor\'s caches in DIR make the second start compile faster, credited to the compile cache; answers within tolerance', async () => {
    port = await freePort();
    persist = join(t.dir, 'torch-dir');
    const r = await runCli(['--json', 'optimize', '--persist', persist, '--dtype', 'fp32', '--ready-url', `http://127.0.0.1:${port}/health`, ...stage, '--', py!, TORCH_SERVER, String(port), '--layers', '0'], { env, cwd: t.dir });
    expect(r.code, r.stderr).toBe(0);
    doc = JSON.parse(r.stdout) as Doc;
    expect(validateOptimizeReport(doc)).toEqual([]);
    const c = credit(doc, 'compile');
    expect(c.optimized!).toBeLessThan(c.baseline! * 0.8);
    expect(c.remedy).toBe('compile-cache');
    expect(doc.details.caches.filled.find((u) => u.engine === 'inductor')!.files).toBeGreaterThan(0);
    expect(['identical', 'within-tolerance']).toContain(doc.details.answers.verdict);
    expect(doc.details.answers.kind).toBe('json');
    expect(doc.details.fingerprint.fingerprint.torch).toMatch(/^\d+\.\d+/);
    expect(doc.details.recipe.env.text).toContain(`TORCHINDUCTOR_CACHE_DIR=${join(persist, 'caches', 'inductor')}`);
  }, 900_000);

  it('the generated entrypoint, run as printed, reproduces the fast start (Inductor cache hit)', async () => {
    expect(doc).toBeDefined();
    const r = await runCli(['--json', 'profile', '--no-floor', '--ready-url', `http://127.0.0.1:${port}/health`, ...stage, '--', 'sh', join(persist, 'entrypoint.sh')], { env, cwd: t.dir });
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as { phases: Array<{ name: string; seconds: number | null }> };
    expect(phaseOf(p, 'compile')!).toBeLessThan(credit(doc, 'compile').baseline! * 0.8);
  }, 600_000);
});

describe('optimize refuses what it cannot do', () => {
  it('no server command (exit 2) and no ready signal (exit 2)', async () => {
    const a = await runCli(['--json', 'optimize', '--ready-url', 'http://127.0.0.1:9/health'], { cwd: t.dir });
    expect(a.code).toBe(2);
    expect(JSON.parse(a.stdout).error.code).toBe('USAGE');
    const b = await runCli(['--json', 'optimize', '--', 'true'], { cwd: t.dir });
    expect(b.code).toBe(2);
    expect(JSON.parse(b.stdout).error.code).toBe('USAGE');
  });

  it('--persist that is a file (exit 2) or cannot be written (exit 3), before the server starts', async () => {
    const mark = join(t.dir, 'started-1');
    const file = join(t.dir, 'a-file');
    writeFileSync(file, 'x');
    const a = await runCli(['--json', 'optimize', '--persist', file, '--ready-url', 'http://127.0.0.1:9/health', '--', 'sh', '-c', `touch ${mark}`], { cwd: t.dir });
    expect(a.code).toBe(2);
    expect(JSON.parse(a.stdout).error.code).toBe('BAD_FLAG');
    const b = await runCli(['--json', 'optimize', '--persist', '/proc/1/coldstart-optimize', '--ready-url', 'http://127.0.0.1:9/health', '--', 'sh', '-c', `touch ${mark}`], { cwd: t.dir });
    expect(b.code).toBe(3);
    expect(JSON.parse(b.stdout).error.code).toBe('PERMISSION');
    expect(existsSync(mark)).toBe(false);
  });

  it("--persist naming a folder of the user's (a home, a project): exit 2 OUTPUT_EXISTS before the server starts, every file's bytes and mtime kept", async () => {
    const mark = join(t.dir, 'started-2');
    const home = join(t.dir, 'home');
    mkdirSync(join(home, 'caches'), { recursive: true });
    writeFileSync(join(home, 'caches', 'mine'), 'keep');
    writeFileSync(join(home, 'entrypoint.sh'), '#!/bin/sh\necho mine\n');
    const before = ['caches/mine', 'entrypoint.sh'].map((f) => [readFileSync(join(home, f), 'utf8'), statSync(join(home, f)).mtimeMs]);
    const r = await runCli(['--json', 'optimize', '--persist', home, '--ready-url', 'http://127.0.0.1:9/health', '--', 'sh', '-c', `touch ${mark}`], { cwd: t.dir });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('OUTPUT_EXISTS');
    expect(['caches/mine', 'entrypoint.sh'].map((f) => [readFileSync(join(home, f), 'utf8'), statSync(join(home, f)).mtimeMs])).toEqual(before);
    expect(readdirSync(home).sort()).toEqual(['caches', 'entrypoint.sh']);
    expect(existsSync(mark)).toBe(false);
  });

  it('a server that never becomes ready: exit 3 TIMEOUT, its tree stopped, the earlier caches put back', async () => {
    const persist = join(t.dir, 'never-dir');
    mkdirSync(join(persist, 'caches', 'inductor'), { recursive: true });
    writeFileSync(join(persist, '.coldstart-optimize.json'), '{}\n'); // an earlier run's folder
    writeFileSync(join(persist, 'caches', 'inductor', 'earlier'), 'kept');
    const pidfile = join(t.dir, 'never.pid');
    const port = await freePort();
    const r = await runCli(['--json', 'optimize', '--persist', persist, '--ready-url', `http://127.0.0.1:${port}/health`, '--ready-timeout', '2', '--', 'sh', '-c', `echo $$ > ${pidfile}; exec sleep 300`], { cwd: t.dir });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).error.code).toBe('TIMEOUT');
    const pid = Number(readFileSync(pidfile, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow();
    expect(readFileSync(join(persist, 'caches', 'inductor', 'earlier'), 'utf8')).toBe('kept');
    expect(existsSync(join(persist, 'entrypoint.sh'))).toBe(false);
  }, 60_000);

  it('--snapshot without CRIU: exit 3 with the fix, before anything starts', async () => {
    const mark = join(t.dir, 'started-2');
    const r = await runCli(['--json', 'optimize', '--snapshot', '--persist', join(t.dir, 'snap-dir'), '--ready-url', 'http://127.0.0.1:9/health', '--', 'sh', '-c', `touch ${mark}`], { cwd: t.dir, env: { COLDSTART_CRIU: join(t.dir, 'no-criu-here') } });
    expect(r.code).toBe(3);
    const err = JSON.parse(r.stdout).error;
    expect(err.code).toMatch(/MISSING_DEPENDENCY|PERMISSION/);
    expect(err.hint).toBeTruthy();
    expect(r.stderr).toContain('coldstart: error:');
    expect(existsSync(mark)).toBe(false);
  });
});

describe.skipIf(!criuReady())('optimize --snapshot with real CRIU (the fake vLLM)', () => {
  it('snapshots the optimized server after its first request, restores it, compares the restored answer with the baseline\'s and stops the restored server', async () => {
    const port = await freePort();
    const persist = join(t.dir, 'snap-vllm');
    const pidfile = join(t.dir, 'snap-vllm.pid');
    const r = await runCli(['--json', 'optimize', '--snapshot', '--persist', persist, '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, FAKE_VLLM, String(port), '--compile-cache'], { env: { FAKE_VLLM_COMPILE_MS: '300', FAKE_VLLM_PIDFILE: pidfile, COLDSTART_CRIU: criuPath }, cwd: t.dir });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as Doc & { details: { restored: { total: number; phases: Array<{ name: string; seconds: number | null }>; answers: { verdict: string } } } };
    expect(validateOptimizeReport(doc)).toEqual([]);
    const restored = doc.details.restored as typeof doc.details.restored & { image: { bytes: number; residentBytesBefore: number | null } };
    expect(restored.total).toBeGreaterThan(0);
    expect(restored.image.bytes).toBeGreaterThan(0);
    // Restored as the recipe says (--huge-pages): the window was opened and the mode found put back.
    const thp = (restored as unknown as { hugePages: { before: string | null; putBack: boolean } | null }).hugePages;
    expect(thp).not.toBeNull();
    expect(thp!.putBack).toBe(true);
    expect(doc.details.remedies.find((x) => x.id === 'snapshot')!.why).toContain('--huge-pages');
    // The first request was recorded at snapshot time and repeated after the restore: measured, and its answer the baseline's.
    expect(restored.phases.find((p) => p.name === 'first-request')!.seconds).toBeGreaterThan(0);
    expect(restored.answers.verdict).toBe('identical');
    expect(doc.details.remedies.find((x) => x.id === 'snapshot')!.applied).toBe(true);
    expect(existsSync(join(persist, 'snapshot', 'manifest.json'))).toBe(true);
    // A proof, not a deployment: the restored server (the pid the image recorded) is stopped, its port free again.
    const pid = Number(readFileSync(pidfile, 'utf8'));
    expect(running(pid)).toBe(false); // gone, or a zombie left to an init that does not reap
    await expect(fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  }, 180_000);

  it('a ready URL that already answers (a server left running) is refused before anything starts: exit 3, nothing measured', async () => {
    const { createServer } = await import('node:http');
    const squatter = createServer((_q, s) => s.end('ok'));
    await new Promise<void>((res) => squatter.listen(0, '127.0.0.1', res));
    const port = (squatter.address() as { port: number }).port;
    const mark = join(t.dir, 'started-squat');
    try {
      for (const argv of [
        ['--json', 'optimize', '--persist', join(t.dir, 'squat-dir'), '--ready-url', `http://127.0.0.1:${port}/health`, '--', 'sh', '-c', `touch ${mark}`],
        ['--json', 'profile', '--ready-url', `http://127.0.0.1:${port}/health`, '--', 'sh', '-c', `touch ${mark}`],
        ['--json', 'snapshot', '-o', join(t.dir, 'squat-img'), '--ready-url', `http://127.0.0.1:${port}/health`, '--', 'sh', '-c', `touch ${mark}`],
      ]) {
        const r = await runCli(argv, { cwd: t.dir, env: { COLDSTART_CRIU: criuPath } });
        expect(r.code, `${argv[1]}: ${r.stderr}`).toBe(3);
        expect(JSON.parse(r.stdout).error.message).toContain('already answers before the server was started');
        expect(existsSync(mark)).toBe(false);
      }
    } finally {
      squatter.close();
    }
  }, 60_000);
});
