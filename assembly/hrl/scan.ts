// Salvage scan for logs not closed cleanly ([MS-HRL] 2.1: EOLLocation 0 leaves no entry
// point for the 2.5 traversal). Walks forward instead: the next metadata block is the first
// offset whose bytes form a valid block linked to the previous one, with entries that fill
// the gap since it exactly. The link value depends on the offset, so data that merely looks
// like metadata does not match by accident.

import { HRL_HEADER_BYTES } from "./header";
import { hrlMetadataParse } from "./metadata";
import { STATUS_OK } from "../status";

/** Largest byte sum of a metadata header without its checksum field (28 bytes × 255). */
const MAX_HEADER_SUM: u32 = 28 * 255;

/**
 * Looks for the next metadata block in the buffer [bufferPtr, bufferPtr + lengthBytes) that
 * starts at log offset `bufferPositionBytes`. `previousLocationBytes` is the last block found
 * (0: none yet, the block must be a first block). Returns the block's offset within the buffer
 * (its records and info written as by hrlMetadataParse) or -1 if no block starts in the
 * buffer at an offset where a whole block fits.
 */
export function hrlScanMetadata(
  bufferPtr: usize,
  lengthBytes: u32,
  bufferPositionBytes: f64,
  previousLocationBytes: f64,
  metadataSize: u32,
  recordsPtr: usize,
  infoPtr: usize,
): i32 {
  if (lengthBytes < metadataSize) return -1;
  const base = <u64>bufferPositionBytes;
  const previous = <u64>previousLocationBytes;
  const last = lengthBytes - metadataSize;
  for (let i: u32 = 0; i <= last; i++) {
    const ptr = bufferPtr + i;
    const location = base + <u64>i;
    if (location < <u64>HRL_HEADER_BYTES) continue;
    const expectedLink: u64 = previous == 0 ? 0 : location - previous;
    if (load<u64>(ptr) != expectedLink) continue;
    if (~load<u32>(ptr + 12) > MAX_HEADER_SUM) continue;
    if (hrlMetadataParse(ptr, metadataSize, <f64>location, -1, recordsPtr, infoPtr) == STATUS_OK) return <i32>i;
  }
  return -1;
}
