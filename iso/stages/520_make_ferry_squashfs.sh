#!/usr/bin/env bash
# /live/ferry.squashfs: the Ferry layer, stacked above the Debian root by the initrd. Small, so rebuilt
# every run without cost.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
WORK=${WORK:?}
LAYER=${LAYER:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

rm -f "$WORK/ferry.squashfs"
mksquashfs "$LAYER" "$WORK/ferry.squashfs" -noappend -quiet -no-progress -comp zstd -all-root >/dev/null
log "ferry.squashfs: $(du -k "$WORK/ferry.squashfs" | cut -f1) KiB"
