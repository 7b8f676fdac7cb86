#!/usr/bin/env node
// Builds the optional native addon at install time. coldstart works without it (doctor says why),
// so a failed build prints what to do and lets the install succeed.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

if (process.env.COLDSTART_SKIP_NATIVE === '1') {
  console.warn('coldstart: COLDSTART_SKIP_NATIVE=1, native addon not built');
  process.exit(0);
}
const npmNodeGyp = process.env.npm_config_node_gyp;
const cmd = npmNodeGyp ? process.execPath : 'node-gyp';
const args = npmNodeGyp ? [npmNodeGyp, 'rebuild'] : ['rebuild'];
const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: path.join(__dirname, '..') });
if (r.status !== 0) {
  console.warn(
    'coldstart: the native addon did not build; GPU probing, GPU loads and fast conversion are unavailable.\n' +
      '  To fix: install a C++ toolchain (g++, make, python3), then run `npm rebuild coldstart`.\n' +
      '  Everything else works without it; `coldstart doctor` shows the state.',
  );
}
process.exit(0);
