#!/usr/bin/env bash
# Installs the Debian packages Ferry's build and tests use. Idempotent; run as root.
# Each package is named for what needs it, so nothing here is installed "just in case".
set -euo pipefail
packages=(
  fdisk        # sfdisk: partitioned test images (MBR)
  dosfstools   # mkfs.vfat: the EFI system partition of the UEFI source fixture
  gdisk        # sgdisk: partitioned test images (GPT)
  e2fsprogs    # mkfs.ext4, e2fsck, dumpe2fs: ext4 fixtures and fsck of restored disks
  xfsprogs     # mkfs.xfs: filesystem detection tests
  lvm2         # pvcreate, vgcreate, lvcreate: LVM source tests; the agent's LVM snapshots (lvcreate -s) on sources
  util-linux   # losetup, partx, mount, blkdiscard, blockdev
  openssl      # inspecting the appliance certificate in tests
  iproute2     # ip netns, veth: the network tests (outages, passive mode, the restore ISO's network)
  curl         # the one-line agent install command (test/integration/agent-binary.test.ts runs it)
  binutils     # strip: make agent-binary drops node's debug info from the agent executable
  debootstrap        # iso/: the restore ISO's Debian root filesystem
  squashfs-tools     # iso/: mksquashfs of that root
  xorriso            # iso/: grub-mkrescue writes the hybrid ISO; tests extract its kernel and initrd
  mtools             # iso/: grub-mkrescue fills the ISO's EFI system partition image
  grub-common        # iso/: grub-mkrescue
  grub-pc-bin        # iso/: BIOS boot (El Torito + MBR) of the ISO
  grub-efi-amd64-bin # iso/: UEFI boot of the ISO
  cpio               # iso/: the initrd archive
  busybox-static     # iso/: the initrd's shell and tools (static, so the initrd needs no libraries)
  shellcheck         # make lint: checks the ISO build's stage scripts
  qemu-system-x86    # test/e2e: boots the ISO
  ovmf               # test/e2e: UEFI firmware for QEMU
  openssh-server     # test/integration/passive.test.ts: a real sshd (in a network namespace) for passive sources
  openssh-client     # ssh-keygen: host and client keys of that test
  chromium           # test/e2e/web-ui.test.ts: the web UI in a real headless browser (playwright-core drives it)
  borgbackup         # make bench: borg create -C lz4, a peer Ferry is measured against (test/bench/peers.ts)
  restic             # make bench: restic backup --stdin, a peer
  partclone          # make bench: partclone.ext4 -c | lz4, a peer
  lz4                # make bench: plain lz4 of the image, a peer (and partclone's compressor)
  time               # make bench: /usr/bin/time, CPU seconds of every process a measured command runs
  fonts-wqy-microhei # test/e2e/web-ui.test.ts: CJK glyphs, so the 简体中文 and 日本語 screenshots show text, not boxes
  sqlite3            # test/faults: PRAGMA integrity_check of the catalog after each crash, and its acknowledged positions
  python3            # test/faults/network.test.ts: the userspace link impairer
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
