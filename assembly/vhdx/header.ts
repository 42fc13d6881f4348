// VHDX file type identifier and the two headers ([MS-VHDX] 2.2.1-2.2.2): picks the current
// header (valid signature and CRC-32C, highest SequenceNumber) and checks version and log location.
//
// Header (4 KiB at 64 KiB and 128 KiB):
//   0 Signature "head" | 4 Checksum | 8 SequenceNumber u64 | 16 FileWriteGuid | 32 DataWriteGuid
//   48 LogGuid | 64 LogVersion u16 | 66 Version u16 | 68 LogLength u32 | 72 LogOffset u64
//
// Output (VHDX_HEADER_OUT_BYTES at outPointer):
//   0 SequenceNumber u64 | 8 FileWriteGuid | 24 DataWriteGuid | 40 LogGuid | 56 LogLength u32
//   60 current header index (0 = at 64 KiB, 1 = at 128 KiB) u32 | 64 LogOffset u64
//   72 valid-header mask u32 (bit 0 first, bit 1 second) | 76 Version u32

import {
  STATUS_OK, STATUS_BAD_ARGUMENT, STATUS_VHDX_BAD_IDENTIFIER, STATUS_VHDX_NO_VALID_HEADER,
  STATUS_VHDX_HEADER_BAD_CHECKSUM, STATUS_VHDX_UNSUPPORTED_VERSION, STATUS_VHDX_BAD_LOG_LOCATION,
} from "../status";
import { crc32cWithZeroedField } from "./crc32c";
import {
  HEADER1_OFFSET, HEADER2_OFFSET, HEADER_BYTES, HEADER_SECTION_BYTES, MIB, SIGNATURE_FILE,
  SIGNATURE_HEADER, guidIsZero, isAligned,
} from "./layout";

export const VHDX_HEADER_OUT_BYTES: usize = 80;

/** 0 = invalid, 1 = signature ok but bad checksum, 2 = valid. */
function headerValidity(header: usize): i32 {
  if (load<u32>(header) != SIGNATURE_HEADER) return 0;
  return crc32cWithZeroedField(header, HEADER_BYTES, 4) == load<u32>(header + 4) ? 2 : 1;
}

/**
 * Parses the file identifier and both headers from the first `length` bytes of the file
 * (at least 132 KiB, normally the first 320 KiB) and writes the current header to `outPointer`.
 * Status: OK, BAD_ARGUMENT, VHDX_BAD_IDENTIFIER, VHDX_NO_VALID_HEADER,
 * VHDX_HEADER_BAD_CHECKSUM, VHDX_UNSUPPORTED_VERSION, VHDX_BAD_LOG_LOCATION.
 */
export function vhdxParseHeaders(pointer: usize, length: usize, outPointer: usize): i32 {
  if (length < HEADER2_OFFSET + HEADER_BYTES) return STATUS_BAD_ARGUMENT;
  if (load<u64>(pointer) != SIGNATURE_FILE) return STATUS_VHDX_BAD_IDENTIFIER;
  const first = headerValidity(pointer + HEADER1_OFFSET);
  const second = headerValidity(pointer + HEADER2_OFFSET);
  if (first < 2 && second < 2) return first == 1 || second == 1 ? STATUS_VHDX_HEADER_BAD_CHECKSUM : STATUS_VHDX_NO_VALID_HEADER;
  let index: u32 = first == 2 ? 0 : 1;
  if (first == 2 && second == 2) {
    index = load<u64>(pointer + HEADER2_OFFSET + 8) > load<u64>(pointer + HEADER1_OFFSET + 8) ? 1 : 0;
  }
  const header = pointer + (index == 0 ? HEADER1_OFFSET : HEADER2_OFFSET);
  store<u64>(outPointer, load<u64>(header + 8));
  memory.copy(outPointer + 8, header + 16, 48);
  const logLength = load<u32>(header + 68);
  const logOffset = load<u64>(header + 72);
  store<u32>(outPointer + 56, logLength);
  store<u32>(outPointer + 60, index);
  store<u64>(outPointer + 64, logOffset);
  store<u32>(outPointer + 72, (first == 2 ? 1 : 0) | (second == 2 ? 2 : 0));
  const version = load<u16>(header + 66);
  store<u32>(outPointer + 76, version);
  if (version != 1) return STATUS_VHDX_UNSUPPORTED_VERSION;
  const logEmpty = guidIsZero(header + 48);
  if (!logEmpty && load<u16>(header + 64) != 0) return STATUS_VHDX_UNSUPPORTED_VERSION;
  if (!isAligned(<u64>logLength, MIB) || !isAligned(logOffset, MIB)) return STATUS_VHDX_BAD_LOG_LOCATION;
  if (logLength != 0 && logOffset < HEADER_SECTION_BYTES) return STATUS_VHDX_BAD_LOG_LOCATION;
  if (!logEmpty && logLength == 0) return STATUS_VHDX_BAD_LOG_LOCATION;
  return STATUS_OK;
}
