// VHD hard disk footer (VHD spec 1.0, "Hard Disk Footer Format"): parse + validate the
// 512-byte big-endian structure into a native field block, and build it back with its
// one's-complement checksum.
//
// On-disk map (big-endian):          Field block (little-endian, FOOTER_FIELDS_BYTES = 96):
//   0  cookie "conectix"   8           0 features u32        48 cylinders u32
//   8  features            4           4 version u32         52 heads u32
//  12  file format version 4           8 dataOffset u64      56 sectorsPerTrack u32
//  16  data offset         8          16 timestamp u32       60 diskType u32
//  24  time stamp          4          20 creatorApp u32      64 checksum u32 (stored)
//  28  creator application 4          24 creatorVersion u32  68 savedState u32
//  32  creator version     4          28 creatorHostOs u32   72 uniqueId [16]
//  36  creator host OS     4          32 originalSize u64    88 virtualSize u64 (parse only)
//  40  original size       8          40 currentSize u64
//  48  current size        8
//  56  geometry C u16, H u8, S u8
//  60  disk type           4
//  64  checksum            4
//  68  unique id          16
//  84  saved state         1, then 427 reserved bytes

import { be16, be32, be64, copyBytes, onesComplementSum, putBe16, putBe32, putBe64, zeroBytes } from "./bytes";
import { virtualSizeFromFooter } from "./geometry";
import {
  STATUS_OK,
  STATUS_VHD_BAD_FOOTER_CHECKSUM,
  STATUS_VHD_BAD_FOOTER_COOKIE,
  STATUS_VHD_BAD_SIZE,
  STATUS_VHD_FILE_TOO_SMALL,
  STATUS_VHD_HEADER_PAST_EOF,
  STATUS_VHD_UNSUPPORTED_DISK_TYPE,
  STATUS_VHD_UNSUPPORTED_VERSION,
} from "../status";

export const VHD_FOOTER_BYTES: u32 = 512;
export const VHD_FOOTER_FIELDS_BYTES: u32 = 96;
/** "conectix" as a big-endian u64. */
const FOOTER_COOKIE: u64 = 0x636f6e6563746978;
/** Largest virtual size accepted: 64 TiB (VHD itself stops near 2 TiB for dynamic disks). */
export const VHD_MAX_VIRTUAL_BYTES: u64 = 1 << 46;
const DISK_FIXED: u32 = 2;
const DISK_DIFFERENCING: u32 = 4;

/**
 * Parses and validates the footer at `footerPtr` for a file of `fileSizeBytes`, writing the
 * field block to `fieldsPtr`. Checks cookie, checksum, version, disk type, size and that the
 * structures it points at lie inside the file. Returns a STATUS_VHD_* code.
 */
