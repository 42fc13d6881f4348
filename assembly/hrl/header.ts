// [MS-HRL] 2.2 log file header: parse + validate the 4096-byte little-endian structure into a
// native field block, and build it back with its checksum (2.6, Checksum field left out).
//
// On-disk map (little-endian, packed):     Field block (HRL_HEADER_FIELDS_BYTES = 128):
//    0 Cookie "msctlog\0"       8             0 version u32           64 previousUniqueId [16]
//    8 LogFormatVersion         4             4 timestamp u32         80 vhd2DataWriteGuid [16]
//   12 TimeStamp                4             8 creatorApplication[4] 96 totalMetadataEntries u64
//   16 CreatorApplication       4            12 creatorVersion u32   104 lastModifiedTimestamp u32
//   20 CreatorVersion           4            16 originalSize u64     108 fileType u32
//   24 OriginalSize             8            24 currentSize u64      112 flags u32 (2 bytes used)
//   32 CurrentSize              8            32 eolLocation u64      116 checksum u32 (parse only)
//   40 Checksum                 4            40 errorCode i32        120 reserved (8)
//   44 EOLLocation              8            44 metadataSize u32
//   52 ErrorCode                4            48 uniqueId [16]
//   56 MetadataSize             4
//   60 UniqueId                16
//   76 PreviousUniqueId        16
//   92 LastModifiedTimeStamp    4
//   96 TotalMetadataEntries     8
//  104 FileType                 4
//  108 Flags                    2
//  110 Vhd2DataWriteGuid       16   (version 2 only; version 1 has reserved bytes here)
//  126 Reserved              3970   → 4096

import { checksumSkipping } from "./checksum";
import {
  STATUS_BAD_ARGUMENT,
  STATUS_HRL_BAD_COOKIE,
  STATUS_HRL_BAD_EOL,
  STATUS_HRL_BAD_METADATA_SIZE,
  STATUS_HRL_ERROR_RECORDED,
  STATUS_HRL_HEADER_CHECKSUM,
  STATUS_HRL_TRUNCATED,
  STATUS_HRL_UNCLEAN,
  STATUS_HRL_UNSUPPORTED_FILE_TYPE,
  STATUS_HRL_UNSUPPORTED_VERSION,
  STATUS_OK,
} from "../status";

export const HRL_HEADER_BYTES: u32 = 4096;
export const HRL_HEADER_FIELDS_BYTES: u32 = 128;
const CHECKSUM_OFFSET: usize = 40;
/** "msctlog" as the low 7 bytes of a little-endian u64. */
const COOKIE_7: u64 = 0x676f6c7463736d;
/** Offsets and sizes above 2^53 cannot be exact in the JS driver. */
export const HRL_MAX_OFFSET: u64 = 1 << 53;
export const HRL_MIN_METADATA_BYTES: u32 = 64;
export const HRL_MAX_METADATA_BYTES: u32 = 1 << 20;

/** Whether `metadataSize` is a usable MetadataSize: a multiple of 32 from 64 bytes to 1 MiB. */
export function hrlMetadataSizeValid(metadataSize: u32): bool {
  return metadataSize >= HRL_MIN_METADATA_BYTES && metadataSize <= HRL_MAX_METADATA_BYTES && (metadataSize & 31) == 0;
}

/**
 * Parses and validates the header at `headerPtr` (`lengthBytes` available), writing the field
 * block to `fieldsPtr` once cookie, checksum and version are valid. With `requireClean`,
 * EOLLocation 0 returns STATUS_HRL_UNCLEAN and a non-zero ErrorCode STATUS_HRL_ERROR_RECORDED
 * (the field block is still written). Returns a STATUS_HRL_* code.
 */
export function hrlHeaderParse(headerPtr: usize, lengthBytes: u32, fieldsPtr: usize, requireClean: bool): i32 {
  if (lengthBytes < HRL_HEADER_BYTES) return STATUS_HRL_TRUNCATED;
  if ((load<u64>(headerPtr) & 0x00ffffffffffffff) != COOKIE_7) return STATUS_HRL_BAD_COOKIE;
  const stored = load<u32>(headerPtr + CHECKSUM_OFFSET);
  if (checksumSkipping(headerPtr, HRL_HEADER_BYTES, CHECKSUM_OFFSET) != stored) return STATUS_HRL_HEADER_CHECKSUM;
  const version = load<u32>(headerPtr + 8);
  const major = version >> 16;
  if (major != 1 && major != 2) return STATUS_HRL_UNSUPPORTED_VERSION;
  if (load<u32>(headerPtr + 104) != 0) return STATUS_HRL_UNSUPPORTED_FILE_TYPE;
  const metadataSize = load<u32>(headerPtr + 56);
  if (!hrlMetadataSizeValid(metadataSize)) return STATUS_HRL_BAD_METADATA_SIZE;
  const eol = load<u64>(headerPtr + 44);
  if (eol != 0 && (eol < <u64>(HRL_HEADER_BYTES + metadataSize) || eol > HRL_MAX_OFFSET)) return STATUS_HRL_BAD_EOL;
  writeFields(headerPtr, fieldsPtr, major);
  store<u32>(fieldsPtr + 116, stored);
  if (requireClean) {
    if (eol == 0) return STATUS_HRL_UNCLEAN;
    if (load<i32>(headerPtr + 52) != 0) return STATUS_HRL_ERROR_RECORDED;
  }
  return STATUS_OK;
}

