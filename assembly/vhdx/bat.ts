// VHDX block allocation table ([MS-VHDX] 2.5): validates every entry once at open — payload
// states 0-3, 5 (old UNMAPPED), 6 and (differencing only) 7; sector bitmap states 0 and 6; present blocks after
// the header section, inside the file and clear of the BAT, metadata and log regions; a
// partially present block's sector bitmap present.
//
// Entry u64: bits 0-2 state, 3-19 reserved (ignored), 20-63 FileOffsetMB. Payload entry of
// block b is at index b + floor(b / chunkRatio); the sector bitmap entry of chunk c at
// c * (chunkRatio + 1) + chunkRatio.
//
// Output (VHDX_BAT_OUT_BYTES): 0 present payload blocks u64 | 8 first bad entry index u64
//   16 bad entry's raw value u64

import {
  STATUS_OK, STATUS_VHDX_BAT_BAD_STATE, STATUS_VHDX_BAT_BAD_OFFSET, STATUS_VHDX_BAT_BEYOND_EOF, STATUS_VHDX_BAT_OVERLAPS_REGION,
} from "../status";
import { MIB } from "./layout";

export const VHDX_BAT_OUT_BYTES: usize = 24;
const STATE_NOT_PRESENT: u32 = 0;
const STATE_FULLY_PRESENT: u32 = 6;
const STATE_PARTIALLY_PRESENT: u32 = 7;

@inline function fail(outPointer: usize, index: u64, value: u64, status: i32): i32 {
  store<u64>(outPointer + 8, index);
  store<u64>(outPointer + 16, value);
  return status;
}

/**
 * Checks a present entry's offset; `bytes` is how much of the block the disk uses. `regions`
 * holds `regionCount` pairs of u64 (offset, length): the file's own structures, which no block
 * may overlap.
 */
@inline function checkPlacement(value: u64, bytes: u64, fileSize: u64, regions: usize, regionCount: u32): i32 {
  const offsetMB = value >> 20;
  if (offsetMB >= (<u64>1 << 32)) return STATUS_VHDX_BAT_BEYOND_EOF; // 4 PiB: no real file is that long
  const offset = offsetMB * MIB;
  if (offset < MIB) return STATUS_VHDX_BAT_BAD_OFFSET;
  if (offset + bytes > fileSize) return STATUS_VHDX_BAT_BEYOND_EOF;
  for (let i: u32 = 0; i < regionCount; i++) {
    const start = load<u64>(regions + (<usize>i << 4));
    const length = load<u64>(regions + (<usize>i << 4) + 8);
    if (length != 0 && offset < start + length && start < offset + bytes) return STATUS_VHDX_BAT_OVERLAPS_REGION;
  }
  return STATUS_OK;
}

/**
 * Validates `entryCount` BAT entries at `bat`. `virtualSize`, `blockSize` and `chunkRatio` come
 * from the metadata; `fileSize` is the file's (effective, after log replay) size in bytes;
 * `regions` / `regionCount`: the BAT, metadata and log regions as (offset, length) u64 pairs.
 * Status: OK, VHDX_BAT_BAD_STATE, VHDX_BAT_BAD_OFFSET, VHDX_BAT_BEYOND_EOF,
 * VHDX_BAT_OVERLAPS_REGION (the offending index and value are in the output).
 */
export function vhdxValidateBat(
  bat: usize, entryCount: u64, virtualSize: u64, blockSize: u32, chunkRatio: u32,
  isDifferencing: bool, fileSize: u64, outPointer: usize, regions: usize, regionCount: u32,
): i32 {
  let present: u64 = 0;
  let block: u64 = 0;
  for (let index: u64 = 0; index < entryCount; index++) {
    const value = load<u64>(bat + <usize>(index << 3));
    const state = <u32>(value & 7);
    const isBitmap = index % (<u64>chunkRatio + 1) == <u64>chunkRatio;
    if (isBitmap) {
      if (state != STATE_NOT_PRESENT && state != STATE_FULLY_PRESENT) return fail(outPointer, index, value, STATUS_VHDX_BAT_BAD_STATE);
      if (state == STATE_FULLY_PRESENT && isDifferencing) {
        const status = checkPlacement(value, MIB, fileSize, regions, regionCount);
        if (status != STATUS_OK) return fail(outPointer, index, value, status);
      }
      continue;
    }
    const blockStart = block * <u64>blockSize;
    block++;
    // 4 is reserved; 5 was UNMAPPED in pre-1.0 drafts (qemu reads it as such), so it reads as zeros.
    if (state == 4) return fail(outPointer, index, value, STATUS_VHDX_BAT_BAD_STATE);
    if (state == STATE_PARTIALLY_PRESENT) {
      if (!isDifferencing) return fail(outPointer, index, value, STATUS_VHDX_BAT_BAD_STATE);
      const bitmapIndex = (index / (<u64>chunkRatio + 1)) * (<u64>chunkRatio + 1) + <u64>chunkRatio;
      if (bitmapIndex >= entryCount || (load<u64>(bat + <usize>(bitmapIndex << 3)) & 7) != <u64>STATE_FULLY_PRESENT) {
        return fail(outPointer, index, value, STATUS_VHDX_BAT_BAD_STATE);
      }
    }
    if (state == STATE_FULLY_PRESENT || state == STATE_PARTIALLY_PRESENT) {
      if (blockStart >= virtualSize) continue; // an entry past the disk's end is never read
      const used = virtualSize - blockStart < <u64>blockSize ? virtualSize - blockStart : <u64>blockSize;
      const status = checkPlacement(value, used, fileSize, regions, regionCount);
      if (status != STATUS_OK) return fail(outPointer, index, value, status);
      present++;
    }
  }
  store<u64>(outPointer, present);
  return STATUS_OK;
}
