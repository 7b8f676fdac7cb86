/**
 * The one runner (src/python/runner.ts): a shipped script found beside the module, run by name with the
 * interpreter coldstart picks, its events parsed; no interpreter and a missing package mapped to one error code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peerPython } from '../helpers/python.js';
import { failureOf } from '../helpers/fake-servers.js';
import { probePython, runScript, scriptFailure, scriptPath, type PythonScript } from '../../src/python/runner.js';

const py = peerPython();
const SCRIPTS: PythonScript[] = ['stack.py', 'framework.py', 'compile.py', 'compile_probe.py', 'packages.py'];
let tmp: string;

describe('src/python/runner.ts', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'coldstart-runner-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('every script it names is a file beside it, with common.py', () => {
    for (const s of SCRIPTS) expect(existsSync(scriptPath(s)), s).toBe(true);
    expect(existsSync(scriptPath('common.py'))).toBe(true);
    expect(() => scriptPath('no-such-script.py')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('no interpreter: MISSING_DEPENDENCY naming what needed it and what was tried', async () => {
    const e = await failureOf(runScript({ COLDSTART_PYTHON: join(tmp, 'no-such-python') }, 'packages.py', [], { what: '--framework torch', timeoutMs: 10_000 }));
    expect(e).toMatchObject({ code: 'MISSING_DEPENDENCY', exit: 3 });
    expect(e.message).toContain('--framework torch');
    expect(e.message).toContain('no-such-python');
  });

  it.skipIf(!py)('runs a script by name and parses its events (doctor: the package probe)', async () => {
    const r = await runScript({ COLDSTART_PYTHON: py!, PATH: process.env.PATH }, 'packages.py', ['torch', 'no_such_package_xyz'], { what: 'test', timeoutMs: 60_000 });
    expect(r.exitCode).toBe(0);
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ event: 'python', packages: { no_such_package_xyz: null } });
    expect(String((r.events[0]!.packages as Record<string, string>).torch)).toMatch(/^2\./);
    const info = await probePython({ COLDSTART_PYTHON: py!, PATH: process.env.PATH });
    expect(info).toMatchObject({ found: true, packages: { torch: expect.stringMatching(/^2\./) } });
  });

  it.skipIf(!py)('an interpreter without the package: the script reports it missing, mapped to MISSING_DEPENDENCY', async () => {
    // The same interpreter, isolated (-I: no script folder on sys.path, no user site) and without site-packages (-S):
    // the scripts still find common.py (they put their own folder on sys.path) and report torch missing.
    const bare = join(tmp, 'bare-python');
    writeFileSync(bare, `#!/bin/sh\nexec ${JSON.stringify(py)} -I -S "$@"\n`);
    chmodSync(bare, 0o755);
    const r = await runScript({ COLDSTART_PYTHON: bare }, 'compile_probe.py', ['cpu'], { what: '--compile', timeoutMs: 60_000 });
    expect(r.exitCode).toBe(4);
    expect(r.events).toEqual([expect.objectContaining({ event: 'missing', package: 'torch' })]);
    const e = scriptFailure(r, '--compile', { seconds: 60, hint: '' });
    expect(e).toMatchObject({ code: 'MISSING_DEPENDENCY' });
    expect(e.message).toContain('bare-python');
  });
});
