// Native addon benchmarks (docs/native.md): (1) allocation-map lookup of a 1 TiB sparse file
// with 1,000 extents, (2) the cost of checksumming an 8 GiB raw file that is 5% allocated
// versus a fully allocated one — per-64 KiB-block xxh3 digests of the allocated extents only
// (one src/hash hashSource pipeline over the extents of RawImage.allocationMap, reads
// overlapped with hashing), and, when src/sync/checksum exists, the
// full digest-file checksum(). The sparse file is also measured with VHDSYNC_NO_NATIVE=1 (a
// child process) to show what the fallback costs. The reader hints the next extent with
// fadvise(willneed). Page cache is dropped per file with
// fadvise(DONTNEED) before each timed read (cold reads). VHDSYNC_BENCH_TINY=1: tiny sizes.
// Results: bench/results/native-extents.json (tiny runs: bench/results/tmp/).
//   node bench/native-extents.mjs            (needs `npm run build`)
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { RawImage } = await dist("formats/raw.js");
const { nativeStatus, fadvise, fdatasync } = await dist("io/native.js");
const { hashSource } = await dist("hash/hash-image.js");
const checksumModule = await dist("sync/checksum.js").catch(() => undefined);

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SIZES = tiny
  ? { mapFileBytes: 4 * GiB, mapExtents: 100, hashFileBytes: 64 * MiB, repeats: 3 }
  : { mapFileBytes: 1024 * GiB, mapExtents: 1000, hashFileBytes: 8 * GiB, repeats: 21 };
const ALLOCATED_FRACTION = 0.05;
const BLOCK_BYTES = 64 * 1024;
const WRITE_CHUNK_BYTES = 16 * MiB;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const round = (value, digits = 3) => Number(value.toFixed(digits));

/** Writes `lengthBytes` of non-repeating data at `offset` (a random block with a counter stamped in). */
function writeData(fd, offset, lengthBytes, pattern) {
  for (let done = 0; done < lengthBytes; done += pattern.length) {
    const n = Math.min(pattern.length, lengthBytes - done);
    for (let i = 0; i < n; i += 4096) pattern.writeUInt32LE((offset + done + i) >>> 12, i);
    writeSync(fd, pattern, 0, n, offset + done);
  }
}

function makeFile(path, sizeBytes, extents) {
  const pattern = Buffer.alloc(WRITE_CHUNK_BYTES);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 2654435761) >>> 24;
  const fd = openSync(path, "w+");
  ftruncateSync(fd, sizeBytes);
  for (const extent of extents) writeData(fd, extent.offset, extent.length, pattern);
  closeSync(fd);
}

/** `count` non-adjacent extents of `lengthBytes`, spread evenly over `sizeBytes` (1 MiB aligned). */
function spreadExtents(sizeBytes, count, lengthBytes) {
  const stride = Math.floor(sizeBytes / count / MiB) * MiB;
  return Array.from({ length: count }, (_, i) => ({ offset: i * stride + (i % 7) * MiB, length: lengthBytes }));
}

async function mapBenchmark(dir) {
  const path = join(dir, "map.img");
  const extents = spreadExtents(SIZES.mapFileBytes, SIZES.mapExtents, 64 * 1024);
  makeFile(path, SIZES.mapFileBytes, extents);
  const image = await RawImage.open(path, true);
  try {
    const times = [];
    let found;
    for (let i = 0; i < SIZES.repeats; i++) {
      const started = performance.now();
      found = await image.allocationMap();
      times.push(performance.now() - started);
    }
    const exact = JSON.stringify(found) === JSON.stringify(extents);
    return { fileBytes: SIZES.mapFileBytes, extentsWritten: extents.length, extentsFound: found.length, exact, medianMs: round(median(times)), minMs: round(Math.min(...times)) };
  } finally {
    await image.close();
    rmSync(path);
  }
}

/**
 * A positional reader over the concatenation of `extents` of `image` (so one hashing
 * pipeline with overlapped reads covers every allocated extent).
 */
function extentReader(image, extents) {
  const starts = [];
  let total = 0;
  for (const extent of extents) {
    starts.push(total);
    total += extent.length;
  }
  let advised = -1;
  const readAt = async (view, offset) => {
    let index = starts.findLastIndex((start) => start <= offset);
    for (let done = 0; done < view.length; index++) {
      // Read-ahead hint for the next extent, so its cold read overlaps this one.
      for (; advised <= index + 1 && advised < extents.length; advised++) {
        if (advised >= 0) fadvise(image.fd, extents[advised].offset, extents[advised].length, "willneed");
      }
      const within = offset + done - starts[index];
      const n = Math.min(view.length - done, extents[index].length - within);
      await image.read(view.subarray(done, done + n), extents[index].offset + within);
      done += n;
    }
  };
  return { readAt, total };
}

