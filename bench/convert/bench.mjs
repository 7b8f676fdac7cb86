#!/usr/bin/env node
// bench/convert: on a ≥ 1 GiB checkpoint, wall time and peak RSS of `coldstart convert` next to `cp` of the same
// bytes (the floor) and the Python path (torch.load(weights_only=True) + safetensors.torch.save_file), in one run,
// interleaved, page cache warm for every contender. Writes bench/convert/RESULTS.md.
//
//   node bench/convert/bench.mjs [--sizes 1.1,4] [--reps 3] [--dir /tmp] [--write]
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, totalmem, release } from 'node:os';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliArgs } from '../lib/args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { opt: arg, flag } = cliArgs();
const sizes = arg('--sizes', arg('--size-gib', '1.1')).split(',').map(Number);
const reps = Number(arg('--reps', '3'));
const work = mkdtempSync(join(arg('--dir', '/tmp'), 'coldstart-bench-convert-'));
const py = execFileSync(join(root, 'scripts', 'pyenv.sh'), { encoding: 'utf8' }).trim();
const input = join(work, 'pytorch_model.bin');
const sections = [];
for (const sizeGiB of sizes) {

// A Llama-shaped state dict in bf16 (embedding, per-layer attention + MLP, norms, tied lm_head) of ~sizeGiB.
const make = `
import sys, torch
target = float(sys.argv[2]) * 2**30
h, inter, vocab = 2048, 5632, 32000
torch.manual_seed(0)
sd = {"model.embed_tokens.weight": torch.randn(vocab, h, dtype=torch.bfloat16)}
per_layer = (4 * h * h + 3 * h * inter) * 2
i = 0
while sum(t.numel() * t.element_size() for t in sd.values()) + per_layer <= target:
    p = f"model.layers.{i}."
    for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
        sd[p + "self_attn." + n + ".weight"] = torch.randn(h, h, dtype=torch.bfloat16)
    sd[p + "mlp.gate_proj.weight"] = torch.randn(inter, h, dtype=torch.bfloat16)
    sd[p + "mlp.up_proj.weight"] = torch.randn(inter, h, dtype=torch.bfloat16)
    sd[p + "mlp.down_proj.weight"] = torch.randn(h, inter, dtype=torch.bfloat16)
    sd[p + "input_layernorm.weight"] = torch.ones(h, dtype=torch.bfloat16)
    i += 1
sd["model.norm.weight"] = torch.ones(h, dtype=torch.bfloat16)
sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
torch.save(sd, sys.argv[1])
print(i, len(sd))
`;
const pyConvert = `
import sys, torch
from safetensors.torch import save_file
sd = torch.load(sys.argv[1], weights_only=True, map_location="cpu")
seen, out = {}, {}
for k, v in sd.items():
    key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride()))
    if key in seen:
        continue
    seen[key] = k
    out[k] = v.contiguous()
save_file(out, sys.argv[2], metadata={"format": "pt"})
`;

console.error(`making a ${sizeGiB} GiB checkpoint in ${work} …`);
const made = execFileSync(py, ['-c', make, input, String(sizeGiB)], { encoding: 'utf8' }).trim();
const inBytes = statSync(input).size;
console.error(`  ${made.split(' ')[0]} layers, ${(inBytes / 2 ** 30).toFixed(2)} GiB`);

function timed(cmd, args) {
  // warm the page cache for the input so every contender reads from memory, then time with GNU time
  execFileSync('cat', [input], { stdio: ['ignore', 'ignore', 'ignore'] });
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const last = r.stderr.trim().split('\n').pop().split(' ');
  let inner = null;
  if (r.stdout.trim().startsWith('{')) inner = JSON.parse(r.stdout).details.throughputBytesPerSecond;
  return { seconds: Number(last[0]), rssKiB: Number(last[1]), inner };
}

const out = join(work, 'out.safetensors');
const contenders = [
  { name: 'cp (floor)', run: () => timed('cp', [input, out]) },
  { name: 'cp + sync (durable floor)', run: () => timed('sh', ['-c', 'cp "$0" "$1" && sync "$1"', input, out]) },
  { name: 'coldstart convert --no-fsync', run: () => timed(process.execPath, [join(root, 'bin', 'coldstart.js'), '--json', 'convert', input, '-o', out, '--no-fsync']) },
  { name: 'coldstart convert (fsync, default)', run: () => timed(process.execPath, [join(root, 'bin', 'coldstart.js'), '--json', 'convert', input, '-o', out]) },
  { name: 'python: torch.load + save_file', run: () => timed(py, ['-c', pyConvert, input, out]) },
];
const results = Object.fromEntries(contenders.map((c) => [c.name, []]));
for (let r = 0; r < reps; r++) {
  for (const c of contenders) {
    rmSync(out, { force: true });
    execFileSync('sync');
    const m = c.run();
    results[c.name].push(m);
    console.error(`  rep ${r + 1} ${c.name}: ${m.seconds.toFixed(2)} s, ${(m.rssKiB / 1024).toFixed(0)} MiB`);
  }
}
rmSync(out, { force: true });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (name) => {
  const s = median(results[name].map((m) => m.seconds));
  const rss = Math.max(...results[name].map((m) => m.rssKiB)) / 1024;
  const inner = results[name][0].inner === null ? null : median(results[name].map((m) => m.inner));
  return { name, s, rss, gbps: inBytes / s / 1e9, inner };
};
const rows = contenders.map((c) => row(c.name));
const cp = rows[0];
const py_ = rows[4];
const cps = rows[1];
const date = execFileSync('date', { encoding: 'utf8' }).trim();
const cpu = cpus()[0]?.model ?? '?';
const fsType = execFileSync('stat', ['-f', '-c', '%T', work], { encoding: 'utf8' }).trim();
const lines = [
  '# bench/convert results',
  '',
  `## ${sizeGiB} GiB checkpoint`,
  '',
  `Machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, no GPU, Linux ${release()}, ${fsType} at ${dirname(work)}.`,
  `Date: ${date}. Input: a Llama-shaped bf16 \`pytorch_model.bin\` written by torch.save, ${(inBytes / 2 ** 30).toFixed(2)} GiB, tied lm_head.`,
  `Load average at start: ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim()} (the machine is shared with other jobs).`,
  `Page cache warm for every run (input read once before each); output deleted and \`sync\` before each run; ${reps} interleaved repetitions, median time, max peak RSS (GNU time %M).`,
  '',
  '| contender | time (s) | throughput | vs its cp floor | vs python | peak RSS | data-phase throughput |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => {
    // durable (fsync) contenders are compared with cp + sync, the others with plain cp
    const floor = /fsync, default|sync \(durable/.test(r.name) ? cps : cp;
    return `| ${r.name} | ${r.s.toFixed(2)} | ${r.gbps.toFixed(2)} GB/s | ${(floor.s / r.s).toFixed(2)}× | ${(py_.s / r.s).toFixed(2)}× faster | ${r.rss.toFixed(0)} MiB | ${r.inner === null ? '—' : `${(r.inner / 1e9).toFixed(2)} GB/s`} |`;
  }),
  '',
  'Targets: ≥ 0.8× cp throughput, ≥ 3× faster than the Python path, peak RSS < 256 MiB. `--no-fsync` matches what cp and save_file do (no fsync); the default fsyncs before the atomic rename and is compared with `cp && sync FILE`.',
  '',
  'Times are whole processes (start to exit). "data-phase throughput" is coldstart\'s own write step from its --json report (tensor bytes / write seconds, no process start-up); the CLI currently spends ~0.25 s starting (0.12 s of it importing execa through doctor/engines), which matters at 1 GiB and vanishes at model sizes where conversion matters.',
  '',
  'Reproduce: `npm run build && npm run build:native && node bench/convert/bench.mjs --sizes 1.1,4 --reps 3 --write` (RESULTS.md is rewritten).',
  '',
];
sections.push(sections.length === 0 ? lines.join('\n') : lines.slice(2).join('\n'));
rmSync(input, { force: true });
}
const text = sections.join('\n');
if (flag('--write')) writeFileSync(join(here, 'RESULTS.md'), text);
console.log(text);
rmSync(work, { recursive: true, force: true });
if (existsSync(work)) console.error(`could not remove ${work}`);

