// Finding the VHDX log's active sequence ([MS-VHDX] 2.3.2-2.3.3) and reading its descriptors.
// The scan follows the spec's steps: from each candidate tail, extend a sequence while entries
// are valid and numbered consecutively; it is valid if its head entry's tail lies inside it;
// keep the valid sequence with the highest head sequence number. Each position's entry is
// validated once (results cached in caller memory), and checksums may cover at most
// 8 x the log + 64 MiB in total, so a hostile log cannot make the scan quadratic.

import { STATUS_OK, STATUS_BAD_ARGUMENT, STATUS_VHDX_LOG_NO_SEQUENCE, STATUS_VHDX_LOG_ENTRY_CORRUPT } from "../status";
import { LOG_SECTOR_BYTES, SIGNATURE_DATA_DESCRIPTOR, SIGNATURE_DATA_SECTOR, isAligned } from "./layout";
import { descriptorAddress, descriptorSectors, sectorAddress, setChecksumBudget, vhdxLogEntryCheck } from "./log";

const SECTOR: u64 = <u64>LOG_SECTOR_BYTES;
/** Bytes of cache the scan needs per 4 KiB of log: a state word and the entry's parse result. */
export const VHDX_LOG_CACHE_SLOT_BYTES: usize = 48;
const CHECKSUM_SLACK_BYTES: u64 = 64 << 20;

/** The parse result of the entry at `position` (cached in `cache`), or 0 if it is not valid. */
function entryAt(log: usize, logLength: u64, logGuid: usize, cache: usize, position: u64): usize {
  const slot = cache + <usize>(position / SECTOR) * VHDX_LOG_CACHE_SLOT_BYTES;
  let state = load<u32>(slot);
  if (state == 0) {
    state = vhdxLogEntryCheck(log, logLength, position, logGuid, slot + 8) == STATUS_OK ? 1 : 2;
    store<u32>(slot, state);
  }
  return state == 1 ? slot + 8 : 0;
}

/** Number of entries from `from` (walking forward) up to and including `to`, or 0 if `to` is not an entry start. */
function entriesBetween(log: usize, logLength: u64, logGuid: usize, cache: usize, from: u64, to: u64, limit: u32): u32 {
  let position = from;
  for (let count: u32 = 1; count <= limit; count++) {
    if (position == to) return count;
    const entry = entryAt(log, logLength, logGuid, cache, position);
    if (entry == 0) return 0;
    position = (position + <u64>load<u32>(entry)) % logLength;
  }
  return 0;
}

/**
 * Scans the `logLength`-byte log at `log` for its active sequence (entries must carry the
 * LogGuid at `logGuid`). `cache` is zeroed caller memory of (logLength / 4096) x
 * VHDX_LOG_CACHE_SLOT_BYTES. Status: OK, BAD_ARGUMENT, VHDX_LOG_NO_SEQUENCE.
 */
export function vhdxLogFindActive(log: usize, logLength: u64, logGuid: usize, cache: usize, outPointer: usize): i32 {
  if (logLength == 0 || !isAligned(logLength, SECTOR)) return STATUS_BAD_ARGUMENT;
  setChecksumBudget(logLength * 8 + CHECKSUM_SLACK_BYTES);
  const status = scan(log, logLength, logGuid, cache, outPointer);
  setChecksumBudget(u64.MAX_VALUE);
  return status;
}

function scan(log: usize, logLength: u64, logGuid: usize, cache: usize, outPointer: usize): i32 {
  let bestSequence: u64 = 0;
  let currentTail: u64 = 0;
  let oldTail: u64 = 0;
  while (true) {
    let position = currentTail;
    let count: u32 = 0;
    let consumed: u64 = 0;
    let lastSequence: u64 = 0;
    let headOffset: u64 = 0;
    let headTail: u64 = 0;
    let flushed: u64 = 0;
    let last: u64 = 0;
    while (consumed < logLength) {
      const entry = entryAt(log, logLength, logGuid, cache, position);
      if (entry == 0) break;
      const sequence = load<u64>(entry + 8);
      if (count > 0 && sequence != lastSequence + 1) break;
      lastSequence = sequence;
      headOffset = position;
      headTail = <u64>load<u32>(entry + 4);
      flushed = load<u64>(entry + 24);
      last = load<u64>(entry + 32);
      count++;
      consumed += <u64>load<u32>(entry);
      position = (position + <u64>load<u32>(entry)) % logLength;
    }
    let valid = false;
    if (count > 0) {
      const span = entriesBetween(log, logLength, logGuid, cache, headTail, headOffset, count);
      // The head's tail must be an entry of this sequence: walking from it reaches the head.
      valid = span > 0 && entriesBetween(log, logLength, logGuid, cache, currentTail, headTail, count) > 0;
      if (valid && lastSequence > bestSequence) {
        bestSequence = lastSequence;
        store<u32>(outPointer, <u32>headTail);
        store<u32>(outPointer + 4, <u32>headOffset);
        store<u32>(outPointer + 8, span);
        store<u64>(outPointer + 16, lastSequence);
        store<u64>(outPointer + 24, flushed);
        store<u64>(outPointer + 32, last);
      }
    }
    if (!valid) {
      currentTail += SECTOR;
      if (currentTail >= logLength) currentTail = 0;
    } else {
      currentTail = position;
    }
    if (currentTail < oldTail) break;
    oldTail = currentTail;
    if (currentTail == 0 && valid) break; // a sequence ending exactly at the log's end
  }
  return bestSequence == 0 ? STATUS_VHDX_LOG_NO_SEQUENCE : STATUS_OK;
}

/**
 * Reads descriptor `index` of the (already validated) entry at `entryOffset`. `dataIndex` is
 * how many data descriptors precede it. For a data descriptor the reassembled 4 KiB sector
 * (leading bytes, data, trailing bytes) goes to `outPointer + 64`.
 * Status: OK, BAD_ARGUMENT, VHDX_LOG_ENTRY_CORRUPT.
 */
export function vhdxLogDescriptor(log: usize, logLength: u64, entryOffset: u64, index: u32, dataIndex: u32, outPointer: usize): i32 {
  if (logLength == 0 || entryOffset >= logLength) return STATUS_BAD_ARGUMENT;
  const count = <u64>load<u32>(log + <usize>entryOffset + 24);
  if (<u64>index >= count || dataIndex > index) return STATUS_BAD_ARGUMENT;
  const descriptor = descriptorAddress(log, logLength, entryOffset, <u64>index);
  store<u64>(outPointer + 8, load<u64>(descriptor + 16));
  if (load<u32>(descriptor) != SIGNATURE_DATA_DESCRIPTOR) {
    store<u32>(outPointer, 2);
    store<u64>(outPointer + 16, load<u64>(descriptor + 8));
    return STATUS_OK;
  }
  const sector = sectorAddress(log, logLength, entryOffset, descriptorSectors(count) + <u64>dataIndex);
  if (load<u32>(sector) != SIGNATURE_DATA_SECTOR) return STATUS_VHDX_LOG_ENTRY_CORRUPT;
  store<u32>(outPointer, 1);
  store<u64>(outPointer + 16, SECTOR);
  store<u64>(outPointer + 64, load<u64>(descriptor + 8));
  memory.copy(outPointer + 72, sector + 8, 4084);
  store<u32>(outPointer + 64 + 4092, load<u32>(descriptor + 4));
  return STATUS_OK;
}
