// Fixture generator for the resync benchmarks: a random raw image pair where a given fraction
// of 4 KiB blocks differ (seeded, so runs are comparable). Usable as a script:
//   node bench/resync-fixtures.mjs DIR SIZE_MIB [CHANGED_FRACTION]
import { openSync, writeSync, closeSync, copyFileSync, existsSync, statSync } from "node:fs";
import { randomFillSync, createHash } from "node:crypto";
import { join } from "node:path";

const CHUNK_BYTES = 16 * 1024 * 1024;
const BLOCK_BYTES = 4096;

/** Deterministic block picker (xorshift32) so the same seed changes the same blocks. */
function picker(seed) {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

/** Writes `sizeBytes` of random data to `path` (skipped when it already exists with that size). */
export function writeRandomFile(path, sizeBytes) {
  if (existsSync(path) && statSync(path).size === sizeBytes) return false;
  const fd = openSync(path, "w");
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  for (let done = 0; done < sizeBytes; done += CHUNK_BYTES) {
    const n = Math.min(CHUNK_BYTES, sizeBytes - done);
    randomFillSync(chunk, 0, n);
    writeSync(fd, chunk, 0, n, done);
  }
  closeSync(fd);
  return true;
}

/** Overwrites `count` distinct random 4 KiB blocks of `path` with random bytes; returns the count. */
export function changeBlocks(path, sizeBytes, count, seed = 1) {
  const fd = openSync(path, "r+");
  try {
    return changedBlockOffsets(sizeBytes, count, seed, (block, offset) => writeSync(fd, block, 0, BLOCK_BYTES, offset)).length;
  } finally {
    closeSync(fd);
  }
}

/**
 * The 4 KiB blocks changeBlocks() picks for `seed`: calls `write(randomBlock, offset)` for
 * each (another image format can write them through its own API) and returns their offsets.
 */
export function changedBlockOffsets(sizeBytes, count, seed, write) {
  const blocks = Math.floor(sizeBytes / BLOCK_BYTES);
  const next = picker(seed);
  const chosen = new Set();
  while (chosen.size < Math.min(count, blocks)) chosen.add(next(blocks));
  const block = Buffer.allocUnsafe(BLOCK_BYTES);
  for (const index of chosen) {
    randomFillSync(block);
    write(block, index * BLOCK_BYTES);
  }
  return [...chosen].map((index) => index * BLOCK_BYTES);
}

/**
 * Creates DIR/source.img and DIR/target.img: random, identical except `fraction` of the 4 KiB
 * blocks of the target. Returns the paths and the number of changed blocks.
 */
export function makePair(dir, sizeBytes, fraction = 0.009, seed = 1) {
  const source = join(dir, "source.img");
  const target = join(dir, "target.img");
  writeRandomFile(source, sizeBytes);
  copyFileSync(source, target);
  const changedBlocks = changeBlocks(target, sizeBytes, Math.round((sizeBytes / BLOCK_BYTES) * fraction), seed);
  return { source, target, changedBlocks };
}

/** sha256 of a whole file (for checks in the bench). */
export function fileHash(path) {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  let position = 0;
  for (;;) {
    const n = readChunk(fd, chunk, position);
    if (n === 0) break;
    hash.update(chunk.subarray(0, n));
    position += n;
  }
  closeSync(fd);
  return hash.digest("hex");
}

import { readSync } from "node:fs";
function readChunk(fd, chunk, position) {
  return readSync(fd, chunk, 0, chunk.length, position);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, sizeMib, fraction] = process.argv.slice(2);
  const result = makePair(dir, Number(sizeMib) * 1024 * 1024, fraction ? Number(fraction) : 0.009);
  console.log(JSON.stringify(result));
}
