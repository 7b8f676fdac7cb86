#!/usr/bin/env bash
# The package as users get it: `npm pack` (prepack builds dist/ and the prebuilt addons), install the tarball into an
# empty prefix with a fresh HOME (no ~/.npmrc, so no nodedir; an empty npm cache) and with the addon's source build
# disabled (COLDSTART_SKIP_NATIVE=1, and no C++ compiler: CXX=false), then run the installed `coldstart`:
# --help, doctor (the loaded addon must be the shipped prebuild, byte for byte; its Python package probe runs the
# shipped dist/python/packages.py), profile (demo) and a convert.
# Exits non-zero on the first failure. Needs the npm registry (the tarball's dependencies) and nothing else.
#
#   scripts/test-pack.sh            KEEP=1 keeps the temp dir for a look
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/coldstart-pack.XXXXXX")"
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "test-pack: FAIL: $*" >&2; exit 1; }
step() { echo "== test-pack: $*" >&2; }

case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) fail "unsupported machine $(uname -m)" ;; esac
# The host arch always; arm64 too when the cross compiler is here (prebuild.cjs fails rather than skip one named).
if [ -z "${COLDSTART_PREBUILD_ARCHES:-}" ]; then
  COLDSTART_PREBUILD_ARCHES="$arch"
  [ "$arch" = x64 ] && command -v aarch64-linux-gnu-g++ >/dev/null && COLDSTART_PREBUILD_ARCHES="x64 arm64"
fi
export COLDSTART_PREBUILD_ARCHES

step "npm pack (prepack: tsc + prebuilds for $COLDSTART_PREBUILD_ARCHES)"
(cd "$repo" && npm pack --silent --pack-destination "$tmp" >"$tmp/pack.out")
tgz="$tmp/$(tail -n 1 "$tmp/pack.out")"
[ -f "$tgz" ] || fail "npm pack did not write a tarball ($(cat "$tmp/pack.out"))"
listing="$(tar -tzf "$tgz")"
for f in package/LICENSE package/scripts/ci-criu.sh package/bin/coldstart.js package/dist/cli/main.js package/dist/index.js package/dist/index.d.ts \
  package/dist/server/shim.cjs package/dist/server/subreaper.py \
  package/scripts/build-addon.cjs package/scripts/native-build.cjs package/binding.gyp \
  "package/prebuilds/linux-$arch/coldstart.napi.glibc.node" "package/prebuilds/linux-$arch/libcoldstart_load.so"; do
  grep -qx "$f" <<<"$listing" || fail "the tarball lacks $f"
done
# The Python coldstart runs (src/python/*.py, copied into dist/ by scripts/copy-assets.cjs), without bytecode caches.
for f in common stack framework compile compile_probe packages coldstart_load; do
  grep -qx "package/dist/python/$f.py" <<<"$listing" || fail "the tarball lacks dist/python/$f.py (scripts/copy-assets.cjs)"
done
# What the package names, it carries: every docs/ link of the README, every script a message names.
for link in $(grep -o '](docs/[^)#]*' "$repo/README.md" | sed 's/^](//' | sort -u); do
  # a file, or a folder the tarball has files in
  grep -qx "package/$link" <<<"$listing" || grep -q "^package/${link%/}/" <<<"$listing" || fail "the README links $link, which the tarball lacks (package.json files)"
done
for s in $(grep -rhoE 'scripts/[A-Za-z0-9_.-]+\.(sh|cjs|py)' "$repo/dist" --include=*.js | sort -u); do
  grep -qx "package/$s" <<<"$listing" || fail "a message names $s, which the tarball lacks (package.json files)"
done
if grep -q '^package/build/' <<<"$listing"; then fail "the tarball ships build/ (a local source build)"; fi
if grep -q '__pycache__' <<<"$listing"; then fail "the tarball ships a __pycache__"; fi
echo "tarball: $(basename "$tgz") $(stat -c %s "$tgz") bytes, $(wc -l <<<"$listing") files" >&2

