// [MS-HRL] 2.3/2.4 metadata blocks: a 32-byte header followed by 32-byte entries, written
// after the data they describe. Parse validates one block (header and entry checksums, the
// relative link to the previous block, the data layout) and emits normalized entry records.
//
// Block (MetadataSize bytes, little-endian, packed):
//   header:  0 PreviousMetadataLocation u64 (relative: previous = this − value; 0 = first)
//            8 ValidMetadataEntries u32   12 Checksum u32 (of these 32 bytes)   16 Reserved[16]
//   entry i at 32 + 32·i:
//            0 ByteOffset u64   8 Checksum u32 (of these 32 bytes)   12 DataLength u32
//           16 TimeStamp u32   20 MetaOperation u8 (1 = write)   21 DataChecksum u32 (unaligned)
//           25 Location u8     26 Reserved[6]
// Entry record (HRL_ENTRY_RECORD_BYTES = 32): 0 byteOffset f64, 8 logPosition f64,
//   16 dataLength u32, 20 dataChecksum u32, 24 timestamp u32, 28 location u32.
// Block info (HRL_BLOCK_INFO_BYTES = 32): 0 previousLocation f64 (0 = first block),
//   8 dataStart f64, 16 dataBytes f64, 24 entryCount u32.

import { checksumSkipping } from "./checksum";
import { HRL_HEADER_BYTES, HRL_MAX_OFFSET, hrlMetadataSizeValid } from "./header";
import {
  STATUS_BAD_ARGUMENT,
  STATUS_HRL_BAD_METADATA_LINK,
  STATUS_HRL_BAD_METADATA_SIZE,
  STATUS_HRL_BAD_OPERATION,
  STATUS_HRL_DATA_LAYOUT,
  STATUS_HRL_ENTRY_CHECKSUM,
  STATUS_HRL_ENTRY_OUTSIDE_DISK,
  STATUS_HRL_METADATA_CHECKSUM,
  STATUS_HRL_TOO_MANY_ENTRIES,
  STATUS_OK,
} from "../status";

export const HRL_METADATA_HEADER_BYTES: u32 = 32;
export const HRL_ENTRY_BYTES: u32 = 32;
export const HRL_ENTRY_RECORD_BYTES: u32 = 32;
export const HRL_BLOCK_INFO_BYTES: u32 = 32;
const META_OPERATION_WRITE: u8 = 1;
const HEADER_CHECKSUM_OFFSET: usize = 12;
const ENTRY_CHECKSUM_OFFSET: usize = 8;

/** Entries a block of `metadataSize` bytes holds. */
export function hrlEntryCapacity(metadataSize: u32): u32 {
  return (metadataSize - HRL_METADATA_HEADER_BYTES) / HRL_ENTRY_BYTES;
}

/**
 * Validates the metadata block at `blockPtr` (MetadataSize bytes) found at log offset
 * `locationBytes`; entries must end at or below `diskSizeBytes` (negative: not checked).
 * Writes one entry record per valid entry to `recordsPtr` (room for the block's capacity) and
 * the block info to `infoPtr`. Data of the entries fills [dataStart, locationBytes) exactly,
 * where dataStart is the end of the previous block, or of the header for the first block.
 */
