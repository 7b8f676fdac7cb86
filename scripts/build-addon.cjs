#!/usr/bin/env node
// The package's install script. The package ships prebuilt addons (prebuilds/<platform>-<arch>/, N-API, one per
// platform for every Node >= 20, with libcoldstart_load.so beside each); when one fits this machine and loads,
// nothing is compiled. Otherwise the addon is
// compiled from source into build/Release against the node-api-headers package (scripts/native-build.cjs: a C++
// compiler is all it needs; no network, no nodedir). coldstart works without the addon (doctor says why), so a
// failed build prints what to do and lets the install succeed.
//
//   COLDSTART_SKIP_NATIVE=1        never compile (a shipped prebuild is still used)
//   COLDSTART_BUILD_FROM_SOURCE=1  compile even when a prebuild fits (also: npm --build-from-source)
'use strict';
const path = require('node:path');
const { compile, outputs, root } = require('./native-build.cjs');

function prebuildThatLoads() {
  let file;
  try {
    file = require('node-gyp-build').path(root);
  } catch {
    return null;
  }
  if (!file.startsWith(path.join(root, 'prebuilds') + path.sep)) return null; // a build/ from an earlier source build
  try {
    require(file);
    return file;
  } catch (e) {
    console.warn(`coldstart: the shipped prebuild ${path.relative(root, file)} does not load here (${String(e.message).split('\n')[0]}); building from source`);
    return null;
  }
}

async function main() {
  const fromSource = process.env.COLDSTART_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';
  if (!fromSource) {
    const pre = prebuildThatLoads();
    if (pre) {
      console.error(`coldstart: using the prebuilt addon ${path.relative(root, pre)}`);
      return;
    }
  }
  if (process.env.COLDSTART_SKIP_NATIVE === '1') {
    console.warn('coldstart: COLDSTART_SKIP_NATIVE=1 and no prebuilt addon fits this machine; native addon not built');
    return;
  }
  console.error(`coldstart: building the native addon from source (${process.platform}-${process.arch})`);
  const r = await compile({ out: outputs.addon });
  if (r.ok) {
    console.error('coldstart: built build/Release/coldstart.node');
    // The C library a server's wake-up calls from Python (src/python/coldstart_load.py); the CLI never needs it.
    const l = await compile({ out: outputs.library, target: 1 });
    if (l.ok) console.error('coldstart: built build/Release/libcoldstart_load.so');
    else console.warn(`coldstart: libcoldstart_load.so did not build (${l.reason}); the CLI works without it, coldstart_load.py does not`);
    return;
  }
  console.warn(
    `coldstart: the native addon did not build (${r.reason}); GPU probing, GPU loads and fast conversion are unavailable.\n` +
      '  To fix: install a C++ compiler (Debian/Ubuntu: apt-get install g++), then run `npm rebuild coldstart`.\n' +
      '  Everything else works without it; `coldstart doctor` shows the state.',
  );
}

main().catch((e) => {
  console.warn(`coldstart: native addon setup failed: ${e.message}`);
});
