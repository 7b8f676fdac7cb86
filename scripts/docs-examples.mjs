#!/usr/bin/env node
// Docs from the code: runs the README/docs example commands that work on a CPU-only machine (profile demo, convert
// of a fixture, doctor, report merge) with the built CLI (dist/, `npm run build` first) in a fresh HOME, and writes
// each one's output between its markers in README.md / docs/**.md:
//
//   <!-- example: NAME -->
//   ```
//   $ coldstart …
//   …what it printed…
//   [exit N]            (only when not 0)
//   ```
//   <!-- /example -->
//
// test/docs/examples.test.ts runs the same examples again and fails when an example's shape (table rows and
// columns, line kinds, JSON keys, exit code) no longer matches what is committed; never on the numbers.
//
//   node scripts/docs-examples.mjs            rewrite every block
//   node scripts/docs-examples.mjs --check    exit 1 when a block's shape differs from a fresh run (what the test does)
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'coldstart.js');
const FIX = join(ROOT, 'fixtures', 'torch', 'good');

/**
 * Each example: where its block lives, the command as the reader types it (args after `coldstart`), how its
 * output is shaped for comparison, and what it needs in its working directory. `show` turns the run into the
 * block's text (default: what it printed).
 */
export const EXAMPLES = [
  { name: 'profile-demo', file: 'README.md', args: ['profile'], shape: 'table' },
  { name: 'convert-ckpt', file: 'docs/readme/convert.md', args: ['convert', 'lightning.ckpt', '--dtype', 'bf16'], shape: 'lines', setup: (cwd) => copyFileSync(join(FIX, 'lightning.ckpt'), join(cwd, 'lightning.ckpt')) },
  { name: 'convert-ambiguous', file: 'docs/readme/convert.md', args: ['convert', 'ambiguous.pt'], shape: 'lines', setup: (cwd) => copyFileSync(join(FIX, 'ambiguous.pt'), join(cwd, 'ambiguous.pt')) },
  { name: 'convert-hostile', file: 'docs/readme/convert.md', args: ['convert', 'os_system.pt'], shape: 'lines', setup: (cwd) => copyFileSync(join(ROOT, 'fixtures', 'torch', 'hostile', 'os_system.pt'), join(cwd, 'os_system.pt')) },
  { name: 'doctor', file: 'README.md', args: ['doctor'], shape: 'labels' },
  { name: 'doctor-json', file: 'README.md', args: ['doctor', '--json'], typed: 'coldstart doctor --json | jq -c keys', shape: 'json-keys', show: (out) => JSON.stringify(Object.keys(JSON.parse(out))) },
  {
    name: 'report-merge',
    file: 'docs/readme/profile.md',
    args: ['report', 'merge', 'a.json', 'b.json'],
    shape: 'table',
    // Two reports of the built-in demo, as `profile --export-json` writes them.
    setup: (cwd, env) => {
      for (const f of ['a.json', 'b.json']) run(['profile', '--quiet', '--export-json', f], cwd, env);
    },
  },
];

/** Labels whose presence depends on the machine (a GPU, a container), not on the command: left out of shapes. */
const MACHINE_LABELS = /^(gpu \d+|cuda-init|container)$/;

function run(args, cwd, env) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs one example in a fresh HOME (`home`, created if needed) and working directory; the block's text and exit code. */
export function runExample(ex, home) {
  const cwd = join(home, 'work', ex.name);
  mkdirSync(cwd, { recursive: true });
  // A newcomer's machine: a fresh HOME, no config, the venv's Python if the caller set one, a 100-column terminal.
  const env = { PATH: process.env.PATH, HOME: home, COLUMNS: '100', NO_COLOR: '1', ...(process.env.COLDSTART_PYTHON ? { COLDSTART_PYTHON: process.env.COLDSTART_PYTHON } : {}) };
  ex.setup?.(cwd, env);
  const r = run(ex.args, cwd, env);
  const printed = ex.show ? ex.show(r.stdout) : `${r.stdout}${r.stderr}`;
  const body = printed.replace(/\s+$/, '');
  const typed = ex.typed ?? `coldstart ${ex.args.join(' ')}`;
  return { code: r.code, text: `$ ${typed}\n${body}${r.code !== 0 ? `\n[exit ${r.code}]` : ''}` };
}

const OPEN = (name) => `<!-- example: ${name} -->`;
const CLOSE = '<!-- /example -->';

/** The committed block of an example (without the fences), or null when its markers are missing. */
export function readBlock(ex) {
  const md = readFileSync(join(ROOT, ex.file), 'utf8');
  const a = md.indexOf(OPEN(ex.name));
  if (a < 0) return null;
  const b = md.indexOf(CLOSE, a);
  if (b < 0) return null;
  const inner = md.slice(a + OPEN(ex.name).length, b).trim();
  return inner.replace(/^```[a-z]*\n/, '').replace(/\n```$/, '');
}

