// VHD sector bitmaps (VHD spec 1.0, "Block Allocation Table and Data Blocks"): one bit per
// 512-byte sector of a block, most significant bit first. Set = the sector's data is in this
// file (differencing: in this layer; clear = read the parent).

import { STATUS_OK, STATUS_VHD_BITMAP_DATA_MISMATCH } from "../status";

@inline function bitIsSet(bitmapPtr: usize, bit: u32): bool {
  return (load<u8>(bitmapPtr + (bit >> 3)) & (<u8>0x80 >> <u8>(bit & 7))) != 0;
}

/** 1 if sector `bit` is set, else 0. */
export function vhdBitmapGet(bitmapPtr: usize, bit: u32): i32 {
  return bitIsSet(bitmapPtr, bit) ? 1 : 0;
}

/** Sets bits [firstBit, firstBit + count); returns how many were clear before (0 = no change). */
export function vhdBitmapSetRange(bitmapPtr: usize, firstBit: u32, count: u32): i32 {
  let changed: i32 = 0;
  const end = firstBit + count;
  let bit = firstBit;
  while (bit < end) {
    if ((bit & 7) == 0 && end - bit >= 8) {
      const byte = load<u8>(bitmapPtr + (bit >> 3));
      changed += 8 - <i32>popcnt<u32>(byte);
      store<u8>(bitmapPtr + (bit >> 3), 0xff);
      bit += 8;
      continue;
    }
    if (!bitIsSet(bitmapPtr, bit)) {
      changed++;
      const address = bitmapPtr + (bit >> 3);
      store<u8>(address, load<u8>(address) | (<u8>0x80 >> <u8>(bit & 7)));
    }
    bit++;
  }
  return changed;
}

/** Length of the run of bits equal to bit `firstBit`, starting there and stopping at `endBit`. */
export function vhdBitmapRun(bitmapPtr: usize, firstBit: u32, endBit: u32): u32 {
  if (firstBit >= endBit) return 0;
  const value = bitIsSet(bitmapPtr, firstBit);
  const whole: u8 = value ? 0xff : 0;
  let bit = firstBit + 1;
  while (bit < endBit) {
    if ((bit & 7) == 0 && endBit - bit >= 8 && load<u8>(bitmapPtr + (bit >> 3)) == whole) {
      bit += 8;
      continue;
    }
    if (bitIsSet(bitmapPtr, bit) != value) break;
    bit++;
  }
  return bit - firstBit;
}

/** Number of set bits among the first `bits`. */
export function vhdBitmapCount(bitmapPtr: usize, bits: u32): u32 {
  let count: u32 = 0;
  const wholeBytes = bits >> 3;
  for (let i: u32 = 0; i < wholeBytes; i++) count += popcnt<u32>(load<u8>(bitmapPtr + i));
  for (let bit = wholeBytes << 3; bit < bits; bit++) if (bitIsSet(bitmapPtr, bit)) count++;
  return count;
}

/**
 * Checks that every sector whose bit is clear holds only zeros in the `sectors` x 512 bytes
 * at `dataPtr` (the spec requires it). Writes the first offending sector (or -1) to
 * `resultPtr` and returns STATUS_OK or STATUS_VHD_BITMAP_DATA_MISMATCH.
 */
export function vhdBitmapZeroCheck(bitmapPtr: usize, dataPtr: usize, sectors: u32, resultPtr: usize): i32 {
  for (let sector: u32 = 0; sector < sectors; sector++) {
    if (bitIsSet(bitmapPtr, sector)) continue;
    const base = dataPtr + (<usize>sector << 9);
    let nonZero: u64 = 0;
    for (let i: usize = 0; i < 512; i += 8) nonZero |= load<u64>(base + i);
    if (nonZero != 0) {
      store<i32>(resultPtr, <i32>sector);
      return STATUS_VHD_BITMAP_DATA_MISMATCH;
    }
  }
  store<i32>(resultPtr, -1);
  return STATUS_OK;
}
