# shellcheck shell=bash
# Helpers shared by iso/stages/*.sh (sourced, not run). Each stage names the variables it reads from
# build.sh at its top as NAME=${NAME:?}, so a stage run on its own fails on the first missing input.

STAGE_NAME=$(basename "$0" .sh)

log() { printf '[%s] %s\n' "$STAGE_NAME" "$*"; }
die() { printf '[%s] error: %s\n' "$STAGE_NAME" "$*" >&2; exit 1; }

# The packages of a list file: words before any '#', one package per line.
read_list() { sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$1"; }

# Refuses to delete a directory that still has something mounted below it (a chroot's /dev bind mount
# removed with rm -rf would take the host's device nodes with it).
safe_rm_dir() {
  local dir=$1
  [ -e "$dir" ] || return 0
  if findmnt -rn -o TARGET | grep -q -F "$(realpath "$dir")"; then die "$dir still has mounts below it; unmount them first"; fi
  rm -rf --one-file-system "$dir"
}

# chroot with the kernel file systems it needs; unmounted on exit whatever happens.
CHROOT_MOUNTS=()
chroot_mount() {
  local root=$1 m
  for m in proc sys dev dev/pts; do
    mkdir -p "$root/$m"
    case $m in
      proc) mount -t proc proc "$root/proc" ;;
      sys) mount -t sysfs sysfs "$root/sys" ;;
      dev) mount --bind /dev "$root/dev" ;;
      dev/pts) mount -t devpts devpts "$root/dev/pts" ;;
    esac
    CHROOT_MOUNTS=("$root/$m" "${CHROOT_MOUNTS[@]}")
  done
  trap chroot_umount EXIT
}
chroot_umount() {
  local m
  for m in "${CHROOT_MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  CHROOT_MOUNTS=()
}
in_chroot() {
  local root=$1; shift
  LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
}
