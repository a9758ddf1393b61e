#!/usr/bin/env bash
# The node runtime: this machine's Node 20 binary, stripped of debug info, at /opt/ferry/bin/node. It links
# only against libc, libm, libdl, libpthread, libstdc++ and libgcc_s, which the root has (checked here).
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
BASE_FRESH=${BASE_FRESH:?}
ROOTFS=${ROOTFS:?}
NODE_BIN=${NODE_BIN:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

if [ "$BASE_FRESH" = 1 ]; then log "cached root is current: skipped"; exit 0; fi
mkdir -p "$ROOTFS/opt/ferry/bin"
strip --strip-all -o "$ROOTFS/opt/ferry/bin/node" "$NODE_BIN"
in_chroot "$ROOTFS" /opt/ferry/bin/node -e 'process.exit(0)' \
  || die "node does not run in the root: $(in_chroot "$ROOTFS" ldd /opt/ferry/bin/node | grep 'not found' || true)"
log "node $(in_chroot "$ROOTFS" /opt/ferry/bin/node --version) at /opt/ferry/bin/node ($(du -m "$ROOTFS/opt/ferry/bin/node" | cut -f1) MiB)"
