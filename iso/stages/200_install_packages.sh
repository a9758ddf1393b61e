#!/usr/bin/env bash
# Installs iso/packages.list into the root with apt, without recommends. The kernel wants an initramfs
# tool; the ISO makes its own initrd (stage 600), so a one-file package stands in for initramfs-tools.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
BASE=${BASE:?}
BASE_FRESH=${BASE_FRESH:?}
ROOTFS=${ROOTFS:?}
DEBS=${DEBS:?}
SUITE=${SUITE:?}
MIRROR=${MIRROR:?}
SECURITY_MIRROR=${SECURITY_MIRROR:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

if [ "$BASE_FRESH" = 1 ]; then log "cached root is current: skipped"; exit 0; fi

cat >"$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
cat >"$ROOTFS/etc/apt/apt.conf.d/90ferry" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Dpkg::Options { "--force-confold"; };
APT
# No init runs in the chroot: package scripts must not try to start services.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"

stand_in=$BASE/ferry-no-initramfs
mkdir -p "$stand_in/DEBIAN"
cat >"$stand_in/DEBIAN/control" <<'CONTROL'
Package: ferry-no-initramfs
Version: 1
Architecture: all
Maintainer: Ferry <ferry@localhost>
Provides: linux-initramfs-tool
Description: stands in for initramfs-tools in the Ferry restore ISO, which builds its own initrd
CONTROL
dpkg-deb --build --root-owner-group "$stand_in" "$ROOTFS/tmp/ferry-no-initramfs.deb" >/dev/null

mapfile -t packages < <(read_list "$ISO_DIR/packages.list")
chroot_mount "$ROOTFS"
mkdir -p "$DEBS/partial"
mount --bind "$DEBS" "$ROOTFS/var/cache/apt/archives"
CHROOT_MOUNTS=("$ROOTFS/var/cache/apt/archives" "${CHROOT_MOUNTS[@]}")

log "apt-get update"
in_chroot "$ROOTFS" apt-get update -qq
log "apt-get install ${packages[*]}"
in_chroot "$ROOTFS" apt-get install -y -q /tmp/ferry-no-initramfs.deb "${packages[@]}" >"$BASE/apt.log" 2>&1 \
  || { tail -30 "$BASE/apt.log" >&2; die "apt-get install failed (log: $BASE/apt.log)"; }
rm -f "$ROOTFS/tmp/ferry-no-initramfs.deb" "$ROOTFS/usr/sbin/policy-rc.d"
chroot_umount
log "root with packages: $(du -sm "$ROOTFS" | cut -f1) MiB"
