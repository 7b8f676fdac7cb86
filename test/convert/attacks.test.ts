/**
 * Issue #11: every numbered case of "`coldstart convert` against published attacks" as a committed fixture
 * (fixtures/torch/attacks/, made by make_attacks.py with the real torch) with its outcome: exit code, one line on
 * stderr naming the fact, nothing written, nothing run; bounded memory and time for the pickle bombs; a FIFO
 * refused before it is opened; 1–7-byte inputs exit 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { runCli } from '../helpers/cli.js';
import { readHeader } from '../../src/formats/safetensors.js';
import { AMPLIFICATION_LIMIT } from '../../src/convert/convert.js';

const DIR = fileURLToPath(new URL('../../fixtures/torch/attacks/', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
interface Expect {
  coldstart: 'ok' | number;
  torch: string;
  note: string;
  match?: string;
}
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, Expect>;
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'coldstart-attacks-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
const pwned = () => readdirSync('/tmp').filter((f) => f.startsWith('coldstart_pwned_'));
function fresh(name: string): string {
  const d = join(work, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
}

describe('issue 11 attack fixtures', () => {
  it('has every numbered case (1-5, 7-9 as files; 6 and 10 made below)', () => {
    const names = Object.keys(expected);
    for (const n of ['01_', '02_', '03_', '04_', '05_', '07_', '08_', '09_']) expect(names.some((x) => x.startsWith(n))).toBe(true);
    for (const n of names) expect(existsSync(join(DIR, n))).toBe(true);
    expect(names.length).toBeGreaterThanOrEqual(20);
  });

  for (const [name, e] of Object.entries(expected)) {
    it(`${name}: ${e.coldstart === 'ok' ? 'converted' : `exit ${e.coldstart}`} (${e.note})`, async () => {
      const d = fresh(name);
      const before = pwned();
      const r = await runCli(['convert', join(DIR, name), '-o', join(d, 'out.safetensors')], { cwd: d });
      expect(pwned()).toEqual(before);
      if (e.coldstart === 'ok') {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(readHeader(join(d, 'out.safetensors')).tensors.length).toBeGreaterThan(0);
        return;
      }
      expect(r.code).toBe(e.coldstart);
      // case 10: a refusal is exactly one line naming the file and the fact
      const lines = r.stderr.replace(/\n$/, '').split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^coldstart: error: /);
      expect(lines[0]).toContain(name);
      expect(lines[0]).toMatch(new RegExp(e.match!, 'i'));
      expect(readdirSync(d)).toEqual([]);
    });
  }

  it('case 4: each pickle bomb is refused with peak RSS < 256 MiB, within 20 s even on a loaded machine (unrefused, it would run for minutes; a separate process, dist/ build)', () => {
    for (const name of Object.keys(expected).filter((n) => n.startsWith('04_'))) {
      const d = fresh(`rss-${name}`);
      const r = spawnSync('/usr/bin/time', ['-f', 'RSS_KB=%M WALL=%e', process.execPath, BIN, 'convert', join(DIR, name), '-o', join(d, 'o.safetensors')], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(2);
      const m = /RSS_KB=(\d+) WALL=([\d.]+)/.exec(r.stderr)!;
      expect(m, r.stderr).not.toBeNull();
      const rssMiB = Number(m[1]) / 1024;
      const wall = Number(m[2]);
      expect(rssMiB, `${name}: ${rssMiB.toFixed(0)} MiB`).toBeLessThan(256);
      expect(wall, `${name}: ${wall} s`).toBeLessThan(20);
      expect(r.stderr).toMatch(/object-memory|memo limit/);
    }
  });

  it('case 9: --allow-amplification lets the overlapping views through, and the message states the multiple', async () => {
    const d = fresh('amp');
    const r = await runCli(['convert', join(DIR, '09_stride0_1gib.pt'), '-o', join(d, 'o.safetensors')]);
    expect(r.stderr).toMatch(new RegExp(`would write 1073741824 bytes from 4 bytes of storage .*limit ${AMPLIFICATION_LIMIT}×.*nothing was written`));
    const ok = await runCli(['convert', join(DIR, '09_overlapping_views.pt'), '-o', join(d, 'o.safetensors'), '--allow-amplification']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readHeader(join(d, 'o.safetensors')).tensors).toHaveLength(1000);
  });

  it('case 5: every 1-7-byte input exits 2 with one line (never "outside buffer bounds", exit 3)', async () => {
    const d = fresh('short');
    for (let n = 1; n <= 7; n++) {
      for (const fill of [0x00, 0x41, 0x50, 0x80, 0xff]) {
        const f = join(d, `s${n}-${fill}.bin`);
        writeFileSync(f, Buffer.alloc(n, fill));
        const r = await runCli(['convert', f, '-o', join(d, 'o.safetensors')]);
        expect(r.code, `${n} bytes of ${fill}: ${r.stderr}`).toBe(2);
        expect(r.stderr).not.toMatch(/buffer bounds/);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
      }
    }
    expect(readdirSync(d).filter((f) => !f.endsWith('.bin'))).toEqual([]);
  });

  it('case 6: a model directory whose pytorch_model.bin is a FIFO is refused at once (no open(), no hang)', async () => {
    const d = fresh('fifo');
    const model = join(d, 'model');
    mkdirSync(model);
    expect(spawnSync('mkfifo', [join(model, 'pytorch_model.bin')]).status).toBe(0);
    // a child process, so that a regression (open() blocking) is a timeout here rather than a hung test run
    const child = spawn(process.execPath, [BIN, 'convert', model, '-o', join(d, 'out')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const code = await new Promise<number | null>((res) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        res(null);
      }, 10_000);
      child.on('exit', (c) => {
        clearTimeout(t);
        res(c);
      });
    });
    expect(code, 'convert hung on a FIFO').toBe(2);
    expect(stderr).toMatch(/pytorch_model\.bin: is a FIFO \(named pipe\), not a regular file; refused before opening it/);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(readdirSync(d).sort()).toEqual(['model']);
  });
});
