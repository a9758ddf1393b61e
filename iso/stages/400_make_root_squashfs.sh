#!/usr/bin/env bash
# /live/root.squashfs: the Debian root, read-only, zstd-compressed (fast to read under slow emulation,
# nearly as small as xz). The kernel is left out: it boots from the ISO's /boot. Writing BASE_KEY last
# marks the cached root as complete.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
BASE=${BASE:?}
BASE_KEY=${BASE_KEY:?}
BASE_FRESH=${BASE_FRESH:?}
ROOTFS=${ROOTFS:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

if [ "$BASE_FRESH" = 1 ]; then log "cached root is current: skipped"; exit 0; fi
rm -f "$BASE/root.squashfs"
log "mksquashfs $(du -sm "$ROOTFS" | cut -f1) MiB"
nice -n 10 mksquashfs "$ROOTFS" "$BASE/root.squashfs" -noappend -quiet -no-progress \
  -comp zstd -Xcompression-level 15 -b 1M -wildcards -e 'boot/vmlinuz*' 'boot/System.map*'
echo "$BASE_KEY" >"$BASE/.key"
log "root.squashfs: $(du -m "$BASE/root.squashfs" | cut -f1) MiB"
