#!/usr/bin/env node
// A server that writes one 16/32/64 MiB line without a newline (blocking writes) before it can go on and
// answer /health: how long until wrap mode sees it ready, and how long the server's own writes were held up
// (back-pressure), BEFORE (wrap.ts at the merge-base with main) and AFTER (dist/). Same machine, same run.
// Usage: node bench/wrap/long-line.mjs [MB…]   (default 16 32 64). Needs `npm run build` first.
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, cpus } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../', import.meta.url));
const after = await import(pathToFileURL(join(root, 'dist/server/wrap.js')).href);
const base = execFileSync('git', ['merge-base', 'HEAD', 'main'], { cwd: root }).toString().trim();
const tmp = mkdtempSync(join(tmpdir(), 'cs-wrap-long-'));
const oldJs = ts.transpileModule(execFileSync('git', ['show', `${base}:src/engines/wrap.ts`], { cwd: root }).toString(), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText.replaceAll("'../core/", `'${pathToFileURL(join(root, 'dist/core')).href}/`);
writeFileSync(join(tmp, 'wrap-before.mjs'), oldJs);
const before = await import(pathToFileURL(join(tmp, 'wrap-before.mjs')).href);
const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const rows = [];
let port = 20800;
for (const mb of sizes.length ? sizes : [16, 32, 64]) {
  for (const [label, mod] of [['before', before], ['after', after]]) {
    const p = port++;
    let serverMs = null;
    const r = await mod.runWrapped({
      command: [process.execPath, join(root, 'test/fixtures-servers/long-line-server.mjs'), String(p), String(mb)],
      readyUrl: `http://127.0.0.1:${p}/health`,
      completionUrl: false,
      readyTimeoutSeconds: 300,
      env: process.env,
      cwd: tmp,
      onLine: (l) => {
        const m = /^done writing \d+ MiB in (\d+) ms$/.exec(l.text);
        if (m) serverMs = Number(m[1]);
      },
    });
    rows.push({ mb, code: label, readySeconds: r.readySeconds, serverWriteMs: serverMs });
    process.stderr.write(`${mb} MiB ${label}: ready ${r.readySeconds.toFixed(2)} s, server writes ${serverMs} ms\n`);
  }
}
rmSync(tmp, { recursive: true, force: true });
writeFileSync(join(root, 'bench/wrap/long-line.json'), JSON.stringify({ date: new Date().toISOString(), base, cpus: cpus().length, cpu: cpus()[0]?.model, rows }, null, 1));
console.log('| line size | ready, before | ready, after | server blocked in write(), before | after | ratio before/after (ready) |');
console.log('|---:|---:|---:|---:|---:|---:|');
for (const mb of [...new Set(rows.map((r) => r.mb))]) {
  const b = rows.find((r) => r.mb === mb && r.code === 'before');
  const a = rows.find((r) => r.mb === mb && r.code === 'after');
  console.log(`| ${mb} MiB | ${b.readySeconds.toFixed(2)} s | ${a.readySeconds.toFixed(2)} s | ${b.serverWriteMs} ms | ${a.serverWriteMs} ms | ${(b.readySeconds / a.readySeconds).toFixed(1)}× |`);
}
