// Maps a virtual byte range of a VHDX to segments: file runs (coalesced when both virtually
// and physically contiguous), zero runs and parent runs. Payload block states per
// [MS-VHDX] 2.5.1.1; PARTIALLY_PRESENT blocks consult the chunk's sector bitmap (2.4).

import { BlockState, type VhdxBat } from "./vhdx-bat.js";
import type { VhdxFileReader } from "./vhdx-file-reader.js";
import type { VhdxMetadata } from "./vhdx-structures.js";

/** A piece of a virtual range and where its bytes come from. */
export interface Segment {
  kind: "file" | "zero" | "parent";
  virtualOffset: number;
  length: number;
  /** File offset of the first byte (kind "file" only). */
  fileOffset: number;
}

function push(segments: Segment[], kind: Segment["kind"], virtualOffset: number, length: number, fileOffset = 0): void {
  if (length <= 0) return;
  const last = segments[segments.length - 1];
  if (last && last.kind === kind && last.virtualOffset + last.length === virtualOffset && (kind !== "file" || last.fileOffset + last.length === fileOffset)) {
    last.length += length;
    return;
  }
  segments.push({ kind, virtualOffset, length, fileOffset });
}

/** Adds a parent run, split where the parent (of `parentSize` bytes) ends: beyond it reads zeros. */
function pushParent(segments: Segment[], start: number, end: number, parentSize: number): void {
  push(segments, "parent", start, Math.min(end, parentSize) - start);
  push(segments, "zero", Math.max(start, parentSize), end - Math.max(start, parentSize));
}

/** Splits [start, end) inside a partially present block by its sector bitmap bits. */
async function planPartial(
  segments: Segment[], reader: VhdxFileReader, bat: VhdxBat, metadata: VhdxMetadata, block: number,
  start: number, end: number, blockFileOffset: number, parentSize: number,
): Promise<void> {
  const sectorBytes = metadata.logicalSectorSize;
  const blockStart = block * metadata.blockSizeBytes;
  const chunkBytes = metadata.chunkRatio * metadata.blockSizeBytes;
  const chunkStart = Math.floor(blockStart / chunkBytes) * chunkBytes;
  const firstSector = Math.floor((start - chunkStart) / sectorBytes);
  const endSector = Math.ceil((end - chunkStart) / sectorBytes);
  const firstByte = Math.floor(firstSector / 8);
  const bitmap = new Uint8Array(Math.ceil(endSector / 8) - firstByte);
  await reader.read(bitmap, bat.sectorBitmapOffset(block) + firstByte);
  for (let sector = firstSector; sector < endSector; ) {
    const bit = (bitmap[(sector >> 3) - firstByte] >> (sector & 7)) & 1;
    let runEnd = sector + 1;
    while (runEnd < endSector && ((bitmap[(runEnd >> 3) - firstByte] >> (runEnd & 7)) & 1) === bit) runEnd++;
    const runStart = Math.max(start, chunkStart + sector * sectorBytes);
    const runStop = Math.min(end, chunkStart + runEnd * sectorBytes);
    if (bit) push(segments, "file", runStart, runStop - runStart, blockFileOffset + (runStart - blockStart));
    else pushParent(segments, runStart, runStop, parentSize);
    sector = runEnd;
  }
}

/**
 * Plans [offset, offset+length) of the virtual disk. `parentSize` is the parent's virtual
 * size (0 when there is no parent). @throws I/O codes while reading sector bitmaps
 */
export async function planRange(
  reader: VhdxFileReader, bat: VhdxBat, metadata: VhdxMetadata, offset: number, length: number, parentSize: number,
): Promise<Segment[]> {
  const segments: Segment[] = [];
  const blockBytes = metadata.blockSizeBytes;
  const end = offset + length;
  for (let block = Math.floor(offset / blockBytes); block * blockBytes < end; block++) {
    const blockStart = block * blockBytes;
    const start = Math.max(offset, blockStart);
    const stop = Math.min(end, blockStart + blockBytes);
    const { state, fileOffsetBytes } = bat.payload(block);
    if (state === BlockState.FULLY_PRESENT) {
      push(segments, "file", start, stop - start, fileOffsetBytes + (start - blockStart));
    } else if (state === BlockState.PARTIALLY_PRESENT) {
      await planPartial(segments, reader, bat, metadata, block, start, stop, fileOffsetBytes, parentSize);
    } else if (state === BlockState.NOT_PRESENT && metadata.hasParent) {
      pushParent(segments, start, stop, parentSize);
    } else {
      // UNDEFINED, ZERO, UNMAPPED (3, and 5 from pre-1.0 drafts), NOT_PRESENT without a parent: zeros.
      push(segments, "zero", start, stop - start);
    }
  }
  return segments;
}