step "npm i -g into an empty prefix, fresh HOME, no compiler, source build disabled"
mkdir -p "$tmp/home" "$tmp/prefix"
(
  cd "$tmp"
  env -u npm_config_nodedir -u NPM_CONFIG_NODEDIR -u COLDSTART_PYTHON \
    HOME="$tmp/home" npm_config_cache="$tmp/home/.npm" npm_config_update_notifier=false \
    COLDSTART_SKIP_NATIVE=1 CXX=false CC=false ONNXRUNTIME_NODE_INSTALL=skip \
    npm i -g --no-audit --no-fund --prefix "$tmp/prefix" "$tgz"
) >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "npm i -g failed"; }
if grep -q "Unknown .*config" "$tmp/install.log"; then cat "$tmp/install.log" >&2; fail "npm warned about an unknown config"; fi
pkg="$tmp/prefix/lib/node_modules/coldstart"
bin="$tmp/prefix/bin/coldstart"
[ -x "$bin" ] || fail "no $bin after install"
[ -e "$pkg/build" ] && fail "the install compiled the addon although a prebuild fits ($pkg/build exists)"

run() { env -u COLDSTART_NATIVE_PATH -u COLDSTART_PYTHON HOME="$tmp/home" "$bin" "$@"; }

step "coldstart --help"
run --help | grep -q '^Usage: coldstart' || fail "--help"

step "coldstart doctor --json: the loaded addon is the shipped prebuild"
run doctor --json >"$tmp/doctor.json" || [ $? -eq 3 ] || fail "doctor exited $?"
loaded="$(node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(!d.addon||!d.addon.loaded){console.error(JSON.stringify(d.addon));process.exit(1)} console.log(d.addon.path)' "$tmp/doctor.json")" ||
  fail "doctor: the addon did not load from the installed package"
want="$pkg/prebuilds/linux-$arch/coldstart.napi.glibc.node"
[ "$(realpath "$loaded")" = "$(realpath "$want")" ] || fail "doctor loaded $loaded, not the shipped $want"
[ "$(sha256sum <"$loaded")" = "$(sha256sum <"$repo/prebuilds/linux-$arch/coldstart.napi.glibc.node")" ] ||
  fail "the installed prebuild differs from the one this checkout built"
echo "addon: $loaded" >&2

step "doctor ran the package probe from the installed package (dist/python/packages.py, through the runner)"
command -v python3 >/dev/null || fail "no python3 on PATH for the package probe"
node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const p=d.python||{};
  if(!p.found||!p.version||!p.packages||!("torch" in p.packages)){console.error(JSON.stringify(p));process.exit(1)}' "$tmp/doctor.json" ||
  fail "doctor: the installed package did not run its Python package probe"

step "doctor: coldstart_load.py of the installed package loads the shipped libcoldstart_load.so (a server's wake-up)"
node -e 'const s=(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).python||{}).serverLoader||{};
  if(s.library!==process.argv[2]||s.module!==process.argv[3]){console.error(JSON.stringify(s));process.exit(1)}' "$tmp/doctor.json" \
  "$(realpath "$pkg")/prebuilds/linux-$arch/libcoldstart_load.so" "$(realpath "$pkg")/dist/python/coldstart_load.py" ||
  fail "doctor: coldstart_load did not load the shipped prebuilds/linux-$arch/libcoldstart_load.so"

step "doctor says what the package lacks: onnxruntime-node present (its version), then removed as an offline install drops it (the exact reinstall line)"
node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).onnx||{};
  if(!(o.usable===true&&o.version)&&!(o.usable===false&&/npm install --prefix /.test(o.fix||""))){console.error(JSON.stringify(o));process.exit(1)}' "$tmp/doctor.json" ||
  fail "doctor: no onnxruntime-node fact"
