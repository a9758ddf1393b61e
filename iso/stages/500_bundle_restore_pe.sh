#!/usr/bin/env bash
# The restore program, rebuilt every run: restore-pe/dist bundled by esbuild into one ES module at
# /opt/ferry/lib/restore-pe.mjs (it reads its version from ../package.json, so that file sits at
# /opt/ferry/package.json). The native lz4 addon cannot be bundled: it and its runtime dependencies go to
# /opt/ferry/node_modules, where node's lookup from /opt/ferry/lib finds them. Checked on this machine.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
ROOT=${ROOT:?}
LAYER=${LAYER:?}
FERRY_VERSION=${FERRY_VERSION:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

safe_rm_dir "$LAYER"
opt=$LAYER/opt/ferry
mkdir -p "$opt/lib" "$opt/node_modules"

log "esbuild restore-pe/dist/main.js"
# CommonJS dependencies (commander) call require(); an ES module has none unless the banner makes one.
"$ROOT/node_modules/.bin/esbuild" "$ROOT/restore-pe/dist/main.js" --bundle --platform=node --format=esm \
  --target=node20 --external:lz4 --log-level=warning --outfile="$opt/lib/restore-pe.mjs" \
  --banner:js="import { createRequire as __ferryCreateRequire } from 'node:module'; const require = __ferryCreateRequire(import.meta.url);"
printf '{ "name": "@ferry/restore-pe", "version": "%s", "private": true, "type": "module" }\n' "$FERRY_VERSION" >"$opt/package.json"

# lz4 and what it requires at run time: nan is C++ headers for compiling, buffer is node's own module.
# shellcheck disable=SC2016 # JavaScript, not shell
mapfile -t modules < <(node -e '
  const fs = require("node:fs");
  const seen = new Set(), todo = ["lz4"], buildOnly = new Set(["nan", "buffer"]);
  while (todo.length) {
    const name = todo.pop();
    if (seen.has(name) || buildOnly.has(name)) continue;
    seen.add(name);
    const pkg = JSON.parse(fs.readFileSync(`${process.argv[1]}/${name}/package.json`, "utf8"));
    todo.push(...Object.keys(pkg.dependencies ?? {}));
  }
  console.log([...seen].join("\n"));' "$ROOT/node_modules")
for m in "${modules[@]}"; do cp -a "$ROOT/node_modules/$m" "$opt/node_modules/$m"; done
# lz4 without its sources, object files, tests and benchmarks: only lib/ and the two addons.
lz4=$opt/node_modules/lz4
find "$lz4" -mindepth 1 -maxdepth 1 ! -name lib ! -name build ! -name package.json ! -name LICENSE -exec rm -rf {} +
find "$lz4/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$lz4/build/Release" -mindepth 1 ! -name '*.node' -exec rm -rf {} +

# The bundle runs here first, and lz4 resolves from where the bundle is, native addon included.
node -e 'require("node:module").createRequire(process.argv[1])("lz4").encodeBound(1)' "$opt/lib/restore-pe.mjs" \
  || die "lz4 does not load from $opt/node_modules"
version=$(cd / && node "$opt/lib/restore-pe.mjs" --version) || die "the bundle does not run on this machine"
[ "$version" = "$FERRY_VERSION" ] || die "the bundle reports version $version, expected $FERRY_VERSION"
node "$opt/lib/restore-pe.mjs" --help >/dev/null || die "the bundle's --help fails"
log "restore-pe.mjs $version ($(du -k "$opt/lib/restore-pe.mjs" | cut -f1) KiB), node_modules: ${modules[*]} ($(du -sk "$opt/node_modules" | cut -f1) KiB)"
