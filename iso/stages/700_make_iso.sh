#!/usr/bin/env bash
# The hybrid ISO (grub-mkrescue): El Torito and an MBR for BIOS, an EFI system partition image for UEFI,
# bootable as a CD or written to a USB stick. The kernel and initrd stay at /boot/vmlinuz and
# /boot/initrd.img, where tests boot them directly with QEMU's -kernel/-initrd.
# GRUB without translations, fonts or themes: its menu is plain text on screen and serial.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
WORK=${WORK:?}
BASE=${BASE:?}
ROOTFS=${ROOTFS:?}
TREE=${TREE:?}
ISO=${ISO:?}
FERRY_VERSION=${FERRY_VERSION:?}
BUILD_ID=${BUILD_ID:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

safe_rm_dir "$TREE"
mkdir -p "$TREE/boot/grub" "$TREE/live" "$TREE/ferry"
kernel=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -1)
cp "$kernel" "$TREE/boot/vmlinuz"
cp "$WORK/initrd.img" "$TREE/boot/initrd.img"
cp "$ISO_DIR/grub/grub.cfg" "$TREE/boot/grub/grub.cfg"
# Hard links: the big files are not copied on every build.
ln "$BASE/root.squashfs" "$TREE/live/root.squashfs"
ln "$WORK/ferry.squashfs" "$TREE/live/ferry.squashfs"
cp -al "$BASE/packages" "$TREE/ferry/packages"
printf 'VERSION=%s\nBUILD=%s\nKERNEL=%s\n' "$FERRY_VERSION" "$BUILD_ID" "$(basename "$kernel" | sed 's/^vmlinuz-//')" >"$TREE/ferry/release"

mkdir -p "$(dirname "$ISO")"
log "grub-mkrescue → $ISO"
grub-mkrescue --output="$ISO.partial" --locales= --fonts= --themes= "$TREE" -- -volid FERRY_RESTORE >"$WORK/grub-mkrescue.log" 2>&1 \
  || { tail -20 "$WORK/grub-mkrescue.log" >&2; die "grub-mkrescue failed (log: $WORK/grub-mkrescue.log)"; }
# Renamed into place only when complete: a test may be waiting for it.
mv -f "$ISO.partial" "$ISO"
log "$(basename "$ISO"): $(du -m "$ISO" | cut -f1) MiB"
