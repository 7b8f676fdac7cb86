#!/usr/bin/env node
/**
 * coldstart warmup --compile benchmark (CPU, Inductor's C++ backend): for each fixture model and rep, a fresh
 * persist dir, then one `coldstart warmup MODEL --framework torch --compile --persist DIR` — which runs the cold
 * compile (empty caches) and the start from the persisted cache, each in a fresh Python process, side by side.
 * The ratio is cold / cached first forward under torch.compile (artefact loading included) in the same run.
 *
 *   npx tsc -p tsconfig.json && COLDSTART_PYTHON=… node bench/warmup/compile.mjs [--reps 2] [--out bench/warmup/COMPILE.md]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliArgs } from '../lib/args.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { opt } = cliArgs();
const reps = Number(opt('--reps', '2'));
const outFile = resolve(root, opt('--out', 'bench/warmup/COMPILE.md'));
const models = ['fixtures/torch/models/tiny-llama', 'fixtures/torch/models/tiny-gpt2'];
const rows = [];
const raw = [];
for (const m of models) {
  for (let i = 0; i < reps; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'coldstart-compile-bench-'));
    try {
      const r = spawnSync(process.execPath, [join(root, 'bin/coldstart.js'), '--json', 'warmup', m, '--framework', 'torch', '--compile', '--persist', join(dir, 'store'), '--device', 'cpu', '--runs', '3'], {
        cwd: root,
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      });
      if (r.status !== 0) {
        console.error(`${m}: exit ${r.status}: ${r.stderr}`);
        process.exit(1);
      }
      const c = JSON.parse(r.stdout).details.details.compile;
      raw.push({ model: m, rep: i, ...c });
      console.error(`${m} #${i}: cold ${c.cold.compileSeconds.toFixed(2)} s, cached ${c.cached.compileSeconds.toFixed(2)} s → ${c.ratio.toFixed(2)}×, identical ${c.outputsIdentical}`);
      rows.push({ m, c });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
const fp = raw[0];
const lines = [
  '# coldstart warmup --compile — benchmark results (CPU)',
  '',
  `- date: ${new Date().toISOString()}`,
  `- machine: ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} logical CPUs visible, shared with other jobs), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}`,
  `- torch ${fp.fingerprint.torch} (${fp.fingerprint['cpu isa']}), python ${fp.fingerprint.python}; Inductor C++ backend (g++), mode default, input 1x16`,
  `- reproduce: \`npx tsc -p tsconfig.json && COLDSTART_PYTHON=… node bench/warmup/compile.mjs --reps ${reps}\``,
  '',
  'Each row is one `coldstart warmup MODEL --framework torch --compile --persist DIR` into an empty DIR: the cold',
  'compile (empty Inductor caches) and the start from the persisted entry (a verified private copy; torch.compiler.load_cache_artifacts',
  'then the first forward), each in a fresh Python process. "compile" = first forward under torch.compile (+ artefact loading).',
  '',
  '| model | cold compile | from persisted cache | speed-up | saved per start | entry | Inductor (cached run) | first output |',
  '|---|---:|---:|---:|---:|---:|---|---|',
  ...rows.map(({ m, c }) => {
    const k = c.cached.inductorCache;
    return `| ${m.split('/').pop()} | ${c.cold.compileSeconds.toFixed(2)} s | ${c.cached.compileSeconds.toFixed(2)} s | **${c.ratio.toFixed(2)}×** | ${(c.cold.compileSeconds - c.cached.compileSeconds).toFixed(2)} s | ${(c.entry.bytes / 2 ** 20).toFixed(2)} MiB, ${c.entry.files} files | FX graph ${k.fxgraphHit} hit / ${k.fxgraphMiss} miss | ${c.outputsIdentical ? 'identical' : 'DIFFERS'} |`;
  }),
  '',
];
writeFileSync(outFile, lines.join('\n'));
writeFileSync(outFile.replace(/\.md$/, '.json'), JSON.stringify(raw, null, 2) + '\n');
console.error(`wrote ${outFile}`);
