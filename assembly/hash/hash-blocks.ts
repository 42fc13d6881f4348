// The uniform hashing ABI the TS driver calls: algorithm id (numbered like `xxhsum -H<n>`),
// pointer + length in, i32 status out, digests written in canonical big-endian byte order
// (XXH3-128: high64 then low64, as xxhsum prints). hash_blocks hashes every block of a
// buffer in one call; the last partial block is hashed with its real length.

import { STATUS_BAD_ALGORITHM, STATUS_BAD_ARGUMENT, STATUS_BAD_BLOCK_SIZE, STATUS_OK } from "../status";
import { ALGORITHM_XXH3_128, ALGORITHM_XXH3_64, ALGORITHM_XXH64, storeCanonical64 } from "./constants";
import { xxh3_128_low, xxh3_64, xxh3High } from "./xxh3";
import { XXH3_STATE_BYTES, xxh3_128_digest, xxh3_64_digest, xxh3_init, xxh3_update } from "./xxh3-stream";
import { XXH64_STATE_BYTES, xxh64, xxh64_digest, xxh64_init, xxh64_update } from "./xxh64";
import { isZero } from "../blocks";

/** Digest length in bytes of `algorithm`, or 0 when the id is unknown. */
export function hash_digestLength(algorithm: i32): i32 {
  if (algorithm == ALGORITHM_XXH64 || algorithm == ALGORITHM_XXH3_64) return 8;
  if (algorithm == ALGORITHM_XXH3_128) return 16;
  return 0;
}

/** Streaming state size in bytes of `algorithm`, or 0 when the id is unknown. */
export function hash_stateSize(algorithm: i32): i32 {
  if (algorithm == ALGORITHM_XXH64) return <i32>XXH64_STATE_BYTES;
  if (algorithm == ALGORITHM_XXH3_64 || algorithm == ALGORITHM_XXH3_128) return <i32>XXH3_STATE_BYTES;
  return 0;
}

/** True when [pointer, pointer + lengthBytes) lies inside the module's memory. */
@inline
function inMemory(pointer: usize, lengthBytes: usize): bool {
  const end = pointer + lengthBytes;
  return end >= pointer && end <= (<usize>memory.size() << 16);
}

/** Starts a stream in `state` (hash_stateSize bytes, 16-byte aligned). Status 1 or 3 on bad input. */
export function hash_init(algorithm: i32, state: usize, seed: u64): i32 {
  const stateBytes = <usize>hash_stateSize(algorithm);
  if (stateBytes == 0) return STATUS_BAD_ALGORITHM;
  if (!inMemory(state, stateBytes) || (state & 15) != 0) return STATUS_BAD_ARGUMENT;
  if (algorithm == ALGORITHM_XXH64) xxh64_init(state, seed);
  else xxh3_init(state, seed);
  return STATUS_OK;
}

/** Feeds `lengthBytes` bytes at `data` into the stream in `state`. */
export function hash_update(algorithm: i32, state: usize, data: usize, lengthBytes: usize): i32 {
  const stateBytes = <usize>hash_stateSize(algorithm);
  if (stateBytes == 0) return STATUS_BAD_ALGORITHM;
  if (!inMemory(state, stateBytes) || !inMemory(data, lengthBytes)) return STATUS_BAD_ARGUMENT;
  if (algorithm == ALGORITHM_XXH64) xxh64_update(state, data, lengthBytes);
  else xxh3_update(state, data, lengthBytes);
  return STATUS_OK;
}

/** Writes the canonical digest of the stream so far at `out` (the stream may continue). */
export function hash_digest(algorithm: i32, state: usize, out: usize): i32 {
  const stateBytes = <usize>hash_stateSize(algorithm);
  if (stateBytes == 0) return STATUS_BAD_ALGORITHM;
  if (!inMemory(state, stateBytes) || !inMemory(out, <usize>hash_digestLength(algorithm))) return STATUS_BAD_ARGUMENT;
  if (algorithm == ALGORITHM_XXH64) storeCanonical64(out, xxh64_digest(state));
  else if (algorithm == ALGORITHM_XXH3_64) storeCanonical64(out, xxh3_64_digest(state));
  else xxh3_128_digest(state, out);
  return STATUS_OK;
}

