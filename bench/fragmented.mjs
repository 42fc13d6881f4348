// Sparse raw images whose data lies in small pieces (a thin image after the guest trimmed it):
// a 2 GiB pair with 4 KiB of data every 8 KiB, 262,144 extents per file, the target's data
// differing from the source's in 0.9% of its pieces. Extents come from FIEMAP on ext4 and
// XFS and from SEEK_DATA/SEEK_HOLE elsewhere (VHDSYNC_EXTENTS=lseek forces the latter).
// In alternating rounds, with both files in the page cache:
// - the allocation map of one file through the addon, in-process, by each method;
// - `vhdsync resync --dry-run` of the pair by each method, against `cat` of both files in
//   parallel (the floor for reading them);
// - `vhdsync checksum` of the source by each method, against `cat` of it;
// - once each, cold (the pair's pages dropped with fadvise DONTNEED first): the dry run and
//   the parallel `cat`.
// Checks: both methods map the same extents, the dry runs report the same counts and the
// checksums write identical digest files.
// VHDSYNC_BENCH_TINY=1 runs at 8 MiB; full size writes bench/results/fragmented.json.
import { spawnSync } from "node:child_process";
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GiB, MiB, median, root, round, writeResults } from "./hash-common.mjs";

const TINY = process.env.VHDSYNC_BENCH_TINY === "1";
const SIZE = TINY ? 8 * MiB : 2 * GiB;
const ROUNDS = TINY ? 1 : Number(process.env.VHDSYNC_BENCH_ROUNDS ?? 5);
const PIECE = 4096;
const CLI = join(root, "bin/vhdsync.cjs");
const METHODS = { default: {}, lseek: { VHDSYNC_EXTENTS: "lseek" } };
/** NODE_EXTRA_CA_CERTS costs every Node process start-up time (see bench/resync.mjs). */
const NODE_ENV = { ...process.env };
delete NODE_ENV.NODE_EXTRA_CA_CERTS;

const { nativeAddon } = await import(new URL("../dist/io/native-addon.js", import.meta.url).href);
const { fadvise, fdatasync } = await import(new URL("../dist/io/native.js", import.meta.url).href);
const addon = nativeAddon();
if (!addon) {
  console.log("fragmented: the native addon is not loaded; nothing to compare");
  process.exit(0);
}

