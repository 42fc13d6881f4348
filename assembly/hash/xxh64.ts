// XXH64 (xxhash_spec.md "XXH64 algorithm description"): one-shot and streaming. The streaming
// state lives in caller-provided memory (XXH64_STATE_BYTES, 16-byte aligned is enough); it is
// equal to the one-shot digest for any chunking.

import { PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME64_5, avalancheXxh64 } from "./constants";

const STRIPE_BYTES: usize = 32;

// State layout (bytes): 0 accumulators[4] u64 | 32 total length u64 | 40 seed u64 |
// 48 buffered byte count u32 | 64 buffer[32].
const STATE_TOTAL: usize = 32;
const STATE_SEED: usize = 40;
const STATE_BUFFERED: usize = 48;
const STATE_BUFFER: usize = 64;
export const XXH64_STATE_BYTES: usize = 96;

/** Scratch accumulators for the one-shot path (the stub runtime has no stack memory). */
const ONE_SHOT_ACCUMULATORS: usize = memory.data(32, 16);

@inline
function round(accumulator: u64, lane: u64): u64 {
  return rotl<u64>(accumulator + lane * PRIME64_2, 31) * PRIME64_1;
}

@inline
function mergeRound(accumulator: u64, value: u64): u64 {
  return (accumulator ^ round(0, value)) * PRIME64_1 + PRIME64_4;
}

/** Sets the four lane accumulators at `accumulators` for `seed` (spec step 1). */
@inline
function initAccumulators(accumulators: usize, seed: u64): void {
  store<u64>(accumulators, seed + PRIME64_1 + PRIME64_2, 0);
  store<u64>(accumulators, seed + PRIME64_2, 8);
  store<u64>(accumulators, seed, 16);
  store<u64>(accumulators, seed - PRIME64_1, 24);
}

/** Runs `stripeCount` 32-byte stripes at `data` through the accumulators (spec step 2). */
function consumeStripes(accumulators: usize, data: usize, stripeCount: usize): void {
  let v1 = load<u64>(accumulators, 0);
  let v2 = load<u64>(accumulators, 8);
  let v3 = load<u64>(accumulators, 16);
  let v4 = load<u64>(accumulators, 24);
  let pointer = data;
  const end = data + stripeCount * STRIPE_BYTES;
  while (pointer < end) {
    v1 = round(v1, load<u64>(pointer, 0));
    v2 = round(v2, load<u64>(pointer, 8));
    v3 = round(v3, load<u64>(pointer, 16));
    v4 = round(v4, load<u64>(pointer, 24));
    pointer += STRIPE_BYTES;
  }
  store<u64>(accumulators, v1, 0);
  store<u64>(accumulators, v2, 8);
  store<u64>(accumulators, v3, 16);
  store<u64>(accumulators, v4, 24);
}

/** Converges the four accumulators (spec step 3). */
function convergeAccumulators(accumulators: usize): u64 {
  const v1 = load<u64>(accumulators, 0);
  const v2 = load<u64>(accumulators, 8);
  const v3 = load<u64>(accumulators, 16);
  const v4 = load<u64>(accumulators, 24);
  let hash = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
  hash = mergeRound(hash, v1);
  hash = mergeRound(hash, v2);
  hash = mergeRound(hash, v3);
  return mergeRound(hash, v4);
}

/** Adds the length, the last < 32 bytes and the avalanche (spec steps 4-6). */
function finish(hash: u64, totalBytes: u64, tail: usize, tailBytes: usize): u64 {
  let h = hash + totalBytes;
  let pointer = tail;
  const end = tail + tailBytes;
  while (pointer + 8 <= end) {
    h ^= round(0, load<u64>(pointer));
    h = rotl<u64>(h, 27) * PRIME64_1 + PRIME64_4;
    pointer += 8;
  }
  if (pointer + 4 <= end) {
    h ^= (<u64>load<u32>(pointer)) * PRIME64_1;
    h = rotl<u64>(h, 23) * PRIME64_2 + PRIME64_3;
    pointer += 4;
  }
  while (pointer < end) {
    h ^= (<u64>load<u8>(pointer)) * PRIME64_5;
    h = rotl<u64>(h, 11) * PRIME64_1;
    pointer++;
  }
  return avalancheXxh64(h);
}

/** XXH64 of `lengthBytes` bytes at `data` with `seed`. */
export function xxh64(data: usize, lengthBytes: usize, seed: u64): u64 {
  if (lengthBytes < STRIPE_BYTES) return finish(seed + PRIME64_5, lengthBytes, data, lengthBytes);
  const stripeCount = lengthBytes / STRIPE_BYTES;
  initAccumulators(ONE_SHOT_ACCUMULATORS, seed);
  consumeStripes(ONE_SHOT_ACCUMULATORS, data, stripeCount);
  const consumed = stripeCount * STRIPE_BYTES;
  return finish(convergeAccumulators(ONE_SHOT_ACCUMULATORS), lengthBytes, data + consumed, lengthBytes - consumed);
}

/** Size in bytes of an XXH64 streaming state. */
export function xxh64_stateSize(): usize {
  return XXH64_STATE_BYTES;
}

/** Starts an XXH64 stream in the state at `state`. */
export function xxh64_init(state: usize, seed: u64): void {
  initAccumulators(state, seed);
  store<u64>(state, 0, STATE_TOTAL);
  store<u64>(state, seed, STATE_SEED);
  store<u32>(state, 0, STATE_BUFFERED);
}

/** Feeds `lengthBytes` bytes at `data` into the stream at `state`. */
export function xxh64_update(state: usize, data: usize, lengthBytes: usize): void {
  store<u64>(state, load<u64>(state, STATE_TOTAL) + lengthBytes, STATE_TOTAL);
  let pointer = data;
  let remaining = lengthBytes;
  const buffered = <usize>load<u32>(state, STATE_BUFFERED);
  if (buffered + remaining < STRIPE_BYTES) {
    memory.copy(state + STATE_BUFFER + buffered, pointer, remaining);
    store<u32>(state, <u32>(buffered + remaining), STATE_BUFFERED);
    return;
  }
  if (buffered > 0) {
    const fill = STRIPE_BYTES - buffered;
    memory.copy(state + STATE_BUFFER + buffered, pointer, fill);
    consumeStripes(state, state + STATE_BUFFER, 1);
    pointer += fill;
    remaining -= fill;
  }
  const stripeCount = remaining / STRIPE_BYTES;
  consumeStripes(state, pointer, stripeCount);
  const consumed = stripeCount * STRIPE_BYTES;
  memory.copy(state + STATE_BUFFER, pointer + consumed, remaining - consumed);
  store<u32>(state, <u32>(remaining - consumed), STATE_BUFFERED);
}

/** The XXH64 digest of everything fed so far (the state stays usable). */
export function xxh64_digest(state: usize): u64 {
  const total = load<u64>(state, STATE_TOTAL);
  const buffered = <usize>load<u32>(state, STATE_BUFFERED);
  const hash = total >= <u64>STRIPE_BYTES ? convergeAccumulators(state) : load<u64>(state, STATE_SEED) + PRIME64_5;
  return finish(hash, total, state + STATE_BUFFER, buffered);
}
