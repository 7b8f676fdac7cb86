/**
 * Suggestions that run: every `→ coldstart …` and every `coldstart …` in backticks that the scenarios print (profile
 * of the demo, of a folder of .bin weights, of a Hub repo in the HF cache offline; convert; prefetch; warmup) is run
 * as printed, from the directory it was printed in, and must not be a usage error or refused input (exit 2).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';

const BIN = resolve(__dirname, '../../bin/coldstart.js');
const root = mkdtempSync(join(tmpdir(), 'cs-suggest-'));
const cwd = join(root, 'work');
const home = join(root, 'home');
mkdirSync(cwd, { recursive: true });
mkdirSync(home, { recursive: true });
afterAll(() => rmSync(root, { recursive: true, force: true }));

// No network: the Hub is a closed loopback port (a suggestion that needs it exits 3, never 2).
const env = { PATH: process.env.PATH!, HOME: home, HF_HOME: join(home, 'hf'), HF_ENDPOINT: 'http://127.0.0.1:9', COLUMNS: '100' };

interface Run {
  code: number;
  out: string;
}

function sh(command: string, extra: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile('sh', ['-c', command], { cwd, env: { ...env, ...extra, CS: `${process.execPath} ${BIN}` }, maxBuffer: 1 << 24, timeout: 300_000 }, (err, stdout, stderr) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` });
    });
  });
}

const cs = (args: string, extra: Record<string, string> = {}) => sh(`$CS ${args}`, extra);

/** The commands a run suggests: `→ coldstart …` and `coldstart …` in backticks. */
function suggestions(text: string): string[] {
  const plain = text.replace(/\u001b\[[0-9;]*m/g, '');
  const arrows = [...plain.matchAll(/→ (coldstart [^\n`]+?)\s*$/gm)].map((m) => m[1]);
  const quoted = [...plain.matchAll(/`(coldstart [^`]+)`/g)].map((m) => m[1]);
  return [...arrows, ...quoted];
}

describe('every suggested command runs as printed', () => {
  it('profile (demo, a .bin folder, an HF-cached repo offline), convert, prefetch, warmup', async () => {
    const printed: Array<{ from: string; command: string; extra: Record<string, string> }> = [];
    const collect = (from: string, r: Run, extra: Record<string, string> = {}) => printed.push(...suggestions(r.out).map((command) => ({ from, command, extra })));

    collect('profile', await cs('profile'));
    // A folder of .bin weights in the working directory (the demo's .bin form, copied here).
    const bin = await cs('profile demo --synthetic --format bin');
    expect(bin.code, bin.out).toBe(0);
    const synth = join(home, '.cache/coldstart/synthetic');
    cpSync(join(synth, readdirSync(synth).find((d) => d.endsWith('-bin'))!), join(cwd, 'binmodel'), { recursive: true });
    collect('profile binmodel', await cs('profile binmodel'));
    // A Hub repo in the HF cache, offline.
    const sha = 'c0ffee'.padEnd(40, '0');
    const repo = join(env.HF_HOME, 'hub', 'models--acme--tiny');
    mkdirSync(join(repo, 'refs'), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), sha);
    cpSync(join(synth, readdirSync(synth).find((d) => d.endsWith('-safetensors'))!), join(repo, 'snapshots', sha), { recursive: true });
    const offline = { HF_HUB_OFFLINE: '1' };
    collect('profile acme/tiny', await cs('profile acme/tiny', offline), offline);
    collect('convert', await cs('convert binmodel -o converted'));
    collect('convert again', await cs('convert binmodel -o converted'));
    collect('prefetch demo', await cs('prefetch demo'));
    collect('prefetch llama3-8b', await cs('prefetch llama3-8b'));
    collect('warmup demo', await cs('warmup demo'));
    collect('warmup', await cs('warmup'));

    const unique = [...new Map(printed.map((p) => [`${p.command} ${JSON.stringify(p.extra)}`, p])).values()];
    // The scenarios do suggest: converting the .bin folder, and caching the model prefetch could not find.
    expect(unique.map((u) => u.command)).toEqual(expect.arrayContaining([expect.stringMatching(/^coldstart convert /), expect.stringMatching(/^coldstart cache llama3-8b/)]));
    for (const u of unique) {
      const r = await sh(u.command.replace(/^coldstart /, '$CS '), u.extra);
      expect(r.code, `${u.from} suggested \`${u.command}\`:\n${r.out}`).not.toBe(2);
    }
  }, 600_000);
});
