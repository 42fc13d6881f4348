// Large sparse images through the CLI (docs/resync.md "Large sparse images"): a 1 TiB raw
// pair with 1,000 allocated 64 KiB extents in the source, and a target that differs from it
// in 100 of them and holds 100 extents of its own where the source has holes. Each command
// runs in its own process (wall time and peak RSS through /usr/bin/time; medians of 3):
//   checksum of either image, resync --dry-run (both images read), resync --target-digest
//   --dry-run, diff of the two digest files, diff of the source against the target's digest.
// The commands must agree on the differing blocks; the script fails when they do not.
// VHDSYNC_BENCH_TINY=1: a 4 GiB pair, one run each. Results: bench/results/sparse-large.json.
//   node bench/sparse-large.mjs            (needs `npm run build`)
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GiB, measureCli, writeResults } from "./hash-common.mjs";

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const SIZE = tiny ? 4 * GiB : 1024 * GiB;
const EXTENTS = tiny ? 20 : 1000;
const CHANGED = tiny ? 2 : 100;
const EXTENT_BYTES = 64 * 1024;
const REPEATS = tiny ? 1 : 3;
// NODE_EXTRA_CA_CERTS costs every Node process a CA bundle parse at start-up; vhdsync opens no TLS.
const ENV = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;

/** Extent i of the source: spread evenly, 64 KiB-aligned. */
const extentAt = (i) => Math.floor((i * SIZE) / EXTENTS / EXTENT_BYTES) * EXTENT_BYTES;

function writeExtents(path, offsets, stamp) {
  const data = Buffer.alloc(EXTENT_BYTES);
  const fd = openSync(path, existsSync(path) ? "r+" : "w+");
  try {
    ftruncateSync(fd, SIZE);
    for (const offset of offsets) {
      for (let i = 0; i < EXTENT_BYTES; i += 4) data.writeUInt32LE((Math.imul(((offset + i) / 4) >>> 0, 2654435761) ^ Math.imul(stamp, 0x9e3779b9)) >>> 0, i);
      writeSync(fd, data, 0, EXTENT_BYTES, offset);
    }
  } finally {
    closeSync(fd);
  }
}

const measure = (args, allow) => measureCli(args, { repeats: REPEATS, env: ENV, allow });

if (!existsSync("/usr/bin/time")) {
  console.log("sparse-large: /usr/bin/time is missing (the time package); skipped");
  process.exit(0);
}
const dir = mkdtempSync(join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-sparse-"));
try {
  const [source, target] = [join(dir, "source.img"), join(dir, "target.img")];
  const [sourceDigest, targetDigest] = [join(dir, "source.digest"), join(dir, "target.digest")];
  const offsets = Array.from({ length: EXTENTS }, (_, i) => extentAt(i));
  writeExtents(source, offsets, 1);
  // The target: the source's extents, 100 of them different, and 100 extents of its own in the
  // source's holes (halfway between two of its extents).
  writeExtents(target, offsets, 1);
  writeExtents(target, offsets.filter((_, i) => i % (EXTENTS / CHANGED) === 0), 2);
  writeExtents(target, offsets.filter((_, i) => i % (EXTENTS / CHANGED) === 1).map((offset) => offset + Math.floor(SIZE / EXTENTS / 2 / EXTENT_BYTES) * EXTENT_BYTES), 3);
  const differingBlocks = (2 * CHANGED * EXTENT_BYTES) / 4096;

  const results = { sizeBytes: SIZE, sourceExtents: EXTENTS, extentBytes: EXTENT_BYTES, blockSizeBytes: 4096, differingBlocks, repeats: REPEATS };
  const checksumSource = measure(["checksum", source, "-o", sourceDigest]);
  const checksumTarget = measure(["checksum", target, "-o", targetDigest]);
  const resyncDry = measure(["resync", source, target, "--dry-run"]);
  const targetDigestDry = measure(["resync", source, target, "--target-digest", targetDigest, "--dry-run"]);
  const diffDigests = measure(["diff", sourceDigest, targetDigest], [1]);
  const diffImageDigest = measure(["diff", source, targetDigest], [1]);
  const found = {
    resyncDry: resyncDry.report.blocksChanged,
    targetDigestDry: targetDigestDry.report.blocksChanged,
    diffDigests: diffDigests.report.blocksDiffering,
    diffImageDigest: diffImageDigest.report.blocksDiffering,
  };
  for (const [name, blocks] of Object.entries(found)) {
    if (blocks !== differingBlocks) throw new Error(`${name} found ${blocks} differing blocks, expected ${differingBlocks}`);
  }
  const strip = ({ seconds, peakRssMiB, allSeconds }) => ({ seconds, peakRssMiB, allSeconds });
  Object.assign(results, {
    digestFileBytes: statSync(sourceDigest).size,
    commands: {
      checksumSource: strip(checksumSource),
      checksumTarget: strip(checksumTarget),
      resyncDryRun: strip(resyncDry),
      targetDigestDryRun: strip(targetDigestDry),
      diffDigests: strip(diffDigests),
      diffImageDigest: strip(diffImageDigest),
    },
  });
  for (const [name, figures] of Object.entries(results.commands)) console.log(`${name.padEnd(18)} ${figures.seconds.toFixed(2).padStart(7)} s  ${figures.peakRssMiB.toFixed(0).padStart(4)} MiB`);
  console.log(`results: ${writeResults("sparse-large", tiny, results)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
