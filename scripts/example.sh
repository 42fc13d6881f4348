#!/usr/bin/env bash
# The main job on a small example: two 64 MiB images that differ in a few blocks; vhdsync
# resyncs the replica from the primary (writing only the differing blocks), then proves the
# two are identical. Run with: npm run example
set -euo pipefail
cd "$(dirname "$0")/.."
VHDSYNC="node bin/vhdsync.cjs"
work=$(mktemp -d "${TMPDIR:-/tmp}/vhdsync-example.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== primary: a 64 MiB dynamic VHD with 8 MiB of random data"
head -c 8M /dev/urandom > "$work/data.raw"
truncate -s 64M "$work/data.raw"
$VHDSYNC convert "$work/data.raw" "$work/primary.vhd" --to vhd-dynamic
$VHDSYNC info "$work/primary.vhd"
echo "== replica: a raw copy of it (full download), then the primary changes in three places"
$VHDSYNC copy "$work/primary.vhd" "$work/replica.raw"
$VHDSYNC convert "$work/primary.vhd" "$work/changed.raw" --to raw
for offset in 1000000 20000000 60000000; do
  head -c 3000 /dev/urandom | dd of="$work/changed.raw" bs=1 seek="$offset" conv=notrunc status=none
done
$VHDSYNC convert "$work/changed.raw" "$work/primary.vhd" --to vhd-dynamic --force
echo "== what differs"
$VHDSYNC diff "$work/primary.vhd" "$work/replica.raw" || true
echo "== resync (JSON report)"
$VHDSYNC resync "$work/primary.vhd" "$work/replica.raw" --json
echo "== compare"
$VHDSYNC compare "$work/primary.vhd" "$work/replica.raw"