function writeFields(headerPtr: usize, fieldsPtr: usize, major: u32): void {
  memory.fill(fieldsPtr, 0, HRL_HEADER_FIELDS_BYTES);
  store<u32>(fieldsPtr, load<u32>(headerPtr + 8));
  store<u32>(fieldsPtr + 4, load<u32>(headerPtr + 12));
  memory.copy(fieldsPtr + 8, headerPtr + 16, 4);
  store<u32>(fieldsPtr + 12, load<u32>(headerPtr + 20));
  store<u64>(fieldsPtr + 16, load<u64>(headerPtr + 24));
  store<u64>(fieldsPtr + 24, load<u64>(headerPtr + 32));
  store<u64>(fieldsPtr + 32, load<u64>(headerPtr + 44));
  store<i32>(fieldsPtr + 40, load<i32>(headerPtr + 52));
  store<u32>(fieldsPtr + 44, load<u32>(headerPtr + 56));
  memory.copy(fieldsPtr + 48, headerPtr + 60, 32);
  if (major >= 2) memory.copy(fieldsPtr + 80, headerPtr + 110, 16);
  store<u64>(fieldsPtr + 96, load<u64>(headerPtr + 96));
  store<u32>(fieldsPtr + 104, load<u32>(headerPtr + 92));
  store<u32>(fieldsPtr + 108, load<u32>(headerPtr + 104));
  store<u32>(fieldsPtr + 112, <u32>load<u16>(headerPtr + 108));
}

/**
 * Builds the 4096-byte header at `headerPtr` from the field block at `fieldsPtr` (checksum and
 * reserved bytes computed/zeroed here; the field block's checksum slot is ignored).
 * Returns STATUS_BAD_ARGUMENT for a version other than 1.x/2.x, a bad MetadataSize or EOL.
 */
export function hrlHeaderBuild(fieldsPtr: usize, headerPtr: usize): i32 {
  const version = load<u32>(fieldsPtr);
  const major = version >> 16;
  const metadataSize = load<u32>(fieldsPtr + 44);
  const eol = load<u64>(fieldsPtr + 32);
  if (major != 1 && major != 2) return STATUS_BAD_ARGUMENT;
  if (!hrlMetadataSizeValid(metadataSize)) return STATUS_BAD_ARGUMENT;
  if (eol != 0 && (eol < <u64>(HRL_HEADER_BYTES + metadataSize) || eol > HRL_MAX_OFFSET)) return STATUS_BAD_ARGUMENT;
  memory.fill(headerPtr, 0, HRL_HEADER_BYTES);
  store<u64>(headerPtr, COOKIE_7);
  store<u32>(headerPtr + 8, version);
  store<u32>(headerPtr + 12, load<u32>(fieldsPtr + 4));
  memory.copy(headerPtr + 16, fieldsPtr + 8, 4);
  store<u32>(headerPtr + 20, load<u32>(fieldsPtr + 12));
  store<u64>(headerPtr + 24, load<u64>(fieldsPtr + 16));
  store<u64>(headerPtr + 32, load<u64>(fieldsPtr + 24));
  store<u64>(headerPtr + 44, eol);
  store<i32>(headerPtr + 52, load<i32>(fieldsPtr + 40));
  store<u32>(headerPtr + 56, metadataSize);
  memory.copy(headerPtr + 60, fieldsPtr + 48, 32);
  store<u32>(headerPtr + 92, load<u32>(fieldsPtr + 104));
  store<u64>(headerPtr + 96, load<u64>(fieldsPtr + 96));
  store<u32>(headerPtr + 104, load<u32>(fieldsPtr + 108));
  store<u16>(headerPtr + 108, <u16>load<u32>(fieldsPtr + 112));
  if (major >= 2) memory.copy(headerPtr + 110, fieldsPtr + 80, 16);
  store<u32>(headerPtr + CHECKSUM_OFFSET, checksumSkipping(headerPtr, HRL_HEADER_BYTES, CHECKSUM_OFFSET));
  return STATUS_OK;
}
