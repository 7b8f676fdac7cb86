import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  commitEntry,
  compileCacheStatus,
  diffFingerprints,
  describeDifference,
  entryName,
  fingerprintKey,
  listEntries,
  makeStaging,
  materializeEntry,
  normalizeFingerprint,
  releaseStaging,
  verifyEntry,
  type CompileFingerprint,
} from '../../../src/warmup/compile/store.js';
import { ColdstartError } from '../../../src/core/errors.js';

const H100: CompileFingerprint = normalizeFingerprint({
  gpu: 'NVIDIA H100 80GB HBM3',
  'compute capability': '9.0',
  driver: '580.65.06',
  cuda: '13.0',
  'cpu isa': 'AVX512',
  python: '3.12.3',
  torch: '2.11.0+cu130',
  triton: '3.5.0',
  model: 'a'.repeat(64),
  device: 'cuda',
  dtype: 'bfloat16',
  'input shape': '1x128',
  backend: 'inductor',
  mode: 'reduce-overhead',
  dynamic: 'false',
});

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-compile-store-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/** An entry as a cold run leaves it: cache dirs with files, then commitEntry. */
function persist(fp: CompileFingerprint, files: Record<string, string> = { 'inductor/ab/cabc.so': 'ELF…kernel', 'inductor/fxgraph/xy/fxy/entry': 'graph', 'triton/K/kern.cubin': 'cubin', 'artifacts.bin': 'mega' }) {
  const staging = makeStaging(tmp, 'staging');
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(staging, p, '..'), { recursive: true });
    writeFileSync(join(staging, p), text);
  }
  const r = commitEntry(tmp, staging, { fingerprint: fp, engineKeys: { inductor: ['fxy'] }, coldSeconds: 43.4, tool: 'test' });
  releaseStaging(staging);
  return r;
}

describe('fingerprints', () => {
  it('the key depends on every component and not on property order', () => {
    const reordered = normalizeFingerprint(Object.fromEntries(Object.entries(H100).reverse()));
    expect(fingerprintKey(reordered)).toBe(fingerprintKey(H100));
    expect(fingerprintKey({ ...H100, torch: '2.12.0' })).not.toBe(fingerprintKey(H100));
    expect(fingerprintKey({ ...H100, mode: 'default' })).not.toBe(fingerprintKey(H100));
    expect(fingerprintKey({ ...H100, triton: null })).not.toBe(fingerprintKey(H100));
  });
  it('explains differences component by component, in a fixed order', () => {
    const now = { ...H100, torch: '2.12.0+cu130', 'compute capability': '8.9', gpu: 'NVIDIA L40S' };
    expect(diffFingerprints(H100, now).map(describeDifference)).toEqual(['gpu NVIDIA H100 80GB HBM3 → NVIDIA L40S', 'compute capability 9.0 → 8.9', 'torch 2.11.0+cu130 → 2.12.0+cu130']);
    expect(describeDifference({ component: 'triton', was: null, now: '3.5.0' })).toBe('triton none → 3.5.0');
  });
});

