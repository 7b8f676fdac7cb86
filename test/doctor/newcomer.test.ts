/**
 * What doctor tells a newcomer: onnxruntime-node (usable, or why not and the exact reinstall line), the Python it
 * uses and that COLDSTART_PYTHON chooses another, the config file in force (found in a parent folder too, and named
 * whenever it applies budgets), and CRIU's fix naming the shipped script by absolute path.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runCli } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'cs-doctor-new-'));
const deep = join(root, 'project', 'sub');
mkdirSync(deep, { recursive: true });
const config = join(root, 'project', 'coldstart.config.json');
writeFileSync(config, JSON.stringify({ budgets: { download: '1s' } }));
const env = { HOME: root, HF_HOME: join(root, 'hf'), COLDSTART_CRIU: join(root, 'no-criu-here'), PATH: '/usr/bin:/bin' };
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Doc {
  onnx: { usable: boolean; module: string; reason?: string; fix?: string; version?: string };
  python: { chosenBy: string; executable?: string };
  config: { path: string | null; budgets: Record<string, number> };
  snapshot: { fixes: string[] };
}

describe('doctor for a newcomer', () => {
  it('onnxruntime-node missing: says so, with the exact reinstall line into coldstart\'s own folder', async () => {
    const r = await runCli(['doctor', '--json'], { env: { ...env, COLDSTART_ORT_MODULE: 'no-such-ort-module' }, cwd: deep });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.onnx).toMatchObject({ usable: false, module: 'no-such-ort-module' });
    expect(doc.onnx.fix).toMatch(/^npm install --prefix \/\S+ --no-save onnxruntime-node@/);
    expect(existsSync(join(doc.onnx.fix!.split(' ')[3]!, 'package.json'))).toBe(true);
    const human = await runCli(['doctor'], { env: { ...env, COLDSTART_ORT_MODULE: 'no-such-ort-module' }, cwd: deep });
    expect(human.stdout).toMatch(/^onnx\s+no-such-ort-module not usable/m);
    expect(human.stdout).toContain(doc.onnx.fix!);
  }, 60_000);

  it('the installed onnxruntime-node: usable with its version', async () => {
    const doc = JSON.parse((await runCli(['doctor', '--json'], { env, cwd: deep })).stdout) as Doc;
    expect(doc.onnx.usable).toBe(true);
    expect(doc.onnx.version).toMatch(/^\d+\.\d+/);
  }, 60_000);

  it('which Python, and whether COLDSTART_PYTHON chose it', async () => {
    const plain = await runCli(['doctor'], { env, cwd: deep });
    expect(plain.stdout).toMatch(/COLDSTART_PYTHON=\S+ chooses another \(not set\)/);
    const chosen = JSON.parse((await runCli(['doctor', '--json'], { env: { ...env, COLDSTART_PYTHON: '/usr/bin/python3' }, cwd: deep })).stdout) as Doc;
    expect(chosen.python.chosenBy).toBe('COLDSTART_PYTHON');
    expect((await runCli(['doctor'], { env: { ...env, COLDSTART_PYTHON: '/usr/bin/python3' }, cwd: deep })).stdout).toContain('chosen by COLDSTART_PYTHON (set)');
  }, 60_000);

  it('the config file in force, found in a parent folder, with its budgets; CRIU\'s fix names the shipped script', async () => {
    const doc = JSON.parse((await runCli(['doctor', '--json'], { env, cwd: deep })).stdout) as Doc;
    expect(doc.config).toEqual({ path: config, budgets: { download: 1 } });
    const fix = doc.snapshot.fixes.find((f) => f.includes('ci-criu.sh'))!;
    const script = /"\$\((\S+ci-criu\.sh)\)"/.exec(fix)![1]!;
    expect(script.startsWith('/')).toBe(true);
    expect(existsSync(script)).toBe(true);
    const none = JSON.parse((await runCli(['doctor', '--json'], { env, cwd: root })).stdout) as Doc;
    expect(none.config.path).toBeNull();
  }, 60_000);

  it('a profile whose budgets come from a parent folder\'s config names the file; nothing to download meets download=1s', async () => {
    const r = await runCli(['profile', '--only', 'download'], { env, cwd: deep });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`budgets from ${config}`);
    expect(r.stdout).toMatch(/✓ budget met: download took 0 s/);
    // Every budget from the command line: the file applies none, so it is not named.
    const flags = await runCli(['profile', '--only', 'download', '--budget', 'download=2s'], { env, cwd: deep });
    expect(flags.code).toBe(0);
    expect(flags.stdout).not.toContain('budgets from');
  }, 120_000);
});
