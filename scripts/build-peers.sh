#!/usr/bin/env bash
# Builds the peer tools bench/resync.mjs compares against (blocksync-fast, bdsync) from their
# public sources into a scratch directory, outside this repository. Optional: the benchmark
# runs them only when they are on PATH, and CI does not need them. As root on Debian:
#   bash scripts/build-peers.sh [DIR]          (default /tmp/peers)
#   PATH=DIR/bin:$PATH node bench/resync.mjs
# Sources are cloned from GitHub unless BLOCKSYNC_FAST_SRC / BDSYNC_SRC name local clones.
set -euo pipefail
DIR=${1:-/tmp/peers}
mkdir -p "$DIR/bin"
apt-get install -y build-essential git pkg-config autoconf-archive libgcrypt20-dev libxxhash-dev libssl-dev >/dev/null

fetch() { # name url local-source
  rm -rf "$DIR/$1"
  git clone -q "${3:-$2}" "$DIR/$1"
}

fetch blocksync-fast https://github.com/nethappen/blocksync-fast "${BLOCKSYNC_FAST_SRC:-}"
(
  cd "$DIR/blocksync-fast"
  # A fresh clone gives every file the same mtime; make the generated autotools files newer
  # than their inputs so make does not try to regenerate them (that needs automake).
  touch aclocal.m4 && sleep 1 && touch configure Makefile.in src/Makefile.in config.h.in
  ./configure >/dev/null && make -j"$(nproc)" >/dev/null
)
ln -sf "$DIR/blocksync-fast/src/blocksync-fast" "$DIR/bin/blocksync-fast"

fetch bdsync https://github.com/rolffokkens/bdsync "${BDSYNC_SRC:-}"
# The man page target needs pandoc; only the binary is wanted.
(cd "$DIR/bdsync" && make bdsync >/dev/null)
ln -sf "$DIR/bdsync/bdsync" "$DIR/bin/bdsync"

echo "peers built: PATH=$DIR/bin:\$PATH node bench/resync.mjs"