export function hrlMetadataParse(
  blockPtr: usize,
  metadataSize: u32,
  locationBytes: f64,
  diskSizeBytes: f64,
  recordsPtr: usize,
  infoPtr: usize,
): i32 {
  if (!hrlMetadataSizeValid(metadataSize)) return STATUS_HRL_BAD_METADATA_SIZE;
  if (!(locationBytes >= <f64>HRL_HEADER_BYTES) || locationBytes > <f64>HRL_MAX_OFFSET) return STATUS_BAD_ARGUMENT; // NaN too
  const location = <u64>locationBytes;
  if (checksumSkipping(blockPtr, HRL_METADATA_HEADER_BYTES, HEADER_CHECKSUM_OFFSET) != load<u32>(blockPtr + HEADER_CHECKSUM_OFFSET)) {
    return STATUS_HRL_METADATA_CHECKSUM;
  }
  const relative = load<u64>(blockPtr);
  let previous: u64 = 0;
  let dataStart: u64 = <u64>HRL_HEADER_BYTES;
  if (relative != 0) {
    if (relative > location) return STATUS_HRL_BAD_METADATA_LINK;
    previous = location - relative;
    if (previous < <u64>HRL_HEADER_BYTES || previous + <u64>metadataSize > location) return STATUS_HRL_BAD_METADATA_LINK;
    dataStart = previous + <u64>metadataSize;
  }
  const count = load<u32>(blockPtr + 8);
  if (count > hrlEntryCapacity(metadataSize)) return STATUS_HRL_TOO_MANY_ENTRIES;
  const checkDisk = diskSizeBytes >= 0;
  const diskSize = checkDisk ? <u64>diskSizeBytes : HRL_MAX_OFFSET;
  let position = dataStart;
  for (let i: u32 = 0; i < count; i++) {
    const entryPtr = blockPtr + HRL_METADATA_HEADER_BYTES + i * HRL_ENTRY_BYTES;
    if (checksumSkipping(entryPtr, HRL_ENTRY_BYTES, ENTRY_CHECKSUM_OFFSET) != load<u32>(entryPtr + ENTRY_CHECKSUM_OFFSET)) {
      return STATUS_HRL_ENTRY_CHECKSUM;
    }
    if (load<u8>(entryPtr + 20) != META_OPERATION_WRITE) return STATUS_HRL_BAD_OPERATION;
    const byteOffset = load<u64>(entryPtr);
    const dataLength = load<u32>(entryPtr + 12);
    if (byteOffset > diskSize || <u64>dataLength > diskSize - byteOffset) return STATUS_HRL_ENTRY_OUTSIDE_DISK;
    const recordPtr = recordsPtr + i * HRL_ENTRY_RECORD_BYTES;
    store<f64>(recordPtr, <f64>byteOffset);
    store<f64>(recordPtr + 8, <f64>position);
    store<u32>(recordPtr + 16, dataLength);
    store<u32>(recordPtr + 20, load<u32>(entryPtr + 21));
    store<u32>(recordPtr + 24, load<u32>(entryPtr + 16));
    store<u32>(recordPtr + 28, <u32>load<u8>(entryPtr + 25));
    position += <u64>dataLength;
    if (position > location) return STATUS_HRL_DATA_LAYOUT;
  }
  if (position != location) return STATUS_HRL_DATA_LAYOUT;
  store<f64>(infoPtr, <f64>previous);
  store<f64>(infoPtr + 8, <f64>dataStart);
  store<f64>(infoPtr + 16, <f64>(location - dataStart));
  store<u32>(infoPtr + 24, count);
  store<u32>(infoPtr + 28, 0);
  return STATUS_OK;
}

/**
 * Writes entry `index` of the block at `blockPtr`: a write of `dataLength` bytes at disk
 * offset `byteOffsetBytes` whose data checksums to `dataChecksum`, with its own checksum.
 * Returns STATUS_BAD_ARGUMENT for an offset beyond 2^53 or an index past the capacity.
 */
export function hrlEntryBuild(
  blockPtr: usize,
  metadataSize: u32,
  index: u32,
  byteOffsetBytes: f64,
  dataLength: u32,
  timestamp: u32,
  dataChecksum: u32,
): i32 {
  if (!hrlMetadataSizeValid(metadataSize) || index >= hrlEntryCapacity(metadataSize)) return STATUS_BAD_ARGUMENT;
  if (!(byteOffsetBytes >= 0) || byteOffsetBytes > <f64>HRL_MAX_OFFSET) return STATUS_BAD_ARGUMENT; // NaN too
  const byteOffset = <u64>byteOffsetBytes;
  const entryPtr = blockPtr + HRL_METADATA_HEADER_BYTES + index * HRL_ENTRY_BYTES;
  memory.fill(entryPtr, 0, HRL_ENTRY_BYTES);
  store<u64>(entryPtr, byteOffset);
  store<u32>(entryPtr + 12, dataLength);
  store<u32>(entryPtr + 16, timestamp);
  store<u8>(entryPtr + 20, META_OPERATION_WRITE);
  store<u32>(entryPtr + 21, dataChecksum);
  store<u32>(entryPtr + ENTRY_CHECKSUM_OFFSET, checksumSkipping(entryPtr, HRL_ENTRY_BYTES, ENTRY_CHECKSUM_OFFSET));
  return STATUS_OK;
}

/**
 * Finishes the block at `blockPtr`: zeroes the slots after `entryCount` entries and writes the
 * header (relative link `previousRelativeBytes`, 0 for the first block) with its checksum.
 */
export function hrlMetadataHeaderBuild(blockPtr: usize, metadataSize: u32, previousRelativeBytes: f64, entryCount: u32): i32 {
  if (!hrlMetadataSizeValid(metadataSize) || entryCount > hrlEntryCapacity(metadataSize)) return STATUS_BAD_ARGUMENT;
  if (!(previousRelativeBytes >= 0) || previousRelativeBytes > <f64>HRL_MAX_OFFSET) return STATUS_BAD_ARGUMENT; // NaN too
  const used = HRL_METADATA_HEADER_BYTES + entryCount * HRL_ENTRY_BYTES;
  memory.fill(blockPtr + used, 0, metadataSize - used);
  memory.fill(blockPtr, 0, HRL_METADATA_HEADER_BYTES);
  store<u64>(blockPtr, <u64>previousRelativeBytes);
  store<u32>(blockPtr + 8, entryCount);
  store<u32>(blockPtr + HEADER_CHECKSUM_OFFSET, checksumSkipping(blockPtr, HRL_METADATA_HEADER_BYTES, HEADER_CHECKSUM_OFFSET));
  return STATUS_OK;
}
