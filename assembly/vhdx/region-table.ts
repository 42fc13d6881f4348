// VHDX region table ([MS-VHDX] 2.2.3): two 64 KiB copies at 192 KiB and 256 KiB. Uses the
// first copy with a valid signature and CRC-32C (the second if the first is damaged), finds
// the BAT and metadata regions, refuses unknown required regions and overlapping regions.
//
// Table: 0 "regi" | 4 Checksum | 8 EntryCount u32 | 12 Reserved | 16 entries of 32 bytes:
//   0 Guid | 16 FileOffset u64 | 24 Length u32 | 28 Required u32
//
// Output (VHDX_REGION_OUT_BYTES): 0 BAT offset u64 | 8 BAT length u32 | 12 metadata length u32
//   16 metadata offset u64 | 24 copy used (0/1) u32 | 28 valid-copy mask u32

import {
  STATUS_OK, STATUS_BAD_ARGUMENT, STATUS_VHDX_REGION_BAD_CHECKSUM, STATUS_VHDX_REGION_CORRUPT,
  STATUS_VHDX_REGION_UNKNOWN_REQUIRED, STATUS_VHDX_REGION_MISSING,
} from "../status";
import { crc32cWithZeroedField } from "./crc32c";
import {
  GUID_BAT_REGION, GUID_METADATA_REGION, HEADER_SECTION_BYTES, MIB, REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET, REGION_TABLE_BYTES, SIGNATURE_REGION, guidEquals, isAligned,
} from "./layout";

export const VHDX_REGION_OUT_BYTES: usize = 32;
const MAX_ENTRIES: u32 = 2047;

/** 0 = bad signature/count, 1 = bad checksum, 2 = valid. */
function tableValidity(table: usize): i32 {
  if (load<u32>(table) != SIGNATURE_REGION || load<u32>(table + 8) > MAX_ENTRIES) return 0;
  return crc32cWithZeroedField(table, REGION_TABLE_BYTES, 4) == load<u32>(table + 4) ? 2 : 1;
}

@inline function overlaps(startA: u64, lengthA: u64, startB: u64, lengthB: u64): bool {
  return lengthA > 0 && lengthB > 0 && startA < startB + lengthB && startB < startA + lengthA;
}

/** Checks one table's entries and records the BAT and metadata regions. */
function parseEntries(table: usize, logOffset: u64, logLength: u64, outPointer: usize): i32 {
  const count = load<u32>(table + 8);
  let foundBat = false;
  let foundMetadata = false;
  for (let i: u32 = 0; i < count; i++) {
    const entry = table + 16 + (<usize>i << 5);
    const offset = load<u64>(entry + 16);
    const length = <u64>load<u32>(entry + 24);
    if (!isAligned(offset, MIB) || !isAligned(length, MIB) || offset < HEADER_SECTION_BYTES) return STATUS_VHDX_REGION_CORRUPT;
    if (offset > (<u64>1 << 52)) return STATUS_VHDX_REGION_CORRUPT;
    if (overlaps(offset, length, logOffset, logLength)) return STATUS_VHDX_REGION_CORRUPT;
    for (let j: u32 = 0; j < i; j++) {
      const other = table + 16 + (<usize>j << 5);
      if (guidEquals(entry, other)) return STATUS_VHDX_REGION_CORRUPT;
      if (overlaps(offset, length, load<u64>(other + 16), <u64>load<u32>(other + 24))) return STATUS_VHDX_REGION_CORRUPT;
    }
    if (guidEquals(entry, GUID_BAT_REGION)) {
      if (length == 0) return STATUS_VHDX_REGION_CORRUPT;
      store<u64>(outPointer, offset);
      store<u32>(outPointer + 8, <u32>length);
      foundBat = true;
    } else if (guidEquals(entry, GUID_METADATA_REGION)) {
      if (length == 0) return STATUS_VHDX_REGION_CORRUPT;
      store<u64>(outPointer + 16, offset);
      store<u32>(outPointer + 12, <u32>length);
      foundMetadata = true;
    } else if ((load<u32>(entry + 28) & 1) != 0) {
      return STATUS_VHDX_REGION_UNKNOWN_REQUIRED;
    }
  }
  return foundBat && foundMetadata ? STATUS_OK : STATUS_VHDX_REGION_MISSING;
}

/**
 * Parses the region table from the first `length` bytes of the file (at least 320 KiB; after
 * any log replay). `logOffset`/`logLength` come from the current header.
 * Status: OK, BAD_ARGUMENT, VHDX_REGION_BAD_CHECKSUM, VHDX_REGION_CORRUPT,
 * VHDX_REGION_UNKNOWN_REQUIRED, VHDX_REGION_MISSING.
 */
export function vhdxParseRegionTable(pointer: usize, length: usize, logOffset: u64, logLength: u64, outPointer: usize): i32 {
  if (length < REGION_TABLE2_OFFSET + REGION_TABLE_BYTES) return STATUS_BAD_ARGUMENT;
  memory.fill(outPointer, 0, VHDX_REGION_OUT_BYTES);
  const first = tableValidity(pointer + REGION_TABLE1_OFFSET);
  const second = tableValidity(pointer + REGION_TABLE2_OFFSET);
  store<u32>(outPointer + 28, (first == 2 ? 1 : 0) | (second == 2 ? 2 : 0));
  if (first < 2 && second < 2) return first == 1 || second == 1 ? STATUS_VHDX_REGION_BAD_CHECKSUM : STATUS_VHDX_REGION_CORRUPT;
  const copy: u32 = first == 2 ? 0 : 1;
  store<u32>(outPointer + 24, copy);
  return parseEntries(pointer + (copy == 0 ? REGION_TABLE1_OFFSET : REGION_TABLE2_OFFSET), logOffset, logLength, outPointer);
}
