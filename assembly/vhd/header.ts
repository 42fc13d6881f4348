// VHD dynamic disk header (VHD spec 1.0, "Dynamic Disk Header Format"): parse + validate the
// 1024-byte "cxsparse" structure (BAT position and size, block size, parent identity, parent
// name, 8 parent locator entries) and build it back with its checksum.
//
// On-disk map (big-endian):            Field block (little-endian, HEADER_FIELDS_BYTES = 768):
//    0 cookie "cxsparse"        8         0 dataOffset u64        32 parentTimestamp u32
//    8 data offset              8         8 tableOffset u64       36 parentNameUnits u32 (parse)
//   16 table offset             8        16 version u32           40 parentUniqueId [16]
//   24 header version           4        20 maxTableEntries u32   56 locators 8 x 24 bytes:
//   28 max table entries        4        24 blockSize u32            code u32, dataSpace u32,
//   32 block size               4        28 checksum u32 (stored)    dataLength u32, reserved u32,
//   36 checksum                 4                                    dataOffset u64
//   40 parent unique id        16       248 bitmapBytes u32 (parse)
//   56 parent time stamp        4       256 parent name, raw UTF-16BE [512]
//   60 reserved                 4
//   64 parent unicode name    512 (UTF-16BE)
//  576 parent locators     8 x 24 (code, data space, data length, reserved, data offset u64)
//  768 reserved               256

import { be32, be64, copyBytes, isPowerOfTwo, onesComplementSum, putBe32, putBe64, zeroBytes } from "./bytes";
import {
  STATUS_OK,
  STATUS_VHD_BAD_BLOCK_SIZE,
  STATUS_VHD_BAD_HEADER_CHECKSUM,
  STATUS_VHD_BAD_HEADER_COOKIE,
  STATUS_VHD_BAD_LOCATOR,
  STATUS_VHD_BAD_TABLE_OFFSET,
  STATUS_VHD_TABLE_PAST_EOF,
  STATUS_VHD_TABLE_TOO_LARGE,
  STATUS_VHD_TABLE_TOO_SMALL,
  STATUS_VHD_UNSUPPORTED_HEADER_VERSION,
} from "../status";

export const VHD_HEADER_BYTES: u32 = 1024;
export const VHD_HEADER_FIELDS_BYTES: u32 = 768;
/** "cxsparse" as a big-endian u64. */
const HEADER_COOKIE: u64 = 0x6378737061727365;
const MIN_BLOCK_BYTES: u32 = 512;
const MAX_BLOCK_BYTES: u32 = 256 << 20;
/** Most BAT entries accepted (16 MiB of BAT; 8 TiB with 2 MiB blocks). */
export const VHD_MAX_TABLE_ENTRIES: u32 = 1 << 22;
/** Longest parent locator accepted. */
const MAX_LOCATOR_BYTES: u32 = 65536;

/** Bytes of the sector bitmap in front of each block: one bit per sector, padded to 512. */
export function vhdBitmapBytes(blockSizeBytes: u32): u32 {
  const bits = blockSizeBytes >> 9;
  return ((((bits + 7) >> 3) + 511) >> 9) << 9;
}

/**
 * Parses and validates the dynamic header at `headerPtr` (found at `headerOffsetBytes`) of a
 * file of `fileSizeBytes` whose virtual size is `virtualSizeBytes`, writing the field block
 * to `fieldsPtr`. Locators are validated only when `isDifferencing`. Returns a STATUS_VHD_* code.
 */
