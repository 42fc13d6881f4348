// Dynamic VHD (VHD spec 1.0, "Dynamic Hard Disk Image", "Implementing a Dynamic Disk"):
// footer copy, dynamic header, BAT, then blocks (sector bitmap + data) in any order. The BAT
// is cached; reads go straight into the caller's buffer, one read per block touched;
// unallocated blocks read as zeros. Writes allocate new blocks at the end of the file (data
// 4 KiB-aligned, as Windows lays it out), move the footer there, then update the BAT.
// The differencing subclass changes what "absent" sectors mean (vhd-differencing-image.ts).

import { VhdsyncError, toVhdsyncError } from "../../errors.js";
import { SMALL_IO_BYTES, ZERO_CHUNK, checkRange, isZeroBytes, readExactly, readExactlySync, settleAll, writeExactly, writeSmallHere, writeZeroBytes } from "../../io/file.js";
import type { AllocationScope, Extent } from "../disk-image.js";
import type { DataLocator, DataPiece, LocatableImage } from "../data-location.js";
import { BitmapOps } from "./vhd-bitmap.js";
import { BlockTable, UNALLOCATED, type FileRange } from "./vhd-bat.js";
import { datasyncHandle, zeroFileBytes } from "../flat-file.js";
import { VhdImage, type VhdOpenState } from "./vhd-image.js";
import { alignUp, readvExactly, writevExactly } from "./vhd-io.js";
import { VHD_MAX_DYNAMIC_BYTES, VHD_MAX_TABLE_ENTRIES, buildFooter, buildHeader, type VhdFooter, type VhdHeader } from "./vhd-structures.js";

/** Data of newly allocated blocks starts on this boundary. */
const DATA_ALIGN_BYTES = 4096;
/** Largest hole between two blocks' data that a coalesced read skips through a scratch buffer. */
const READ_GAP_BYTES = 64 * 1024;
/** Most buffers in one readv() (IOV_MAX is 1024 on Linux). */
const MAX_READV_BUFFERS = 512;
/** Receives the skipped bytes of coalesced reads (contents never used, so sharing is safe). */
const gapScratch = new Uint8Array(READ_GAP_BYTES);
/** Bitmaps kept in memory per image before the cache is emptied. */
const BITMAP_CACHE_BYTES = 8 << 20;

/** What a dynamic (or differencing) layer adds to the common open state. */
export interface VhdDynamicState extends VhdOpenState {
  header: VhdHeader;
  table: BlockTable;
  /** Where the footer is (new blocks go here). */
  footerOffsetBytes: number;
}

/** A dynamic VHD opened as a DiskImage. */
export class VhdDynamicImage extends VhdImage implements LocatableImage {
  readonly blockSizeBytes: number;
  readonly bitmapBytes: number;
  /** The dynamic header in use (a resize that grows the BAT replaces it). */
  private currentHeader: VhdHeader;
  protected table: BlockTable;
  protected footerOffsetBytes: number;
  protected readonly bitmapOps: BitmapOps;
  private readonly bitmapCache = new Map<number, Uint8Array>();
  private footerBytes: Uint8Array | undefined;
  /** Block starts of free room inside the file (left by unallocated blocks), found when first needed. */
  private freeSlots: number[] | undefined;
  /** Rooms freed by this open whose BAT change may not be durable yet (see takeFreeSlot). */
  private readonly freedUnsynced = new Set<number>();
  /**
   * Allocated blocks that zeros were written into, in part, since the last flush: one bit per
   * block (a 2 TiB disk of 2 MiB blocks takes 128 KiB). flush() gives back those that now
   * read as zeros.
   */
  private zeroedInPart: Uint8Array | undefined;
  private writeQueue: Promise<void> = Promise.resolve();

  constructor(state: VhdDynamicState) {
    super(state);
    this.currentHeader = state.header;
    this.table = state.table;
    this.blockSizeBytes = state.header.blockSizeBytes;
    this.bitmapBytes = state.header.bitmapBytes;
    this.footerOffsetBytes = state.footerOffsetBytes;
    this.bitmapOps = new BitmapOps(this.bitmapBytes);
  }

  get header(): VhdHeader {
    return this.currentHeader;
  }

  /** The pieces of [offset, offset+length) that each fall in one block, in order. */
  private *blockParts(offset: number, length: number): Generator<{ block: number; inBlock: number; done: number; part: number }> {
    for (let done = 0; done < length; ) {
      const position = offset + done;
      const block = Math.floor(position / this.blockSizeBytes);
      const inBlock = position - block * this.blockSizeBytes;
      const part = Math.min(this.blockSizeBytes - inBlock, length - done);
      yield { block, inBlock, done, part };
      done += part;
    }
  }

