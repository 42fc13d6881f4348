// VHDX log ([MS-VHDX] 2.3): validates log entries (header, descriptors, data sectors, CRC-32C),
// finds the active sequence with the scan of section 2.3.3, and reassembles the 4 KiB sector
// a data descriptor writes. The log is a ring: an entry's sectors may wrap to the log start.
//
// Entry header (first sector): 0 "loge" | 4 Checksum | 8 EntryLength u32 | 12 Tail u32
//   16 SequenceNumber u64 | 24 DescriptorCount u32 | 28 Reserved | 32 LogGuid | 48 FlushedFileOffset u64
//   56 LastFileOffset u64 | 64 descriptors (126 in the first sector, 128 in later ones), 32 bytes:
//   data "desc": 4 TrailingBytes u32 | 8 LeadingBytes u64 | 16 FileOffset u64 | 24 SequenceNumber u64
//   zero "zero": 8 ZeroLength u64 | 16 FileOffset u64 | 24 SequenceNumber u64
// Data sector: 0 "data" | 4 SequenceHigh u32 | 8..4092 data | 4092 SequenceLow u32
//
// Entry output (VHDX_LOG_ENTRY_OUT_BYTES): 0 EntryLength u32 | 4 Tail u32 | 8 SequenceNumber u64
//   16 DescriptorCount u32 | 20 data sectors u32 | 24 FlushedFileOffset u64 | 32 LastFileOffset u64
// Active-sequence output (VHDX_LOG_ACTIVE_OUT_BYTES): 0 tail entry offset u32 | 4 head entry
//   offset u32 | 8 entry count u32 | 16 head SequenceNumber u64 | 24 head FlushedFileOffset u64
//   32 head LastFileOffset u64
// Descriptor output: 0 kind u32 (1 data, 2 zero) | 8 FileOffset u64 | 16 length u64 | 64.. the
//   4096-byte sector to write (data descriptors only).

import { STATUS_OK, STATUS_BAD_ARGUMENT, STATUS_VHDX_LOG_ENTRY_CORRUPT, STATUS_VHDX_LOG_ENTRY_BAD_CHECKSUM } from "../status";
import { crc32cUpdate, crc32cZeros } from "./crc32c";
import {
  LOG_SECTOR_BYTES, REGION_TABLE1_OFFSET, SIGNATURE_DATA_DESCRIPTOR, SIGNATURE_DATA_SECTOR,
  SIGNATURE_LOG_ENTRY, SIGNATURE_ZERO_DESCRIPTOR, guidEquals, isAligned,
} from "./layout";

export const VHDX_LOG_ENTRY_OUT_BYTES: usize = 40;
export const VHDX_LOG_ACTIVE_OUT_BYTES: usize = 40;
export const VHDX_LOG_DESCRIPTOR_OUT_BYTES: usize = 64 + 4096;
const SECTOR: u64 = <u64>LOG_SECTOR_BYTES;
const MAX_FILE_OFFSET: u64 = <u64>1 << 52;
/** Bytes of entry checksums still allowed (the sequence scan sets a budget; see log-sequence.ts). */
let checksumBudget: u64 = u64.MAX_VALUE;

/** Sets how many bytes entry checksums may still cover (u64.MAX_VALUE = no limit). */
export function setChecksumBudget(bytes: u64): void {
  checksumBudget = bytes;
}

/** Address of sector `sector` of the entry at `entryOffset`, wrapping around the ring. */
@inline export function sectorAddress(log: usize, logLength: u64, entryOffset: u64, sector: u64): usize {
  return log + <usize>((entryOffset + sector * SECTOR) % logLength);
}

/** Descriptor sectors an entry with `count` descriptors has. */
@inline export function descriptorSectors(count: u64): u64 {
  return count <= 126 ? 1 : 1 + (count - 126 + 127) / 128;
}

@inline export function descriptorAddress(log: usize, logLength: u64, entryOffset: u64, index: u64): usize {
  if (index < 126) return sectorAddress(log, logLength, entryOffset, 0) + 64 + <usize>(index << 5);
  const rest = index - 126;
  return sectorAddress(log, logLength, entryOffset, 1 + rest / 128) + <usize>((rest % 128) << 5);
}

