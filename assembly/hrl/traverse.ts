// [MS-HRL] 2.5 log traversal over a log held whole in memory: first pass from
// EOLLocation − MetadataSize backwards through the relative links, stacking block locations;
// second pass forwards, validating each block and emitting its entry records in write order.
// Large logs are traversed block by block by the TS driver with hrlMetadataParse instead.
//
// Block table (HRL_BLOCK_TABLE_BYTES = 16 per block): 0 location f64, 8 firstEntry u32, 12 entryCount u32.
// Result (8 bytes): 0 blockCount u32, 4 entryCount u32.

import { HRL_HEADER_BYTES, HRL_MAX_OFFSET, hrlMetadataSizeValid } from "./header";
import { HRL_ENTRY_RECORD_BYTES, hrlMetadataParse } from "./metadata";
import { STATUS_HRL_BAD_EOL, STATUS_HRL_BAD_METADATA_SIZE, STATUS_HRL_TRUNCATED, STATUS_OK, STATUS_OUTPUT_TOO_SMALL } from "../status";

export const HRL_BLOCK_TABLE_BYTES: u32 = 16;

/**
 * Traverses the log at `logPtr` (`logLength` bytes from offset 0, header included) whose
 * header says `eolLocation` and `metadataSize`. Writes the block table (forward order) to
 * `blocksPtr` (room for `maxBlocks`), the entry records to `recordsPtr` (room for
 * `maxRecords`), and the counts to `resultPtr`; `scratchPtr` needs HRL_BLOCK_INFO_BYTES.
 * Entries must end at or below `diskSizeBytes` (negative: not checked).
 * Returns STATUS_OK or the first problem found (STATUS_HRL_*).
 */
export function hrlTraverse(
  logPtr: usize,
  logLength: u32,
  metadataSize: u32,
  eolLocation: f64,
  diskSizeBytes: f64,
  blocksPtr: usize,
  maxBlocks: u32,
  recordsPtr: usize,
  maxRecords: u32,
  scratchPtr: usize,
  resultPtr: usize,
): i32 {
  if (!hrlMetadataSizeValid(metadataSize)) return STATUS_HRL_BAD_METADATA_SIZE;
  const eol = <u64>eolLocation;
  if (eol < <u64>(HRL_HEADER_BYTES + metadataSize) || eol > HRL_MAX_OFFSET) return STATUS_HRL_BAD_EOL;
  if (eol > <u64>logLength) return STATUS_HRL_TRUNCATED;
  // Pass 1: backwards, stacking locations (links are validated by the parse).
  let count: u32 = 0;
  let location = eol - <u64>metadataSize;
  for (;;) {
    if (count == maxBlocks) return STATUS_OUTPUT_TOO_SMALL;
    const status = hrlMetadataParse(logPtr + <usize>location, metadataSize, <f64>location, diskSizeBytes, recordsPtr, scratchPtr);
    if (status != STATUS_OK) return status;
    store<f64>(blocksPtr + count * HRL_BLOCK_TABLE_BYTES, <f64>location);
    count++;
    const previous = <u64>load<f64>(scratchPtr);
    if (previous == 0) break;
    location = previous;
  }
  // Pop the stack: reverse into forward order.
  for (let i: u32 = 0, j = count - 1; i < j; i++, j--) {
    const a = load<f64>(blocksPtr + i * HRL_BLOCK_TABLE_BYTES);
    store<f64>(blocksPtr + i * HRL_BLOCK_TABLE_BYTES, load<f64>(blocksPtr + j * HRL_BLOCK_TABLE_BYTES));
    store<f64>(blocksPtr + j * HRL_BLOCK_TABLE_BYTES, a);
  }
  // Pass 2: forwards, entry records in write order.
  let entries: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const tablePtr = blocksPtr + i * HRL_BLOCK_TABLE_BYTES;
    const blockLocation = load<f64>(tablePtr);
    const capacity = (metadataSize - 32) / 32;
    if (entries + capacity > maxRecords) return STATUS_OUTPUT_TOO_SMALL;
    const recordPtr = recordsPtr + <usize>entries * HRL_ENTRY_RECORD_BYTES;
    const status = hrlMetadataParse(logPtr + <usize>blockLocation, metadataSize, blockLocation, diskSizeBytes, recordPtr, scratchPtr);
    if (status != STATUS_OK) return status;
    const blockEntries = load<u32>(scratchPtr + 24);
    store<u32>(tablePtr + 8, entries);
    store<u32>(tablePtr + 12, blockEntries);
    entries += blockEntries;
  }
  store<u32>(resultPtr, count);
  store<u32>(resultPtr + 4, entries);
  return STATUS_OK;
}