export function vhdFooterParse(footerPtr: usize, fileSizeBytes: f64, fieldsPtr: usize): i32 {
  if (be64(footerPtr) != FOOTER_COOKIE) return STATUS_VHD_BAD_FOOTER_COOKIE;
  const stored = be32(footerPtr + 64);
  if (onesComplementSum(footerPtr, VHD_FOOTER_BYTES, 64) != stored) return STATUS_VHD_BAD_FOOTER_CHECKSUM;
  const version = be32(footerPtr + 12);
  if (version >> 16 != 1) return STATUS_VHD_UNSUPPORTED_VERSION;
  const diskType = be32(footerPtr + 60);
  if (diskType < DISK_FIXED || diskType > DISK_DIFFERENCING) return STATUS_VHD_UNSUPPORTED_DISK_TYPE;
  const currentSize = be64(footerPtr + 48);
  if (currentSize % 512 != 0 || currentSize > VHD_MAX_VIRTUAL_BYTES) return STATUS_VHD_BAD_SIZE;
  const cylinders = be16(footerPtr + 56);
  const heads = <u32>load<u8>(footerPtr + 58);
  const sectorsPerTrack = <u32>load<u8>(footerPtr + 59);
  const creator = be32(footerPtr + 28);
  const virtualSize = virtualSizeFromFooter(creator, currentSize, cylinders, heads, sectorsPerTrack);
  const fileSize = <u64>fileSizeBytes;
  const dataOffset = be64(footerPtr + 16);
  if (diskType == DISK_FIXED) {
    if (virtualSize + VHD_FOOTER_BYTES > fileSize) return STATUS_VHD_FILE_TOO_SMALL;
  } else if (dataOffset > fileSize || dataOffset + 1024 + VHD_FOOTER_BYTES > fileSize) {
    return STATUS_VHD_HEADER_PAST_EOF;
  }
  store<u32>(fieldsPtr, be32(footerPtr + 8));
  store<u32>(fieldsPtr + 4, version);
  store<u64>(fieldsPtr + 8, dataOffset);
  store<u32>(fieldsPtr + 16, be32(footerPtr + 24));
  store<u32>(fieldsPtr + 20, creator);
  store<u32>(fieldsPtr + 24, be32(footerPtr + 32));
  store<u32>(fieldsPtr + 28, be32(footerPtr + 36));
  store<u64>(fieldsPtr + 32, be64(footerPtr + 40));
  store<u64>(fieldsPtr + 40, currentSize);
  store<u32>(fieldsPtr + 48, cylinders);
  store<u32>(fieldsPtr + 52, heads);
  store<u32>(fieldsPtr + 56, sectorsPerTrack);
  store<u32>(fieldsPtr + 60, diskType);
  store<u32>(fieldsPtr + 64, stored);
  store<u32>(fieldsPtr + 68, <u32>load<u8>(footerPtr + 84));
  copyBytes(fieldsPtr + 72, footerPtr + 68, 16);
  store<u64>(fieldsPtr + 88, virtualSize);
  return STATUS_OK;
}

/**
 * Builds a 512-byte footer at `footerPtr` from the field block at `fieldsPtr` (virtualSize
 * and checksum fields are ignored; the checksum is computed). Returns STATUS_OK.
 */
export function vhdFooterBuild(fieldsPtr: usize, footerPtr: usize): i32 {
  zeroBytes(footerPtr, VHD_FOOTER_BYTES);
  putBe64(footerPtr, FOOTER_COOKIE);
  putBe32(footerPtr + 8, load<u32>(fieldsPtr));
  putBe32(footerPtr + 12, load<u32>(fieldsPtr + 4));
  putBe64(footerPtr + 16, load<u64>(fieldsPtr + 8));
  putBe32(footerPtr + 24, load<u32>(fieldsPtr + 16));
  putBe32(footerPtr + 28, load<u32>(fieldsPtr + 20));
  putBe32(footerPtr + 32, load<u32>(fieldsPtr + 24));
  putBe32(footerPtr + 36, load<u32>(fieldsPtr + 28));
  putBe64(footerPtr + 40, load<u64>(fieldsPtr + 32));
  putBe64(footerPtr + 48, load<u64>(fieldsPtr + 40));
  putBe16(footerPtr + 56, load<u32>(fieldsPtr + 48));
  store<u8>(footerPtr + 58, <u8>load<u32>(fieldsPtr + 52));
  store<u8>(footerPtr + 59, <u8>load<u32>(fieldsPtr + 56));
  putBe32(footerPtr + 60, load<u32>(fieldsPtr + 60));
  copyBytes(footerPtr + 68, fieldsPtr + 72, 16);
  store<u8>(footerPtr + 84, <u8>load<u32>(fieldsPtr + 68));
  putBe32(footerPtr + 64, onesComplementSum(footerPtr, VHD_FOOTER_BYTES, 64));
  return STATUS_OK;
}

/** One's-complement checksum of a structure of `lengthBytes` whose checksum field is at `checksumOffset`. */
export function vhdChecksum(ptr: usize, lengthBytes: u32, checksumOffset: u32): u32 {
  return onesComplementSum(ptr, lengthBytes, checksumOffset);
}