ort="$(cd "$pkg" && node -p 'require.resolve("onnxruntime-node/package.json")' 2>/dev/null | sed 's#/package.json$##')" || ort=""
if [ -n "$ort" ] && [ -d "$ort" ]; then
  mv "$ort" "$ort.away"
  run doctor --json >"$tmp/doctor-noort.json" || [ $? -eq 3 ] || { mv "$ort.away" "$ort"; fail "doctor without onnxruntime-node exited $?"; }
  mv "$ort.away" "$ort"
  node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).onnx||{}; const pkg=process.argv[2];
    if(o.usable!==false||!(o.fix||"").includes("npm install --prefix "+pkg)){console.error(JSON.stringify(o));process.exit(1)}' "$tmp/doctor-noort.json" "$(realpath "$pkg")" ||
    fail "doctor without onnxruntime-node did not give the reinstall line for the installed package"
  run doctor | grep -q '^onnx' || fail "doctor's human output has no onnx row"
fi

if [ -n "${COLDSTART_PYTHON:-}" ]; then
  step "warmup --framework transformers with the peers' Python (the shipped framework.py and common.py's load_hf)"
  env -u COLDSTART_NATIVE_PATH HOME="$tmp/home" COLDSTART_PYTHON="$COLDSTART_PYTHON" "$bin" warmup "$repo/fixtures/torch/models/tiny-llama" \
    --framework transformers --runs 1 --max-tokens 2 --json >"$tmp/warmup.json" 2>"$tmp/warmup.err" || { cat "$tmp/warmup.err" >&2; fail "warmup --framework exited $?"; }
  node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(d.details?.details?.class!=="LlamaModel") process.exit(1)' "$tmp/warmup.json" ||
    fail "warmup --framework did not report the loaded model"
fi

if [ -n "${COLDSTART_PYTHON:-}" ]; then
  step "coldstart_load from the installed package fills tensors with the bytes safetensors reads (test/load/python_loader_check.py)"
  mkdir -p "$tmp/pyload"
  # third argument: where its cold reads' file goes (evicted or not, every byte is compared)
  env -u COLDSTART_LOAD_LIBRARY "$COLDSTART_PYTHON" "$repo/test/load/python_loader_check.py" "$pkg/dist/python" "$tmp/pyload" "$tmp/pyload" >"$tmp/pyload.json" ||
    fail "python_loader_check.py failed against the installed package"
  node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
    const cold=Object.values(o.cold||{}); const coldOk=cold.length>0&&cold.every((c)=>c.equal);
    if(!coldOk||o.equal!==o.tensors||!o.tensors||!o.flatEqual||o.library!==process.argv[2]){console.error(JSON.stringify(o));process.exit(1)}' "$tmp/pyload.json" \
    "$pkg/prebuilds/linux-$arch/libcoldstart_load.so" || fail "coldstart_load from the installed package: wrong bytes or not the shipped library"
fi

step "coldstart profile (the built-in demo)"
run profile --json >"$tmp/profile.json" || fail "profile (demo) exited $?"
node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(!d.schema) process.exit(1)' "$tmp/profile.json" ||
  fail "profile --json did not print one JSON document with a schema"

step "coldstart convert (native copy path) with --verify"
run convert "$repo/fixtures/torch/good/views.pt" -o "$tmp/views.safetensors" --dtype bf16 --verify >"$tmp/convert.out" 2>&1 ||
  { cat "$tmp/convert.out" >&2; fail "convert exited non-zero"; }
[ -s "$tmp/views.safetensors" ] || fail "convert wrote no output"

step "the library entry (main/types)"
(cd "$tmp/prefix/lib" && node --input-type=module -e "
  const c = await import('coldstart');
  for (const f of ['runGpuLoad','convertCheckpoint','downloadRepo','readHeader']) if (typeof c[f] !== 'function') { console.error('missing export', f); process.exit(1); }
  const h = c.readHeader(process.argv[1]);
  if (!Object.keys(h.tensors ?? h).length) process.exit(1);
" "$tmp/views.safetensors") || fail "import('coldstart') or readHeader failed"

echo "test-pack: OK (installed from $(basename "$tgz"); addon = shipped prebuild linux-$arch)" >&2