function writeBlock(ex, text) {
  const path = join(ROOT, ex.file);
  const md = readFileSync(path, 'utf8');
  const a = md.indexOf(OPEN(ex.name));
  const b = a < 0 ? -1 : md.indexOf(CLOSE, a);
  if (a < 0 || b < 0) throw new Error(`${ex.file}: no markers for example ${ex.name} (${OPEN(ex.name)} … ${CLOSE})`);
  writeFileSync(path, `${md.slice(0, a)}${OPEN(ex.name)}\n\`\`\`\n${text}\n\`\`\`\n${md.slice(b)}`);
}

/** The exit code of a block: `[exit N]` on its last line, else 0. */
export function exitOf(text) {
  const m = /\n\[exit (\d+)\]$/.exec(text);
  return m ? Number(m[1]) : 0;
}

/**
 * What must not drift: for a table, its header and the names in its first column (wrapped continuation lines
 * have none), plus the lines outside it reduced to their first word; for lines, each line with numbers, sizes,
 * durations and paths masked; for labels, the first word of each line; for JSON keys, the keys. Never numbers.
 */
export function shapeOf(kind, text) {
  const lines = text.split('\n').slice(1).filter((l) => !/^\[exit \d+\]$/.test(l));
  if (kind === 'json-keys') return JSON.parse(lines.join('\n'));
  if (kind === 'labels') return lines.map((l) => l.split(/\s+/)[0] + (/^gpu \d/.test(l) ? ` ${l.split(/\s+/)[1]}` : '')).filter((l) => l && !MACHINE_LABELS.test(l));
  if (kind === 'table') {
    const out = [];
    let header = true;
    let findings = false;
    for (const l of lines) {
      // Findings depend on this run's measurements (a cold read finds prefetch, a warm one does not): the heading
      // and its numbered items are not part of the command's shape.
      if (/^findings$/.test(l.trim())) {
        findings = true;
        continue;
      }
      if (findings && /^\d+\. /.test(l)) continue;
      findings = false;
      if (/^[┌├└]/.test(l)) continue;
      if (l.startsWith('│')) {
        const cells = l.split('│').slice(1, -1).map((c) => c.trim());
        if (header) out.push(cells.join('|'));
        else if (cells[0] && !MACHINE_LABELS.test(cells[0].replace(/^└ /, ''))) out.push(cells[0]);
        header = false;
        continue;
      }
      // Numbered notes below a table depend on which cells were long on this machine (a container's note).
      const w = l.trim().split(/\s+/)[0];
      // A warning (an outlier, a busy machine) says something about this run, not about the command's shape.
      if (w && !/^\[\d+\]$/.test(w) && w !== 'notes' && w !== 'warning:') out.push(`~${w.replace(/[\d.]+/g, '#')}`);
    }
    return out;
  }
  return lines.map((l) =>
    l
      .replace(/\/[^\s:,)]+/g, '<path>')
      // A unit follows the magnitude (ms or s, KiB or MiB): masked with the number.
      .replace(/[\d.]+\s*[kKMGT]?i?B\/s/g, '#rate')
      .replace(/[\d.]+\s*[kKMGT]?i?B\b/g, '#size')
      .replace(/[\d.]+\s*(µs|ms|s|min|h)\b/g, '#time')
      .replace(/#time( #time)+/g, '#time')
      .replace(/\d+(\.\d+)?/g, '#'),
  );
}

function main() {
  const check = process.argv.includes('--check');
  const home = mkdtempSync(join(tmpdir(), 'coldstart-docs-'));
  let bad = 0;
  try {
    for (const ex of EXAMPLES) {
      const r = runExample(ex, home);
      if (check) {
        const committed = readBlock(ex);
        const same = committed !== null && exitOf(committed) === r.code && JSON.stringify(shapeOf(ex.shape, committed)) === JSON.stringify(shapeOf(ex.shape, r.text));
        if (!same) bad++;
        console.log(`${same ? 'ok  ' : 'DIFF'} ${ex.name} (${ex.file})`);
        if (!same && committed !== null) console.log(`  committed: ${JSON.stringify(shapeOf(ex.shape, committed))} (exit ${exitOf(committed)})\n  now:       ${JSON.stringify(shapeOf(ex.shape, r.text))} (exit ${r.code})`);
      } else {
        writeBlock(ex, r.text);
        console.log(`wrote ${ex.name} → ${ex.file} (exit ${r.code})`);
      }
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  process.exitCode = bad ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
