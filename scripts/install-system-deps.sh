#!/usr/bin/env bash
# Installs the Debian packages vhdsync's tests and benchmarks use as oracles and peers:
# xxhsum (xxhash), qemu-img/qemu-io (qemu-utils), vhdiinfo (libvhdi-utils), rsync, mkfs.xfs
# (xfsprogs: reflink tests on an XFS loop mount), strace (kills at a chosen system call in the
# crash tests), and
# cargo/rustc when missing (for the optional native addon). Run as root (or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
packages=(xxhash qemu-utils libvhdi-utils rsync util-linux time xfsprogs strace)
if ! command -v cargo >/dev/null 2>&1; then packages+=(cargo rustc); fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${packages[@]}"
