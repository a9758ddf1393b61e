#!/usr/bin/env bash
# The rest of the Ferry layer: iso/layer/ (PID 1 ferry-init, the ferry-restore launcher, reboot/poweroff
# without an init system, the shell profile), the marker ferry-restore boot looks for before it touches
# any disk, and /ferry pointing at the medium's /ferry (guest-agent packages).
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
LAYER=${LAYER:?}
FERRY_VERSION=${FERRY_VERSION:?}
BUILD_ID=${BUILD_ID:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

cp -a "$ISO_DIR/layer/." "$LAYER/"
for name in reboot poweroff halt; do ln -sfn ferry-reboot "$LAYER/usr/local/sbin/$name"; done
ln -sfn /run/live/medium/ferry "$LAYER/ferry"
printf 'VERSION=%s\nBUILD=%s\n' "$FERRY_VERSION" "$BUILD_ID" >"$LAYER/etc/ferry-restore-environment"
echo ferry-restore >"$LAYER/etc/hostname"
log "layer: $(cd "$LAYER" && find . -path ./opt/ferry/node_modules -prune -o ! -type d -print | sort | tr '\n' ' ')"
