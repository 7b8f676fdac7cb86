import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';

const bin = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));

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

  it('--help does not load heavy dependencies (onnxruntime-node, execa are imported lazily)', () => {
    // A loader hook records every module resolved while `coldstart --help` runs.
    const hook = `data:text/javascript,${encodeURIComponent(
      'export async function resolve(s, c, n) { if (/^(onnxruntime-node|execa)$/.test(s)) process.stderr.write("HEAVY:" + s + "\\n"); return n(s, c); }',
    )}`;
    const reg = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(hook)});`)}`;
    const r = spawnSync(process.execPath, ['--import', reg, bin, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Commands:');
    expect(r.stderr).not.toContain('HEAVY:');
    // The hook itself works: importing the heavy module directly is seen.
    const probe = spawnSync(process.execPath, ['--import', reg, '-e', 'import("onnxruntime-node").catch(() => {})'], { encoding: 'utf8' });
    expect(probe.stderr).toContain('HEAVY:onnxruntime-node');
  });

  it('exits 2 with one clear line for a usage error', () => {
    const r = spawnSync(process.execPath, [bin, 'doctor', '--nope'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toContain("unknown option '--nope'");
  });
});

describe('Unix manners', () => {
  it.each([
    [['convert'], "missing required argument 'input'"],
    [['cache'], "missing required argument 'repo'"],
    [['report', 'merge'], "missing required argument 'files'"],
    [['doctor', '--nope'], "unknown option '--nope'"],
  ])('%j without its required input: exit 2, usage, every line starts with coldstart:', async (args, msg) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`coldstart: ${msg}`);
    expect(r.stderr).toContain(`coldstart: usage: coldstart ${args.filter((a) => !a.startsWith('-')).join(' ')} `);
    for (const l of lines) expect(l).toMatch(/^coldstart: /);
  });

  it('a command group without its subcommand (`report`) is a usage error: exit 2, help on stderr', async () => {
    const r = await runCli(['report']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('merge');
  });

  it('a reader that went away (EPIPE on stdout) ends quietly with 141, never 1 and never a stack', async () => {
    const child = spawn(process.execPath, [bin, 'cache', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the read end closes before the CLI writes a byte: its first write gets EPIPE
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code).toBe(141); // 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe
    expect(stderr).toBe('');
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s ends a waiting command with %d and "interrupted", claiming no removed output when none existed', async (sig, status) => {
    // --wait polls a closed port until its timeout: a command that is busy doing nothing, with no temp files.
    const child = spawn(process.execPath, [bin, 'warmup', '--url', 'http://127.0.0.1:9', '--wait', '--timeout', '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const t0 = Date.now();
    while (!stderr.includes('probing') && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 20));
    child.kill(sig);
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code).toBe(status);
    expect(stderr).toContain(`coldstart: interrupted (${sig})\n`);
    expect(stderr).not.toContain('partial output removed');
  });
});

