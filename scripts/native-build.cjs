// Compiles the N-API addon straight from binding.gyp's source list with a C++ compiler, against the
// `node-api-headers` and `node-addon-api` packages: no node-gyp, no Python, no make, no download of Node's headers
// and no `nodedir` setting. Used by the install script (source build when no prebuild fits) and by
// scripts/prebuild.cjs (the prebuilds shipped in the package, cross-compiled for arm64).
//
// binding.gyp stays the one list of sources (node-gyp still works with it for people who prefer it); it must stay
// valid JSON apart from whole-line `#` comments.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');

/**
 * A target of binding.gyp (by index: 0 the addon, 1 libcoldstart_load.so, the C library servers call from Python):
 * { name, sharedLibrary, sources, defines, cflags_cc, libraries }.
 */
function readBinding(file = path.join(root, 'binding.gyp'), index = 0) {
  const text = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n');
  let gyp;
  try {
    gyp = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON (keep it JSON: double quotes, no trailing commas): ${e.message}`);
  }
  const t = gyp.targets && gyp.targets[index];
  if (!t || !Array.isArray(t.sources) || !t.sources.length) throw new Error(`${file}: targets[${index}].sources is missing`);
  return {
    name: t.target_name,
    sharedLibrary: t.type === 'shared_library',
    sources: t.sources,
    // Plain include paths (relative to binding.gyp); `<!(...)` command expansions are node-gyp's and skipped here.
    includes: (t.include_dirs || []).filter((d) => typeof d === 'string' && !d.startsWith('<')).map((d) => path.resolve(path.dirname(file), d)),
    defines: t.defines || [],
    cflags: (t.cflags_cc || []).filter((f) => !/^-O/.test(f)),
    libraries: t.libraries || [],
  };
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'], ...opts });
    let err = '';
    p.stderr.on('data', (d) => {
      err += d;
      process.stderr.write(d);
    });
    p.on('error', (e) => resolve({ code: 127, err: e.message }));
    p.on('close', (code, signal) => resolve({ code: code ?? 128, signal, err }));
  });
}

/** Where a source build puts each product: the addon, and the C library beside it. */
const outputs = { addon: path.join(root, 'build', 'Release', 'coldstart.node'), library: path.join(root, 'build', 'Release', 'libcoldstart_load.so') };

/**
 * Builds `out` from binding.gyp's target `target` (0: the addon, 1: the C library). `cxx` is the compiler (default $CXX or c++); `strip` is a strip program or null;
 * `portable` links libstdc++/libgcc statically (for prebuilds: they then need only the system glibc).
 * Resolves to { ok, reason }. Never throws for compiler failures.
 */
async function compile({ out, target = 0, cxx = process.env.CXX || 'c++', strip = null, portable = false, jobs = os.cpus().length, log = console.error } = {}) {
  const b = readBinding(undefined, target);
  // The C library includes no N-API header (native/src/base.h says why): it is built without them.
  const includes = b.sharedLibrary ? b.includes : [...b.includes, require('node-api-headers').include_dir, require('node-addon-api').include_dir];
  const objDir = fs.mkdtempSync(path.join(os.tmpdir(), 'coldstart-addon-'));
  try {
    const common = [
      '-fPIC',
      '-pthread',
      '-O3',
      '-fvisibility=hidden',
      '-fvisibility-inlines-hidden',
      '-ffunction-sections',
      '-fdata-sections',
      ...b.cflags,
      ...includes.map((d) => `-I${d}`),
      ...b.defines.map((d) => `-D${d}`),
      ...(b.sharedLibrary ? [] : [`-DNODE_GYP_MODULE_NAME=${b.name}`, '-DBUILDING_NODE_EXTENSION']),
    ];
    const queue = b.sources.map((s, i) => ({ src: path.join(root, s), obj: path.join(objDir, `${i}-${path.basename(s)}.o`) }));
    const objs = queue.map((q) => q.obj);
    let failed = null;
    const worker = async () => {
      for (let q = queue.shift(); q && !failed; q = queue.shift()) {
        log(`  ${cxx} ${path.relative(root, q.src)}`);
        const r = await run(cxx, [...common, '-c', q.src, '-o', q.obj]);
        if (r.code !== 0) failed = r.code === 127 ? `the C++ compiler \`${cxx}\` was not found (${r.err.trim()})` : `${cxx} failed on ${path.relative(root, q.src)}`;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, b.sources.length)) }, worker));
    if (failed) return { ok: false, reason: failed };
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    const link = ['-shared', '-pthread', '-Wl,--gc-sections', '-Wl,-z,noexecstack', ...(b.sharedLibrary ? ['-Wl,--no-undefined'] : []), ...(portable ? ['-static-libstdc++', '-static-libgcc', '-Wl,--exclude-libs,ALL'] : []), '-o', tmp, ...objs, ...b.libraries];
    log(`  ${cxx} -shared -o ${path.relative(root, out)}`);
    const l = await run(cxx, link);
    if (l.code !== 0) {
      fs.rmSync(tmp, { force: true });
      return { ok: false, reason: `linking with ${cxx} failed` };
    }
    if (strip) {
      const s = await run(strip, ['--strip-unneeded', tmp]);
      if (s.code !== 0) {
        fs.rmSync(tmp, { force: true });
        return { ok: false, reason: `${strip} failed` };
      }
    }
    fs.renameSync(tmp, out);
    return { ok: true };
  } finally {
    fs.rmSync(objDir, { recursive: true, force: true });
  }
}

module.exports = { compile, readBinding, outputs, root };
