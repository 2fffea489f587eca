# shellcheck shell=bash
# Shared by scripts/libvirt-testbed and scripts/numa-testbed, which set TESTBED (their name) and BASE (their
# directory under var/) before sourcing it.

log() { echo "$TESTBED: $*" >&2; }
die() {
  log "$*"
  exit 1
}

wait_gone() { # wait_gone SECONDS PID...
  local deadline=$((SECONDS + $1)) pid
  shift
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  done
}

# libvirt's QEMU driver will not initialise without its default user, even when told to run QEMU as root.
ensure_libvirt_user() {
  if ! getent passwd libvirt-qemu >/dev/null; then
    if getent group libvirt-qemu >/dev/null; then
      useradd --system --no-create-home -g libvirt-qemu libvirt-qemu
    else
      useradd --system --no-create-home -U libvirt-qemu
    fi
  fi
}

# One command at a time; what a command starts must not inherit the lock (close fd 9 for it).
with_lock() {
  mkdir -p "$BASE"
  exec 9>"$BASE/.lock"
  flock -w 300 9 || die "another $TESTBED command holds $BASE/.lock"
}
