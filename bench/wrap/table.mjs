#!/usr/bin/env node
// The closing table for issue #13: every real log in fixtures/server-logs × (engine, version, stages found,
// max error against the log's own timestamps) for this tree (from dist/) and, with --before REV:PATH, an older
// single-file wrap.ts (e.g. 1a2b3c4:src/engines/wrap.ts, transpiled on the fly). "direct" feeds each line at its
// log time; "replay" plays the log behind a loopback server through runWrapped (this tree only): the live
// accuracy that test/server/wrap-replay.test.ts leaves to this bench. Needs `npm run build` first.
// Usage: node bench/wrap/table.mjs [--no-replay] [--before REV:PATH]   → prints Markdown, writes bench/wrap/table.json
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir, cpus } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { timedLines, expectedSplit } from '../../test/fixtures-servers/log-time.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const after = { ...(await import(pathToFileURL(join(root, 'dist/server/wrap.js')).href)), ...(await import(pathToFileURL(join(root, 'dist/server/stages.js')).href)) };
const tmp = mkdtempSync(join(tmpdir(), 'cs-wrap-table-'));
const beforeArg = process.argv.includes('--before') ? process.argv[process.argv.indexOf('--before') + 1] : null;
let before = null;
if (beforeArg) {
  const oldSrc = execFileSync('git', ['show', beforeArg], { cwd: root }).toString();
  const oldJs = ts.transpileModule(oldSrc, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText.replaceAll("'../core/", `'${pathToFileURL(join(root, 'dist/core')).href}/`);
  writeFileSync(join(tmp, 'wrap-before.mjs'), oldJs);
  before = await import(pathToFileURL(join(tmp, 'wrap-before.mjs')).href);
}
const base = beforeArg ?? null;

const logsDir = join(root, 'fixtures/server-logs');
const logs = readdirSync(logsDir).flatMap((e) => readdirSync(join(logsDir, e)).filter((f) => f.endsWith('.log')).map((f) => join(logsDir, e, f)));
const replay = !process.argv.includes('--no-replay');

const phaseSum = (stages, phases) => stages.filter((s) => phases.includes(s.phase)).reduce((a, s) => a + (s.ownSeconds ?? s.end - s.start), 0);
/** Errors per compared phase; compile folded into warmup (the old code had no compile phase). */
function errors(exp, stages, readyAt, scale = 1) {
  const groups = { download: ['download'], 'gpu-load': ['gpu-load'], 'compile+warmup': ['compile', 'warmup'] };
  const truth = { download: 0, 'gpu-load': 0, 'compile+warmup': 0 };
  for (const [k, v] of Object.entries(exp.phases)) truth[k.includes('compile') || k === 'warmup' ? 'compile+warmup' : k] += v;
  const rows = [];
  let explained = 0;
  for (const [g, ph] of Object.entries(groups)) {
    const m = phaseSum(stages, ph) / scale;
    explained += m;
    rows.push({ phase: g, truth: truth[g], measured: m });
  }
  rows.push({ phase: 'unexplained', truth: exp.unexplained, measured: readyAt / scale - explained });
  for (const r of rows) r.err = Math.abs(r.measured - r.truth);
  const worst = rows.reduce((a, r) => (r.err > a.err ? r : a));
  return { rows, worst, pctOfTotal: (100 * worst.err) / exp.total };
}

async function replayOne(log, exp) {
  const port = 20200 + Math.floor(Math.random() * 500);
  const wall = Math.min(3, Math.max(1.2, exp.total * 0.02));
  const scale = wall / exp.total;
  const r = await after.runWrapped({ command: [process.execPath, join(root, 'test/fixtures-servers/replay-server.mjs'), log, String(port), String(scale)], readyUrl: `http://127.0.0.1:${port}/health`, completionUrl: false, readyPollMs: 10, readyTimeoutSeconds: wall + 20, stopTimeoutSeconds: 2, reportedScale: scale, keepLines: true, env: process.env, cwd: tmp });
  const first = r.lines[0].t;
  const lastLine = r.lines.at(-1).t;
  const shifted = r.lines.map((l) => ({ ...l, t: l.t - first }));
  const { stages } = after.stagesFromLog(shifted, lastLine - first, [], scale);
  return { ...errors(exp, stages, lastLine - first, scale), readyLatencyMs: (r.readySeconds - lastLine) * 1000 };
}

const out = [];
for (const log of logs) {
  const name = log.slice(logsDir.length + 1);
  const exp = expectedSplit(log);
  const lines = timedLines(readFileSync(log, 'utf8')).map((l) => ({ t: l.t, stream: 'stderr', text: l.line }));
  const readyAt = lines.at(-1).t;
  const b = before ? before.stagesFromLog(lines, readyAt) : { engine: null, stages: [] };
  const a = after.stagesFromLog(lines, readyAt);
  const row = {
    log: name,
    stuck: !!exp.meta.stuck,
    total: exp.total,
    before: { engine: b.engine, stages: [...new Set(b.stages.map((s) => s.stage))], ...(exp.meta.stuck || !before ? {} : errors(exp, b.stages, readyAt)) },
    after: { engine: a.engine, version: a.version, stages: [...new Set(a.stages.map((s) => s.stage))], ...(exp.meta.stuck ? {} : errors(exp, a.stages, readyAt)) },
  };
  if (replay && !exp.meta.stuck) row.replay = await replayOne(log, exp);
  out.push(row);
  process.stderr.write(`${name}\n`);
}
rmSync(tmp, { recursive: true, force: true });
writeFileSync(join(root, 'bench/wrap/table.json'), JSON.stringify({ date: new Date().toISOString(), base, cpus: cpus().length, cpu: cpus()[0]?.model, rows: out }, null, 1));
const f = (x) => (!x?.worst ? '—' : `${x.worst.phase} ${x.worst.err.toFixed(1)} s (${x.pctOfTotal.toFixed(1)} % of start)`);
console.log('| log | total s | engine before → after (version) | stages before | stages after | max error before | max error after (direct) | after, replayed |');
console.log('|---|---:|---|---|---|---|---|---|');
for (const r of out) {
  console.log(`| ${r.log} | ${r.total.toFixed(1)}${r.stuck ? ' (stuck)' : ''} | ${r.before.engine ?? '—'} → ${r.after.engine ?? '—'}${r.after.version ? ` (${r.after.version})` : ''} | ${r.before.stages.join('; ') || '—'} | ${r.after.stages.join('; ')} | ${r.stuck ? 'not ready' : f(r.before)} | ${r.stuck ? 'not ready' : f(r.after)} | ${r.replay ? `${f(r.replay)}; ready +${r.replay.readyLatencyMs.toFixed(0)} ms` : '—'} |`);
}
