#!/usr/bin/env bash
# The Debian root: debootstrap's minbase (apt, dpkg, bash, coreutils; no init). Downloaded .debs stay in
# DEBS so a rebuild after a package list change downloads only what is new.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
BASE=${BASE:?}
BASE_FRESH=${BASE_FRESH:?}
ROOTFS=${ROOTFS:?}
DEBS=${DEBS:?}
SUITE=${SUITE:?}
MIRROR=${MIRROR:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

if [ "$BASE_FRESH" = 1 ]; then log "cached root is current: skipped"; exit 0; fi
safe_rm_dir "$BASE"
mkdir -p "$BASE" "$DEBS"
log "debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase --arch=amd64 --cache-dir="$DEBS" "$SUITE" "$ROOTFS" "$MIRROR" \
  >"$BASE/debootstrap.log" 2>&1 || { tail -20 "$BASE/debootstrap.log" >&2; die "debootstrap failed (log: $BASE/debootstrap.log)"; }
# What every Debian system has: guest-agent packages are resolved against this (stage 210).
cp "$ROOTFS/var/lib/dpkg/status" "$BASE/minbase.status"
log "minbase root: $(du -sm "$ROOTFS" | cut -f1) MiB"
