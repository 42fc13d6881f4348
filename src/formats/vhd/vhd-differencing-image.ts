// Differencing VHD (VHD spec 1.0, "Implementing a Differencing Hard Disk"): a dynamic layout
// whose sector bitmaps say which sectors this layer holds (set) and which come from the
// parent (clear). Reads split each block into runs of equal bits (one read per run); writes
// set bits; zeros are written (not skipped) wherever the parent chain holds data.

import { VhdsyncError } from "../../errors.js";
import type { Extent } from "../disk-image.js";
import { unionExtents } from "../extents.js";
import type { VhdImage } from "./vhd-image.js";
import { VhdDynamicImage, type VhdDynamicState } from "./vhd-dynamic-image.js";
import type { DecodedLocator } from "./vhd-parent.js";
import { VHD_EPOCH_SECONDS, formatUuid, type VhdFooter } from "./vhd-structures.js";
import { checkRange, readSmallHere, settleAll } from "../../io/file.js";
import { appendParentPieces, appendPiece, filePiecesOf, type FilePiece, type GatherableImage, type PieceSource } from "../data-location.js";

/** What a differencing layer adds to the dynamic state. */
export interface VhdDifferencingState extends VhdDynamicState {
  parent: VhdImage;
  locators: DecodedLocator[];
  /** Whether the header's parent time stamp matches the parent (footer time stamp or file mtime). */
  parentTimestampMatches: boolean;
}

/** A differencing VHD (with its opened parent chain) as a DiskImage. */
export class VhdDifferencingImage extends VhdDynamicImage implements GatherableImage {
  readonly parent: VhdImage;
  readonly locators: DecodedLocator[];
  readonly parentTimestampMatches: boolean;

  constructor(state: VhdDifferencingState) {
    super(state);
    this.parent = state.parent;
    this.locators = state.locators;
    this.parentTimestampMatches = state.parentTimestampMatches;
  }

  /** Reads from the parent; beyond the parent's size reads zeros. */
  private async readParent(target: Uint8Array, offset: number): Promise<void> {
    const inParent = Math.max(0, Math.min(target.length, this.parent.virtualSize - offset));
    if (inParent > 0) await this.parent.read(target.subarray(0, inParent), offset);
    target.fill(0, inParent);
  }

  protected override get bitmapsMatterForReads(): boolean {
    return true;
  }

  protected override async readAbsent(target: Uint8Array, offset: number): Promise<void> {
    await this.readParent(target, offset);
  }

  protected override async readPresent(block: number, inBlockBytes: number, target: Uint8Array, offset: number): Promise<void> {
    const bitmap = await this.loadBitmap(block);
    const endBytes = inBlockBytes + target.length;
    // The runs' reads are independent (disjoint parts of `target`): all in flight at once.
    const reads: Promise<void>[] = [];
    for (const run of this.bitmapOps.runs(bitmap, Math.floor(inBlockBytes / 512), Math.ceil(endBytes / 512))) {
      const start = Math.max(run.firstBit * 512, inBlockBytes);
      const end = Math.min((run.firstBit + run.bits) * 512, endBytes);
      const part = target.subarray(start - inBlockBytes, end - inBlockBytes);
      reads.push(run.set ? readSmallHere(this.handle, part, this.dataOffsetBytes(block, start), this.path) : this.readParent(part, offset + (start - inBlockBytes)));
    }
    await settleAll(reads);
  }

  /** Where the disk's bytes lie, when the parent chain can say where its own lie. */
  pieceSource(): PieceSource | undefined {
    const parentPieces = filePiecesOf(this.parent);
    return parentPieces && ((offset, length) => this.filePieces(offset, length, parentPieces));
  }