/** Hashes the allocated extents of the raw file at `path` per 64 KiB block (cold cache). */
async function hashAllocated(path) {
  const image = await RawImage.open(path, true);
  try {
    fadvise(image.fd, 0, 0, "dontneed");
    const started = performance.now();
    const extents = await image.allocationMap();
    const { readAt, total } = extentReader(image, extents);
    await hashSource(readAt, total, { blockSizeBytes: BLOCK_BYTES });
    const seconds = (performance.now() - started) / 1000;
    return { seconds: round(seconds), bytesHashed: total, extents: extents.length, mibPerSecond: round(total / MiB / seconds, 1) };
  } finally {
    await image.close();
  }
}

async function checksumOf(path, digestPath) {
  if (!checksumModule) return { skipped: "src/sync/checksum.ts not built" };
  const image = await RawImage.open(path, true);
  fadvise(image.fd, 0, 0, "dontneed");
  await image.close();
  const report = await checksumModule.checksum(path, digestPath, { blockSizeBytes: BLOCK_BYTES });
  rmSync(digestPath, { force: true });
  return { seconds: round(report.seconds), bytesRead: report.bytesRead, blocksUnallocated: report.blocksUnallocated };
}

/**
 * Runs `--measure path` in a child with VHDSYNC_NO_NATIVE=1 (the portable fallback). The
 * child cannot drop the page cache itself, so this process does it first.
 */
function measureFallback(path) {
  const fd = openSync(path, "r");
  fadvise(fd, 0, 0, "dontneed");
  closeSync(fd);
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--measure", path], {
    encoding: "utf8",
    env: { ...process.env, VHDSYNC_NO_NATIVE: "1" },
  });
  if (child.status !== 0) throw new Error(`fallback measurement failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").pop());
}

async function hashBenchmark(dir) {
  const sparse = join(dir, "sparse-5pct.img");
  const full = join(dir, "full.img");
  const extentBytes = 4 * MiB;
  const count = Math.max(1, Math.round((SIZES.hashFileBytes * ALLOCATED_FRACTION) / extentBytes));
  makeFile(sparse, SIZES.hashFileBytes, spreadExtents(SIZES.hashFileBytes, count, extentBytes));
  makeFile(full, SIZES.hashFileBytes, [{ offset: 0, length: SIZES.hashFileBytes }]);
  for (const path of [sparse, full]) {
    const fd = openSync(path, "r");
    await fdatasync(fd); // dirty pages cannot be dropped
    closeSync(fd);
  }
  const sparseExtentsHash = await hashAllocated(sparse);
  const fullHash = await hashAllocated(full);
  const fallback = measureFallback(sparse);
  const results = {
    fileBytes: SIZES.hashFileBytes,
    allocatedFraction: ALLOCATED_FRACTION,
    sparseExtentsHash,
    fullHash,
    sparseFallbackHash: fallback.hash,
    sparseChecksum: await checksumOf(sparse, join(dir, "sparse.digest")),
    fullChecksum: await checksumOf(full, join(dir, "full.digest")),
    sparseFallbackChecksum: fallback.checksum,
  };
  results.sparseCostVsFull = round(results.sparseExtentsHash.seconds / results.fullHash.seconds);
  results.fallbackCostVsFull = round(results.sparseFallbackHash.seconds / results.fullHash.seconds);
  if (results.sparseChecksum.seconds && results.fullChecksum.seconds) {
    results.checksumSparseCostVsFull = round(results.sparseChecksum.seconds / results.fullChecksum.seconds);
  }
  rmSync(sparse);
  rmSync(full);
  return results;
}

function machine(dir) {
  const fsType = Number(statfsSync(dir).type);
  const status = nativeStatus();
  return {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    benchDirectory: dir,
    filesystemMagic: `0x${fsType.toString(16)}`,
    native: { loaded: status.loaded, reason: status.reason, version: status.version },
  };
}

async function main() {
  if (process.argv[2] === "--measure") {
    const digest = `${process.argv[3]}.fallback.digest`;
    console.log(JSON.stringify({ hash: await hashAllocated(process.argv[3]), checksum: await checksumOf(process.argv[3], digest) }));
    return;
  }
  const base = process.env.VHDSYNC_BENCH_DIR || tmpdir();
  const dir = mkdtempSync(join(base, "vhdsync-bench-native-"));
  try {
    const result = { benchmark: "native-extents", tiny, date: new Date().toISOString(), machine: machine(dir) };
    result.allocationMap = await mapBenchmark(dir);
    console.log("allocation map:", JSON.stringify(result.allocationMap));
    result.checksumCost = await hashBenchmark(dir);
    console.log("checksum cost:", JSON.stringify(result.checksumCost, null, 1));
    const outDir = join(root, "bench", "results", tiny ? "tmp" : "");
    if (!existsSync(outDir)) mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, "native-extents.json"), JSON.stringify(result, null, 2) + "\n");
    console.log(`wrote ${join(outDir, "native-extents.json")}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
