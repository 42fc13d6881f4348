// XXH3-64 and XXH3-128 for inputs of 0-240 bytes (xxhash_spec.md "XXH3 algorithm description
// for small inputs" and "... for medium inputs"). These paths always use the default secret
// with the seed mixed in; only inputs over 240 bytes use a seed-derived secret.

import {
  PRIME32_2, PRIME64_1, PRIME64_2, PRIME64_4, PRIME_MX2,
  avalancheXxh3, avalancheXxh64, mul128, mulFold64, mulHigh,
} from "./constants";

/** High half of the last 128-bit result from this file (the stub runtime cannot return pairs). */
export let shortHigh: u64 = 0;

// The two XXH3-128 medium-path accumulators (globals so mixTwoChunks can update both).
let accumulatorLow: u64 = 0;
let accumulatorHigh: u64 = 0;

@inline
function mixStep(data: usize, secret: usize, seed: u64): u64 {
  return mulFold64(load<u64>(data) ^ (load<u64>(secret) + seed), load<u64>(data, 8) ^ (load<u64>(secret, 8) - seed));
}

@inline
function mixTwoChunks(first: usize, second: usize, secret: usize, seed: u64): void {
  accumulatorLow += mixStep(first, secret, seed);
  accumulatorHigh += mixStep(second, secret + 16, seed);
  accumulatorLow ^= load<u64>(second) + load<u64>(second, 8);
  accumulatorHigh ^= load<u64>(first) + load<u64>(first, 8);
}

@inline
function combine1to3(data: usize, lengthBytes: usize): u32 {
  return (<u32>load<u8>(data + lengthBytes - 1)) | (<u32>lengthBytes << 8) |
    (<u32>load<u8>(data) << 16) | (<u32>load<u8>(data + (lengthBytes >> 1)) << 24);
}

@inline
function modifiedSeed(seed: u64): u64 {
  return seed ^ (<u64>bswap<u32>(<u32>seed) << 32);
}

function xxh3_64_0to16(data: usize, lengthBytes: usize, secret: usize, seed: u64): u64 {
  if (lengthBytes > 8) {
    const low = ((load<u64>(secret, 24) ^ load<u64>(secret, 32)) + seed) ^ load<u64>(data);
    const high = ((load<u64>(secret, 40) ^ load<u64>(secret, 48)) - seed) ^ load<u64>(data + lengthBytes - 8);
    return avalancheXxh3(<u64>lengthBytes + bswap<u64>(low) + high + mulFold64(low, high));
  }
  if (lengthBytes >= 4) {
    const combined = (<u64>load<u32>(data + lengthBytes - 4)) | (<u64>load<u32>(data) << 32);
    let value = ((load<u64>(secret, 8) ^ load<u64>(secret, 16)) - modifiedSeed(seed)) ^ combined;
    value ^= rotl<u64>(value, 49) ^ rotl<u64>(value, 24);
    value *= PRIME_MX2;
    value ^= (value >> 35) + <u64>lengthBytes;
    value *= PRIME_MX2;
    return value ^ (value >> 28);
  }
  if (lengthBytes > 0) {
    const combined = <u64>combine1to3(data, lengthBytes);
    return avalancheXxh64(((<u64>(load<u32>(secret) ^ load<u32>(secret, 4))) + seed) ^ combined);
  }
  return avalancheXxh64(seed ^ load<u64>(secret, 56) ^ load<u64>(secret, 64));
}

