// VHD Block Allocation Table scan (VHD spec 1.0, "Block Allocation Table and Data Blocks"):
// every allocated entry (not 0xFFFFFFFF) must point at a block (sector bitmap + data) that
// lies inside the file's data area, overlaps no metadata and no other block. Records every
// problem found so `vhdsync check` can list them all.

import { be32 } from "./bytes";
import { STATUS_OK, STATUS_VHD_BLOCK_OVERLAP, STATUS_VHD_BLOCK_OVERLAPS_METADATA, STATUS_VHD_BLOCK_PAST_EOF } from "../status";

const UNALLOCATED: u32 = 0xffffffff;
/** Bytes per problem record: entry index u32, status i32. */
export const VHD_BAT_PROBLEM_BYTES: u32 = 8;
/** Bytes of the scan result: allocatedCount u32, problemCount u32, blocksEndBytes u64. */
export const VHD_BAT_RESULT_BYTES: u32 = 16;

/** Bytes a block occupies in the file: its bitmap plus its data, the last block clipped to the disk. */
function blockSpanBytes(index: u32, blockSizeBytes: u32, bitmapBytes: u32, virtualSize: u64): u64 {
  const start = <u64>index * <u64>blockSizeBytes;
  let dataBytes: u64 = blockSizeBytes;
  if (start < virtualSize && virtualSize - start < dataBytes) dataBytes = (virtualSize - start + 511) & ~(<u64>511);
  return <u64>bitmapBytes + dataBytes;
}

function overlapsMetadata(start: u64, end: u64, metaPtr: usize, metaCount: u32): bool {
  for (let i: u32 = 0; i < metaCount; i++) {
    const metaStart = load<u64>(metaPtr + i * 16);
    const metaEnd = load<u64>(metaPtr + i * 16 + 8);
    if (start < metaEnd && metaStart < end) return true;
  }
  return false;
}

function recordProblem(problemsPtr: usize, capacity: u32, count: u32, index: u32, status: i32): void {
  if (count >= capacity) return;
  store<u32>(problemsPtr + count * VHD_BAT_PROBLEM_BYTES, index);
  store<i32>(problemsPtr + count * VHD_BAT_PROBLEM_BYTES + 4, status);
}

/** In-place heap sort of `count` u64 keys. */
function heapSort(keysPtr: usize, count: u32): void {
  if (count < 2) return;
  for (let start = (count >> 1) - 1; ; start--) {
    siftDown(keysPtr, start, count);
    if (start == 0) break;
  }
  for (let end = count - 1; end > 0; end--) {
    const top = load<u64>(keysPtr);
    store<u64>(keysPtr, load<u64>(keysPtr + (<usize>end << 3)));
    store<u64>(keysPtr + (<usize>end << 3), top);
    siftDown(keysPtr, 0, end);
  }
}

function siftDown(keysPtr: usize, root: u32, count: u32): void {
  let parent = root;
  while (true) {
    let child = parent * 2 + 1;
    if (child >= count) return;
    if (child + 1 < count && load<u64>(keysPtr + (<usize>(child + 1) << 3)) > load<u64>(keysPtr + (<usize>child << 3))) child++;
    const parentKey = load<u64>(keysPtr + (<usize>parent << 3));
    const childKey = load<u64>(keysPtr + (<usize>child << 3));
    if (parentKey >= childKey) return;
    store<u64>(keysPtr + (<usize>parent << 3), childKey);
    store<u64>(keysPtr + (<usize>child << 3), parentKey);
    parent = child;
  }
}

/**
 * Scans `entries` big-endian BAT entries at `batPtr`.
 * - blocks must end at or before `dataEndBytes` (where the footer starts);
 * - blocks must not overlap the `metaCount` [start, end) u64 ranges at `metaPtr`;
 * - blocks must not overlap each other (sorted in `scratchPtr`, 8 bytes per entry).
 * Up to `problemsCapacity` problems go to `problemsPtr`; the result block at `resultPtr`
 * receives allocatedCount, problemCount (all found) and blocksEndBytes (end of the last
 * block, 0 if none). Returns STATUS_OK or the status of the first problem recorded.
 */
export function vhdBatScan(
  batPtr: usize,
  entries: u32,
  blockSizeBytes: u32,
  bitmapBytes: u32,
  virtualSizeBytes: f64,
  dataEndBytes: f64,
  metaPtr: usize,
  metaCount: u32,
  scratchPtr: usize,
  problemsPtr: usize,
  problemsCapacity: u32,
  resultPtr: usize,
): i32 {
  const virtualSize = <u64>virtualSizeBytes;
  const dataEnd = <u64>dataEndBytes;
  let allocated: u32 = 0;
  let problems: u32 = 0;
  let sorted: u32 = 0;
  let firstStatus: i32 = STATUS_OK;
  let blocksEnd: u64 = 0;
  for (let i: u32 = 0; i < entries; i++) {
    const sector = be32(batPtr + (<usize>i << 2));
    if (sector == UNALLOCATED) continue;
    allocated++;
    const start = <u64>sector << 9;
    const end = start + blockSpanBytes(i, blockSizeBytes, bitmapBytes, virtualSize);
    let status: i32 = STATUS_OK;
    if (end > dataEnd) status = STATUS_VHD_BLOCK_PAST_EOF;
    else if (overlapsMetadata(start, end, metaPtr, metaCount)) status = STATUS_VHD_BLOCK_OVERLAPS_METADATA;
    if (status != STATUS_OK) {
      recordProblem(problemsPtr, problemsCapacity, problems++, i, status);
      if (firstStatus == STATUS_OK) firstStatus = status;
      continue;
    }
    if (end > blocksEnd) blocksEnd = end;
    store<u64>(scratchPtr + (<usize>sorted << 3), (<u64>sector << 32) | <u64>i);
    sorted++;
  }
  heapSort(scratchPtr, sorted);
  let previousEnd: u64 = 0;
  for (let k: u32 = 0; k < sorted; k++) {
    const key = load<u64>(scratchPtr + (<usize>k << 3));
    const index = <u32>(key & 0xffffffff);
    const start = (key >> 32) << 9;
    if (k > 0 && start < previousEnd) {
      recordProblem(problemsPtr, problemsCapacity, problems++, index, STATUS_VHD_BLOCK_OVERLAP);
      if (firstStatus == STATUS_OK) firstStatus = STATUS_VHD_BLOCK_OVERLAP;
    }
    const end = start + blockSpanBytes(index, blockSizeBytes, bitmapBytes, virtualSize);
    if (end > previousEnd) previousEnd = end;
  }
  store<u32>(resultPtr, allocated);
  store<u32>(resultPtr + 4, problems);
  store<u64>(resultPtr + 8, blocksEnd);
  return firstStatus;
}
