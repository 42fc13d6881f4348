// Block kernels of the resync hot path: whole-block zero detection, block-by-block buffer
// comparison, and digest-array diffing into coalesced block ranges. Pure: pointers in, status
// out, results through out-pointers. Flag maps hold one byte per block (1 = zero / differs).
// Ranges are pairs of u32 (firstBlock, blockCount), little-endian.

import { STATUS_OK, STATUS_BAD_ARGUMENT, STATUS_BAD_BLOCK_SIZE, STATUS_OUTPUT_TOO_SMALL } from "./status";

/** Returns 1 when all `length` bytes at `address` are zero, else 0. Every byte is checked. */
export function isZero(address: usize, length: usize): i32 {
  let p = address;
  const end = address + length;
  while (p + 128 <= end) {
    const a = v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
    const b = v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112)));
    if (v128.any_true(v128.or(a, b))) return 0;
    p += 128;
  }
  while (p + 16 <= end) {
    if (v128.any_true(v128.load(p))) return 0;
    p += 16;
  }
  while (p < end) {
    if (load<u8>(p) != 0) return 0;
    p++;
  }
  return 1;
}

/** Returns 1 when the `length` bytes at `a` and `b` are equal, else 0. */
export function bytesEqual(a: usize, b: usize, length: usize): i32 {
  let offset: usize = 0;
  while (offset + 64 <= length) {
    const x0 = v128.xor(v128.load(a + offset), v128.load(b + offset));
    const x1 = v128.xor(v128.load(a + offset, 16), v128.load(b + offset, 16));
    const x2 = v128.xor(v128.load(a + offset, 32), v128.load(b + offset, 32));
    const x3 = v128.xor(v128.load(a + offset, 48), v128.load(b + offset, 48));
    if (v128.any_true(v128.or(v128.or(x0, x1), v128.or(x2, x3)))) return 0;
    offset += 64;
  }
  while (offset < length) {
    if (load<u8>(a + offset) != load<u8>(b + offset)) return 0;
    offset++;
  }
  return 1;
}

function blockCount(lengthBytes: usize, blockSizeBytes: usize): usize {
  return (lengthBytes + blockSizeBytes - 1) / blockSizeBytes;
}

function validBlockSize(blockSizeBytes: usize): bool {
  return blockSizeBytes != 0 && (blockSizeBytes & (blockSizeBytes - 1)) == 0;
}

/**
 * Writes one flag byte per block of `data` (1 = the whole block is zero); the last block may
 * be partial. Stores the number of zero blocks at `countOut` (u32).
 */
export function zeroBlocks(data: usize, lengthBytes: usize, blockSizeBytes: usize, flagsOut: usize, countOut: usize): i32 {
  if (!validBlockSize(blockSizeBytes)) return STATUS_BAD_BLOCK_SIZE;
  const blocks = blockCount(lengthBytes, blockSizeBytes);
  let zeros: u32 = 0;
  for (let i: usize = 0; i < blocks; i++) {
    const start = i * blockSizeBytes;
    const size = min(blockSizeBytes, lengthBytes - start);
    const zero = isZero(data + start, size);
    store<u8>(flagsOut + i, <u8>zero);
    zeros += <u32>zero;
  }
  store<u32>(countOut, zeros);
  return STATUS_OK;
}

/**
 * Compares two buffers block by block: one flag byte per block (1 = differs). Stores the
 * number of differing blocks at `countOut` (u32).
 */
export function compareBlocks(a: usize, b: usize, lengthBytes: usize, blockSizeBytes: usize, flagsOut: usize, countOut: usize): i32 {
  if (!validBlockSize(blockSizeBytes)) return STATUS_BAD_BLOCK_SIZE;
  const blocks = blockCount(lengthBytes, blockSizeBytes);
  let differing: u32 = 0;
  for (let i: usize = 0; i < blocks; i++) {
    const start = i * blockSizeBytes;
    const size = min(blockSizeBytes, lengthBytes - start);
    const differs = 1 - bytesEqual(a + start, b + start, size);
    store<u8>(flagsOut + i, <u8>differs);
    differing += <u32>differs;
  }
  store<u32>(countOut, differing);
  return STATUS_OK;
}

/**
 * compareBlocks and zeroBlocks of `a` in one pass: per block, the differs flag at diffOut and
 * the all-zero flag of `a` at zeroOut, checked while the block is in the cache. Stores the
 * number of differing blocks at countOut (u32) and of zero blocks at countOut + 4.
 */
export function compareZeroBlocks(a: usize, b: usize, lengthBytes: usize, blockSizeBytes: usize, diffOut: usize, zeroOut: usize, countOut: usize): i32 {
  if (!validBlockSize(blockSizeBytes)) return STATUS_BAD_BLOCK_SIZE;
  const blocks = blockCount(lengthBytes, blockSizeBytes);
  let differing: u32 = 0;
  let zeros: u32 = 0;
  for (let i: usize = 0; i < blocks; i++) {
    const start = i * blockSizeBytes;
    const size = min(blockSizeBytes, lengthBytes - start);
    const differs = 1 - bytesEqual(a + start, b + start, size);
    const zero = isZero(a + start, size);
    store<u8>(diffOut + i, <u8>differs);
    store<u8>(zeroOut + i, <u8>zero);
    differing += <u32>differs;
    zeros += <u32>zero;
  }
  store<u32>(countOut, differing);
  store<u32>(countOut + 4, zeros);
  return STATUS_OK;
}