  /**
   * Where [offset, offset+length) lies: this file's sectors where their block's bitmap has the
   * bit set, the parent chain's pieces elsewhere (zeros past the parent's end), adjacent
   * pieces merged. What read() reads, as places in the files (the native scanners gather it).
   */
  private async filePieces(offset: number, length: number, parentPieces: PieceSource): Promise<FilePiece[]> {
    this.checkOpen();
    checkRange(offset, length, this.virtualSize, this.path);
    const pieces: FilePiece[] = [];
    const fromParent = (at: number, bytes: number) => appendParentPieces(pieces, parentPieces, this.parent.virtualSize, at, bytes);
    await this.forEachBlockPart(offset, length, async (block, inBlock, done, part) => {
      const at = offset + done;
      if (!this.table.isAllocated(block)) return fromParent(at, part);
      const bitmap = await this.loadBitmap(block);
      for (const run of this.bitmapOps.runs(bitmap, Math.floor(inBlock / 512), Math.ceil((inBlock + part) / 512))) {
        const start = Math.max(run.firstBit * 512, inBlock);
        const end = Math.min((run.firstBit + run.bits) * 512, inBlock + part);
        if (run.set) appendPiece(pieces, { offset: at + start - inBlock, length: end - start, fd: this.handle.fd, fileOffset: this.dataOffsetBytes(block, start) });
        else await fromParent(at + start - inBlock, end - start);
      }
    });
    return pieces;
  }

  /** Its own size only (nothing to do); any other is refused (checkResize). */
  override async resize(sizeBytes: number): Promise<void> {
    this.checkWritable();
    this.checkResize(sizeBytes);
  }

  /**
   * Refuses any size but its own: a differencing disk's size follows its parent's (Hyper-V,
   * too, offers only a merge for one). Snapshot operations and every reader of a chain expect
   * the layers to agree.
   * @throws VHDSYNC_UNSUPPORTED
   */
  override checkResize(sizeBytes: number): VhdFooter {
    if (sizeBytes === this.virtualSize) return this.footer;
    throw new VhdsyncError(
      "VHDSYNC_UNSUPPORTED",
      `${this.path}: cannot resize a differencing disk: its size follows its parent's (${this.parent.path}); merge it into its parent (vhdsync snapshot merge) or convert it, then resize`,
      { path: this.path, parent: this.parent.path },
    );
  }

  protected override newBlockBitmap(firstBit: number, bits: number): Uint8Array {
    const bitmap = new Uint8Array(this.bitmapBytes);
    this.bitmapOps.setRange(bitmap, firstBit, bits);
    return bitmap;
  }

  protected override async absentIsZero(offset: number, length: number): Promise<boolean> {
    return (await this.parentExtents(offset, length)).length === 0;
  }

  private async parentExtents(offset: number, length: number): Promise<Extent[]> {
    const inParent = Math.max(0, Math.min(length, this.parent.virtualSize - offset));
    return inParent > 0 ? this.parent.allocationMap(offset, inParent, "chain") : [];
  }

  /** Sectors whose bits are set in allocated blocks. */
  protected override async layerExtents(offset: number, length: number): Promise<Extent[]> {
    const extents: Extent[] = [];
    await this.forEachBlockPart(offset, length, async (block, inBlock, done, part) => {
      if (!this.table.isAllocated(block)) return;
      const blockStart = offset + done - inBlock;
      const bitmap = await this.loadBitmap(block);
      for (const run of this.bitmapOps.runs(bitmap, Math.floor(inBlock / 512), Math.ceil((inBlock + part) / 512))) {
        if (!run.set) continue;
        const start = Math.max(blockStart + run.firstBit * 512, offset + done);
        const end = Math.min(blockStart + (run.firstBit + run.bits) * 512, offset + done + part);
        const last = extents[extents.length - 1];
        if (last && last.offset + last.length === start) last.length += end - start;
        else extents.push({ offset: start, length: end - start });
      }
    });
    return extents;
  }

  protected override async chainExtents(layer: Extent[], offset: number, length: number): Promise<Extent[]> {
    return unionExtents(layer, await this.parentExtents(offset, length));
  }

  override chain() {
    return [...super.chain(), ...this.parent.chain()];
  }

  protected override extraInfo(): Record<string, unknown> {
    return {
      ...super.extraInfo(),
      parent: {
        path: this.parent.path,
        uniqueId: formatUuid(this.header.parentUniqueId),
        timestamp: new Date((this.header.parentTimestamp + VHD_EPOCH_SECONDS) * 1000).toISOString(),
        timestampMatches: this.parentTimestampMatches,
        name: this.header.parentName,
        locators: this.locators,
      },
    };
  }

  protected override async closeParents(): Promise<void> {
    await super.closeParents();
    await this.parent.close();
  }
}