/** Writes the canonical digest of one buffer; `algorithm` must be valid (checked by callers). */
@inline
function digestInto(algorithm: i32, data: usize, lengthBytes: usize, seed: u64, out: usize): void {
  if (algorithm == ALGORITHM_XXH3_128) {
    const low = xxh3_128_low(data, lengthBytes, seed);
    storeCanonical64(out, xxh3High);
    storeCanonical64(out + 8, low);
  } else if (algorithm == ALGORITHM_XXH3_64) {
    storeCanonical64(out, xxh3_64(data, lengthBytes, seed));
  } else {
    storeCanonical64(out, xxh64(data, lengthBytes, seed));
  }
}

/** Writes the canonical digest of `lengthBytes` bytes at `data` at `out`. */
export function hash_oneShot(algorithm: i32, data: usize, lengthBytes: usize, seed: u64, out: usize): i32 {
  const digestBytes = <usize>hash_digestLength(algorithm);
  if (digestBytes == 0) return STATUS_BAD_ALGORITHM;
  if (!inMemory(data, lengthBytes) || !inMemory(out, digestBytes)) return STATUS_BAD_ARGUMENT;
  digestInto(algorithm, data, lengthBytes, seed, out);
  return STATUS_OK;
}

/**
 * Hashes each `blockSizeBytes` block (a power of two) of `lengthBytes` bytes at `data` and
 * writes ceil(lengthBytes / blockSizeBytes) digests back to back at `out`. Status 3 for an
 * unknown algorithm, 4 for a bad block size, 1 for ranges outside memory; nothing is written
 * on error.
 */
export function hash_blocks(algorithm: i32, data: usize, lengthBytes: usize, blockSizeBytes: usize, seed: u64, out: usize): i32 {
  const digestBytes = <usize>hash_digestLength(algorithm);
  if (digestBytes == 0) return STATUS_BAD_ALGORITHM;
  if (blockSizeBytes == 0 || (blockSizeBytes & (blockSizeBytes - 1)) != 0) return STATUS_BAD_BLOCK_SIZE;
  const blockCount = lengthBytes / blockSizeBytes + (lengthBytes % blockSizeBytes != 0 ? 1 : 0);
  if (!inMemory(data, lengthBytes) || !inMemory(out, blockCount * digestBytes)) return STATUS_BAD_ARGUMENT;
  let block = data;
  let digest = out;
  const end = data + lengthBytes;
  while (block < end) {
    const remaining = end - block;
    digestInto(algorithm, block, remaining < blockSizeBytes ? remaining : blockSizeBytes, seed, digest);
    block += blockSizeBytes;
    digest += digestBytes;
  }
  return STATUS_OK;
}

/**
 * hash_blocks for digest frames: one flag byte per block at `zeroOut` (1 = the block is all
 * zeros), and a digest only for the other blocks (a zero block's digest slot is left as it
 * was; digest frames store none). Each block is checked and hashed while it is in the cache.
 */
export function hash_blocks_nonzero(algorithm: i32, data: usize, lengthBytes: usize, blockSizeBytes: usize, seed: u64, out: usize, zeroOut: usize): i32 {
  const digestBytes = <usize>hash_digestLength(algorithm);
  if (digestBytes == 0) return STATUS_BAD_ALGORITHM;
  if (blockSizeBytes == 0 || (blockSizeBytes & (blockSizeBytes - 1)) != 0) return STATUS_BAD_BLOCK_SIZE;
  const blockCount = lengthBytes / blockSizeBytes + (lengthBytes % blockSizeBytes != 0 ? 1 : 0);
  if (!inMemory(data, lengthBytes) || !inMemory(out, blockCount * digestBytes) || !inMemory(zeroOut, blockCount)) return STATUS_BAD_ARGUMENT;
  const end = data + lengthBytes;
  for (let index: usize = 0; index < blockCount; index++) {
    const block = data + index * blockSizeBytes;
    const remaining = end - block;
    const size = remaining < blockSizeBytes ? remaining : blockSizeBytes;
    const zero = isZero(block, size);
    store<u8>(zeroOut + index, <u8>zero);
    if (!zero) digestInto(algorithm, block, size, seed, out + index * digestBytes);
  }
  return STATUS_OK;
}
