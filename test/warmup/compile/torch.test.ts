/**
 * `warmup --framework torch --compile --persist` against the real torch (CPU, Inductor's C++ backend) on the
 * tiny Llama from fixtures/: cold compile and the start from the persisted cache each in a fresh process, a
 * manifest made for another torch version / option set detected as a miss with the right reason, a corrupted
 * artefact refused before anything is loaded. Kept small: one cold compile (~20 s on 2 cores) for the file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython } from '../../helpers/python.js';
import { runCli } from '../../helpers/cli.js';
import { probeCompileFingerprint } from '../../../src/warmup/compile/torch.js';
import { compileCacheStatus, entryName, fingerprintKey, normalizeFingerprint } from '../../../src/warmup/compile/store.js';

const py = peerPython();
const model = fileURLToPath(new URL('../../../fixtures/torch/models/tiny-llama', import.meta.url));
let tmp: string;
let store: string;
let env: Record<string, string | undefined>;

describe.skipIf(!py)('warmup --compile --persist on CPU (torch.compile, Inductor C++)', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'coldstart-compile-'));
    store = join(tmp, 'store');
    // Inductor compiles in this process (TORCHINDUCTOR_COMPILE_THREADS=1) instead of starting a worker pool that
    // imports torch once more per worker: on 2 shared cores the pool costs more than it overlaps.
    env = { COLDSTART_PYTHON: py!, OMP_NUM_THREADS: '2', TORCHINDUCTOR_COMPILE_THREADS: '1' };
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('compiles cold, persists a fingerprinted entry, and a fresh process starts from it (Inductor hits, same output)', async () => {
    const r = await runCli(['warmup', model, '--framework', 'torch', '--compile', '--persist', store, '--device', 'cpu', '--runs', '1', '--timeout', '840s', '--json'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.schema).toBe('coldstart/warmup@1');
    const c = j.details.details.compile;
    expect(c.status).toBe('not-cached');
    expect(c.fingerprint).toMatchObject({ device: 'cpu', gpu: 'cpu', backend: 'inductor', mode: 'default', dtype: 'float32', 'input shape': '1x16' });
    expect(c.fingerprint.torch).toMatch(/^2\.\d+/);
    // cold: Inductor compiled the graph; cached: a fresh process found it in the persisted dirs
    expect(c.cold.inductorCache.fxgraphMiss).toBeGreaterThanOrEqual(1);
    expect(c.cached.inductorCache.fxgraphMiss).toBe(0);
    expect(c.cached.inductorCache.fxgraphHit).toBeGreaterThanOrEqual(1);
    expect(c.outputsIdentical).toBe(true);
    expect(c.cold.outputShape.slice(0, 2)).toEqual([1, 16]);
    expect(c.cached.outputShape).toEqual(c.cold.outputShape);
    expect(c.ratio).toBeGreaterThan(0);
    expect(c.entry.written).toBe(true);
    expect(c.entry.dir).toBe(join(store, entryName(c.key)));
    // the manifest names what it was built for and hashes every file
    const m = JSON.parse(readFileSync(join(c.entry.dir, 'manifest.json'), 'utf8'));
    expect(m.schema).toBe('coldstart/compile-artifact@1');
    expect(m.fingerprint).toEqual(c.fingerprint);
    expect(m.files.length).toBe(c.entry.files);
    expect(m.files.some((f: { path: string }) => f.path.startsWith('inductor/'))).toBe(true);
    if (c.cacheArtifactsApi) {
      expect(m.files.some((f: { path: string }) => f.path === 'artifacts.bin')).toBe(true);
      expect(Object.keys(m.engineKeys)).toContain('inductor');
    }
    // the phase table shows the cached start
    expect(j.details.steps.map((s: { name: string }) => s.name)).toContain('first-forward');
  }, 900_000); // a hang guard: on a loaded 2-core machine the cold compile alone has taken over 8 min

  it('a manifest made for another torch version or option set is a miss naming the change', async () => {
    const [name] = readdirSync(store).filter((n) => n.startsWith('torch-compile-'));
    const real = JSON.parse(readFileSync(join(store, name!, 'manifest.json'), 'utf8'));
    // The same entry, re-filed as if built by torch 2.11.0 (its key follows its fingerprint).
    const other = join(tmp, 'other');
    const fp = normalizeFingerprint({ ...real.fingerprint, torch: '2.11.0+cu130' });
    const key = fingerprintKey(fp);
    cpSync(join(store, name!), join(other, entryName(key)), { recursive: true });
    writeFileSync(join(other, entryName(key), 'manifest.json'), JSON.stringify({ ...real, key, fingerprint: fp }));

    const now = await probeCompileFingerprint({ model, mode: 'default', device: 'cpu', shapes: {}, env });
    expect(fingerprintKey(now.fingerprint)).toBe(real.key);
    const st = compileCacheStatus(other, now.fingerprint, { verify: true });
    expect(st.status).toBe('missed');
    expect(st.reasons).toEqual([`torch 2.11.0+cu130 → ${now.fingerprint.torch}`]);

    const ro = await probeCompileFingerprint({ model, mode: 'reduce-overhead', device: 'cpu', shapes: { input_ids: [1, 32] }, env });
    const st2 = compileCacheStatus(store, ro.fingerprint);
    expect(st2.status).toBe('missed');
    expect(st2.reasons).toEqual(['input shape 1x16 → 1x32', 'mode default → reduce-overhead']);
  });

  it('a corrupted artefact is refused (exit 2, the file named) and nothing is loaded or rewritten', async () => {
    const [name] = readdirSync(store).filter((n) => n.startsWith('torch-compile-'));
    const dir = join(store, name!);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const victim = m.files.find((f: { path: string }) => f.path.endsWith('.so') || f.path.startsWith('inductor/')).path as string;
    const bytes = readFileSync(join(dir, victim));
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(join(dir, victim), bytes);
    const r = await runCli(['warmup', model, '--framework', 'torch', '--compile', '--persist', store, '--device', 'cpu', '--runs', '0', '--json'], { env });
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/error@1');
    expect(doc.error.code).toBe('CORRUPT_FILE');
    expect(r.stderr).toContain('refused');
    expect(r.stderr).toContain(victim);
    // the entry is left as it was (for inspection / `cache artifacts rm`), not silently replaced
    expect(readFileSync(join(dir, victim))).toEqual(bytes);
    expect(readdirSync(store).filter((n) => !n.startsWith('torch-compile-'))).toEqual([]);
    // moved aside, the store is empty again (a later run would compile cold, not load it)
    renameSync(dir, join(tmp, 'quarantine'));
    expect(compileCacheStatus(store, normalizeFingerprint(m.fingerprint)).status).toBe('not-cached');
  });

  it('refuses TorchScript and --persist without --compile with one clear line (exit 2)', async () => {
    const a = await runCli(['warmup', model, '--framework', 'torch', '--persist', store], { env });
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--persist is for --compile/);
    const b = await runCli(['warmup', model, '--framework', 'torch', '--compile', '--mode', 'fast'], { env });
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--mode/);
    const ts = join(tmp, 'm.pt');
    writeFileSync(ts, 'not really');
    const c = await runCli(['warmup', ts, '--framework', 'torch', '--compile'], { env });
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/torch\.export/);
  });
});
