#!/usr/bin/env bash
# The guest agent packages restore-pe installs into restored systems, as a flat apt repository per
# distribution (deb [trusted=yes] file:/ferry/packages/debian-12 ./). Dependencies are resolved against
# a bare minbase system, so the set covers the most minimal server; apt on a fuller one skips what it has.
# Only Debian 12 for now: its packages come from the mirror this root is built from.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
BASE=${BASE:?}
BASE_FRESH=${BASE_FRESH:?}
ROOTFS=${ROOTFS:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

if [ "$BASE_FRESH" = 1 ]; then log "cached root is current: skipped"; exit 0; fi

distro=debian-12
agents=(qemu-guest-agent)
dest=$BASE/packages/$distro
safe_rm_dir "$dest"
mkdir -p "$dest" "$ROOTFS/tmp/agents/partial"
cp "$BASE/minbase.status" "$ROOTFS/tmp/minbase.status"
in_chroot "$ROOTFS" apt-get install -y -q --download-only \
  -o Dir::State::status=/tmp/minbase.status -o Dir::Cache::archives=/tmp/agents/ "${agents[@]}" >"$BASE/agents.log" 2>&1 \
  || { tail -20 "$BASE/agents.log" >&2; die "downloading ${agents[*]} failed (log: $BASE/agents.log)"; }
mv "$ROOTFS"/tmp/agents/*.deb "$dest/"
rm -rf "$ROOTFS/tmp/agents" "$ROOTFS/tmp/minbase.status"

# The flat repository's index.
for deb in "$dest"/*.deb; do
  dpkg-deb -f "$deb"
  printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$(basename "$deb")" "$(stat -c %s "$deb")" "$(sha256sum "$deb" | cut -d' ' -f1)"
done >"$dest/Packages"
log "$distro: $(find "$dest" -name '*.deb' -printf '%f\n' | sed 's/_.*//' | sort | tr '\n' ' ')($(du -sk "$dest" | cut -f1) KiB)"
