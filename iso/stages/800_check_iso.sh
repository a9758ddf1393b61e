#!/usr/bin/env bash
# Reads the finished ISO back: its label, the files the boot and the tests rely on, both boot paths.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
ISO=${ISO:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

listing=$(xorriso -indev "$ISO" -find / -type f 2>/dev/null)
for f in /boot/vmlinuz /boot/initrd.img /boot/grub/grub.cfg /live/root.squashfs /live/ferry.squashfs /ferry/release /ferry/packages/debian-12/Packages; do
  grep -qx "'\?$f'\?" <<<"$listing" || die "$f is missing from the ISO"
done
grep -q "qemu-guest-agent_" <<<"$listing" || die "the qemu-guest-agent package is missing from the ISO"
label=$(xorriso -indev "$ISO" -pvd_info 2>/dev/null | sed -n "s/^Volume Id *: *//p")
[ "$label" = FERRY_RESTORE ] || die "volume label is '$label', expected FERRY_RESTORE"
boot=$(xorriso -indev "$ISO" -report_el_torito plain 2>/dev/null)
grep -q 'El Torito boot img.*BIOS' <<<"$boot" || die "no BIOS El Torito boot image"
grep -q 'El Torito boot img.*UEFI' <<<"$boot" || die "no UEFI El Torito boot image"
log "label FERRY_RESTORE, BIOS and UEFI boot images, every expected file present"
