#!/usr/bin/env node
// Builds the prebuilt addons that ship in the npm package: prebuilds/linux-x64/coldstart.napi.glibc.node and
// prebuilds/linux-arm64/coldstart.napi.glibc.node, each with libcoldstart_load.so beside it (N-API: one file serves every Node >= 20), stripped, with
// libstdc++ linked statically so they need only glibc. arm64 is cross-compiled with aarch64-linux-gnu-g++
// (Debian: apt-get install g++-aarch64-linux-gnu). Runs in `prepack`, so the tarball always carries prebuilds of
// the sources it ships; prebuilds/ is not in git.
//
//   node scripts/prebuild.cjs [x64] [arm64]      default: both; a missing cross compiler is an error
//   COLDSTART_PREBUILD_ARCHES="x64"              the same, from the environment (e.g. a host without the cross gcc)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { compile, root } = require('./native-build.cjs');

const toolchains = {
  x64: { cxx: 'x86_64-linux-gnu-g++', strip: 'x86_64-linux-gnu-strip' },
  arm64: { cxx: 'aarch64-linux-gnu-g++', strip: 'aarch64-linux-gnu-strip' },
};

function have(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

async function main() {
  if (process.platform !== 'linux') throw new Error('prebuilds are built on Linux (glibc)');
  const argv = process.argv.slice(2);
  const arches = argv.length ? argv : (process.env.COLDSTART_PREBUILD_ARCHES || 'x64 arm64').split(/[\s,]+/).filter(Boolean);
  for (const arch of arches) {
    const tc = toolchains[arch];
    if (!tc) throw new Error(`unknown arch ${arch} (known: ${Object.keys(toolchains).join(', ')})`);
    // The host's own compiler serves its own arch.
    const native = arch === process.arch;
    const cxx = have(tc.cxx) ? tc.cxx : native ? 'c++' : null;
    const strip = have(tc.strip) ? tc.strip : native ? 'strip' : null;
    if (!cxx || !strip) {
      throw new Error(`no ${arch} cross compiler: ${tc.cxx} not found (Debian/Ubuntu: apt-get install g++-${arch === 'arm64' ? 'aarch64' : 'x86-64'}-linux-gnu), or set COLDSTART_PREBUILD_ARCHES=${process.arch}`);
    }
    console.error(`prebuild: linux-${arch} with ${cxx}`);
    // The addon, and beside it the C library a server calls from Python (src/python/coldstart_load.py).
    for (const [target, name] of [[0, 'coldstart.napi.glibc.node'], [1, 'libcoldstart_load.so']]) {
      const out = path.join(root, 'prebuilds', `linux-${arch}`, name);
      const r = await compile({ out, target, cxx, strip, portable: true, jobs: os.cpus().length });
      if (!r.ok) throw new Error(`linux-${arch} ${name}: ${r.reason}`);
      const glibc = spawnSync('objdump', ['-T', out], { encoding: 'utf8' }).stdout || '';
      const need = [...glibc.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [+m[1], +m[2]]).sort((a, b) => b[0] - a[0] || b[1] - a[1])[0];
      console.error(`prebuild: ${path.relative(root, out)} ${fs.statSync(out).size} bytes${need ? `, needs glibc >= ${need.join('.')}` : ''}`);
    }
  }
}

main().catch((e) => {
  console.error(`prebuild: ${e.message}`);
  process.exit(1);
});
