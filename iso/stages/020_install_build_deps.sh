#!/usr/bin/env bash
# Installs the Debian packages the build uses (debootstrap, squashfs-tools, xorriso, grub, ...) and the
# npm packages (esbuild bundles restore-pe). Both steps do nothing when everything is there.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
ROOT=${ROOT:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

bash "$ROOT/scripts/install-system-deps.sh"
if [ ! -x "$ROOT/node_modules/.bin/esbuild" ]; then
  log "node_modules incomplete: npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund)
fi
log "build tools present"