export function vhdHeaderParse(headerPtr: usize, headerOffsetBytes: f64, fileSizeBytes: f64, virtualSizeBytes: f64, isDifferencing: bool, fieldsPtr: usize): i32 {
  if (be64(headerPtr) != HEADER_COOKIE) return STATUS_VHD_BAD_HEADER_COOKIE;
  const stored = be32(headerPtr + 36);
  if (onesComplementSum(headerPtr, VHD_HEADER_BYTES, 36) != stored) return STATUS_VHD_BAD_HEADER_CHECKSUM;
  const version = be32(headerPtr + 24);
  if (version >> 16 != 1) return STATUS_VHD_UNSUPPORTED_HEADER_VERSION;
  const blockSize = be32(headerPtr + 32);
  if (!isPowerOfTwo(blockSize) || blockSize < MIN_BLOCK_BYTES || blockSize > MAX_BLOCK_BYTES) return STATUS_VHD_BAD_BLOCK_SIZE;
  const entries = be32(headerPtr + 28);
  if (entries > VHD_MAX_TABLE_ENTRIES) return STATUS_VHD_TABLE_TOO_LARGE;
  if (<u64>entries * <u64>blockSize < <u64>virtualSizeBytes) return STATUS_VHD_TABLE_TOO_SMALL;
  const tableOffset = be64(headerPtr + 16);
  const tableEnd = tableOffset + ((<u64>entries * 4 + 511) & ~(<u64>511));
  const fileSize = <u64>fileSizeBytes;
  if (tableOffset > fileSize || tableEnd > fileSize) return STATUS_VHD_TABLE_PAST_EOF;
  const headerOffset = <u64>headerOffsetBytes;
  if (tableOffset < 512 || (tableOffset < headerOffset + VHD_HEADER_BYTES && tableEnd > headerOffset)) return STATUS_VHD_BAD_TABLE_OFFSET;
  if (isDifferencing) {
    for (let i: u32 = 0; i < 8; i++) {
      const entry = headerPtr + 576 + i * 24;
      if (be32(entry) == 0) continue;
      const length = be32(entry + 8);
      const offset = be64(entry + 16);
      if (length > MAX_LOCATOR_BYTES || offset > fileSize || offset + length > fileSize) return STATUS_VHD_BAD_LOCATOR;
    }
  }
  store<u64>(fieldsPtr, be64(headerPtr + 8));
  store<u64>(fieldsPtr + 8, tableOffset);
  store<u32>(fieldsPtr + 16, version);
  store<u32>(fieldsPtr + 20, entries);
  store<u32>(fieldsPtr + 24, blockSize);
  store<u32>(fieldsPtr + 28, stored);
  store<u32>(fieldsPtr + 32, be32(headerPtr + 56));
  copyBytes(fieldsPtr + 40, headerPtr + 40, 16);
  for (let i: u32 = 0; i < 8; i++) {
    const entry = headerPtr + 576 + i * 24;
    const field = fieldsPtr + 56 + i * 24;
    store<u32>(field, be32(entry));
    store<u32>(field + 4, be32(entry + 4));
    store<u32>(field + 8, be32(entry + 8));
    store<u32>(field + 12, be32(entry + 12));
    store<u64>(field + 16, be64(entry + 16));
  }
  let units: u32 = 0;
  while (units < 256 && load<u16>(headerPtr + 64 + units * 2) != 0) units++;
  store<u32>(fieldsPtr + 36, units);
  store<u32>(fieldsPtr + 248, vhdBitmapBytes(blockSize));
  copyBytes(fieldsPtr + 256, headerPtr + 64, 512);
  return STATUS_OK;
}

/** Builds a 1024-byte dynamic header at `headerPtr` from the field block (checksum computed). */
export function vhdHeaderBuild(fieldsPtr: usize, headerPtr: usize): i32 {
  zeroBytes(headerPtr, VHD_HEADER_BYTES);
  putBe64(headerPtr, HEADER_COOKIE);
  putBe64(headerPtr + 8, load<u64>(fieldsPtr));
  putBe64(headerPtr + 16, load<u64>(fieldsPtr + 8));
  putBe32(headerPtr + 24, load<u32>(fieldsPtr + 16));
  putBe32(headerPtr + 28, load<u32>(fieldsPtr + 20));
  putBe32(headerPtr + 32, load<u32>(fieldsPtr + 24));
  copyBytes(headerPtr + 40, fieldsPtr + 40, 16);
  putBe32(headerPtr + 56, load<u32>(fieldsPtr + 32));
  copyBytes(headerPtr + 64, fieldsPtr + 256, 512);
  for (let i: u32 = 0; i < 8; i++) {
    const entry = headerPtr + 576 + i * 24;
    const field = fieldsPtr + 56 + i * 24;
    putBe32(entry, load<u32>(field));
    putBe32(entry + 4, load<u32>(field + 4));
    putBe32(entry + 8, load<u32>(field + 8));
    putBe32(entry + 12, load<u32>(field + 12));
    putBe64(entry + 16, load<u64>(field + 16));
  }
  putBe32(headerPtr + 36, onesComplementSum(headerPtr, VHD_HEADER_BYTES, 36));
  return STATUS_OK;
}