const dir = mkdtempSync(join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-fragmented-"));

/** A file of SIZE bytes with PIECE bytes of data at every other PIECE; `changed` of them differ by `seed`. */
function writeFragmented(path, seed) {
  const fd = openSync(path, "w+");
  try {
    ftruncateSync(fd, SIZE);
    const piece = Buffer.alloc(PIECE);
    for (let offset = 0, index = 0; offset < SIZE; offset += 2 * PIECE, index++) {
      piece.writeUInt32LE(index, 0);
      piece.writeUInt32LE(index % 111 === 0 ? seed : 1, 4); // 0.9% of the pieces differ between seeds
      piece[8] = 0x5a;
      writeSync(fd, piece, 0, PIECE, offset);
    }
  } finally {
    closeSync(fd);
  }
}

function timed(env, command, args) {
  const started = performance.now();
  const run = spawnSync(command, args, { encoding: "utf8", env: { ...NODE_ENV, ...env } });
  const seconds = (performance.now() - started) / 1000;
  if (run.error || (run.status !== 0 && run.status !== 1)) throw new Error(`${command} ${args.join(" ")} failed (${run.status}): ${run.stderr}`);
  return { seconds, stdout: run.stdout };
}

const catAll = (paths) => timed({}, "sh", ["-c", paths.map((path) => `cat '${path}' > /dev/null &`).join(" ") + " wait"]);
const dryRun = (env, paths) => {
  const run = timed(env, process.execPath, [CLI, "resync", ...paths, "--dry-run", "--json"]);
  return { seconds: run.seconds, report: JSON.parse(run.stdout.trim().split("\n").at(-1)) };
};
const checksum = (env, path, digest) => timed(env, process.execPath, [CLI, "checksum", path, "-o", digest, "--json"]).seconds;
const counts = (report) => JSON.stringify([report.blocksCompared, report.blocksChanged, report.blocksUnallocated, report.bytesRead]);

/** Drops the files' pages from the page cache (flushed first: only clean pages are dropped). */
async function dropCache(paths) {
  for (const path of paths) {
    const fd = openSync(path, "r");
    try {
      await fdatasync(fd);
      fadvise(fd, 0, 0, "dontneed");
    } finally {
      closeSync(fd);
    }
  }
}

try {
  const paths = [join(dir, "source.img"), join(dir, "target.img")];
  writeFragmented(paths[0], 2);
  writeFragmented(paths[1], 3);
  const fd = openSync(paths[0], "r");
  const methodUsed = addon.extentsMethod(fd);
  const maps = { default: [], lseek: [] };
  const runs = { default: [], lseek: [], cat: [], checksumDefault: [], checksumLseek: [], catSource: [] };
  let extents = 0;
  const seen = new Set();
  try {
    for (let roundIndex = 0; roundIndex < ROUNDS; roundIndex++) {
      catAll(paths);
      const mapped = {};
      for (const [method, env] of Object.entries(METHODS)) {
        if (env.VHDSYNC_EXTENTS) process.env.VHDSYNC_EXTENTS = env.VHDSYNC_EXTENTS;
        else delete process.env.VHDSYNC_EXTENTS;
        const started = performance.now();
        mapped[method] = addon.extents(fd, 0, SIZE);
        maps[method].push((performance.now() - started) / 1000);
      }
      delete process.env.VHDSYNC_EXTENTS;
      if (!Buffer.from(mapped.default.buffer).equals(Buffer.from(mapped.lseek.buffer))) throw new Error("FIEMAP and SEEK_DATA/SEEK_HOLE mapped different extents");
      extents = mapped.default.length / 2; // (offset, length) pairs
      runs.cat.push(catAll(paths).seconds);
      for (const [method, env] of Object.entries(METHODS)) {
        const run = dryRun(env, paths);
        runs[method].push(run.seconds);
        seen.add(counts(run.report));
      }
      runs.catSource.push(catAll([paths[0]]).seconds);
      const digests = [join(dir, "default.digest"), join(dir, "lseek.digest")];
      runs.checksumDefault.push(checksum(METHODS.default, paths[0], digests[0]));
      runs.checksumLseek.push(checksum(METHODS.lseek, paths[0], digests[1]));
      if (!readFileSync(digests[0]).equals(readFileSync(digests[1]))) throw new Error("the two methods wrote different digest files");
    }
  } finally {
    closeSync(fd);
  }
  if (seen.size !== 1) throw new Error(`the dry runs reported different counts: ${[...seen].join(" / ")}`);
  await dropCache(paths);
  const coldRun = dryRun({}, paths);
  await dropCache(paths);
  const coldCat = catAll(paths).seconds;
  const medians = Object.fromEntries(Object.entries({ ...runs, mapDefault: maps.default, mapLseek: maps.lseek }).map(([key, values]) => [key, round(median(values), 4)]));
  const result = {
    sizeBytes: SIZE,
    pieceBytes: PIECE,
    extentsPerFile: extents,
    filesystem: `0x${Number(statfsSync(dir).type).toString(16)}`,
    defaultMethod: methodUsed,
    rounds: ROUNDS,
    medianSeconds: medians,
    ratios: {
      mapLseekOverDefault: round(medians.mapLseek / medians.mapDefault),
      dryRunLseekOverDefault: round(medians.lseek / medians.default),
      dryRunOverCat: round(medians.default / medians.cat),
      checksumLseekOverDefault: round(medians.checksumLseek / medians.checksumDefault),
      checksumOverCat: round(medians.checksumDefault / medians.catSource),
    },
    cold: { dryRunSeconds: round(coldRun.seconds), catSeconds: round(coldCat), ratio: round(coldRun.seconds / coldCat) },
    report: JSON.parse([...seen][0]),
    allSeconds: { ...runs, mapDefault: maps.default, mapLseek: maps.lseek },
  };
  const written = writeResults("fragmented", TINY, result);
  console.log(JSON.stringify({ medianSeconds: medians, ratios: result.ratios, cold: result.cold, extentsPerFile: extents, defaultMethod: methodUsed }, null, 1));
  console.log(`results: ${written}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