describe('compileCacheStatus', () => {
  it('not-cached when nothing is persisted (or the dir does not exist)', () => {
    expect(compileCacheStatus(join(tmp, 'nope'), H100).status).toBe('not-cached');
    expect(compileCacheStatus(tmp, H100)).toMatchObject({ status: 'not-cached', reasons: [] });
  });

  it('cached for exactly the fingerprint it was built for, and verified', () => {
    const { dir, manifest } = persist(H100);
    expect(dir).toBe(join(tmp, entryName(fingerprintKey(H100))));
    expect(manifest.files.map((f) => f.path).sort()).toEqual(['artifacts.bin', 'inductor/ab/cabc.so', 'inductor/fxgraph/xy/fxy/entry', 'triton/K/kern.cubin']);
    expect(manifest.totalBytes).toBe(manifest.files.reduce((a, f) => a + f.size, 0));
    const st = compileCacheStatus(tmp, H100, { verify: true });
    expect(st.status).toBe('cached');
    expect(st.summary).toMatch(/^cached \(torch-compile-/);
    // nothing half-written is left behind
    expect(readdirSync(tmp).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a manifest made for another torch version is a miss that names the change, never a hit', () => {
    persist(H100);
    const st = compileCacheStatus(tmp, { ...H100, torch: '2.12.0+cu130' });
    expect(st.status).toBe('missed');
    expect(st.reasons).toEqual(['torch 2.11.0+cu130 → 2.12.0+cu130']);
    expect(st.summary).toContain('missed because torch 2.11.0+cu130 → 2.12.0+cu130');
  });

  it('another option set or GPU generation is a miss with that reason', () => {
    persist(H100);
    expect(compileCacheStatus(tmp, { ...H100, mode: 'max-autotune' }).reasons).toEqual(['mode reduce-overhead → max-autotune']);
    expect(compileCacheStatus(tmp, { ...H100, 'compute capability': '8.9', gpu: 'NVIDIA L4' }).reasons).toEqual(['gpu NVIDIA H100 80GB HBM3 → NVIDIA L4', 'compute capability 9.0 → 8.9']);
  });

  it('explains against the nearest entry of the same model', () => {
    persist({ ...H100, mode: 'default' }); // two differences
    persist({ ...H100, torch: '2.12.0+cu130' }); // one difference: the nearest
    persist({ ...H100, model: 'b'.repeat(64), torch: '2.13.0+cu130' }); // one difference, but another model
    const st = compileCacheStatus(tmp, { ...H100, torch: '2.13.0+cu130' });
    expect(st.status).toBe('missed');
    expect(st.reasons).toEqual(['torch 2.12.0+cu130 → 2.13.0+cu130']);
  });

  it('a corrupted artefact (hash mismatch vs manifest) is refused, and never copied out for loading', () => {
    const { dir, manifest } = persist(H100);
    writeFileSync(join(dir, 'inductor/ab/cabc.so'), 'ELF…kernel'.replace('k', 'K')); // same size, other bytes
    const st = compileCacheStatus(tmp, H100, { verify: true });
    expect(st.status).toBe('refused');
    expect(st.reasons[0]).toMatch(/^inductor\/ab\/cabc\.so: sha256 [0-9a-f]{12}… ≠ manifest [0-9a-f]{12}…$/);
    const dest = join(tmp, 'work');
    let err: unknown;
    try {
      materializeEntry(dir, manifest, dest);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ColdstartError);
    expect((err as ColdstartError).code).toBe('CORRUPT_FILE');
    expect((err as ColdstartError).message).toContain('inductor/ab/cabc.so');
  });

  it('a truncated or missing file is refused; extra files are reported, not loaded', () => {
    const { dir, manifest } = persist(H100);
    writeFileSync(join(dir, 'triton/K/kern.cubin'), 'cu');
    rmSync(join(dir, 'artifacts.bin'));
    writeFileSync(join(dir, 'inductor/planted.so'), 'x');
    const v = verifyEntry(dir, manifest);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual(['artifacts.bin: missing', 'triton/K/kern.cubin: 2 bytes, manifest says 5']);
    expect(v.unlisted).toEqual(['inductor/planted.so']);
  });

  it('an edited manifest (fingerprint no longer matching its key) is refused', () => {
    const { dir } = persist(H100);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    m.fingerprint.torch = '2.12.0'; // claims another torch but keeps the key
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    const st = compileCacheStatus(tmp, H100);
    expect(st.status).toBe('refused');
    expect(st.reasons[0]).toMatch(/does not match its fingerprint/);
    expect(listEntries(tmp)[0]!.invalid).toMatch(/edited by hand/);
  });

  it('a manifest naming paths outside its entry is unusable', () => {
    const { dir } = persist(H100);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    m.files.push({ path: '../../etc/passwd', size: 1, sha256: '0' });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    expect(compileCacheStatus(tmp, H100).status).toBe('refused');
  });

  it('a FIFO swapped in for an artefact after the check is refused when copied out (CORRUPT_FILE naming it), never waited on', () => {
    const { dir, manifest } = persist(H100);
    rmSync(join(dir, 'triton/K/kern.cubin'));
    execFileSync('mkfifo', [join(dir, 'triton/K/kern.cubin')]); // no writer ever opens it
    let err: unknown;
    try {
      materializeEntry(dir, manifest, join(tmp, 'work-fifo'));
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'CORRUPT_FILE', message: expect.stringContaining('triton/K/kern.cubin: ') });
    expect((err as ColdstartError).message).toContain('FIFO');
  });

  it('an artefact reached through a symbolic link is refused even with matching bytes (the file, or a folder on the way); nothing outside is copied out', () => {
    const outside = mkdtempSync(join(tmpdir(), 'cs-outside-'));
    try {
      writeFileSync(join(outside, 'kern.cubin'), 'cubin'); // the very bytes the manifest lists
      for (const [what, plant] of [
        ['the file', (dir: string) => (rmSync(join(dir, 'triton/K/kern.cubin')), symlinkSync(join(outside, 'kern.cubin'), join(dir, 'triton/K/kern.cubin')))],
        ['a folder', (dir: string) => (rmSync(join(dir, 'triton/K'), { recursive: true }), symlinkSync(outside, join(dir, 'triton/K')))],
      ] as const) {
        const { dir, manifest } = persist(H100);
        plant(dir);
        const v = verifyEntry(dir, manifest);
        expect(v.ok, what).toBe(false);
        expect(v.problems, what).toEqual([expect.stringMatching(/^triton\/K\/kern\.cubin: reached through a symbolic link \(.*triton\/K(\/kern\.cubin)?\); an entry's files are read only inside it$/)]);
        expect(compileCacheStatus(tmp, H100, { verify: true }).status, what).toBe('refused');
        const dest = join(tmp, `work-link-${what.replace(' ', '-')}`);
        expect(() => materializeEntry(dir, manifest, dest), what).toThrow(expect.objectContaining({ code: 'CORRUPT_FILE', message: expect.stringContaining('symbolic link') }));
        expect(existsSync(join(dest, 'triton/K/kern.cubin')), what).toBe(false);
      }
      expect(readFileSync(join(outside, 'kern.cubin'), 'utf8')).toBe('cubin');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('materializes a verified entry byte for byte', () => {
    const { dir, manifest } = persist(H100);
    const dest = join(tmp, 'work');
    materializeEntry(dir, manifest, dest);
    expect(readFileSync(join(dest, 'triton/K/kern.cubin'), 'utf8')).toBe('cubin');
    expect(existsSync(join(dest, 'manifest.json'))).toBe(false);
  });

  it('replaces only its own entry: a folder of the same name without a manifest is refused and kept (issue 22)', () => {
    const { dir } = persist(H100);
    persist(H100); // its own earlier entry: replaced
    expect(readdirSync(tmp).filter((n) => n.startsWith('.'))).toEqual([]);
    rmSync(dir, { recursive: true });
    mkdirSync(dir);
    writeFileSync(join(dir, 'victim'), 'mine');
    let err: unknown;
    try {
      persist(H100);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ColdstartError);
    expect((err as ColdstartError).code).toBe('OUTPUT_EXISTS');
    expect(readFileSync(join(dir, 'victim'), 'utf8')).toBe('mine');
  });

  it('a --persist folder on procfs fails at once (exit 3), no spinning mkdir', () => {
    let err: unknown;
    try {
      makeStaging('/proc/self/sub/persist', 'staging');
    } catch (e) {
      err = e;
    }
    expect((err as ColdstartError).exitCode).toBe(3);
  });
});

describe('human lines', () => {
  it('show the cache state, cold vs cached with the ratio, identical outputs and Inductor hits', async () => {
    const { compileLines } = await import('../../../src/warmup/compile/report.js');
    const run = (s: number, sha: string, hit: number, miss: number) => ({
      importSeconds: 1, loadSeconds: 1, firstForwardSeconds: s, loadArtifactsSeconds: null, compileSeconds: s, steady: null,
      outputSha256: sha, outputShape: [1, 128, 128256], outputSummary: { sum: 0, absMax: 0, first: [] },
      inductorCache: { fxgraphHit: hit, fxgraphMiss: miss, autogradHit: hit, autogradMiss: miss, graphs: 1, cudagraphSkips: 0 },
    });
    const id = (x: string) => x;
    const lines = compileLines(
      {
        fingerprint: H100, key: 'k', persistDir: '/p', status: 'missed', statusSummary: 'missed because torch 2.11.0+cu130 → 2.12.0+cu130 (nearest: torch-compile-x)',
        missReasons: ['torch 2.11.0+cu130 → 2.12.0+cu130'], entry: { dir: '/p/torch-compile-k', key: 'k', bytes: 20 << 20, files: 120, written: true },
        cold: run(43.4, 'a'.repeat(64), 0, 1), cached: run(8.07, 'a'.repeat(64), 1, 0), ratio: 43.4 / 8.07, outputsIdentical: true, cacheArtifactsApi: true,
      },
      { bold: id, dim: id },
    );
    expect(lines[0]).toBe('compile  torch 2.11.0+cu130, triton 3.5.0; mode reduce-overhead; NVIDIA H100 80GB HBM3 (cc 9.0, driver 580.65.06, CUDA 13.0)');
    expect(lines[1]).toBe('cache  missed because torch 2.11.0+cu130 → 2.12.0+cu130 (nearest: torch-compile-x)');
    expect(lines[2]).toMatch(/^cold vs cached {2}cold 43\.4 s · from the persisted cache 8\.07 s \(fresh processes\) → 5\.4× faster, saves 35\.3 s$/);
    expect(lines[3]).toMatch(/^output {2}first forward identical/);
    expect(lines[4]).toBe('inductor  FX-graph cache 1 hit / 0 miss · AOTAutograd 1 hit / 0 miss');
    expect(lines[5]).toBe('persisted  /p/torch-compile-k (20.0 MiB, 120 files, written now)');
  });
});
