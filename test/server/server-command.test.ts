/**
 * Every command that starts a server (`profile -- CMD`, `snapshot`, `optimize`) refuses a missing command or a missing
 * ready signal with one wording (server/lifecycle.ts requireServerCommand), exit 2, before anything starts; the
 * functions behind them refuse the same way for library callers.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonError, runCli } from '../helpers/cli.js';
import { runWrapped } from '../../src/server/wrap.js';
import { ColdstartError } from '../../src/core/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-servercmd-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const READY = ['--ready-url', 'http://127.0.0.1:9/health'];
const before: Record<string, string[]> = { profile: [], snapshot: ['-o', join(tmp, 'image')], optimize: ['--persist', join(tmp, 'persist')] };

describe('one refusal for a server command that cannot start', () => {
  for (const name of ['profile', 'snapshot', 'optimize']) {
    it(`${name}: no command after -- and no ready signal, each exit 2 with the shared wording, nothing started`, async () => {
      const example = `Example: coldstart ${name}${name === 'snapshot' ? ' -o IMAGE' : ''} --ready-url http://127.0.0.1:8000/health -- vllm serve MODEL`;
      const a = await runCli(['--json', name, ...before[name], ...READY, '--'], { cwd: tmp });
      expect(a.code, a.stderr).toBe(2);
      expect(jsonError(a)).toMatchObject({ code: 'USAGE', message: `${name}: no server command after --`, hint: example });

      const mark = join(tmp, `started-${name}`);
      const b = await runCli(['--json', name, ...before[name], '--', 'sh', '-c', `touch ${mark}`], { cwd: tmp });
      expect(b.code, b.stderr).toBe(2);
      expect(jsonError(b)).toMatchObject({ code: 'USAGE', message: `${name}: give --ready-url URL or --ready-log REGEX so coldstart knows when the server is ready`, hint: example });
      expect(existsSync(mark)).toBe(false);
      expect(existsSync(join(tmp, 'image'))).toBe(false);
      expect(existsSync(join(tmp, 'persist'))).toBe(false);
    });
  }

  it('a library caller of wrap mode gets the same refusal', async () => {
    const e = await runWrapped({ command: ['true'], cwd: tmp, env: {} }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ColdstartError);
    expect(e).toMatchObject({ code: 'USAGE', exitCode: 2, message: 'profile: give --ready-url URL or --ready-log REGEX so coldstart knows when the server is ready' });
  });
});
