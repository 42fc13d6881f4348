// XXH3 for inputs over 240 bytes (xxhash_spec.md "XXH3 algorithm description for large
// inputs"): eight 64-bit accumulators updated with v128 SIMD, two lanes per vector, plus the
// seed-derived secret. Accumulators live in caller memory (64 bytes, 16-byte aligned).

import {
  BLOCK_BYTES, DEFAULT_SECRET, PRIME32_1, PRIME32_2, PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3,
  PRIME64_4, PRIME64_5, SECRET_BYTES, STRIPES_PER_BLOCK, STRIPE_BYTES, avalancheXxh3, mulFold64,
} from "./constants";

/** Secret offset of the last-stripe accumulation: secretLength - 64 - 7. */
export const LAST_STRIPE_SECRET_OFFSET: usize = SECRET_BYTES - STRIPE_BYTES - 7;
/** Secret offset of the scramble step: the last 64 bytes. */
const SCRAMBLE_SECRET_OFFSET: usize = SECRET_BYTES - STRIPE_BYTES;

/** Sets the eight accumulators at `accumulators` to their initial constants (spec step 1). */
export function initLongAccumulators(accumulators: usize): void {
  store<u64>(accumulators, PRIME32_3, 0);
  store<u64>(accumulators, PRIME64_1, 8);
  store<u64>(accumulators, PRIME64_2, 16);
  store<u64>(accumulators, PRIME64_3, 24);
  store<u64>(accumulators, PRIME64_4, 32);
  store<u64>(accumulators, PRIME32_2, 40);
  store<u64>(accumulators, PRIME64_5, 48);
  store<u64>(accumulators, PRIME32_1, 56);
}

/**
 * low32(x) * high32(x) for the four 64-bit lanes x of `first` and `second` (data ^ key):
 * one shuffle gathers the low halves, one the high halves, and extmul multiplies them to
 * 64 bits. productsLow gives the products of `first`'s lanes, productsHigh of `second`'s.
 */
@inline
function productsLow(first: v128, second: v128): v128 {
  const lows = v128.shuffle<u32>(first, second, 0, 2, 4, 6);
  const highs = v128.shuffle<u32>(first, second, 1, 3, 5, 7);
  return i64x2.extmul_low_i32x4_u(lows, highs);
}

@inline
function productsHigh(first: v128, second: v128): v128 {
  const lows = v128.shuffle<u32>(first, second, 0, 2, 4, 6);
  const highs = v128.shuffle<u32>(first, second, 1, 3, 5, 7);
  return i64x2.extmul_high_i32x4_u(lows, highs);
}

@inline
function swapLanes(value: v128): v128 {
  return v128.shuffle<u64>(value, value, 1, 0);
}

/**
 * Accumulates `stripeCount` consecutive stripes at `data`, stripe n using the secret at
 * `secret + 8n` (spec step 2-1). No scrambling: callers split runs at block boundaries.
 */
export function accumulateStripes(accumulators: usize, data: usize, secret: usize, stripeCount: usize): void {
  let acc0 = v128.load(accumulators, 0);
  let acc1 = v128.load(accumulators, 16);
  let acc2 = v128.load(accumulators, 32);
  let acc3 = v128.load(accumulators, 48);
  // Data sums are added lane-swapped once at the end (acc[i ^ 1] += data[i] is linear).
  let sum0 = i64x2.splat(0);
  let sum1 = i64x2.splat(0);
  let sum2 = i64x2.splat(0);
  let sum3 = i64x2.splat(0);
  let pointer = data;
  let key = secret;
  const end = data + stripeCount * STRIPE_BYTES;
  while (pointer < end) {
    const data0 = v128.load(pointer, 0);
    const data1 = v128.load(pointer, 16);
    const data2 = v128.load(pointer, 32);
    const data3 = v128.load(pointer, 48);
    const mixed0 = v128.xor(data0, v128.load(key, 0));
    const mixed1 = v128.xor(data1, v128.load(key, 16));
    const mixed2 = v128.xor(data2, v128.load(key, 32));
    const mixed3 = v128.xor(data3, v128.load(key, 48));
    sum0 = i64x2.add(sum0, data0);
    sum1 = i64x2.add(sum1, data1);
    sum2 = i64x2.add(sum2, data2);
    sum3 = i64x2.add(sum3, data3);
    acc0 = i64x2.add(acc0, productsLow(mixed0, mixed1));
    acc1 = i64x2.add(acc1, productsHigh(mixed0, mixed1));
    acc2 = i64x2.add(acc2, productsLow(mixed2, mixed3));
    acc3 = i64x2.add(acc3, productsHigh(mixed2, mixed3));
    pointer += STRIPE_BYTES;
    key += 8;
  }
  v128.store(accumulators, i64x2.add(acc0, swapLanes(sum0)), 0);
  v128.store(accumulators, i64x2.add(acc1, swapLanes(sum1)), 16);
  v128.store(accumulators, i64x2.add(acc2, swapLanes(sum2)), 32);
  v128.store(accumulators, i64x2.add(acc3, swapLanes(sum3)), 48);
}

