/**
 * Profile's table at 100 columns: every cell at most 3 lines; the why and the fix once below the table (numbered,
 * deduped); --verbose adds the long form; a path is never cut with "…".
 */
import { describe, expect, it, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { renderHuman, wrapText, MAX_CELL_LINES } from '../../src/core/reporters/human.js';
import { newReport } from '../../src/core/report.js';
import { Output } from '../../src/core/output.js';
import { tableRows } from '../helpers/table.js';
import { freePort } from '../helpers/fake-servers.js';

const BIN = resolve(__dirname, '../../bin/coldstart.js');
const TREE = resolve(__dirname, '../fixtures-servers/tree-server.mjs');
const home = mkdtempSync(join(tmpdir(), 'cs-cells-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [BIN, ...args], { cwd: home, env: { PATH: process.env.PATH, HOME: home, COLUMNS: '100', ...env }, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

function expectShortCells(stdout: string): void {
  const rows = tableRows(stdout);
  expect(rows.length).toBeGreaterThan(3);
  for (const r of rows) for (const c of r.cells) expect(c.length, c.join('\n')).toBeLessThanOrEqual(MAX_CELL_LINES);
  const table = stdout.slice(stdout.indexOf('┌'), stdout.indexOf('┘'));
  expect(table).not.toContain('…');
  for (const l of table.split('\n')) expect(l.length).toBeLessThanOrEqual(100);
}

describe('profile table cells at COLUMNS=100', () => {
  it('floor profile of the demo: cells ≤ 3 lines, the long why once below the table', async () => {
    const r = await cli(['profile']);
    expect(r.code, r.stderr).toBe(0);
    expectShortCells(r.stdout);
    // Each numbered note is referenced from the table and printed once.
    const refs = [...r.stdout.matchAll(/^\[(\d+)\] /gm)].map((m) => m[1]);
    expect(new Set(refs).size).toBe(refs.length);
    for (const n of refs) expect(r.stdout.slice(r.stdout.indexOf('┌'), r.stdout.indexOf('┘'))).toContain(`[${n}]`);
  }, 120_000);

  it('--verbose: the long form (the CUDA probe\'s own words when there is no driver) below the table, cells still ≤ 3 lines', async () => {
    const r = await cli(['profile', '--verbose', '--json']);
    const doc = JSON.parse(r.stdout) as { phases: Array<{ name: string; status: string; detail?: string }> };
    const ci = doc.phases.find((p) => p.name === 'cuda-init')!;
    const v = await cli(['profile', '--verbose']);
    expect(v.code, v.stderr).toBe(0);
    expectShortCells(v.stdout);
    if (ci.status === 'skipped') {
      expect(ci.detail).toBeTruthy();
      expect(v.stdout.slice(v.stdout.indexOf('┘'))).toContain(ci.detail!.split(' ')[0]);
      const plain = await cli(['profile']);
      expect(plain.stdout).not.toContain(ci.detail!);
    }
  }, 120_000);

  it('wrap mode with an engine that is not recognised: the paragraph once, never in the rows', async () => {
    const p = await freePort();
    const r = await cli(['profile', '--ready-url', `http://127.0.0.1:${p}/health`, '--no-completion', '--', process.execPath, TREE, String(p), join(home, 'tree.pids')]);
    expect(r.code, r.stderr).toBe(0);
    expectShortCells(r.stdout);
    expect(r.stdout.match(/none of the \d+ log lines before ready matched/g)?.length).toBe(1);
  }, 120_000);

  it('a report with long notes, a long path and a repeated note (no container, rendered at 100 columns)', () => {
    const report = newReport('profile');
    const path = `/very/long/${'deep/'.repeat(12)}model-bf16-safetensors`;
    const repeated = 'engine not recognised (see the timeline below the table); its time is inside unexplained';
    report.phases = [
      { name: 'container', status: 'skipped', seconds: null, reason: 'not in a container: nothing to time', notApplicable: true, steps: [], metrics: {}, share: null },
      { name: 'download', status: 'skipped', seconds: null, reason: `nothing to download: synthetic checkpoint in ${path} (see the not-cached what-if row for org/model)`, steps: [], metrics: {}, share: null },
      { name: 'gpu-load', status: 'skipped', seconds: null, reason: repeated, steps: [{ name: 'read', seconds: 0.1, note: `from ${path}` }], metrics: {}, share: null },
      { name: 'warmup', status: 'skipped', seconds: null, reason: repeated, steps: [], metrics: {}, share: null },
    ];
    const style = new Output({ argv: [], env: {}, cwd: () => '/', stdout: { write: () => true }, stderr: { write: () => true } }, { json: false, quiet: false, color: false, debug: false }).style;
    const text = renderHuman(report, style, { width: 100 });
    expectShortCells(text);
    const below = text.slice(text.indexOf('┘'));
    // The whole path, uncut, below the table; the repeated note once.
    expect(below).toContain(path);
    expect(below.split(repeated).length - 1).toBe(1);
    expect(wrapText(path, 20).join('')).toBe(path);
  });
});
