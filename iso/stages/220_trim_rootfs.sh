#!/usr/bin/env bash
# Makes the root smaller: apt's lists and caches, documentation (copyright files stay), translations,
# and kernel modules no restore target needs (sound, cameras, wireless, Bluetooth, InfiniBand, sensors,
# the big desktop GPU drivers; the console works on the firmware's framebuffer or VGA text mode).
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
BASE_FRESH=${BASE_FRESH:?}
ROOTFS=${ROOTFS:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

if [ "$BASE_FRESH" = 1 ]; then log "cached root is current: skipped"; exit 0; fi
before=$(du -sm "$ROOTFS" | cut -f1)

rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb
find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/{man,info,lintian,linda} "$ROOTFS"/usr/share/locale/*

kver=$(basename "$(find "$ROOTFS/usr/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)")
k=$ROOTFS/usr/lib/modules/$kver/kernel
rm -rf "$k/sound" "$k/drivers/media" "$k/drivers/net/wireless" "$k/drivers/bluetooth" "$k/net/bluetooth" \
  "$k/net/wireless" "$k/net/mac80211" "$k/drivers/infiniband" "$k/drivers/iio" "$k/drivers/staging" \
  "$k/drivers/isdn" "$k/drivers/gpu/drm/amd" "$k/drivers/gpu/drm/radeon" "$k/drivers/gpu/drm/nouveau" \
  "$k/drivers/gpu/drm/i915"
in_chroot "$ROOTFS" depmod -a "$kver"
log "root: $before MiB → $(du -sm "$ROOTFS" | cut -f1) MiB (kernel $kver)"
