/**
 * Engines name their options as their API does (library callers of runGpuLoad, runPrefetch, convertCheckpoint
 * pass options, not flags); a command rewords such an error with the flag its user typed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asFlagError, withFlagNames } from '../../src/commands/flag-names.js';
import { ColdstartError, invalidOption } from '../../src/core/errors.js';
import { runPrefetch } from '../../src/load/prefetch.js';
import { convertCheckpoint } from '../../src/convert/convert.js';
import { parseSince } from '../../src/platform/container.js';
import { checkRevision } from '../../src/cache/layout.js';
import { parseServerUrl } from '../../src/server/http.js';
import { runWarmup } from '../../src/warmup/warmup.js';
import { planProfile } from '../../src/profile/plan.js';
import { jsonError, runCli } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-flagnames-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sharded = fileURLToPath(new URL('../../fixtures/gpuload/sharded', import.meta.url));
const tinyBin = fileURLToPath(new URL('../../fixtures/torch/models/tiny-gpt2/pytorch_model.bin', import.meta.url));

async function caught(p: Promise<unknown>): Promise<ColdstartError> {
  return p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: ColdstartError) => e,
  );
}

describe('option errors: the engine names its option, the command its flag', () => {
  it('asFlagError rewords only an option the command maps, keeping code, hint and exit code', () => {
    const e = invalidOption('chunkBytes', 'a multiple of 4096', 1000, 'Use 8 MiB.');
    expect(e.message).toBe('chunkBytes: expected a multiple of 4096, got 1000');
    const f = asFlagError(e, { chunkBytes: '--chunk-bytes' }) as ColdstartError;
    expect(f).toMatchObject({ code: 'BAD_FLAG', exitCode: 2, hint: 'Use 8 MiB.', message: '--chunk-bytes: expected a multiple of 4096, got 1000', details: { option: 'chunkBytes', flag: '--chunk-bytes' } });
    expect(asFlagError(e, { threads: '--threads' })).toBe(e);
    const other = new ColdstartError('NOT_FOUND', 'chunkBytes: gone');
    expect(asFlagError(other, { chunkBytes: '--chunk-bytes' })).toBe(other);
    expect(asFlagError('not an error', { chunkBytes: '--chunk-bytes' })).toBe('not an error');
  });

  it('library calls: runPrefetch and convertCheckpoint name their options; withFlagNames gives the flag', async () => {
    const files = [join(sharded, 'model-00001-of-00002.safetensors')];
    const s = await caught(runPrefetch({ files, strategy: 'mmap' as never }));
    expect(s).toMatchObject({ code: 'BAD_FLAG', message: expect.stringMatching(/^strategy: expected /), details: { option: 'strategy' } });
    expect((await caught(runPrefetch({ files, threads: 0 }))).message).toMatch(/^threads: expected a whole number from 1 to 256/);
    expect((await caught(withFlagNames({ threads: '--threads' }, () => runPrefetch({ files, threads: 0 })))).message).toMatch(/^--threads: expected /);
    // convertCheckpoint checks what a library caller passes by the option's name, before reading anything.
    for (const [o, option] of [
      [{ dtype: 'fp16' }, 'dtype'],
      [{ shardSize: 0 }, 'shardSize'],
    ] as const) {
      const e = await caught(convertCheckpoint({ input: tinyBin, output: join(tmp, 'x.safetensors'), ...(o as object) }));
      expect(e, option).toMatchObject({ code: 'BAD_FLAG', exitCode: 2, details: { option } });
      expect(e.message.startsWith(`${option}: expected`)).toBe(true);
    }
  });

  it('CLI: profile --devices 0,0 is refused naming --devices (the loader refused its devices option), exit 2', async () => {
    const r = await runCli(['profile', sharded, '--only', 'gpu-load', '--devices', '0,0', '--json'], { env: { COLDSTART_CACHE: join(tmp, 'cache'), HF_HUB_OFFLINE: '1', COLDSTART_PROBE_BYTES: String(4 << 20) } });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'BAD_FLAG', message: expect.stringMatching(/^--devices: expected distinct device indexes/), details: { option: 'devices', flag: '--devices' } });
  });

  it('engines name their options, never a CLI flag: since, revision, url, url with framework, synthetic', async () => {
    const thrown = (f: () => unknown): ColdstartError => {
      try {
        f();
      } catch (e) {
        return e as ColdstartError;
      }
      throw new Error('expected a refusal');
    };
    expect(thrown(() => parseSince('yesterday')).message).toMatch(/^since: /);
    expect(thrown(() => checkRevision('a..b')).message).toMatch(/^revision: /);
    expect(thrown(() => parseServerUrl('ftp://x'))).toMatchObject({ code: 'BAD_FLAG', details: { option: 'url' } });
    expect((await caught(runWarmup({ url: 'http://127.0.0.1:9', framework: 'torch' })))).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/^url and framework /) });
    expect(thrown(() => planProfile({ model: 'org/repo', synthetic: true } as never, tmp))).toMatchObject({ code: 'UNKNOWN_MODEL', message: expect.stringMatching(/^synthetic: /), details: { option: 'synthetic' } });
    for (const e of [thrown(() => parseSince('yesterday')), thrown(() => checkRevision('a..b'))]) expect(e.message).not.toMatch(/--/);
  });

  it('CLI: the commands name their flags for the same refusals (exit 2)', async () => {
    const env = { COLDSTART_CACHE: join(tmp, 'cache'), HF_HUB_OFFLINE: '1', HF_HOME: join(tmp, 'hf'), HF_HUB_CACHE: join(tmp, 'hub') };
    const cases: Array<[string[], string, string]> = [
      [['profile', '--only', 'container', '--since', 'yesterday'], 'BAD_FLAG', '--since: '],
      [['cache', 'org/tiny', '--revision', 'a..b'], 'BAD_FLAG', '--revision: '],
      [['cache', 'verify', 'org/tiny', '--revision', 'a..b'], 'BAD_FLAG', '--revision: '],
      [['warmup', '--url', 'ftp://x'], 'BAD_FLAG', '--url: '],
      [['warmup', '--url', 'http://127.0.0.1:9', '--framework', 'torch'], 'USAGE', '--url and --framework '],
      [['profile', 'org/repo', '--synthetic'], 'UNKNOWN_MODEL', '--synthetic: '],
      [['convert', 'x.bin', '--shard-size', 'lots'], 'BAD_FLAG', '--shard-size: '],
    ];
    for (const [args, code, start] of cases) {
      const r = await runCli(['--json', ...args], { env });
      expect(r.code, args.join(' ')).toBe(2);
      const e = jsonError(r);
      expect(e.code, args.join(' ')).toBe(code);
      expect(e.message.startsWith(start), `${args.join(' ')}: ${e.message}`).toBe(true);
    }
  });
});