  /** Calls `fn` for each piece of [offset, offset+length) that falls in one block. */
  protected async forEachBlockPart(offset: number, length: number, fn: (block: number, inBlockBytes: number, doneBytes: number, partBytes: number) => Promise<void>): Promise<void> {
    for (const { block, inBlock, done, part } of this.blockParts(offset, length)) await fn(block, inBlock, done, part);
  }

  /** File offset of byte `inBlockBytes` of an allocated block's data. */
  protected dataOffsetBytes(block: number, inBlockBytes: number): number {
    return this.table.blockOffsetBytes(block) + this.bitmapBytes + inBlockBytes;
  }

  async read(buffer: Uint8Array, offset: number): Promise<void> {
    this.checkOpen();
    checkRange(offset, buffer.length, this.virtualSize, this.path);
    const parts: { block: number; inBlock: number; target: Uint8Array; offset: number }[] = [];
    await this.forEachBlockPart(offset, buffer.length, async (block, inBlock, done, part) => {
      parts.push({ block, inBlock, target: buffer.subarray(done, done + part), offset: offset + done });
    });
    if (this.bitmapsMatterForReads) {
      // A differencing disk's blocks come in runs from this file and from the parent, one read
      // each: the parts' reads are independent (disjoint parts of `buffer`), all in flight at once.
      await settleAll(parts.map(({ block, inBlock, target, offset: partOffset }) => (this.table.isAllocated(block) ? this.readPresent(block, inBlock, target, partOffset) : this.readAbsent(target, partOffset))));
      return;
    }
    for (let i = 0; i < parts.length; ) {
      const { block, inBlock, target, offset: partOffset } = parts[i];
      if (!this.table.isAllocated(block)) {
        await this.readAbsent(target, partOffset);
        i++;
      } else {
        i = await this.readBlockRun(parts, i);
      }
    }
  }

  /**
   * Where the data lies in the file: an allocated block's data is one run after its bitmap
   * (read whole, as read() does), an unallocated block reads as zeros. Differencing disks
   * have none (sectors their bitmaps leave clear come from the parent).
   */
  dataLocator(): DataLocator | undefined {
    if (this.bitmapsMatterForReads) return undefined;
    return {
      fd: this.handle.fd,
      granuleBytes: this.blockSizeBytes,
      locate: (offset, length) => {
        this.checkOpen();
        checkRange(offset, length, this.virtualSize, this.path);
        return Array.from(this.blockParts(offset, length), ({ block, inBlock, done, part }): DataPiece => ({
          offset: offset + done,
          length: part,
          fileOffset: this.table.isAllocated(block) ? this.dataOffsetBytes(block, inBlock) : null,
        }));
      },
    };
  }

  /** Whether reads must consult sector bitmaps (differencing disks). */
  protected get bitmapsMatterForReads(): boolean {
    return false;
  }

  /**
   * Reads parts[first] and the following allocated parts whose data follows in the file
   * (small gaps, such as the next block's bitmap, go to a scratch buffer) with one readv().
   * Returns the index after the last part read.
   */
  private async readBlockRun(parts: { block: number; inBlock: number; target: Uint8Array }[], first: number): Promise<number> {
    const start = this.dataOffsetBytes(parts[first].block, parts[first].inBlock);
    const buffers = [parts[first].target];
    let fileEnd = start + parts[first].target.length;
    let next = first + 1;
    for (; next < parts.length && buffers.length < MAX_READV_BUFFERS && this.table.isAllocated(parts[next].block); next++) {
      const partStart = this.dataOffsetBytes(parts[next].block, 0);
      const gap = partStart - fileEnd;
      if (gap < 0 || gap > READ_GAP_BYTES) break;
      if (gap > 0) buffers.push(gapScratch.subarray(0, gap));
      buffers.push(parts[next].target);
      fileEnd = partStart + parts[next].target.length;
    }
    if (buffers.length === 1) await readExactly(this.handle, buffers[0], start, this.path);
    else await readvExactly(this.handle, buffers, start, this.path);
    return next;
  }

  /** Reads a range of an allocated block (dynamic disks ignore the bitmap: clear sectors hold zeros). */
  protected async readPresent(block: number, inBlockBytes: number, target: Uint8Array, _offset: number): Promise<void> {
    await readExactly(this.handle, target, this.dataOffsetBytes(block, inBlockBytes), this.path);
  }

  /** Fills a range this layer does not hold: zeros for dynamic disks. */
  protected async readAbsent(target: Uint8Array, _offset: number): Promise<void> {
    target.fill(0);
  }

  /** Whether a range this layer does not hold already reads as zeros. */
  protected async absentIsZero(_offset: number, _length: number): Promise<boolean> {
    return true;
  }

