import { describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { pcieBandwidth, formatDriverVersion } from '../../src/platform/pcie.js';

describe('coldstart doctor', () => {
  it('--json: one document with node, addon, cuda, disks, HF cache, python', async () => {
    const home = mkdtempSync(join(tmpdir(), 'cs-hf-'));
    const blobs = join(home, 'hub', 'models--org--tiny', 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, 'abc'), Buffer.alloc(1000));
    writeFileSync(join(home, 'token'), 'hf_secret\n');
    const r = await runCli(['doctor', '--json'], { env: { HF_HOME: home } });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/doctor@1');
    expect(doc.node.version).toBe(process.version);
    expect(doc.addon.loaded).toBe(true);
    expect(doc.hfCache).toMatchObject({ dir: join(home, 'hub'), exists: true, repos: 1, sizeBytes: 1000, source: 'HF_HOME', token: true });
    expect(JSON.stringify(doc)).not.toContain('hf_secret');
    expect(doc.disks.length).toBeGreaterThan(0);
    expect(doc.disks[0].freeBytes).toBeGreaterThan(0);
    expect(typeof doc.python.found).toBe('boolean');
    expect(Array.isArray(doc.gpus)).toBe(true);
  });

  it('the server loader: the library coldstart_load.py loads here, or why none does (never flagged as broken)', async () => {
    const ok = JSON.parse((await runCli(['doctor', '--json'])).stdout);
    expect(ok.python.serverLoader).toMatchObject({ module: expect.stringMatching(/python\/coldstart_load\.py$/), library: expect.stringMatching(/libcoldstart_load\.so$/) });
    const env = { COLDSTART_LOAD_LIBRARY: join(tmpdir(), 'no-such-dir', 'libcoldstart_load.so') };
    const missing = JSON.parse((await runCli(['doctor', '--json'], { env })).stdout);
    expect(missing.python.serverLoader.library).toBeUndefined();
    expect(missing.python.serverLoader.reason).toMatch(/no-such-dir\/libcoldstart_load\.so \(not there\)\. Possible solutions: `npm rebuild coldstart`/);
    const text = await runCli(['doctor'], { env });
    expect(text.stdout).toMatch(/^server loader\s+not available \(only a server's wake-up that calls coldstart_load needs it\)/m);
  });

  it('human output names every section and says why CUDA is unavailable', async () => {
    const r = await runCli(['doctor']);
    expect(r.code).toBe(0);
    for (const k of ['node', 'addon', 'cuda', 'disk', 'hf cache', 'python', 'container']) expect(r.stdout).toMatch(new RegExp(`^${k}\\s`, 'm'));
    expect(r.stderr).toBe('');
  });
});

describe('PCIe arithmetic', () => {
  it('gives per-direction link bandwidth from generation and width', () => {
    expect(pcieBandwidth(5, 16)! / 1e9).toBeCloseTo(63.02, 1);
    expect(pcieBandwidth(4, 16)! / 1e9).toBeCloseTo(31.51, 1);
    expect(pcieBandwidth(3, 8)! / 1e9).toBeCloseTo(7.88, 1);
    expect(pcieBandwidth(1, 1)! / 1e9).toBeCloseTo(0.25, 3);
    expect(pcieBandwidth(7, 16)).toBeNull();
    expect(pcieBandwidth(5, 0)).toBeNull();
  });
  it('formats CUDA driver versions', () => {
    expect(formatDriverVersion(13000)).toBe('13.0');
    expect(formatDriverVersion(12040)).toBe('12.4');
    expect(formatDriverVersion(undefined)).toBeNull();
  });
});