/**
 * Turns a flag map (`count` bytes, non-zero = set) into coalesced ranges of set blocks,
 * numbered from `firstBlock`. Stores the number of ranges at `countOut`; fails with
 * STATUS_OUTPUT_TOO_SMALL when more than `maxRanges` would be needed.
 */
export function flagsToRanges(flags: usize, count: u32, firstBlock: u32, rangesOut: usize, maxRanges: u32, countOut: usize): i32 {
  let ranges: u32 = 0;
  let i: u32 = 0;
  while (i < count) {
    if (load<u8>(flags + i) == 0) {
      i++;
      continue;
    }
    const start = i;
    while (i < count && load<u8>(flags + i) != 0) i++;
    if (ranges == maxRanges) return STATUS_OUTPUT_TOO_SMALL;
    store<u32>(rangesOut + (<usize>ranges << 3), firstBlock + start);
    store<u32>(rangesOut + (<usize>ranges << 3) + 4, i - start);
    ranges++;
  }
  store<u32>(countOut, ranges);
  return STATUS_OK;
}

/**
 * Compares two arrays of `count` digests of `digestLength` bytes (a multiple of 8) and
 * writes coalesced ranges of differing blocks. Stores the range count at `countOut`.
 */
export function diffDigests(a: usize, b: usize, count: u32, digestLength: u32, rangesOut: usize, maxRanges: u32, countOut: usize): i32 {
  if (digestLength == 0 || (digestLength & 7) != 0) return STATUS_BAD_ARGUMENT;
  let ranges: u32 = 0;
  let open = false;
  let start: u32 = 0;
  for (let i: u32 = 0; i <= count; i++) {
    let differs = false;
    if (i < count) {
      const offset = <usize>i * digestLength;
      for (let w: u32 = 0; w < digestLength; w += 8) {
        if (load<u64>(a + offset + w) != load<u64>(b + offset + w)) {
          differs = true;
          break;
        }
      }
    }
    if (differs && !open) {
      open = true;
      start = i;
    } else if (!differs && open) {
      open = false;
      if (ranges == maxRanges) return STATUS_OUTPUT_TOO_SMALL;
      store<u32>(rangesOut + (<usize>ranges << 3), start);
      store<u32>(rangesOut + (<usize>ranges << 3) + 4, i - start);
      ranges++;
    }
  }
  store<u32>(countOut, ranges);
  return STATUS_OK;
}

/** Block states of a digest frame (src/sync/digest-format.ts). */
const FRAME_UNALLOCATED: u8 = 0;
const FRAME_ZERO: u8 = 1;
const FRAME_DATA: u8 = 2;

/**
 * Turns one hashed window into digest-frame entries and, optionally, diffs them against the
 * target's frame. Per block i of `blocks`: state = unallocated (allocated[i] = 0), zero
 * (zero[i] ≠ 0) or data, stored at flagsOut[i]; a data block's digest (at digests + i·len)
 * is appended to packedOut. With targetFlags ≠ 0, block i differs unless both sides are
 * non-data, or both are data with equal digests (the target's are packed: data blocks only,
 * `targetAvailable` of them from targetPacked); changedOut[i] = 1 when it differs.
 * countsOut (u32 × 4): data blocks, unallocated blocks, target digests consumed, changed blocks.
 * STATUS_BAD_ARGUMENT when digestLength is not a positive multiple of 8 or the target frame
 * holds fewer digests than its flags need (nothing is trusted past its end).
 */
export function frameWindow(
  allocated: usize,
  zero: usize,
  digests: usize,
  blocks: u32,
  digestLength: u32,
  flagsOut: usize,
  packedOut: usize,
  targetFlags: usize,
  targetPacked: usize,
  targetAvailable: u32,
  changedOut: usize,
  countsOut: usize,
): i32 {
  if (digestLength == 0 || (digestLength & 7) != 0) return STATUS_BAD_ARGUMENT;
  const length = <usize>digestLength;
  let data: u32 = 0;
  let unallocated: u32 = 0;
  let consumed: u32 = 0;
  let changed: u32 = 0;
  for (let i: u32 = 0; i < blocks; i++) {
    const index = <usize>i;
    let state = FRAME_DATA;
    if (load<u8>(allocated + index) == 0) state = FRAME_UNALLOCATED;
    else if (load<u8>(zero + index) != 0) state = FRAME_ZERO;
    store<u8>(flagsOut + index, state);
    const digest = digests + index * length;
    if (state == FRAME_DATA) {
      memory.copy(packedOut + <usize>data * length, digest, length);
      data++;
    } else if (state == FRAME_UNALLOCATED) unallocated++;
    if (targetFlags == 0) continue;
    const targetData = load<u8>(targetFlags + index) == FRAME_DATA;
    let same = state != FRAME_DATA && !targetData;
    if (targetData) {
      if (consumed == targetAvailable) return STATUS_BAD_ARGUMENT;
      if (state == FRAME_DATA) {
        const other = targetPacked + <usize>consumed * length;
        same = true;
        for (let w: usize = 0; w < length; w += 8) {
          if (load<u64>(digest + w) != load<u64>(other + w)) {
            same = false;
            break;
          }
        }
      }
      consumed++;
    }
    store<u8>(changedOut + index, same ? 0 : 1);
    if (!same) changed++;
  }
  store<u32>(countsOut, data);
  store<u32>(countsOut + 4, unallocated);
  store<u32>(countsOut + 8, consumed);
  store<u32>(countsOut + 12, changed);
  return STATUS_OK;
}
