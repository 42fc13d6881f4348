// VHDX metadata region ([MS-VHDX] 2.6): the 64 KiB metadata table and the known system items
// (file parameters, virtual disk size and ID, sector sizes, parent locator), plus the BAT
// geometry they imply (chunk ratio, payload and sector bitmap block counts, BAT entries).
//
// Table: 0 "metadata" | 8 Reserved u16 | 10 EntryCount u16 | 32 entries of 32 bytes:
//   0 ItemID | 16 Offset u32 | 20 Length u32 | 24 flags (bit 0 IsUser, 1 IsVirtualDisk, 2 IsRequired)
//
// Output (VHDX_METADATA_OUT_BYTES): 0 BlockSize u32 | 4 flags (bit 0 LeaveBlockAllocated,
//   bit 1 HasParent) | 8 VirtualDiskSize u64 | 16 LogicalSectorSize u32 | 20 PhysicalSectorSize u32
//   24 VirtualDiskId (16) | 40 present-item mask u32 (bit 0 file parameters, 1 size, 2 id,
//   3 logical, 4 physical, 5 parent locator) | 44 parent locator offset u32 (in the region)
//   48 parent locator length u32 | 52 chunk ratio u32 | 56 payload blocks u64
//   64 sector bitmap blocks u64 | 72 BAT entries the disk needs u64

import {
  STATUS_OK, STATUS_BAD_ARGUMENT, STATUS_VHDX_METADATA_CORRUPT, STATUS_VHDX_METADATA_UNKNOWN_REQUIRED,
  STATUS_VHDX_METADATA_MISSING, STATUS_VHDX_BAD_BLOCK_SIZE, STATUS_VHDX_BAD_SECTOR_SIZE,
  STATUS_VHDX_BAD_VIRTUAL_SIZE,
} from "../status";
import {
  GUID_FILE_PARAMETERS, GUID_LOGICAL_SECTOR_SIZE, GUID_PARENT_LOCATOR, GUID_PHYSICAL_SECTOR_SIZE,
  GUID_VIRTUAL_DISK_ID, GUID_VIRTUAL_DISK_SIZE, METADATA_TABLE_BYTES, MIB, SIGNATURE_METADATA, guidEquals,
} from "./layout";

export const VHDX_METADATA_OUT_BYTES: usize = 80;
const MAX_ENTRIES: u32 = 2047;
const MAX_VIRTUAL_SIZE: u64 = <u64>64 << 40;
const ITEM_FILE_PARAMETERS: u32 = 1;
const ITEM_SIZE: u32 = 2;
const ITEM_ID: u32 = 4;
const ITEM_LOGICAL: u32 = 8;
const ITEM_PHYSICAL: u32 = 16;
const ITEM_PARENT_LOCATOR: u32 = 32;

/** Which known item an entry is (0 = unknown), or u32.MAX_VALUE when too short for it. */
function copyKnownItem(entry: usize, item: usize, length: u32, outPointer: usize): u32 {
  if ((load<u32>(entry + 24) & 1) != 0) return 0; // user items are never system items
  if (guidEquals(entry, GUID_FILE_PARAMETERS)) {
    if (length < 8) return u32.MAX_VALUE;
    store<u32>(outPointer, load<u32>(item));
    store<u32>(outPointer + 4, load<u32>(item + 4) & 3);
    return ITEM_FILE_PARAMETERS;
  }
  if (guidEquals(entry, GUID_VIRTUAL_DISK_SIZE)) {
    if (length < 8) return u32.MAX_VALUE;
    store<u64>(outPointer + 8, load<u64>(item));
    return ITEM_SIZE;
  }
  if (guidEquals(entry, GUID_VIRTUAL_DISK_ID)) {
    if (length < 16) return u32.MAX_VALUE;
    memory.copy(outPointer + 24, item, 16);
    return ITEM_ID;
  }
  if (guidEquals(entry, GUID_LOGICAL_SECTOR_SIZE)) {
    if (length < 4) return u32.MAX_VALUE;
    store<u32>(outPointer + 16, load<u32>(item));
    return ITEM_LOGICAL;
  }
  if (guidEquals(entry, GUID_PHYSICAL_SECTOR_SIZE)) {
    if (length < 4) return u32.MAX_VALUE;
    store<u32>(outPointer + 20, load<u32>(item));
    return ITEM_PHYSICAL;
  }
  if (guidEquals(entry, GUID_PARENT_LOCATOR)) {
    if (length < 20) return u32.MAX_VALUE;
    return ITEM_PARENT_LOCATOR;
  }
  return 0;
}

