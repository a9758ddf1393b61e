#!/usr/bin/env bash
# /boot/initrd.img: busybox (static, from the root), iso/initrd/init and the modules that can reach the
# medium (CD and disk controllers of common hypervisors, USB, ISO 9660, squashfs, overlay) with what they
# depend on, resolved by the root's own modprobe. Everything else loads after the switch to the root.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
WORK=${WORK:?}
ROOTFS=${ROOTFS:?}
INITRD_DIR=${INITRD_DIR:?}
BUILD_ID=${BUILD_ID:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

modules=(
  isofs squashfs overlay loop                                 # the medium's file systems
  sr_mod sd_mod ata_piix ata_generic ahci                     # IDE and SATA CD drives and disks
  virtio_pci virtio_blk virtio_scsi                           # KVM, Proxmox
  vmw_pvscsi mptspi mptsas                                    # VMware
  hv_vmbus hv_storvsc                                         # Hyper-V
  xen_blkfront                                                # Xen
  nvme                                                        # the ISO written to an NVMe disk
  xhci_pci ehci_pci ohci_pci uhci_hcd usb_storage uas         # USB sticks
  usbhid hid_generic                                          # USB keyboards for the initrd's rescue shell
)

safe_rm_dir "$INITRD_DIR"
mkdir -p "$INITRD_DIR"/{bin,dev,etc/ferry,proc,sys,run,newroot,usr/lib}
ln -s usr/lib "$INITRD_DIR/lib"
kver=$(basename "$(find "$ROOTFS/usr/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)")

cp "$ROOTFS/usr/bin/busybox" "$INITRD_DIR/bin/busybox"
install -m 755 "$ISO_DIR/initrd/init" "$INITRD_DIR/init"
# The kernel opens /dev/console for init before anything is mounted.
mknod -m 600 "$INITRD_DIR/dev/console" c 5 1
echo "$BUILD_ID" >"$INITRD_DIR/etc/ferry/build"

: >"$INITRD_DIR/etc/ferry/initrd-modules"
for m in "${modules[@]}"; do
  deps=$(in_chroot "$ROOTFS" modprobe -S "$kver" --show-depends "$m") || die "no module $m in kernel $kver"
  while read -r kind path _; do
    [ "$kind" = insmod ] || continue # builtin
    mkdir -p "$INITRD_DIR$(dirname "$path")"
    cp "$ROOTFS$path" "$INITRD_DIR$path"
  done <<<"$deps"
  echo "$m" >>"$INITRD_DIR/etc/ferry/initrd-modules"
done
cp "$ROOTFS/usr/lib/modules/$kver"/modules.{builtin,order} "$INITRD_DIR/usr/lib/modules/$kver/"
"$ROOTFS/usr/bin/busybox" depmod -b "$INITRD_DIR" "$kver"

(cd "$INITRD_DIR" && find . -print0 | sort -z | cpio --null --create --format=newc --quiet --reproducible) \
  | gzip -9 -n >"$WORK/initrd.img"
log "initrd.img: $(du -k "$WORK/initrd.img" | cut -f1) KiB, $(find "$INITRD_DIR" -name '*.ko' | wc -l) modules for $kver"
