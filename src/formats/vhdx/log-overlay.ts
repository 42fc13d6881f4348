// LogOverlay: the result of replaying a VHDX log in memory ([MS-VHDX] 2.3.3) on a read-only
// open. Instead of writing the log's updates to the file, reads of file bytes pass through
// this overlay: zero descriptors as ranges, data descriptors as 4 KiB sectors (last write wins).

import type { Extent } from "../disk-image.js";

const SECTOR_BYTES = 4096;

/** File-level updates of the active log sequence, applied to every read of file bytes. */
export class LogOverlay {
  /** 4 KiB file sector index → the sector's new content. */
  readonly sectors = new Map<number, Uint8Array>();
  /** Zeroed file ranges (applied before `sectors`). */
  readonly zeroRanges: Extent[] = [];
  /** End of the last byte any descriptor touches. */
  highestOffsetBytes = 0;

  /** Records a data descriptor's sector (a copy of `data`, 4096 bytes). */
  writeSector(fileOffsetBytes: number, data: Uint8Array): void {
    this.sectors.set(fileOffsetBytes / SECTOR_BYTES, data.slice(0, SECTOR_BYTES));
    this.highestOffsetBytes = Math.max(this.highestOffsetBytes, fileOffsetBytes + SECTOR_BYTES);
  }

  /** Records a zero descriptor; earlier data sectors in the range are dropped. */
  zero(fileOffsetBytes: number, lengthBytes: number): void {
    if (lengthBytes === 0) return;
    const first = fileOffsetBytes / SECTOR_BYTES;
    const end = first + lengthBytes / SECTOR_BYTES;
    if (end - first < this.sectors.size) {
      for (let sector = first; sector < end; sector++) this.sectors.delete(sector);
    } else {
      for (const sector of [...this.sectors.keys()]) if (sector >= first && sector < end) this.sectors.delete(sector);
    }
    this.zeroRanges.push({ offset: fileOffsetBytes, length: lengthBytes });
    this.highestOffsetBytes = Math.max(this.highestOffsetBytes, fileOffsetBytes + lengthBytes);
  }

  /** True if replay changed nothing. */
  get isEmpty(): boolean {
    return this.sectors.size === 0 && this.zeroRanges.length === 0;
  }

  /** Applies the overlay to `buffer`, which holds file bytes starting at `fileOffsetBytes`. */
  apply(buffer: Uint8Array, fileOffsetBytes: number): void {
    if (this.isEmpty) return;
    const end = fileOffsetBytes + buffer.length;
    for (const range of this.zeroRanges) {
      const start = Math.max(range.offset, fileOffsetBytes);
      const stop = Math.min(range.offset + range.length, end);
      if (start < stop) buffer.fill(0, start - fileOffsetBytes, stop - fileOffsetBytes);
    }
    if (this.sectors.size === 0) return;
    const firstSector = Math.floor(fileOffsetBytes / SECTOR_BYTES);
    const lastSector = Math.ceil(end / SECTOR_BYTES);
    const apply = (sector: number, data: Uint8Array) => {
      const sectorStart = sector * SECTOR_BYTES;
      const start = Math.max(sectorStart, fileOffsetBytes);
      const stop = Math.min(sectorStart + SECTOR_BYTES, end);
      buffer.set(data.subarray(start - sectorStart, stop - sectorStart), start - fileOffsetBytes);
    };
    if (lastSector - firstSector <= this.sectors.size) {
      for (let sector = firstSector; sector < lastSector; sector++) {
        const data = this.sectors.get(sector);
        if (data) apply(sector, data);
      }
    } else {
      for (const [sector, data] of this.sectors) if (sector >= firstSector && sector < lastSector) apply(sector, data);
    }
  }
}