/** Validates the table entries and copies the known items; returns a status. */
function parseTable(region: usize, regionLength: u32, outPointer: usize): i32 {
  if (load<u64>(region) != SIGNATURE_METADATA) return STATUS_VHDX_METADATA_CORRUPT;
  const count = <u32>load<u16>(region + 10);
  if (count > MAX_ENTRIES) return STATUS_VHDX_METADATA_CORRUPT;
  let present: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const entry = region + 32 + (<usize>i << 5);
    const offset = load<u32>(entry + 16);
    const length = load<u32>(entry + 20);
    if (length == 0 ? offset != 0 : offset < METADATA_TABLE_BYTES || length > <u32>MIB) return STATUS_VHDX_METADATA_CORRUPT;
    if (<u64>offset + <u64>length > <u64>regionLength) return STATUS_VHDX_METADATA_CORRUPT;
    const userBit = load<u32>(entry + 24) & 1;
    for (let j: u32 = 0; j < i; j++) {
      const other = region + 32 + (<usize>j << 5);
      if (guidEquals(entry, other) && (load<u32>(other + 24) & 1) == userBit) return STATUS_VHDX_METADATA_CORRUPT;
      const otherOffset = load<u32>(other + 16);
      const otherLength = load<u32>(other + 20);
      if (length > 0 && otherLength > 0 && offset < otherOffset + otherLength && otherOffset < offset + length) {
        return STATUS_VHDX_METADATA_CORRUPT;
      }
    }
    const known = copyKnownItem(entry, region + offset, length, outPointer);
    if (known == u32.MAX_VALUE) return STATUS_VHDX_METADATA_CORRUPT;
    if (known == ITEM_PARENT_LOCATOR) {
      store<u32>(outPointer + 44, offset);
      store<u32>(outPointer + 48, length);
    }
    if (known == 0 && (load<u32>(entry + 24) & 4) != 0) return STATUS_VHDX_METADATA_UNKNOWN_REQUIRED;
    present |= known;
  }
  store<u32>(outPointer + 40, present);
  return STATUS_OK;
}

@inline function isSectorSize(value: u32): bool {
  return value == 512 || value == 4096;
}

/** Checks the item values and computes the BAT geometry ([MS-VHDX] 2.4, 2.5). */
function checkValues(outPointer: usize): i32 {
  const present = load<u32>(outPointer + 40);
  const required = ITEM_FILE_PARAMETERS | ITEM_SIZE | ITEM_LOGICAL;
  if ((present & required) != required) return STATUS_VHDX_METADATA_MISSING;
  const hasParent = (load<u32>(outPointer + 4) & 2) != 0;
  if (hasParent && (present & ITEM_PARENT_LOCATOR) == 0) return STATUS_VHDX_METADATA_MISSING;
  const blockSize = load<u32>(outPointer);
  if (blockSize < <u32>MIB || blockSize > <u32>(256 * MIB) || (blockSize & (blockSize - 1)) != 0) return STATUS_VHDX_BAD_BLOCK_SIZE;
  const logical = load<u32>(outPointer + 16);
  if (!isSectorSize(logical)) return STATUS_VHDX_BAD_SECTOR_SIZE;
  if ((present & ITEM_PHYSICAL) == 0) store<u32>(outPointer + 20, logical);
  if (!isSectorSize(load<u32>(outPointer + 20))) return STATUS_VHDX_BAD_SECTOR_SIZE;
  const size = load<u64>(outPointer + 8);
  if (size > MAX_VIRTUAL_SIZE || size % <u64>logical != 0) return STATUS_VHDX_BAD_VIRTUAL_SIZE;
  const chunkRatio = <u32>(((<u64>1 << 23) * <u64>logical) / <u64>blockSize);
  const payloadBlocks = (size + <u64>blockSize - 1) / <u64>blockSize;
  const bitmapBlocks = (payloadBlocks + <u64>chunkRatio - 1) / <u64>chunkRatio;
  let batEntries: u64 = 0;
  if (hasParent) batEntries = bitmapBlocks * (<u64>chunkRatio + 1);
  else if (payloadBlocks > 0) batEntries = payloadBlocks + (payloadBlocks - 1) / <u64>chunkRatio;
  store<u32>(outPointer + 52, chunkRatio);
  store<u64>(outPointer + 56, payloadBlocks);
  store<u64>(outPointer + 64, bitmapBlocks);
  store<u64>(outPointer + 72, batEntries);
  return STATUS_OK;
}

/**
 * Parses the metadata region (`regionLength` bytes at `region`, as read from the file after
 * log replay) into the output layout above.
 * Status: OK, BAD_ARGUMENT, VHDX_METADATA_CORRUPT, VHDX_METADATA_UNKNOWN_REQUIRED,
 * VHDX_METADATA_MISSING, VHDX_BAD_BLOCK_SIZE, VHDX_BAD_SECTOR_SIZE, VHDX_BAD_VIRTUAL_SIZE.
 */
export function vhdxParseMetadata(region: usize, regionLength: u32, outPointer: usize): i32 {
  if (regionLength < METADATA_TABLE_BYTES) return STATUS_BAD_ARGUMENT;
  memory.fill(outPointer, 0, VHDX_METADATA_OUT_BYTES);
  const status = parseTable(region, regionLength, outPointer);
  return status != STATUS_OK ? status : checkValues(outPointer);
}
