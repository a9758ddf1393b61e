#!/usr/bin/env bash
# Compiles the TypeScript (protocol/dist, restore-pe/dist) the bundle is made from. `make iso` has just
# done it and says so with FERRY_PROGRAMS_BUILT=1; run on its own, build.sh does it here.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
ROOT=${ROOT:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

if [ "${FERRY_PROGRAMS_BUILT:-0}" = 1 ]; then
  log "programs built by make"
else
  log "make build"
  make -C "$ROOT" --no-print-directory build
fi
[ -f "$ROOT/restore-pe/dist/main.js" ] || die "restore-pe/dist/main.js is missing after the build"