  /** Runs writes one at a time: block allocation and bitmap updates are read-modify-write. */
  private serialize(fn: () => Promise<void>): Promise<void> {
    const run = this.writeQueue.then(fn);
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  async write(buffer: Uint8Array, offset: number): Promise<void> {
    this.checkWritable();
    checkRange(offset, buffer.length, this.virtualSize, this.path);
    return this.serialize(() => this.writeLocked(buffer, offset));
  }

  private async writeLocked(buffer: Uint8Array, offset: number): Promise<void> {
    if (offset % 512 !== 0 || buffer.length % 512 !== 0) return this.writeUnaligned(buffer, offset);
    await this.forEachBlockPart(offset, buffer.length, (block, inBlock, done, part) => this.writeBlockPart(block, inBlock, buffer.subarray(done, done + part)));
  }

  /** Widens a write to whole sectors, reading the partial first/last sectors first. */
  private async writeUnaligned(buffer: Uint8Array, offset: number): Promise<void> {
    const start = Math.floor(offset / 512) * 512;
    const end = Math.ceil((offset + buffer.length) / 512) * 512;
    const merged = new Uint8Array(end - start);
    await this.read(merged.subarray(0, 512), start);
    if (end - start > 512) await this.read(merged.subarray(merged.length - 512), end - 512);
    merged.set(buffer, offset - start);
    await this.writeLocked(merged, start);
  }

  /** Writes sector-aligned `data` inside one block, allocating it if needed. */
  protected async writeBlockPart(block: number, inBlockBytes: number, data: Uint8Array): Promise<void> {
    const firstBit = inBlockBytes / 512;
    const bits = data.length / 512;
    if (!this.table.isAllocated(block)) return this.allocateBlock(block, inBlockBytes, data);
    // Small writes in place go on this thread (writeSmallHere: a resync applies thousands).
    await writeSmallHere(this.handle, data, this.dataOffsetBytes(block, inBlockBytes), this.path);
    const bitmap = await this.loadBitmap(block);
    if (this.bitmapOps.setRange(bitmap, firstBit, bits) > 0) {
      await writeSmallHere(this.handle, bitmap, this.table.blockOffsetBytes(block), this.path);
    }
  }

  /** Bitmap of a new block: dynamic disks mark every sector (unwritten ones hold zeros). */
  protected newBlockBitmap(_firstBit: number, _bits: number): Uint8Array {
    return new Uint8Array(this.bitmapBytes).fill(0xff);
  }

  /**
   * Appends a block: the footer first moves to the new end (the old one stays valid until
   * overwritten), then bitmap + data are written, then the BAT entry.
   * @throws VHDSYNC_UNSUPPORTED when the file would outgrow 32-bit sector offsets (2 TiB)
   */
  private async allocateBlock(block: number, inBlockBytes: number, data: Uint8Array): Promise<void> {
    const slot = await this.takeFreeSlot();
    if (slot !== undefined) return this.allocateInSlot(block, slot, inBlockBytes, data);
    const oldFooterOffset = this.footerOffsetBytes;
    const dataStart = alignUp(oldFooterOffset + this.bitmapBytes, DATA_ALIGN_BYTES);
    const blockStart = dataStart - this.bitmapBytes;
    const newFooterOffset = dataStart + this.blockSizeBytes;
    const sector = blockStart / 512;
    if (sector >= 0xffffffff) throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${this.path}: VHD file cannot grow past 2 TiB`, { path: this.path });
    await this.moveFooter(newFooterOffset);
    if (blockStart > oldFooterOffset) await writeZeroBytes(this.handle, oldFooterOffset, Math.min(512, blockStart - oldFooterOffset), this.path);
    const bitmap = this.newBlockBitmap(inBlockBytes / 512, data.length / 512);
    if (inBlockBytes === 0 && bitmap.length + data.length > SMALL_IO_BYTES) {
      await writevExactly(this.handle, [bitmap, data], blockStart, this.path);
    } else {
      await writeSmallHere(this.handle, bitmap, blockStart, this.path);
      await writeSmallHere(this.handle, data, dataStart + inBlockBytes, this.path);
    }
    const entry = this.table.set(block, sector);
    await writeSmallHere(this.handle, entry.bytes, this.header.tableOffsetBytes + entry.sectorIndex * 512, this.path);
    this.cacheBitmap(block, bitmap);
  }

  /**
   * Allocates a block in free room inside the file: its bitmap and data are written there
   * (the rest of the data zeroed: the room may still hold old bytes where no hole could be
   * punched), then the BAT entry. The file does not grow.
   */
  private async allocateInSlot(block: number, blockStart: number, inBlockBytes: number, data: Uint8Array): Promise<void> {
    const dataStart = blockStart + this.bitmapBytes;
    const bitmap = this.newBlockBitmap(inBlockBytes / 512, data.length / 512);
    await writeSmallHere(this.handle, bitmap, blockStart, this.path);
    await zeroFileBytes(this.handle, dataStart, inBlockBytes, this.path);
    await writeSmallHere(this.handle, data, dataStart + inBlockBytes, this.path);
    await zeroFileBytes(this.handle, dataStart + inBlockBytes + data.length, this.blockSizeBytes - inBlockBytes - data.length, this.path);
    const entry = this.table.set(block, blockStart / 512);
    await writeSmallHere(this.handle, entry.bytes, this.header.tableOffsetBytes + entry.sectorIndex * 512, this.path);
    this.cacheBitmap(block, bitmap);
  }

  /**
   * The lowest free slot (see findFreeSlots), taken. A room this open freed is reused only
   * once the BAT entry that freed it is on disk: otherwise a power loss could keep the old
   * entry and the new one, two blocks in one room.
   */
  private async takeFreeSlot(): Promise<number | undefined> {
    this.freeSlots ??= this.findFreeSlots();
    const slot = this.freeSlots.shift();
    if (slot !== undefined && this.freedUnsynced.has(slot)) await this.syncFreed();
    return slot;
  }

  /**
   * Room for a whole block (bitmap + data, data 4 KiB-aligned as allocateBlock places it)
   * before the footer, clear of the metadata (footer copy, dynamic header, BAT, the parent
   * locators' data: metadataRanges) and of every allocated block: what unallocated blocks left,
   * and a BAT that a resize moved behind the blocks. Lowest first.
   */
  private findFreeSlots(): number[] {
    const region = this.bitmapBytes + this.blockSizeBytes;
    const metadata = this.metadataRanges().sort((a, b) => a.startBytes - b.startBytes);
    const starts = this.allocatedStarts();
    const slots: number[] = [];
    let cursor = 0;
    for (let block = 0, meta = 0; ; ) {
      // The next thing in the file, a block or a metadata range, whichever starts first.
      const nextBlock = block < starts.length ? starts[block] : Infinity;
      const nextMeta = meta < metadata.length ? metadata[meta].startBytes : Infinity;
      const start = Math.min(nextBlock, nextMeta, this.footerOffsetBytes);
      // Data 4 KiB-aligned, as allocateBlock places it, unless sector-aligned blocks fit more
      // of them (qemu packs blocks on sectors: four of its freed blocks in a row hold only
      // three 4 KiB-aligned ones).
      const aligned = this.packSlots(cursor, start, DATA_ALIGN_BYTES);
      const packed = this.packSlots(cursor, start, 512);
      // One by one: a gap may hold more slots than a call can take as arguments.
      for (const slot of packed.length > aligned.length ? packed : aligned) slots.push(slot);
      if (start === this.footerOffsetBytes) return slots;
      const end = nextBlock <= nextMeta ? starts[block++] + region : metadata[meta++].endBytes;
      cursor = Math.max(cursor, end);
    }
  }

  /** [start, end) ranges of the file that metadata holds: footer copy, dynamic header, BAT, parent locators' data. */
  private metadataRanges(): FileRange[] {
    const headerOffset = Number(this.footer.dataOffset);
    return [
      { startBytes: 0, endBytes: 512 },
      { startBytes: headerOffset, endBytes: headerOffset + 1024 },
      { startBytes: this.header.tableOffsetBytes, endBytes: this.header.tableOffsetBytes + alignUp(this.header.maxTableEntries * 4, 512) },
      // dataSpace: sectors in the spec, bytes in some writers; the larger reading is kept clear.
      ...this.header.locators
        .filter((locator) => locator.dataOffsetBytes > 0)
        .map((locator) => ({ startBytes: locator.dataOffsetBytes, endBytes: locator.dataOffsetBytes + Math.max(locator.dataSpace * 512, locator.dataLengthBytes) })),
    ];
  }

  /** File offsets of the allocated blocks, ascending (a typed array sorts numerically without a comparator: a 2 TiB disk has ~1M entries). */
  private allocatedStarts(): Float64Array {
    const starts = new Float64Array(this.table.allocatedCount());
    for (let block = 0, n = 0; block < this.table.entries; block++) if (this.table.isAllocated(block)) starts[n++] = this.table.blockOffsetBytes(block);
    return starts.sort();
  }

  /** Block starts of the blocks that fit in [from, to) back to back, data aligned to `alignment`. */
  private packSlots(from: number, to: number, alignment: number): number[] {
    const slots: number[] = [];
    for (let cursor = from; ; ) {
      const dataStart = alignUp(cursor + this.bitmapBytes, alignment);
      if (dataStart + this.blockSizeBytes > to) return slots;
      slots.push(dataStart - this.bitmapBytes);
      cursor = dataStart + this.blockSizeBytes;
    }
  }

  /**
   * Unallocates a block (its BAT entry first, so a crash leaves at worst unused space) and
   * punches a hole where its bitmap and data were, where the filesystem can (the space goes
   * back to the filesystem), or writes zeros there: the file keeps its size and layout, and
   * the room joins the free slots that later allocations take first.
   */
  private async unallocateBlock(block: number): Promise<void> {
    const blockStart = this.table.blockOffsetBytes(block);
    const dataEnd = this.dataOffsetBytes(block, 0) + this.blockSizeBytes;
    // The free room known so far (found while the block still counts as allocated), then its own.
    const slots = (this.freeSlots ??= this.findFreeSlots());
    const entry = this.table.set(block, UNALLOCATED);
    await writeSmallHere(this.handle, entry.bytes, this.header.tableOffsetBytes + entry.sectorIndex * 512, this.path);
    this.bitmapCache.delete(block);
    // A hole where the filesystem can punch one, written zeros elsewhere (no addon): qemu puts a
    // new block at the end of the last allocated one without writing its data, so room given
    // back at the end of the blocks must read as zeros.
    await zeroFileBytes(this.handle, blockStart, Math.min(dataEnd, this.footerOffsetBytes) - blockStart, this.path);
    let at = slots.length;
    while (at > 0 && slots[at - 1] > blockStart) at--;
    slots.splice(at, 0, blockStart);
    this.freedUnsynced.add(blockStart);
  }

  /** The sector bitmap of an allocated block (cached). */
  protected async loadBitmap(block: number): Promise<Uint8Array> {
    const cached = this.bitmapCache.get(block);
    if (cached) return cached;
    const bitmap = new Uint8Array(this.bitmapBytes);
    // At most 64 KiB (256 MiB blocks), usually 512 bytes: read on this thread (see writeSmallHere).
    readExactlySync(this.handle.fd, bitmap, this.table.blockOffsetBytes(block), this.path);
    this.cacheBitmap(block, bitmap);
    return bitmap;
  }

  private cacheBitmap(block: number, bitmap: Uint8Array): void {
    if ((this.bitmapCache.size + 1) * this.bitmapBytes > BITMAP_CACHE_BYTES) this.bitmapCache.clear();
    this.bitmapCache.set(block, bitmap);
  }

  async writeZeros(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(offset, length, this.virtualSize, this.path);
    return this.serialize(() => this.writeZerosLocked(offset, length));
  }

  private async writeZerosLocked(offset: number, length: number): Promise<void> {
    const start = Math.min(offset + length, Math.ceil(offset / 512) * 512);
    const end = Math.max(start, Math.floor((offset + length) / 512) * 512);
    // Partial sectors at either end: written through the sector read-modify-write (which
    // allocates an unallocated block), then marked like any part of a block.
    if (start > offset) {
      await this.writeLocked(ZERO_CHUNK.subarray(0, start - offset), offset);
      this.markZeroedInPart(Math.floor(offset / this.blockSizeBytes));
    }
    if (offset + length > end) {
      await this.writeLocked(ZERO_CHUNK.subarray(0, offset + length - end), end);
      this.markZeroedInPart(Math.floor(end / this.blockSizeBytes));
    }
    await this.forEachBlockPart(start, end - start, async (block, inBlock, done, part) => {
      const allocated = this.table.isAllocated(block);
      if (!allocated && (await this.absentIsZero(start + done, part))) return;
      // A whole block that will read as zeros without its data is given back: unallocated.
      const wholeBlock = inBlock === 0 && (part === this.blockSizeBytes || start + done + part === this.virtualSize);
      if (allocated && wholeBlock && (await this.absentIsZero(start + done, part))) return this.unallocateBlock(block);
      for (let chunk = 0; chunk < part; chunk += ZERO_CHUNK.length) {
        await this.writeBlockPart(block, inBlock + chunk, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, part - chunk)));
      }
      if (allocated) this.markZeroedInPart(block);
    });
  }

  /** Marks an allocated block that zeros were written into in part (see releaseZeroedBlocks). */
  private markZeroedInPart(block: number): void {
    if (this.table.isAllocated(block)) (this.zeroedInPart ??= new Uint8Array(Math.ceil(this.table.entries / 8)))[block >>> 3] |= 1 << (block & 7);
  }

  /**
   * Gives back the blocks zeroed in part that now read as zeros (see releaseZeroedBlocks), then
   * syncs. Always behind the writes queued before it, a release another flush started
   * included: the sync (and a caller's stat after it) must come after every one of them.
   */
  override async flush(): Promise<void> {
    this.checkOpen();
    if (!this.readOnly) await this.serialize(() => this.releaseZeroedBlocks());
    await super.flush();
  }

  /**
   * A block that a resync zeroes piece by piece (only where the target differed: where it held
   * data) never gets a whole-block writeZeros, so writeZerosLocked cannot give it back. Each
   * such block is read once here: if all of it reads as zeros, and would without its data
   * (no parent data under it), it is unallocated like a wholly zeroed one.
   */
  private async releaseZeroedBlocks(): Promise<void> {
    const marks = this.zeroedInPart;
    if (!marks) return; // a flush queued before this one has released them
    this.zeroedInPart = undefined;
    let scratch: Uint8Array | undefined;
    for (let byte = 0; byte < marks.length; byte++) {
      for (let bit = 0; marks[byte] !== 0 && bit < 8; bit++) {
        if ((marks[byte] & (1 << bit)) === 0) continue;
        const block = byte * 8 + bit;
        if (!this.table.isAllocated(block)) continue;
        const offset = block * this.blockSizeBytes;
        const content = (scratch ??= new Uint8Array(this.blockSizeBytes)).subarray(0, Math.min(this.blockSizeBytes, this.virtualSize - offset));
        if (!(await this.absentIsZero(offset, content.length))) continue;
        await this.read(content, offset);
        if (isZeroBytes(content)) await this.unallocateBlock(block);
      }
    }
  }

  /**
   * Changes the virtual size (docs/vhd.md "Resizing"). Everything is checked before anything
   * is written; then the steps go in an order where a crash at any point leaves a disk that
   * opens, at the old size or the new one:
   * 1. the disk past the smaller of the two sizes is emptied: blocks wholly past it are
   *    unallocated (BAT entry, then a hole), the rest of the block across it is zeroed in the
   *    file (bytes a shrink gives up, or that a grown disk must read as zeros); fdatasync;
   * 2. growing past the BAT's entries: a new BAT, written and synced, then the header naming
   *    it (growTable);
   * 3. the footer (sizes, geometry): its copy at offset 0, then the footer at the end; fdatasync;
   * 4. shrinking: the header's BAT cut to the new size, then the file cut after what it still
   *    holds (trimTail); fdatasync.
   * (A differencing disk refuses: VhdDifferencingImage.resize.)
   * @throws VHDSYNC_UNSUPPORTED (a size the footer or the BAT cannot hold; a block across the
   *   old end stored shorter than a block with data right after it), I/O codes
   */
  async resize(sizeBytes: number): Promise<void> {
    this.checkWritable();
    return this.serialize(() => this.resizeLocked(sizeBytes));
  }

  private async resizeLocked(sizeBytes: number): Promise<void> {
    const oldSize = this.virtualSize;
    if (sizeBytes === oldSize) return this.finishShrink();
    const footer = this.checkResize(sizeBytes);
    const entries = Math.ceil(sizeBytes / this.blockSizeBytes);
    const grow = sizeBytes > oldSize;
    if (grow) this.checkRoomToGrow(oldSize);
    // Nothing is written before this line.
    await this.releaseZeroedBlocks();
    await this.syncFreed();
    const kept = Math.min(sizeBytes, oldSize);
    // A grown disk reads the whole block across the old end; a shrunk one keeps the block
    // across the new end as stored (the old last block may be stored only as far as the disk reached).
    const acrossStart = Math.floor(kept / this.blockSizeBytes) * this.blockSizeBytes;
    await this.clearPast(kept, grow ? this.blockSizeBytes : Math.min(this.blockSizeBytes, alignUp(oldSize - acrossStart, 512)));
    await this.syncFreed();
    if (entries > this.header.maxTableEntries) await this.growTable(entries);
    await this.writeFooters(footer);
    if (!grow) await this.finishShrink();
  }

  /**
   * A shrink's last steps: the BAT cut to the disk's blocks, then the file cut after what it
   * still holds. Run again by a resize to the size the disk has, they finish a shrink stopped
   * after its footer was written (and tidy a disk whose last blocks were given back).
   */
  private async finishShrink(): Promise<void> {
    const entries = Math.ceil(this.virtualSize / this.blockSizeBytes);
    if (entries < this.header.maxTableEntries) await this.cutTable(entries);
    await this.trimTail();
  }

  /**
   * Whether this disk can take `sizeBytes` (its footer, and a BAT of that many blocks), without
   * writing anything; the footer for it.
   * @throws VHDSYNC_UNSUPPORTED (details.sizeProblem)
   */
  checkResize(sizeBytes: number): VhdFooter {
    const footer = this.footerForSize(sizeBytes, VHD_MAX_DYNAMIC_BYTES);
    const entries = Math.ceil(sizeBytes / this.blockSizeBytes);
    if (entries > VHD_MAX_TABLE_ENTRIES) {
      throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${this.path}: cannot resize to ${sizeBytes} bytes: ${entries} blocks of ${this.blockSizeBytes} bytes are more than a BAT holds (${VHD_MAX_TABLE_ENTRIES})`, { path: this.path, sizeBytes, sizeProblem: true });
    }
    return footer;
  }

  /** fdatasync; then the room of blocks unallocated so far may be taken (see takeFreeSlot). */
  private async syncFreed(): Promise<void> {
    await datasyncHandle(this.handle, this.path);
    this.freedUnsynced.clear();
  }

  /**
   * A grown disk reads the whole block across the old end. The BAT scan accepts a last block
   * stored only as far as the disk reaches (blockSpanBytes in assembly/vhd/bat.ts); such a
   * block with metadata, another block or the footer right after it cannot grow in place.
   * @throws VHDSYNC_UNSUPPORTED
   */
  private checkRoomToGrow(oldSize: number): void {
    const block = Math.floor(oldSize / this.blockSizeBytes);
    if (oldSize % this.blockSizeBytes === 0 || !this.table.isAllocated(block)) return;
    const start = this.table.blockOffsetBytes(block);
    const next = Math.min(this.nextStartAfter(start), this.footerOffsetBytes);
    if (start + this.bitmapBytes + this.blockSizeBytes > next) {
      throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${this.path}: cannot grow: block ${block}, across the old end of the disk, is stored shorter than a block and the file holds other data right after it (convert the disk, or resync into a new one)`, { path: this.path, block });
    }
  }

  /** The lowest start of metadata or an allocated block past `position` in the file; Infinity when none. */
  private nextStartAfter(position: number): number {
    let next = Infinity;
    for (const range of this.metadataRanges()) if (range.startBytes > position) next = Math.min(next, range.startBytes);
    for (let block = 0; block < this.table.entries; block++) {
      if (this.table.isAllocated(block) && this.table.blockOffsetBytes(block) > position) next = Math.min(next, this.table.blockOffsetBytes(block));
    }
    return next;
  }

  /**
   * Makes the disk past `limit` bytes hold nothing: blocks wholly past it unallocated, the
   * block across it zeroed in the file from `limit` to `dataEndBytes` of its data.
   */
  private async clearPast(limit: number, dataEndBytes: number): Promise<void> {
    for (let block = Math.ceil(limit / this.blockSizeBytes); block < this.table.entries; block++) {
      if (this.table.isAllocated(block)) await this.unallocateBlock(block);
    }
    const block = Math.floor(limit / this.blockSizeBytes);
    const inBlock = limit - block * this.blockSizeBytes;
    if (inBlock === 0 || !this.table.isAllocated(block)) return;
    await zeroFileBytes(this.handle, this.dataOffsetBytes(block, inBlock), dataEndBytes - inBlock, this.path);
  }

  /**
   * Makes the BAT hold `entries` entries, the new ones unallocated. It grows where it lies
   * when nothing but the footer follows within its new size, or moves to where the footer is;
   * the footer moves behind it when it is in the way. The new BAT is written and synced
   * before the header names it: until then the old header and BAT are in charge, and the new
   * BAT's bytes lie in room nothing uses.
   */
  private async growTable(entries: number): Promise<void> {
    const tableBytes = alignUp(entries * 4, 512);
    const raw = new Uint8Array(tableBytes).fill(0xff);
    raw.set(this.table.raw.subarray(0, this.table.entries * 4));
    let tableOffset = this.header.tableOffsetBytes;
    // Moved behind everything the file holds: where the footer is, or before it when a grow
    // stopped after moving the footer (ENOSPC writing the BAT) left room there. Behind the
    // footer, every retry needed the whole BAT again on top of the room the last one took.
    if (tableOffset + tableBytes > this.nextStartAfter(tableOffset)) tableOffset = alignUp(this.heldEndBytes(), 512);
    if (tableOffset + tableBytes > this.footerOffsetBytes) await this.moveFooter(tableOffset + tableBytes);
    await writeExactly(this.handle, raw, tableOffset, this.path);
    await datasyncHandle(this.handle, this.path);
    await this.writeHeader({ ...this.header, tableOffsetBytes: tableOffset, maxTableEntries: entries });
    this.table = new BlockTable(raw, entries);
    this.freeSlots = undefined;
  }

  /**
   * The header's BAT cut to `entries` (clearPast unallocated the entries past them); then the
   * sectors it gave up are zeroed: they are free room now, where a new block's data must read
   * as zeros (see trimTail).
   */
  private async cutTable(entries: number): Promise<void> {
    const oldEnd = this.header.tableOffsetBytes + this.table.raw.length;
    const raw = this.table.raw.slice(0, alignUp(entries * 4, 512));
    raw.fill(0xff, entries * 4);
    await this.writeHeader({ ...this.header, maxTableEntries: entries });
    this.table = new BlockTable(raw, entries);
    this.freeSlots = undefined;
    await zeroFileBytes(this.handle, this.header.tableOffsetBytes + raw.length, oldEnd - this.header.tableOffsetBytes - raw.length, this.path);
  }

  /**
   * After a shrink, the file ends right after what it still holds: the footer is written at the
   * end of the last allocated block or piece of metadata, then the file is cut after it;
   * fdatasync. qemu puts a new block at the end of the last block or of the BAT, whichever is
   * later, and does not write its data, so whatever lay there (blocks past the new end given
   * back, a BAT that was moved behind them, the old footer) would show in the new block.
   * Stopped in between, the old footer still ends the file.
   */
  private async trimTail(): Promise<void> {
    const footerAt = alignUp(this.heldEndBytes(), 512);
    if (footerAt >= this.footerOffsetBytes) return;
    await this.moveFooter(footerAt);
    await datasyncHandle(this.handle, this.path);
    try {
      await this.handle.truncate(footerAt + 512);
    } catch (error) {
      throw toVhdsyncError(error, { path: this.path });
    }
    await datasyncHandle(this.handle, this.path);
    this.fileSizeBytes = footerAt + 512;
    this.freeSlots = undefined;
  }

  /** Where what the file holds ends: its metadata and allocated blocks (the footer aside). */
  private heldEndBytes(): number {
    const region = this.bitmapBytes + this.blockSizeBytes;
    let end = 0;
    for (const range of this.metadataRanges()) end = Math.max(end, range.endBytes);
    // (A last block stored short ends where the footer starts.)
    for (let block = 0; block < this.table.entries; block++) {
      if (this.table.isAllocated(block)) end = Math.max(end, Math.min(this.table.blockOffsetBytes(block) + region, this.footerOffsetBytes));
    }
    return end;
  }

  /** Writes the dynamic header in one piece, then fdatasync. */
  private async writeHeader(header: VhdHeader): Promise<void> {
    await writeSmallHere(this.handle, buildHeader(header), Number(this.footer.dataOffset), this.path);
    await datasyncHandle(this.handle, this.path);
    this.currentHeader = header;
  }

  /**
   * Writes the footer at `offsetBytes` (the old one stays valid until overwritten, or cut off
   * the file): the data area ends there now, and new blocks go there.
   */
  private async moveFooter(offsetBytes: number): Promise<void> {
    this.footerBytes ??= buildFooter(this.footer);
    await writeSmallHere(this.handle, this.footerBytes, offsetBytes, this.path);
    this.fileSizeBytes = Math.max(this.fileSizeBytes, offsetBytes + 512);
    this.footerOffsetBytes = offsetBytes;
  }

  /**
   * A new footer: its copy at offset 0 first, then the footer at the end; fdatasync. Stopped
   * in between, vhdsync (which reads the end) still sees the old size, so the next resize
   * writes both again; qemu, which reads the copy first, sees the new one until then.
   */
  private async writeFooters(footer: VhdFooter): Promise<void> {
    const bytes = buildFooter(footer);
    await writeSmallHere(this.handle, bytes, 0, this.path);
    await writeSmallHere(this.handle, bytes, this.footerOffsetBytes, this.path);
    await datasyncHandle(this.handle, this.path);
    this.fileSizeBytes = Math.max(this.fileSizeBytes, this.footerOffsetBytes + 512);
    this.setFooter(footer);
    this.footerBytes = bytes;
  }

  async allocationMap(offset = 0, length = this.virtualSize - offset, scope: AllocationScope = "chain"): Promise<Extent[]> {
    this.checkOpen();
    checkRange(offset, length, this.virtualSize, this.path);
    if (length === 0) return [];
    const layer = await this.layerExtents(offset, length);
    return scope === "layer" ? layer : this.chainExtents(layer, offset, length);
  }

  /** Ranges this layer holds: whole allocated blocks for dynamic disks. */
  protected async layerExtents(offset: number, length: number): Promise<Extent[]> {
    const extents: Extent[] = [];
    await this.forEachBlockPart(offset, length, async (block, _inBlock, done, part) => {
      if (!this.table.isAllocated(block)) return;
      const last = extents[extents.length - 1];
      if (last && last.offset + last.length === offset + done) last.length += part;
      else extents.push({ offset: offset + done, length: part });
    });
    return extents;
  }

  /** Adds parents' ranges (none for dynamic disks). */
  protected async chainExtents(layer: Extent[], _offset: number, _length: number): Promise<Extent[]> {
    return layer;
  }

  protected async allocatedBytes(): Promise<number> {
    let total = 0;
    for (let block = 0; block < this.table.entries; block++) {
      if (!this.table.isAllocated(block)) continue;
      total += Math.max(0, Math.min(this.blockSizeBytes, this.virtualSize - block * this.blockSizeBytes));
    }
    return total;
  }

  protected override extraInfo(): Record<string, unknown> {
    return {
      blockSize: this.blockSizeBytes,
      maxTableEntries: this.header.maxTableEntries,
      allocatedBlocks: this.table.allocatedCount(),
      tableOffset: this.header.tableOffsetBytes,
    };
  }

  protected override async closeParents(): Promise<void> {
    this.bitmapOps.release();
  }
}
