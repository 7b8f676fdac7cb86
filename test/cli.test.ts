import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli } from './helpers/cli.js';

const bin = fileURLToPath(new URL('../bin/coldstart.js', import.meta.url));

describe('CLI (in-process)', () => {
  it('lists the five commands in --help and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['profile', 'cache', 'convert', 'warmup', 'doctor']) expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
  });

  it('unknown flag is a usage error (exit 2)', async () => {
    const r = await runCli(['--definitely-not-a-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--definitely-not-a-flag'");
  });

  it('unknown command is a usage error (exit 2)', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
  });

  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('bin/coldstart.js (child process)', () => {
  it('runs the built CLI', () => {
    const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('doctor');
  });

  it('--help does not load heavy dependencies (onnxruntime-node, @huggingface/hub are imported lazily)', () => {
    // A loader hook records every module resolved while `coldstart --help` runs.
    const hook = `data:text/javascript,${encodeURIComponent(
      'export async function resolve(s, c, n) { if (/onnxruntime-node|@huggingface\\/hub/.test(s)) process.stderr.write("HEAVY:" + s + "\\n"); return n(s, c); }',
    )}`;
    const reg = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(hook)});`)}`;
    const r = spawnSync(process.execPath, ['--import', reg, bin, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Commands:');
    expect(r.stderr).not.toContain('HEAVY:');
    // The hook itself works: importing the heavy module directly is seen.
    const probe = spawnSync(process.execPath, ['--import', reg, '-e', 'import("@huggingface/hub").catch(() => {})'], { encoding: 'utf8' });
    expect(probe.stderr).toContain('HEAVY:@huggingface/hub');
  });

  it('exits 2 with one clear line for a usage error', () => {
    const r = spawnSync(process.execPath, [bin, 'doctor', '--nope'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toContain("unknown option '--nope'");
  });
});