/** Checks descriptors and data sectors; returns the number of data sectors or -1. */
function checkDescriptors(log: usize, logLength: u64, entryOffset: u64, count: u64, sequence: u64, sectors: u64): i64 {
  const first = descriptorSectors(count);
  let data: u64 = 0;
  for (let index: u64 = 0; index < count; index++) {
    const descriptor = descriptorAddress(log, logLength, entryOffset, index);
    const signature = load<u32>(descriptor);
    const fileOffset = load<u64>(descriptor + 16);
    if (load<u64>(descriptor + 24) != sequence || !isAligned(fileOffset, SECTOR)) return -1;
    let length = SECTOR;
    if (signature == SIGNATURE_ZERO_DESCRIPTOR) {
      length = load<u64>(descriptor + 8);
      if (!isAligned(length, SECTOR) || length > MAX_FILE_OFFSET) return -1;
    } else if (signature == SIGNATURE_DATA_DESCRIPTOR) {
      if (first + data >= sectors) return -1;
      const sector = sectorAddress(log, logLength, entryOffset, first + data);
      if (load<u32>(sector) != SIGNATURE_DATA_SECTOR) return -1;
      if (load<u32>(sector + 4) != <u32>(sequence >> 32) || load<u32>(sector + 4092) != <u32>sequence) return -1;
      data++;
    } else {
      return -1;
    }
    // Never the file identifier or the headers: only structures from the region tables on.
    if (fileOffset < <u64>REGION_TABLE1_OFFSET || fileOffset > MAX_FILE_OFFSET) return -1;
  }
  return first + data <= sectors ? <i64>data : -1;
}

/** CRC-32C over the entry's sectors (wrapping), its checksum field counted as zero. */
function entryChecksum(log: usize, logLength: u64, entryOffset: u64, sectors: u64): u32 {
  const head = sectorAddress(log, logLength, entryOffset, 0);
  let crc = crc32cUpdate(0xffffffff, head, 4);
  crc = crc32cZeros(crc, 4);
  crc = crc32cUpdate(crc, head + 8, LOG_SECTOR_BYTES - 8);
  for (let sector: u64 = 1; sector < sectors; sector++) {
    crc = crc32cUpdate(crc, sectorAddress(log, logLength, entryOffset, sector), LOG_SECTOR_BYTES);
  }
  return ~crc;
}

/**
 * Validates the log entry at `entryOffset` of the `logLength`-byte log at `log` against the
 * header's LogGuid (16 bytes at `logGuid`). Status: OK, BAD_ARGUMENT,
 * VHDX_LOG_ENTRY_CORRUPT, VHDX_LOG_ENTRY_BAD_CHECKSUM.
 */
export function vhdxLogEntryCheck(log: usize, logLength: u64, entryOffset: u64, logGuid: usize, outPointer: usize): i32 {
  if (logLength == 0 || !isAligned(logLength, SECTOR) || entryOffset >= logLength || !isAligned(entryOffset, SECTOR)) return STATUS_BAD_ARGUMENT;
  const header = log + <usize>entryOffset;
  const entryLength = <u64>load<u32>(header + 8);
  const tail = <u64>load<u32>(header + 12);
  const sequence = load<u64>(header + 16);
  const count = <u64>load<u32>(header + 24);
  if (load<u32>(header) != SIGNATURE_LOG_ENTRY || !guidEquals(header + 32, logGuid)) return STATUS_VHDX_LOG_ENTRY_CORRUPT;
  if (entryLength == 0 || !isAligned(entryLength, SECTOR) || entryLength > logLength) return STATUS_VHDX_LOG_ENTRY_CORRUPT;
  if (!isAligned(tail, SECTOR) || tail >= logLength || sequence == 0) return STATUS_VHDX_LOG_ENTRY_CORRUPT;
  const sectors = entryLength / SECTOR;
  if (descriptorSectors(count) > sectors) return STATUS_VHDX_LOG_ENTRY_CORRUPT;
  // Structure first (cheap), then the checksum, which may cost up to the whole log.
  const data = checkDescriptors(log, logLength, entryOffset, count, sequence, sectors);
  if (data < 0) return STATUS_VHDX_LOG_ENTRY_CORRUPT;
  if (entryLength > checksumBudget) return STATUS_VHDX_LOG_ENTRY_CORRUPT;
  checksumBudget -= entryLength;
  if (entryChecksum(log, logLength, entryOffset, sectors) != load<u32>(header + 4)) return STATUS_VHDX_LOG_ENTRY_BAD_CHECKSUM;
  store<u32>(outPointer, <u32>entryLength);
  store<u32>(outPointer + 4, <u32>tail);
  store<u64>(outPointer + 8, sequence);
  store<u32>(outPointer + 16, <u32>count);
  store<u32>(outPointer + 20, <u32>data);
  store<u64>(outPointer + 24, load<u64>(header + 48));
  store<u64>(outPointer + 32, load<u64>(header + 56));
  return STATUS_OK;
}
