// One-shot XXH3-64 and XXH3-128 of a whole buffer (xxhash_spec.md "XXH3 algorithm overview"):
// dispatches to the short (0-240 bytes) or long path and handles the seed. A seeded long hash
// derives its secret once into a static area and reuses it while the seed stays the same.

import { DEFAULT_SECRET, MIDSIZE_MAX_BYTES, SECRET_BYTES, storeCanonical64 } from "./constants";
import { deriveSecret, hashLongAccumulate, mergeHigh, mergeLow } from "./xxh3-long";
import { shortHigh, xxh3_128_short, xxh3_64_short } from "./xxh3-short";

const ONE_SHOT_ACCUMULATORS: usize = memory.data(64, 16);
const SEEDED_SECRET: usize = memory.data(<i32>SECRET_BYTES, 16);
let seededSecretSeed: u64 = 0;

/** High half of the last xxh3_128_low() result. */
export let xxh3High: u64 = 0;

/** The secret long inputs use for `seed`: the default one for 0, else a derived (cached) one. */
export function secretForSeed(seed: u64): usize {
  if (seed == 0) return DEFAULT_SECRET;
  if (seed != seededSecretSeed) {
    deriveSecret(SEEDED_SECRET, seed);
    seededSecretSeed = seed;
  }
  return SEEDED_SECRET;
}

/** XXH3-64 of `lengthBytes` bytes at `data` with `seed`. */
export function xxh3_64(data: usize, lengthBytes: usize, seed: u64): u64 {
  if (lengthBytes <= MIDSIZE_MAX_BYTES) return xxh3_64_short(data, lengthBytes, DEFAULT_SECRET, seed);
  const secret = secretForSeed(seed);
  hashLongAccumulate(ONE_SHOT_ACCUMULATORS, data, lengthBytes, secret);
  return mergeLow(ONE_SHOT_ACCUMULATORS, secret, lengthBytes);
}

/** XXH3-128 of `lengthBytes` bytes at `data`: returns the low half, high half in `xxh3High`. */
export function xxh3_128_low(data: usize, lengthBytes: usize, seed: u64): u64 {
  if (lengthBytes <= MIDSIZE_MAX_BYTES) {
    const low = xxh3_128_short(data, lengthBytes, DEFAULT_SECRET, seed);
    xxh3High = shortHigh;
    return low;
  }
  const secret = secretForSeed(seed);
  hashLongAccumulate(ONE_SHOT_ACCUMULATORS, data, lengthBytes, secret);
  xxh3High = mergeHigh(ONE_SHOT_ACCUMULATORS, secret, lengthBytes);
  return mergeLow(ONE_SHOT_ACCUMULATORS, secret, lengthBytes);
}

/** XXH3-128 of `lengthBytes` bytes at `data`, written as 16 canonical bytes (high64 then low64) at `out`. */
export function xxh3_128(data: usize, lengthBytes: usize, seed: u64, out: usize): void {
  const low = xxh3_128_low(data, lengthBytes, seed);
  storeCanonical64(out, xxh3High);
  storeCanonical64(out + 8, low);
}
