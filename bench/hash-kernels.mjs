// Per-block hashing throughput (docs/hashing.md): a 256 MiB buffer of random bytes, written
// before timing (untouched pages map to the zero page and give fake speeds), hashed in 4 KiB,
// 64 KiB and 2 MiB blocks by vhdsync XXH3-128, XXH3-64 and XXH64 (hashBlocksAt, zero-copy in
// WASM memory) against xxhash-wasm h64 and node:crypto sha1/md5, with benny. Also records
// `xxhsum -b` for XXH128 and XXH64 on the same machine and the target ratios. Besides benny's
// wall-clock figures, each case reports bytes per CPU second (cpuGBps) the best
// throughput over 1 MiB slices (burstGBps), which a busy machine distorts less, and the best
// throughput on a cache-resident 1 MiB slice (cachedGBps: xxhsum -b's conditions).
// VHDSYNC_BENCH_TINY=1: 4 MiB buffer, short runs. Results: bench/results/hash-kernels.json.
//   node bench/hash-kernels.mjs            (needs `npm run build`)
import { createHash, randomFillSync } from "node:crypto";
import b from "benny";
import xxhash from "xxhash-wasm";
import { MiB, round, writeResults, xxhsumBenchmark } from "./hash-common.mjs";

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const BUFFER_BYTES = tiny ? 4 * MiB : 256 * MiB;
const BLOCK_SIZES = [4096, 65536, 2 * MiB];
const CASE_OPTIONS = tiny ? { minSamples: 1, maxTime: 0.01, delay: 0, initCount: 1 } : { minSamples: 5, maxTime: 3 };

const { getWasm } = await import(new URL("../dist/wasm/driver.js", import.meta.url).href);
const { hashBlocksAt } = await import(new URL("../dist/hash/hash-bytes.js", import.meta.url).href);
const { h64Raw } = await xxhash();

const wasm = getWasm(BUFFER_BYTES + 64 * MiB);
const dataAddress = wasm.alloc(BUFFER_BYTES);
const data = wasm.view(dataAddress, BUFFER_BYTES);
for (let offset = 0; offset < BUFFER_BYTES; offset += 65536) randomFillSync(data, offset, Math.min(65536, BUFFER_BYTES - offset));
const digestAddress = wasm.alloc((BUFFER_BYTES / 4096) * 32);

/** The benchmark cases: each hashes `lengthBytes` at `offset` of the buffer block by block. */
function cases(blockSizeBytes) {
  const perBlock = (hashBlock) => (offset, lengthBytes) => {
    for (let block = offset; block < offset + lengthBytes; block += blockSizeBytes) hashBlock(data.subarray(block, block + blockSizeBytes));
  };
  const vhdsync = (algorithm) => (offset, lengthBytes) => hashBlocksAt(algorithm, dataAddress + offset, lengthBytes, blockSizeBytes, digestAddress);
  return {
    "vhdsync xxh3-128": vhdsync("xxh3-128"),
    "vhdsync xxh3-64": vhdsync("xxh3-64"),
    "vhdsync xxh64": vhdsync("xxh64"),
    "xxhash-wasm h64": perBlock((block) => h64Raw(block)),
    "node sha1": perBlock((block) => createHash("sha1").update(block).digest()),
    "node md5": perBlock((block) => createHash("md5").update(block).digest()),
  };
}

/**
 * Best throughput over short slices (max(1 MiB, one block)) of the buffer, each timed alone:
 * like `xxhsum -b`'s best-iteration figure, it dodges preemption on a busy machine.
 */
function burstThroughput(fn, blockSizeBytes) {
  const sliceBytes = Math.max(MiB, blockSizeBytes);
  let best = 0;
  for (let offset = 0; offset + sliceBytes <= BUFFER_BYTES; offset += sliceBytes) {
    const started = process.hrtime.bigint();
    fn(offset, sliceBytes);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    best = Math.max(best, sliceBytes / seconds);
  }
  return best;
}

/**
 * Best throughput hashing the same max(1 MiB, one block) slice again and again, so it stays in
 * the CPU caches: the conditions of `xxhsum -b` (which hashes a 100 KB sample in a loop).
 */
function cachedThroughput(fn, blockSizeBytes) {
  const sliceBytes = Math.max(MiB, blockSizeBytes);
  let best = 0;
  for (let i = 0; i < (tiny ? 20 : 400); i++) {
    const started = process.hrtime.bigint();
    fn(0, sliceBytes);
    best = Math.max(best, sliceBytes / (Number(process.hrtime.bigint() - started) / 1e9));
  }
  return best;
}