@inline
function scrambleVector(accumulator: v128, key: v128): v128 {
  const mixed = v128.xor(v128.xor(accumulator, i64x2.shr_u(accumulator, 47)), key);
  return i64x2.mul(mixed, i64x2.splat(PRIME32_1));
}

/** Scrambles the accumulators with the last 64 bytes of `secret` (spec step 2-2). */
export function scrambleAccumulators(accumulators: usize, secret: usize): void {
  const key = secret + SCRAMBLE_SECRET_OFFSET;
  v128.store(accumulators, scrambleVector(v128.load(accumulators, 0), v128.load(key, 0)), 0);
  v128.store(accumulators, scrambleVector(v128.load(accumulators, 16), v128.load(key, 16)), 16);
  v128.store(accumulators, scrambleVector(v128.load(accumulators, 32), v128.load(key, 32)), 32);
  v128.store(accumulators, scrambleVector(v128.load(accumulators, 48), v128.load(key, 48)), 48);
}

/**
 * Accumulates `stripeCount` stripes continuing a block that already holds `stripesInBlock`
 * stripes, scrambling at every block boundary. Returns the new stripes-in-block count.
 */
export function consumeStripes(accumulators: usize, stripesInBlock: usize, data: usize, stripeCount: usize, secret: usize): usize {
  let filled = stripesInBlock;
  let pointer = data;
  let remaining = stripeCount;
  while (remaining > 0) {
    const room = STRIPES_PER_BLOCK - filled;
    const run = remaining < room ? remaining : room;
    accumulateStripes(accumulators, pointer, secret + filled * 8, run);
    pointer += run * STRIPE_BYTES;
    remaining -= run;
    filled += run;
    if (filled == STRIPES_PER_BLOCK) {
      scrambleAccumulators(accumulators, secret);
      filled = 0;
    }
  }
  return filled;
}

/** Runs all of a > 240-byte input through fresh accumulators (spec steps 1-3). */
export function hashLongAccumulate(accumulators: usize, data: usize, lengthBytes: usize, secret: usize): void {
  initLongAccumulators(accumulators);
  const blockCount = (lengthBytes - 1) / BLOCK_BYTES;
  let block = data;
  for (let i: usize = 0; i < blockCount; i++) {
    accumulateStripes(accumulators, block, secret, STRIPES_PER_BLOCK);
    scrambleAccumulators(accumulators, secret);
    block += BLOCK_BYTES;
  }
  const lastStripes = (lengthBytes - 1 - blockCount * BLOCK_BYTES) / STRIPE_BYTES;
  accumulateStripes(accumulators, block, secret, lastStripes);
  accumulateStripes(accumulators, data + lengthBytes - STRIPE_BYTES, secret + LAST_STRIPE_SECRET_OFFSET, 1);
}

/** Merges the accumulators into 64 bits starting from `initial` (spec step 4, finalMerge). */
export function mergeAccumulators(accumulators: usize, secret: usize, initial: u64): u64 {
  let result = initial;
  for (let i: usize = 0; i < 64; i += 16) {
    result += mulFold64(load<u64>(accumulators + i) ^ load<u64>(secret + i), load<u64>(accumulators + i, 8) ^ load<u64>(secret + i, 8));
  }
  return avalancheXxh3(result);
}

/** Low half (and XXH3-64 value) of a long digest. */
@inline
export function mergeLow(accumulators: usize, secret: usize, lengthBytes: u64): u64 {
  return mergeAccumulators(accumulators, secret + 11, lengthBytes * PRIME64_1);
}

/** High half of a long XXH3-128 digest. */
@inline
export function mergeHigh(accumulators: usize, secret: usize, lengthBytes: u64): u64 {
  return mergeAccumulators(accumulators, secret + SECRET_BYTES - STRIPE_BYTES - 11, ~(lengthBytes * PRIME64_2));
}

/** Writes the secret derived from `seed` (192 bytes) at `target` (spec "Seed and Secret"). */
export function deriveSecret(target: usize, seed: u64): void {
  for (let i: usize = 0; i < SECRET_BYTES; i += 16) {
    store<u64>(target + i, load<u64>(DEFAULT_SECRET + i) + seed);
    store<u64>(target + i, load<u64>(DEFAULT_SECRET + i, 8) - seed, 8);
  }
}
