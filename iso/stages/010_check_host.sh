#!/usr/bin/env bash
# Refuses to start on a machine that cannot build the ISO, before anything is downloaded.
set -euo pipefail
ISO_DIR=${ISO_DIR:?}
NODE_BIN=${NODE_BIN:?}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$ISO_DIR/lib/common.sh"

[ "$(id -u)" = 0 ] || die "run as root: debootstrap, chroot and mount need it"
[ "$(uname -m)" = x86_64 ] || die "the ISO is amd64 and is built on an amd64 machine (this is $(uname -m))"
[ -x "$NODE_BIN" ] || die "no node binary at $NODE_BIN (set NODE_BIN)"
node_major=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
[ "$node_major" = 20 ] || die "the ISO carries this machine's node, which must be Node 20 (it is $("$NODE_BIN" --version))"
log "host ok: $(uname -m), node $("$NODE_BIN" --version) at $NODE_BIN"
