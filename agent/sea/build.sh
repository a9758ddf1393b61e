#!/usr/bin/env bash
# Builds agent/out/ferry-agent: one Linux x86-64 executable of the agent that needs no Node on the source.
# Node's single executable application: esbuild bundles agent/src/main.ts into one CommonJS file
# (agent/sea/bundle.ts), `node --experimental-sea-config` turns it and the lz4 addon (a SEA asset, loaded by
# agent/sea/lz4.ts) into a blob, and postject injects the blob into a copy of this machine's node binary.
# No V8 snapshot or code cache: with neither, the same inputs give the same file byte for byte, so the
# appliance can tell an outdated agent on a source by its SHA-256. Called by `make agent-binary`, which
# rebuilds only when an input changed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/agent/out
WORK=$OUT/work
FUSE=NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 # Node's documented sentinel for SEA blobs

die() {
  echo "agent-binary: $*" >&2
  exit 1
}

node_bin=$(readlink -f "$(command -v node)") || die "node is not on PATH"
node_version=$("$node_bin" --version)
[[ $node_version == v20.* ]] || die "building the agent needs Node 20 (the agent and its lz4 addon are built for it); this is $node_version"
[[ $(uname -sm) == "Linux x86_64" ]] || die "the agent executable is built for Linux x86-64; this is $(uname -sm)"
lz4_addon=$ROOT/node_modules/lz4/build/Release/lz4.node
[[ -f $lz4_addon ]] || die "$lz4_addon is missing: run npm ci (make install)"

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$ROOT"
npx tsc -p agent/sea/tsconfig.json
node --import tsx agent/sea/bundle.ts "$WORK/bundle.cjs"

cat >"$WORK/sea-config.json" <<EOF
{
  "main": "$WORK/bundle.cjs",
  "output": "$WORK/sea-prep.blob",
  "disableExperimentalSEAWarning": true,
  "useSnapshot": false,
  "useCodeCache": false,
  "assets": { "lz4.node": "$lz4_addon" }
}
EOF
"$node_bin" --experimental-sea-config "$WORK/sea-config.json" >/dev/null

# Debug information and the static symbol table (12 MB) are no use on a source server; addons link against the
# dynamic symbols, which stay. strip warns about the many unnamed notes of Debian's node binary: harmless.
cp "$node_bin" "$WORK/ferry-agent"
chmod u+w "$WORK/ferry-agent"
strip --strip-all "$WORK/ferry-agent" 2>"$WORK/strip.log" || die "strip failed: $(cat "$WORK/strip.log")"
"$ROOT/node_modules/.bin/postject" "$WORK/ferry-agent" NODE_SEA_BLOB "$WORK/sea-prep.blob" --sentinel-fuse "$FUSE" >/dev/null

# It must run with nothing from this machine's environment, compress with lz4 and report its version.
exe=$WORK/ferry-agent
version=$(cd / && env -i "$exe" --version) || die "the executable does not run"
[[ $version == "$(node -p 'require("./agent/package.json").version')" ]] || die "the executable reports version $version"
(cd / && env -i "$exe" disks --help >/dev/null) || die "the executable's disks --help fails"
info=$(cd / && env -i "$exe" version --json) || die "the executable's version --json fails"
sha=$(sha256sum "$exe" | cut -d' ' -f1)
[[ $info == *"\"sha256\":\"$sha\""* ]] || die "version --json does not report the file's SHA-256 $sha: $info"

mv -f "$exe" "$OUT/ferry-agent"
rm -rf "$WORK"
echo "agent/out/ferry-agent $version ($(($(stat -c %s "$OUT/ferry-agent") / 1024 / 1024)) MiB, node $node_version, sha256 $sha)"
