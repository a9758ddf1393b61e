#!/usr/bin/env bash
# Installs the Debian packages Ferry's build and tests use. Idempotent; run as root.
# Each package is named for what needs it, so nothing here is installed "just in case".
set -euo pipefail
packages=(
  fdisk        # sfdisk: partitioned test images (MBR)
  gdisk        # sgdisk: partitioned test images (GPT)
  e2fsprogs    # mkfs.ext4, e2fsck, dumpe2fs: ext4 fixtures and fsck of restored disks
  xfsprogs     # mkfs.xfs: filesystem detection tests
  util-linux   # losetup, partx, mount, blkdiscard, blockdev
  openssl      # inspecting the appliance certificate in tests
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
