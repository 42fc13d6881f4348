// The VHD Block Allocation Table held in memory (VHD spec 1.0, "Block Allocation Table and
// Data Blocks"): one big-endian sector offset per block, 0xFFFFFFFF = unallocated. It is
// small (4 bytes per block), so it is read once at open, validated by the WASM scan
// (entries inside the file, no overlaps with each other or with metadata) and updated in
// place as blocks are allocated.

import { wasmFor } from "../../wasm/driver.js";
import { statusError } from "../../wasm/status.js";
import type { VhdsyncError } from "../../errors.js";

export const UNALLOCATED = 0xffffffff;
const PROBLEM_BYTES = 8;
const RESULT_BYTES = 16;

/** A [start, end) byte range of the file holding metadata. */
export interface FileRange {
  startBytes: number;
  endBytes: number;
}

/** What the BAT scan found. */
export interface BatScanResult {
  allocatedBlocks: number;
  /** End of the last valid block in the file (0 if none). */
  blocksEndBytes: number;
  /** The first `maxProblems` problems: the BAT entry and the mapped error. */
  problems: { index: number; error: VhdsyncError }[];
  /** Problems found, listed or not. */
  problemsFound: number;
}

/** Geometry the scan needs. */
export interface BatLayout {
  entries: number;
  blockSizeBytes: number;
  bitmapBytes: number;
  virtualSizeBytes: number;
  /** Where the footer starts: blocks must end at or before it. */
  dataEndBytes: number;
  metadata: FileRange[];
}

/**
 * Scans raw big-endian BAT bytes in WASM (sorting allocated entries to find overlaps).
 * Lists up to `maxProblems` problems and counts all; errors carry VHDSYNC_TRUNCATED /
 * VHDSYNC_CORRUPT codes.
 */
export function scanBat(raw: Uint8Array, layout: BatLayout, details: Record<string, unknown>, maxProblems = 1000): BatScanResult {
  const metaBytes = Math.max(16, layout.metadata.length * 16);
  const scratchBytes = Math.max(8, layout.entries * 8);
  const total = raw.length + 8 + metaBytes + scratchBytes + maxProblems * PROBLEM_BYTES + RESULT_BYTES;
  const wasm = wasmFor(total);
  return wasm.withScratch(total, (address, bytes) => {
    bytes.set(raw);
    const metaAddress = address + raw.length + (8 - (raw.length % 8)) % 8;
    const view = wasm.dataView(metaAddress, metaBytes);
    layout.metadata.forEach((range, i) => {
      view.setBigUint64(i * 16, BigInt(range.startBytes), true);
      view.setBigUint64(i * 16 + 8, BigInt(range.endBytes), true);
    });
    const scratchAddress = metaAddress + metaBytes;
    const problemsAddress = scratchAddress + scratchBytes;
    const resultAddress = problemsAddress + maxProblems * PROBLEM_BYTES;
    wasm.exports.vhdBatScan(
      address,
      layout.entries,
      layout.blockSizeBytes,
      layout.bitmapBytes,
      layout.virtualSizeBytes,
      layout.dataEndBytes,
      metaAddress,
      layout.metadata.length,
      scratchAddress,
      problemsAddress,
      maxProblems,
      resultAddress,
    );
    const result = wasm.dataView(resultAddress, RESULT_BYTES);
    const problemView = wasm.dataView(problemsAddress, maxProblems * PROBLEM_BYTES);
    const problemsFound = result.getUint32(4, true);
    const count = Math.min(problemsFound, maxProblems);
    const problems = [];
    for (let i = 0; i < count; i++) {
      const index = problemView.getUint32(i * PROBLEM_BYTES, true);
      const status = problemView.getInt32(i * PROBLEM_BYTES + 4, true);
      problems.push({ index, error: statusError(status, `VHD BAT entry ${index}`, { ...details, batEntry: index }) });
    }
    return { allocatedBlocks: result.getUint32(0, true), blocksEndBytes: Number(result.getBigUint64(8, true)), problems, problemsFound };
  });
}

/** The BAT cached in memory: decoded entries plus the raw sectors to write back. */
export class BlockTable {
  readonly sectors: Uint32Array;

  constructor(
    /** Raw BAT bytes as on disk (whole sectors). */
    readonly raw: Uint8Array,
    readonly entries: number,
  ) {
    this.sectors = new Uint32Array(entries);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < entries; i++) this.sectors[i] = view.getUint32(i * 4, false);
  }

  isAllocated(block: number): boolean {
    return this.sectors[block] !== UNALLOCATED;
  }

  /** File offset of a block's bitmap. */
  blockOffsetBytes(block: number): number {
    return this.sectors[block] * 512;
  }

  /** Number of allocated entries. */
  allocatedCount(): number {
    let count = 0;
    for (let i = 0; i < this.entries; i++) if (this.sectors[i] !== UNALLOCATED) count++;
    return count;
  }

  /** Sets an entry; returns the 512-byte BAT sector holding it and that sector's index. */
  set(block: number, sector: number): { sectorIndex: number; bytes: Uint8Array } {
    this.sectors[block] = sector;
    new DataView(this.raw.buffer, this.raw.byteOffset, this.raw.byteLength).setUint32(block * 4, sector, false);
    const sectorIndex = Math.floor((block * 4) / 512);
    return { sectorIndex, bytes: this.raw.subarray(sectorIndex * 512, sectorIndex * 512 + 512) };
  }
}
