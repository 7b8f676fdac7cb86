/**
 * The stand-in driver libraries (test/fixtures/stub-driver/: libcuda.so.1 and libnvidia-ml.so.1 written from cuda.h's
 * and nvml.h's documented layouts, not NVIDIA's code), built once per test file, and a child process whose dlopen finds
 * them first: `withStubs(body, env)` runs `body` (an ES module's text with `addon`, the loaded native addon, and
 * `dist`, the built package's folder URL, in scope) there and returns what it returns, through JSON.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export function stubDriver(): { withStubs: (body: string, env?: Record<string, string>) => unknown; dir: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'coldstart-stub-driver-'));
  const src = (f: string) => fileURLToPath(new URL(`../fixtures/stub-driver/${f}`, import.meta.url));
  const dist = new URL('../../dist/', import.meta.url).href;
  let built = false;
  const withStubs = (body: string, env: Record<string, string> = {}): unknown => {
    if (!built) {
      execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', join(dir, 'libcuda.so.1'), src('stub_cuda.c')]);
      execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', join(dir, 'libnvidia-ml.so.1'), src('stub_nvml.c')]);
      built = true;
    }
    const script = `const dist = ${JSON.stringify(dist)}; const { loadNative } = await import(dist + 'native.js'); const n = loadNative(); if (!n.ok) throw new Error(n.reason); const addon = n.addon; const out = await (async () => { ${body} })(); process.stdout.write(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: dir, ...env } });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };
  return { withStubs, dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
