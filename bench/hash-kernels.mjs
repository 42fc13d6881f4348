// Per-block hashing throughput (docs/hashing.md): a 256 MiB buffer of random bytes, written
// before timing (untouched pages map to the zero page and give fake speeds), hashed in 4 KiB,
// 64 KiB and 2 MiB blocks by vhdsync XXH3-128, XXH3-64 and XXH64 (hashBlocksAt, zero-copy in
// WASM memory) against xxhash-wasm h64 and node:crypto sha1/md5, with benny. Also records
// `xxhsum -b` for XXH128 and XXH64 on the same machine and the target ratios.
// VHDSYNC_BENCH_TINY=1: 4 MiB buffer, a few seconds. Results: bench/results/hash-kernels.json.
//   node bench/hash-kernels.mjs            (needs `npm run build`)
import { createHash, randomFillSync } from "node:crypto";
import b from "benny";
import xxhash from "xxhash-wasm";
import { MiB, round, writeResults, xxhsumBenchmark } from "./hash-common.mjs";

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const BUFFER_BYTES = tiny ? 4 * MiB : 256 * MiB;
const BLOCK_SIZES = [4096, 65536, 2 * MiB];
const CASE_OPTIONS = tiny ? { minSamples: 2, maxTime: 0.05 } : { minSamples: 5, maxTime: 3 };

const { getWasm } = await import(new URL("../dist/wasm/driver.js", import.meta.url).href);
const { hashBlocksAt } = await import(new URL("../dist/hash/hash-bytes.js", import.meta.url).href);
const { h64Raw } = await xxhash();

const wasm = getWasm(BUFFER_BYTES + 64 * MiB);
const dataAddress = wasm.alloc(BUFFER_BYTES);
const data = wasm.view(dataAddress, BUFFER_BYTES);
for (let offset = 0; offset < BUFFER_BYTES; offset += 65536) randomFillSync(data, offset, Math.min(65536, BUFFER_BYTES - offset));
const digestAddress = wasm.alloc((BUFFER_BYTES / 4096) * 32);

/** The benchmark cases: each hashes the whole buffer block by block. */
function cases(blockSizeBytes) {
  const perBlock = (hashBlock) => () => {
    for (let offset = 0; offset < BUFFER_BYTES; offset += blockSizeBytes) hashBlock(data.subarray(offset, offset + blockSizeBytes));
  };
  return {
    "vhdsync xxh3-128": () => hashBlocksAt("xxh3-128", dataAddress, BUFFER_BYTES, blockSizeBytes, digestAddress),
    "vhdsync xxh3-64": () => hashBlocksAt("xxh3-64", dataAddress, BUFFER_BYTES, blockSizeBytes, digestAddress),
    "vhdsync xxh64": () => hashBlocksAt("xxh64", dataAddress, BUFFER_BYTES, blockSizeBytes, digestAddress),
    "xxhash-wasm h64": perBlock((block) => h64Raw(block)),
    "node sha1": perBlock((block) => createHash("sha1").update(block).digest()),
    "node md5": perBlock((block) => createHash("md5").update(block).digest()),
  };
}

const results = {};
for (const blockSizeBytes of BLOCK_SIZES) {
  const label = blockSizeBytes >= MiB ? `${blockSizeBytes / MiB} MiB` : `${blockSizeBytes / 1024} KiB`;
  const summary = await b.suite(
    `per-block hashing, ${label} blocks, ${BUFFER_BYTES / MiB} MiB buffer`,
    ...Object.entries(cases(blockSizeBytes)).map(([name, fn]) => b.add(name, fn, CASE_OPTIONS)),
    b.cycle(),
    b.complete(),
  );
  results[label] = Object.fromEntries(
    summary.results.map((entry) => [
      entry.name,
      {
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
  // Target >= 1.5: vhdsync XXH64 vs xxhash-wasm h64 on the same buffer (median, per block size).
  xxh64VsXxhashWasm: Object.fromEntries(
    Object.entries(results).map(([label, row]) => [label, round(row["vhdsync xxh64"].medianGBps / row["xxhash-wasm h64"].medianGBps)]),
  ),
};
console.log(targets);
console.log(`results: ${writeResults("hash-kernels", tiny, { bufferBytes: BUFFER_BYTES, results, targets })}`);