/** Bytes hashed per CPU second (user + system) over `repeats` runs: robust to a busy machine's scheduling. */
function cpuThroughput(fn, repeats) {
  const started = process.cpuUsage();
  for (let i = 0; i < repeats; i++) fn(0, BUFFER_BYTES);
  const used = process.cpuUsage(started);
  return (BUFFER_BYTES * repeats) / ((used.user + used.system) / 1e6);
}

const results = {};
for (const blockSizeBytes of BLOCK_SIZES) {
  const label = blockSizeBytes >= MiB ? `${blockSizeBytes / MiB} MiB` : `${blockSizeBytes / 1024} KiB`;
  const summary = await b.suite(
    `per-block hashing, ${label} blocks, ${BUFFER_BYTES / MiB} MiB buffer`,
    ...Object.entries(cases(blockSizeBytes)).map(([name, fn]) => b.add(name, () => fn(0, BUFFER_BYTES), CASE_OPTIONS)),
    b.cycle(),
    b.complete(),
  );
  const all = cases(blockSizeBytes);
  results[label] = Object.fromEntries(
    summary.results.map((entry) => [
      entry.name,
      {
        cpuGBps: round(cpuThroughput(all[entry.name], tiny ? 1 : 3) / 1e9),
        burstGBps: round(burstThroughput(all[entry.name], blockSizeBytes) / 1e9),
        cachedGBps: round(cachedThroughput(all[entry.name], blockSizeBytes) / 1e9),
        // GB/s = 10^9 bytes per second; median and best sample of benny's runs.
        medianGBps: round(BUFFER_BYTES / entry.details.median / 1e9),
        bestGBps: round(BUFFER_BYTES / entry.details.min / 1e9),
        samples: entry.samples,
      },
    ]),
  );
}

const xxhsumXxh128 = xxhsumBenchmark(11, tiny ? 1 : 3);
const xxhsumXxh64 = xxhsumBenchmark(3, tiny ? 1 : 3);
const at64k = results["64 KiB"];
const targets = {
  xxhsumBenchXxh128GBps: xxhsumXxh128 && round(xxhsumXxh128 / 1e9),
  xxhsumBenchXxh64GBps: xxhsumXxh64 && round(xxhsumXxh64 / 1e9),
  // Target >= 0.5: vhdsync XXH3-128 per-block at 64 KiB vs `xxhsum -b` XXH128 (best samples, both in cache-warm loops).
  xxh3_128At64KiBVsXxhsum: xxhsumXxh128 && round((at64k["vhdsync xxh3-128"].bestGBps * 1e9) / xxhsumXxh128),
  xxh3_128At64KiBCpuVsXxhsum: xxhsumXxh128 && round((at64k["vhdsync xxh3-128"].cpuGBps * 1e9) / xxhsumXxh128),
  xxh3_128At64KiBBurstVsXxhsum: xxhsumXxh128 && round((at64k["vhdsync xxh3-128"].burstGBps * 1e9) / xxhsumXxh128),
  // Same conditions as xxhsum -b (data in cache): the like-for-like kernel comparison.
  xxh3_128At64KiBCachedVsXxhsum: xxhsumXxh128 && round((at64k["vhdsync xxh3-128"].cachedGBps * 1e9) / xxhsumXxh128),
  // Target >= 1.5: vhdsync XXH64 vs xxhash-wasm h64 on the same buffer (median, per block size).
  xxh64VsXxhashWasm: Object.fromEntries(
    Object.entries(results).map(([label, row]) => [
      label,
      {
        median: round(row["vhdsync xxh64"].medianGBps / row["xxhash-wasm h64"].medianGBps),
        cpu: round(row["vhdsync xxh64"].cpuGBps / row["xxhash-wasm h64"].cpuGBps),
        burst: round(row["vhdsync xxh64"].burstGBps / row["xxhash-wasm h64"].burstGBps),
        cached: round(row["vhdsync xxh64"].cachedGBps / row["xxhash-wasm h64"].cachedGBps),
      },
    ]),
  ),
};
console.log(targets);
console.log(`results: ${writeResults("hash-kernels", tiny, { bufferBytes: BUFFER_BYTES, results, targets })}`);