function xxh3_128_0to16(data: usize, lengthBytes: usize, secret: usize, seed: u64): u64 {
  if (lengthBytes > 8) {
    const first = load<u64>(data);
    const last = load<u64>(data + lengthBytes - 8);
    const value1 = ((load<u64>(secret, 32) ^ load<u64>(secret, 40)) - seed) ^ first ^ last;
    const value2 = ((load<u64>(secret, 48) ^ load<u64>(secret, 56)) + seed) ^ last;
    let low = mul128(value1, PRIME64_1) + ((<u64>lengthBytes - 1) << 54);
    const high = mulHigh + value2 + (value2 & 0xFFFFFFFF) * (PRIME32_2 - 1);
    low ^= bswap<u64>(high);
    const low2 = mul128(low, PRIME64_2);
    shortHigh = avalancheXxh3(mulHigh + high * PRIME64_2);
    return avalancheXxh3(low2);
  }
  if (lengthBytes >= 4) {
    const combined = (<u64>load<u32>(data)) | (<u64>load<u32>(data + lengthBytes - 4) << 32);
    const value = ((load<u64>(secret, 16) ^ load<u64>(secret, 24)) + modifiedSeed(seed)) ^ combined;
    let low = mul128(value, PRIME64_1 + (<u64>lengthBytes << 2));
    const high = mulHigh + (low << 1);
    low ^= high >> 3;
    low ^= low >> 35;
    low *= PRIME_MX2;
    low ^= low >> 28;
    shortHigh = avalancheXxh3(high);
    return low;
  }
  if (lengthBytes > 0) {
    const combined = combine1to3(data, lengthBytes);
    const low = ((<u64>(load<u32>(secret) ^ load<u32>(secret, 4))) + seed) ^ <u64>combined;
    const high = ((<u64>(load<u32>(secret, 8) ^ load<u32>(secret, 12))) - seed) ^ <u64>rotl<u32>(bswap<u32>(combined), 13);
    shortHigh = avalancheXxh64(high);
    return avalancheXxh64(low);
  }
  shortHigh = avalancheXxh64(seed ^ load<u64>(secret, 80) ^ load<u64>(secret, 88));
  return avalancheXxh64(seed ^ load<u64>(secret, 64) ^ load<u64>(secret, 72));
}

function xxh3_64_17to240(data: usize, lengthBytes: usize, secret: usize, seed: u64): u64 {
  let accumulator = <u64>lengthBytes * PRIME64_1;
  if (lengthBytes <= 128) {
    for (let i = <isize>((lengthBytes - 1) >> 5); i >= 0; i--) {
      const offset = <usize>i * 16;
      accumulator += mixStep(data + offset, secret + offset * 2, seed);
      accumulator += mixStep(data + lengthBytes - offset - 16, secret + offset * 2 + 16, seed);
    }
    return avalancheXxh3(accumulator);
  }
  for (let offset: usize = 0; offset < 128; offset += 16) {
    accumulator += mixStep(data + offset, secret + offset, seed);
  }
  accumulator = avalancheXxh3(accumulator);
  const chunkCount = lengthBytes >> 4;
  for (let i: usize = 8; i < chunkCount; i++) {
    accumulator += mixStep(data + i * 16, secret + (i - 8) * 16 + 3, seed);
  }
  accumulator += mixStep(data + lengthBytes - 16, secret + 119, seed);
  return avalancheXxh3(accumulator);
}

function xxh3_128_17to240(data: usize, lengthBytes: usize, secret: usize, seed: u64): u64 {
  accumulatorLow = <u64>lengthBytes * PRIME64_1;
  accumulatorHigh = 0;
  if (lengthBytes <= 128) {
    for (let i = <isize>((lengthBytes - 1) >> 5); i >= 0; i--) {
      const offset = <usize>i * 16;
      mixTwoChunks(data + offset, data + lengthBytes - offset - 16, secret + offset * 2, seed);
    }
  } else {
    for (let offset: usize = 0; offset < 128; offset += 32) {
      mixTwoChunks(data + offset, data + offset + 16, secret + offset, seed);
    }
    accumulatorLow = avalancheXxh3(accumulatorLow);
    accumulatorHigh = avalancheXxh3(accumulatorHigh);
    const chunkCount = lengthBytes >> 5;
    for (let i: usize = 4; i < chunkCount; i++) {
      mixTwoChunks(data + i * 32, data + i * 32 + 16, secret + (i - 4) * 32 + 3, seed);
    }
    mixTwoChunks(data + lengthBytes - 16, data + lengthBytes - 32, secret + 103, 0 - seed);
  }
  const low = accumulatorLow + accumulatorHigh;
  const high = accumulatorLow * PRIME64_1 + accumulatorHigh * PRIME64_4 + (<u64>lengthBytes - seed) * PRIME64_2;
  shortHigh = 0 - avalancheXxh3(high);
  return avalancheXxh3(low);
}

/** XXH3-64 of 0-240 bytes with the default `secret` and `seed`. */
export function xxh3_64_short(data: usize, lengthBytes: usize, secret: usize, seed: u64): u64 {
  return lengthBytes <= 16 ? xxh3_64_0to16(data, lengthBytes, secret, seed) : xxh3_64_17to240(data, lengthBytes, secret, seed);
}

/** XXH3-128 of 0-240 bytes: returns the low half, leaves the high half in `shortHigh`. */
export function xxh3_128_short(data: usize, lengthBytes: usize, secret: usize, seed: u64): u64 {
  return lengthBytes <= 16 ? xxh3_128_0to16(data, lengthBytes, secret, seed) : xxh3_128_17to240(data, lengthBytes, secret, seed);
}
