import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { pcieBandwidth, formatDriverVersion } from '../../src/platform/pcie.js';
import { versionAtLeast } from '../../src/core/version.js';

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

  it("CRIU's version: one older than 4.2 gets the fix, one that could not be read is said so, never passed silently", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-criu-'));
    const fake = (name: string, said: string): string => {
      const p = join(dir, name);
      writeFileSync(p, `#!/bin/sh\n[ "$1" = --version ] && { printf '%s\\n' '${said}'; exit 0; }\nexit 0\n`);
      chmodSync(p, 0o755);
      return p;
    };
    const fixes = async (criu: string): Promise<string> => JSON.parse((await runCli(['doctor', '--json'], { env: { COLDSTART_CRIU: criu } })).stdout).snapshot.fixes.join('\n');
    expect(await fixes(fake('old', 'Version: 3.19'))).toMatch(/^CRIU 3\.19 cannot dump TCP sockets on Linux 6\.16\+: install 4\.2 or newer \(eval "\$\(\/.*\/scripts\/ci-criu\.sh\)"\)$/m);
    expect(await fixes(fake('odd', 'criu (git build)'))).toMatch(/^CRIU's version was not read \("criu \(git build\)"\); 4\.2 or newer is needed/m);
    const recent = await fixes(fake('new', 'Version: 4.10.1'));
    expect(recent).not.toMatch(/TCP sockets/);
  });

  it('human output names every section and says why CUDA is unavailable', async () => {
    const r = await runCli(['doctor']);
    expect(r.code).toBe(0);
    for (const k of ['node', 'addon', 'cuda', 'disk', 'hf cache', 'python', 'container']) expect(r.stdout).toMatch(new RegExp(`^${k}\\s`, 'm'));
    expect(r.stderr).toBe('');
  });
});

describe('versions compared as numbers (kernel, CRIU, Node)', () => {
  it('major.minor at least, whatever follows; null when no number leads', () => {
    expect(versionAtLeast('6.18.44-fc-v1272-gpu', 5, 10)).toBe(true);
    expect(versionAtLeast('5.10.0-28-amd64', 5, 10)).toBe(true);
    expect(versionAtLeast('5.4.0-150-generic', 5, 10)).toBe(false);
    expect(versionAtLeast('5.9.16', 5, 10)).toBe(false);
    expect(versionAtLeast('10.0', 5, 10)).toBe(true);
    expect(versionAtLeast('4.10.1', 4, 2)).toBe(true);
    expect(versionAtLeast('3.19', 4, 2)).toBe(false);
    expect(versionAtLeast('v20.11.0', 20)).toBe(true);
    expect(versionAtLeast('18', 20)).toBe(false);
    expect(versionAtLeast('unknown', 5, 10)).toBeNull();
    expect(versionAtLeast('', 4, 2)).toBeNull();
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
