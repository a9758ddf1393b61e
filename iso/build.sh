#!/usr/bin/env bash
# Builds iso/out/ferry-restore.iso: runs iso/stages/NNN_verb_object.sh in order, each in its own bash,
# with every piece of state passed as an environment variable set here (Relax-and-Recover's layout).
#
# Two layers: the Debian root (debootstrap + packages + node runtime, /live/root.squashfs) is cached under
# iso/work/base and rebuilt only when BASE_KEY changes; the Ferry layer (restore-pe bundle, init scripts,
# /live/ferry.squashfs), the initrd and the ISO are rebuilt every run.
#
# Usage: bash iso/build.sh            FRESH=1 bash iso/build.sh   (rebuild the cached root too)
set -euo pipefail

ISO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$ISO_DIR")
WORK=${WORK:-$ISO_DIR/work}
OUT=${OUT:-$ISO_DIR/out}
mkdir -p "$WORK" "$OUT"

# One build at a time: tests may ask for the ISO from several processes.
exec 9>"$WORK/.lock"
if ! flock -n 9; then
  echo "build.sh: another ISO build is running; waiting for it"
  flock 9
fi

# The Debian mirror this machine already uses (deb822 sources), so the build needs no other network.
sources_uri() { # $1: a suite to look for in Suites:
  local f=/etc/apt/sources.list.d/debian.sources
  [ -r "$f" ] || return 0
  awk -v suite="$1" '
    /^$/ { uri = ""; found = 0; next }
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = 1 }
    uri != "" && found { print uri; exit }' "$f"
}

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-$(sources_uri "$SUITE")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(sources_uri "$SUITE-security")}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
NODE_BIN=${NODE_BIN:-$(command -v node)}
FERRY_VERSION=$(node -p 'require(process.argv[1]).version' "$ROOT/restore-pe/package.json")
BUILD_ID="$(date -u +%Y%m%dT%H%M%SZ)-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)"

# The cached root is valid while its inputs are: the package list, the stages that build it, the mirror
# and the node binary. Package updates on the mirror do not count: FRESH=1 picks them up.
BASE=$WORK/base
BASE_KEY=$(
  {
    echo "$SUITE $MIRROR $SECURITY_MIRROR"
    sha256sum "$NODE_BIN" | cut -d' ' -f1
    cat "$ISO_DIR/packages.list" "$ISO_DIR/lib/common.sh" "$ISO_DIR"/stages/[1-4]*.sh
  } | sha256sum | cut -d' ' -f1
)
BASE_FRESH=0
if [ "${FRESH:-0}" != 1 ] && [ -f "$BASE/.key" ] && [ "$(cat "$BASE/.key")" = "$BASE_KEY" ]; then BASE_FRESH=1; fi

export ISO_DIR ROOT WORK OUT SUITE MIRROR SECURITY_MIRROR NODE_BIN FERRY_VERSION BUILD_ID BASE BASE_KEY BASE_FRESH
export ROOTFS=$BASE/rootfs           # the Debian root (cached)
export DEBS=$WORK/cache/debs         # downloaded .debs, kept across rebuilds of the root
export LAYER=$WORK/ferry             # the Ferry layer: restore-pe bundle, init, launcher
export INITRD_DIR=$WORK/initrd       # the initrd's tree
export TREE=$WORK/tree               # the ISO's file tree
export ISO=$OUT/ferry-restore.iso

echo "build.sh: Ferry restore ISO $FERRY_VERSION ($BUILD_ID), mirror $MIRROR, cached root: $([ "$BASE_FRESH" = 1 ] && echo reused || echo rebuilt)"
started=$SECONDS
for stage in "$ISO_DIR"/stages/[0-9][0-9][0-9]_*.sh; do
  t=$SECONDS
  echo "build.sh: ── $(basename "$stage")"
  bash "$stage"
  echo "build.sh:    $(basename "$stage" .sh) took $((SECONDS - t)) s"
done
echo "build.sh: $ISO ($(du -m "$ISO" | cut -f1) MiB) in $((SECONDS - started)) s"
