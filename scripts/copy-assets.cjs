#!/usr/bin/env node
// Copies the runtime files tsc does not emit (src/**/*.py: the Python coldstart runs; src/**/*.cjs: the server
// watchdog, a plain CommonJS script) into dist/ at the same
// relative paths, so the package ships them beside the modules that run them (src/python/runner.ts resolves
// `new URL('./stack.py', import.meta.url)`). Run by `npm run build`, `prepare` and `prepack`, after tsc.
// Also removes from dist/ what would ship stale: a .py whose source is gone, and Python's __pycache__ folders.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'src');
const dist = path.join(root, 'dist');
const ASSET = /\.(py|cjs)$/;

function walk(dir, visit) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (visit(p, true) !== false) walk(p, visit);
    } else if (e.isFile()) visit(p, false);
  }
}

let copied = 0;
let removed = 0;
if (fs.existsSync(dist)) {
  walk(dist, (p, isDir) => {
    if (isDir && path.basename(p) === '__pycache__') {
      fs.rmSync(p, { recursive: true, force: true });
      removed++;
      return false;
    }
    if (!isDir && ASSET.test(p) && !fs.existsSync(path.join(src, path.relative(dist, p)))) {
      fs.rmSync(p);
      removed++;
    }
    return true;
  });
}
walk(src, (p, isDir) => {
  if (isDir) return path.basename(p) !== '__pycache__';
  if (!ASSET.test(p)) return true;
  const to = path.join(dist, path.relative(src, p));
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(p, to);
  copied++;
  return true;
});
console.error(`copy-assets: ${copied} file(s) copied into dist/${removed ? `, ${removed} stale entr${removed === 1 ? 'y' : 'ies'} removed` : ''}`);
