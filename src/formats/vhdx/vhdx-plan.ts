// Maps a virtual byte range of a VHDX to segments: file runs (coalesced when both virtually
// and physically contiguous), zero runs and parent runs. Payload block states per
// [MS-VHDX] 2.5.1.1; PARTIALLY_PRESENT blocks consult the chunk's sector bitmap (2.4).

import { BlockState, type VhdxBat } from "./vhdx-bat.js";
import type { VhdxFileReader } from "./vhdx-file-reader.js";
import { MIB, type VhdxMetadata } from "./vhdx-structures.js";

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

/**
 * Sector bitmap blocks ([MS-VHDX] 2.4), read whole (1 MiB: the bits of one chunk, 4 GiB of a
 * 512-byte-sector disk) when a partially present block is first planned, and kept: the last
 * KEEP_BITMAPS used. A scan plans every block of a chunk, often twice (its allocation map,
 * then where its bytes lie), and would otherwise read a few bytes of the same block each time.
 */
export class SectorBitmaps {
  private readonly kept = new Map<number, Promise<Uint8Array>>();

  constructor(private readonly reader: VhdxFileReader, private readonly bat: VhdxBat) {}

  /** The sector bitmap block of the chunk holding payload block `block`. @throws I/O codes */
  of(block: number): Promise<Uint8Array> {
    const fileOffset = this.bat.sectorBitmapOffset(block);
    const kept = this.kept.get(fileOffset);
    this.kept.delete(fileOffset);
    const bitmap = kept ?? this.read(fileOffset);
    this.kept.set(fileOffset, bitmap); // most recently used last
    if (this.kept.size > KEEP_BITMAPS) this.kept.delete(this.kept.keys().next().value!);
    // A failed read is not kept (unless another read of the block has replaced it since).
    if (!kept) bitmap.catch(() => this.kept.get(fileOffset) === bitmap && this.kept.delete(fileOffset));
    return bitmap;
  }

  private async read(fileOffset: number): Promise<Uint8Array> {
    const bitmap = new Uint8Array(MIB);
    await this.reader.read(bitmap, fileOffset);
    return bitmap;
  }
}

/** Sector bitmap blocks kept by SectorBitmaps (1 MiB each). */
const KEEP_BITMAPS = 4;

/** The first sector from `sector` (before `endSector`) whose bit differs from `bit`, else `endSector`. */
function runEnd(bitmap: Uint8Array, sector: number, endSector: number, bit: number): number {
  const whole = bit ? 0xff : 0;
  let at = sector;
  while (at < endSector) {
    if ((at & 7) === 0 && at + 8 <= endSector && bitmap[at >> 3] === whole) at += 8; // a whole byte of the same bit
    else if (((bitmap[at >> 3] >> (at & 7)) & 1) === bit) at++;
    else break;
  }
  return at;
}

/** Splits [start, end) inside a partially present block by its sector bitmap bits. */
async function planPartial(
  segments: Segment[], bitmaps: SectorBitmaps, metadata: VhdxMetadata, block: number,
  start: number, end: number, blockFileOffset: number, parentSize: number,
): Promise<void> {
  const sectorBytes = metadata.logicalSectorSize;
  const blockStart = block * metadata.blockSizeBytes;
  const chunkBytes = metadata.chunkRatio * metadata.blockSizeBytes;
  const chunkStart = Math.floor(blockStart / chunkBytes) * chunkBytes;
  const firstSector = Math.floor((start - chunkStart) / sectorBytes);
  const endSector = Math.ceil((end - chunkStart) / sectorBytes);
  const bitmap = await bitmaps.of(block);
  for (let sector = firstSector; sector < endSector; ) {
    const bit = (bitmap[sector >> 3] >> (sector & 7)) & 1;
    const stop = runEnd(bitmap, sector, endSector, bit);
    const runStart = Math.max(start, chunkStart + sector * sectorBytes);
    const runStop = Math.min(end, chunkStart + stop * sectorBytes);
    if (bit) push(segments, "file", runStart, runStop - runStart, blockFileOffset + (runStart - blockStart));
    else pushParent(segments, runStart, runStop, parentSize);
    sector = stop;
  }
}

/**
 * Plans [offset, offset+length) of the virtual disk. `parentSize` is the parent's virtual
 * size (0 when there is no parent). @throws I/O codes while reading sector bitmaps
 */
export async function planRange(
  bitmaps: SectorBitmaps, bat: VhdxBat, metadata: VhdxMetadata, offset: number, length: number, parentSize: number,
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
      await planPartial(segments, bitmaps, metadata, block, start, stop, fileOffsetBytes, parentSize);
    } else if (state === BlockState.NOT_PRESENT && metadata.hasParent) {
      pushParent(segments, start, stop, parentSize);
    } else {
      // UNDEFINED, ZERO, UNMAPPED (3, and 5 from pre-1.0 drafts), NOT_PRESENT without a parent: zeros.
      push(segments, "zero", start, stop - start);
    }
  }
  return segments;
}
