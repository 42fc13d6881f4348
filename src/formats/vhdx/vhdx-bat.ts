// The VHDX block allocation table in memory ([MS-VHDX] 2.5): read once at open, validated by
// the WASM kernel, then kept as a small JS copy for lookups (payload block → state and file
// offset; chunk → sector bitmap offset).

import { VhdsyncError } from "../../errors.js";
import { allocWasm } from "../../wasm/driver.js";
import { checkStatus } from "../../wasm/status.js";
import type { VhdxFileReader } from "./vhdx-file-reader.js";
import { MIB, type VhdxHeader, type VhdxMetadata, type VhdxRegions } from "./vhdx-structures.js";

/** Payload block states ([MS-VHDX] 2.5.1.1). */
export const BlockState = {
  NOT_PRESENT: 0,
  UNDEFINED: 1,
  ZERO: 2,
  UNMAPPED: 3,
  FULLY_PRESENT: 6,
  PARTIALLY_PRESENT: 7,
} as const;

/** Largest BAT vhdsync loads (a 64 TiB disk with 32 MiB blocks needs 16 MiB). */
export const MAX_BAT_BYTES = 64 * 1024 * 1024;
/** assembly/status.ts STATUS_VHDX_BAT_TOO_SMALL. */
const STATUS_BAT_TOO_SMALL = 215;

/** A validated BAT. */
export class VhdxBat {
  private constructor(
    private readonly entries: DataView,
    private readonly chunkRatio: number,
    /** Payload blocks in state FULLY_PRESENT or PARTIALLY_PRESENT. */
    readonly presentBlocks: number,
  ) {}

  /**
   * Reads and validates the BAT of a VHDX. No present block may overlap the BAT, metadata or
   * log region of `regions` and `header` ([MS-VHDX] 2.5.1): one that did would be read as
   * disk data. Without `header`, the regions are not checked (`check` lists overlaps itself).
   * @throws VHDSYNC_CORRUPT (too small, bad state or offset, a block over a region),
   * VHDSYNC_TRUNCATED (entry past the end of file), VHDSYNC_UNSUPPORTED (BAT above
   * MAX_BAT_BYTES), I/O codes.
   */
  static async load(reader: VhdxFileReader, regions: VhdxRegions, metadata: VhdxMetadata, header: Pick<VhdxHeader, "logOffsetBytes" | "logLengthBytes"> | undefined): Promise<VhdxBat> {
    const path = reader.path;
    const bytes = metadata.batEntries * 8;
    if (bytes > regions.batLengthBytes) {
      checkStatus(STATUS_BAT_TOO_SMALL, `${path}: VHDX BAT`, { path, batEntries: metadata.batEntries, batLengthBytes: regions.batLengthBytes });
    }
    if (bytes > MAX_BAT_BYTES) throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path}: VHDX BAT of ${bytes} bytes is too large`, { path });
    // Without a header (check, which lists the overlaps itself) no region is reserved.
    const reserved = header
      ? [
          [regions.batOffsetBytes, regions.batLengthBytes],
          [regions.metadataOffsetBytes, regions.metadataLengthBytes],
          [header.logOffsetBytes, header.logLengthBytes],
        ]
      : [];
    const { wasm, address } = allocWasm(Math.max(bytes, 8) + 24 + reserved.length * 16, 8);
    try {
      const view = wasm.view(address, bytes);
      await reader.read(view, regions.batOffsetBytes);
      const out = address + Math.max(bytes, 8);
      const regionsAddress = out + 24;
      const regionView = wasm.dataView(regionsAddress, reserved.length * 16);
      reserved.forEach(([offset, length], i) => {
        regionView.setBigUint64(i * 16, BigInt(offset), true);
        regionView.setBigUint64(i * 16 + 8, BigInt(length), true);
      });
      const status = wasm.exports.vhdxValidateBat(
        address, BigInt(metadata.batEntries), BigInt(metadata.virtualSizeBytes), metadata.blockSizeBytes, metadata.chunkRatio,
        metadata.hasParent ? 1 : 0, BigInt(reader.effectiveSizeBytes), out, regionsAddress, reserved.length,
      );
      const result = wasm.dataView(out, 24);
      checkStatus(status, `${path}: VHDX BAT`, { path, batIndex: Number(result.getBigUint64(8, true)), entry: `0x${result.getBigUint64(16, true).toString(16)}` });
      const copy = view.slice();
      return new VhdxBat(new DataView(copy.buffer), metadata.chunkRatio, Number(result.getBigUint64(0, true)));
    } finally {
      wasm.release(address);
    }
  }

  private entry(index: number): { state: number; fileOffsetBytes: number } {
    if (index * 8 >= this.entries.byteLength) return { state: BlockState.NOT_PRESENT, fileOffsetBytes: 0 };
    const low = this.entries.getUint32(index * 8, true);
    const high = this.entries.getUint32(index * 8 + 4, true);
    return { state: low & 7, fileOffsetBytes: ((low >>> 20) + high * 4096) * MIB };
  }

  /**
   * Calls `visit` for every present payload block (FULLY/PARTIALLY_PRESENT; `bitmap` false)
   * and every present sector bitmap block (`bitmap` true, `block` the first payload block of
   * its chunk), by payload block, a chunk's bitmap right after its first payload block.
   */
  forEachPresent(payloadBlocks: number, visit: (block: number, bitmap: boolean, fileOffsetBytes: number) => void): void {
    for (let block = 0; block < payloadBlocks; block++) {
      const { state, fileOffsetBytes } = this.payload(block);
      if (state === BlockState.FULLY_PRESENT || state === BlockState.PARTIALLY_PRESENT) visit(block, false, fileOffsetBytes);
      if (block % this.chunkRatio === 0) {
        const bitmap = this.sectorBitmapOffset(block);
        if (bitmap) visit(block, true, bitmap);
      }
    }
  }

  /** State and file offset of payload block `block`. */
  payload(block: number): { state: number; fileOffsetBytes: number } {
    return this.entry(block + Math.floor(block / this.chunkRatio));
  }

  /** File offset of the sector bitmap block of the chunk holding payload block `block` (0 if absent). */
  sectorBitmapOffset(block: number): number {
    const chunk = Math.floor(block / this.chunkRatio);
    const { state, fileOffsetBytes } = this.entry(chunk * (this.chunkRatio + 1) + this.chunkRatio);
    return state === BlockState.FULLY_PRESENT ? fileOffsetBytes : 0;
  }
}
