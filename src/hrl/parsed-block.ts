// A metadata block parsed by hrlMetadataParse, and the WASM scratch the parse needs (the
// block, its entry records, its info), shared by the backward traversal and the salvage scan.

import { getWasm } from "../wasm/driver.js";
import { BLOCK_INFO } from "./layout.js";

/** One validated metadata block: its location (bytes) and its entry records (ENTRY_RECORD layout). */
export interface ParsedBlock {
  location: number;
  entryCount: number;
  records: Uint8Array;
}

/** A WASM scratch area. */
export interface ScratchArea {
  address: number;
  view: Uint8Array;
  dataView: DataView;
}

/**
 * Runs `body` with scratch for one metadata block of `metadataSizeBytes`, its entry records
 * (same size suffices: a record per 32-byte entry) and the block info; frees them afterwards.
 */
export async function collectBlocks(
  metadataSizeBytes: number,
  body: (block: ScratchArea, records: ScratchArea, info: ScratchArea) => Promise<void>,
): Promise<void> {
  const wasm = getWasm();
  const total = 2 * metadataSizeBytes + BLOCK_INFO.bytes;
  const address = wasm.alloc(total);
  const area = (offset: number, length: number): ScratchArea => ({
    address: address + offset,
    view: wasm.view(address + offset, length),
    dataView: wasm.dataView(address + offset, length),
  });
  try {
    await body(area(0, metadataSizeBytes), area(metadataSizeBytes, metadataSizeBytes), area(2 * metadataSizeBytes, BLOCK_INFO.bytes));
  } finally {
    wasm.release(address);
  }
}
