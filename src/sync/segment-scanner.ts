// The per-segment work of checksum/diff/resync/verify, run inside a worker thread (or inline):
// bring a range of the source (and target) into WASM memory in windows (raw images, block
// devices and fixed VHDs: their page-cache pages mapped in place; others: read), skip what is unallocated on both sides,
// find differing blocks by direct compare (compareZeroBlocks) or by hashing against a target
// digest frame (hash_blocks_nonzero + frameWindow), and write the differences (here for raw
// targets, or handed back to the main thread for other formats).

import { VhdsyncError } from "../errors.js";
import type { DiskImage, Extent, ImageFormat } from "../formats/disk-image.js";
import { openImage } from "../formats/open-image.js";
import { RawImage } from "../formats/raw.js";
import { allocationPairsFlatSync, flatDataOf } from "../formats/flat-file.js";
import { dataLocatorOf } from "../formats/data-location.js";
import { PageMapper } from "../io/file-map.js";
import { readExactlySync } from "../io/file.js";
import { NO_EXTENTS, pairsOfExtents, putPair, type ExtentPairs } from "../io/extent-pairs.js";
import { checkStatus } from "../wasm/status.js";
import { getWasm, type WasmInstance } from "../wasm/driver.js";
import { hashNonZeroBlocksAt } from "../hash/index.js";
import { blockDigestLength, type BlockHashAlgorithm } from "./block-hasher.js";
import { ChangeList, type SegmentCounters, type SegmentResult, type SegmentTask, emptyCounters } from "./segment-task.js";
import { MAPPED_WINDOW_BYTES, compareUnitBytes } from "./segment-plan.js";
import { BackgroundFlush } from "./background-flush.js";
import { SpareBuffers } from "./spare-buffers.js";
import { unallocatedAnswererFor, type UnallocatedAnswerer } from "./unallocated.js";

/** What a scanner compares and where differences are written. */
export interface ScanConfig {
  /**
   * "hash": digests of the source; "compare": source vs target image; "hash-compare": source vs
   * target digest frames; "copy": every source block is a change (zero blocks as zero ranges).
   */
  mode: "hash" | "compare" | "hash-compare" | "copy";
  sourcePath: string;
  targetPath?: string;
  blockSizeBytes: number;
  algo?: BlockHashAlgorithm;
  /** "none": report only; "here": write to the target in this thread; "caller": return changed data. */
  apply: "none" | "here" | "caller";
  /** Window (read batch) size in bytes; rounded to a multiple of the block size. */
  windowBytes: number;
  /** Window size when raw images are mapped instead of read (default MAPPED_WINDOW_BYTES). */
  mappedWindowBytes?: number;
  /** Formats the caller detected (raw images then open without loading the other formats). */
  sourceFormat?: ImageFormat;
  targetFormat?: ImageFormat;
  /** Copy mode: the target already reads as zeros everywhere (freshly created), so zero ranges need no write. */
  targetFresh?: boolean;
}

/** Reads/compares/hashes segments for one thread. */
export class SegmentScanner {
  private readonly wasm: WasmInstance;
  private readonly windowBytes: number;
  /** Compare and copy granularity: the block, or (compare) a part of it (compareUnitBytes). */
  private readonly unit: number;
  private readonly bufferA: number;
  private readonly bufferB: number;
  private readonly flags: number;
  private readonly zeroFlags: number;
  /** One byte per block of a window: 1 = some allocated part overlaps it (hash modes). */
  private readonly allocatedFlags: number;
  /** The segment's digest frame in WASM memory (hash modes). */
  private readonly frame: SegmentFrame;
  private readonly digests: number;
  private readonly digestLength: number;
  /** Out-parameters of the kernels (up to four u32 counts). */
  private readonly countAddress: number;
  private readonly counts: Uint32Array;
  /** Views over the flag arrays (fixed addresses; the memory never grows). */
  private readonly flagsView: Uint8Array;
  private readonly zeroView: Uint8Array;
  /** Maps flat images' pages (raw, block device, fixed VHD) into the window buffers instead of reading them (null: read). */
  private readonly mapper: PageMapper | null;
  /** Flushes of the target started after segments that wrote. */
  private readonly backgroundFlush: BackgroundFlush | undefined;
  /** Data buffers of earlier results given back (giveBack), reused for the next segments' data. */
  private readonly spareData = new SpareBuffers();
  /** Bytes at the start of each buffer that may still have file pages mapped. */
  private mappedA = 0;
  private mappedB = 0;

  private constructor(readonly config: ScanConfig, private readonly source: DiskImage, private readonly target: DiskImage | undefined) {
    this.wasm = getWasm();
    const block = config.blockSizeBytes;
    this.mapper = flatDataOf(source) || (target && flatDataOf(target)) ? PageMapper.for(this.wasm.memory) : null;
    const window = this.mapper ? (config.mappedWindowBytes ?? MAPPED_WINDOW_BYTES) : config.windowBytes;
    // Hashing and copying need whole blocks in memory; a direct compare splits large blocks
    // (as the native scanner does).
    this.unit = config.mode === "compare" ? compareUnitBytes(block, [source, target].map((image) => image && dataLocatorOf(image)?.granuleBytes), config.apply !== "none") : block;
    // Windows of whole units: whole blocks, or where a compare works in parts of blocks, whole
    // parts (a block then spans windows; the counts follow it across them).
    this.windowBytes = Math.max(this.unit, Math.floor(window / this.unit) * this.unit);
    const units = this.windowBytes / this.unit;
    this.digestLength = config.algo ? blockDigestLength(config.algo) : 0;
    const alignment = Math.max(4096, this.mapper?.pageSize ?? 0);
    this.bufferA = this.wasm.alloc(this.windowBytes, alignment);
    this.bufferB = config.mode === "compare" ? this.wasm.alloc(this.windowBytes, alignment) : 0;
    this.flags = this.wasm.alloc(units);
    this.zeroFlags = this.wasm.alloc(units);
    this.digests = this.digestLength ? this.wasm.alloc(units * this.digestLength) : 0;
    this.countAddress = this.wasm.alloc(16);
    this.allocatedFlags = this.wasm.alloc(units);
    this.frame = new SegmentFrame(this.wasm, this.digestLength);
    this.flagsView = this.wasm.view(this.flags, units);
    this.zeroView = this.wasm.view(this.zeroFlags, units);
    this.counts = new Uint32Array(this.wasm.memory.buffer, this.countAddress, 4);
    this.backgroundFlush = config.apply === "here" && target ? new BackgroundFlush(target) : undefined;
  }

  /** One flag per `unit` bytes of the source window at zeroFlags (1 = all zero). */
  private zeroBlocks(length: number, unit: number): void {
    checkStatus(this.wasm.exports.zeroBlocks(this.bufferA, length, unit, this.zeroFlags, this.countAddress), "zero-block scan");
  }

  /** Opens the images of `config` (target writable only when applying here). @throws open errors */
  static async open(config: ScanConfig): Promise<SegmentScanner> {
    const source = await openAs(config.sourcePath, config.sourceFormat, true);
    let target: DiskImage | undefined;
    try {
      if (config.targetPath && (config.mode === "compare" || config.apply === "here")) {
        target = await openAs(config.targetPath, config.targetFormat, config.apply !== "here");
      }
      return new SegmentScanner(config, source, target);
    } catch (error) {
      // (The constructor throws on a config it cannot scan with: the images must not stay open.)
      await target?.close();
      await source.close();
      throw error;
    }
  }

  /** Flushes writes (when applying here) and closes the images. */
  async close(): Promise<void> {
    this.releaseMappings();
    try {
      await this.backgroundFlush?.settle();
    } finally {
      await this.source.close();
      await this.target?.close();
      this.frame.release();
      for (const address of [this.bufferA, this.bufferB, this.flags, this.zeroFlags, this.allocatedFlags, this.digests, this.countAddress]) if (address) this.wasm.release(address);
    }
  }

  /** Processes one segment. @throws read/write errors (VhdsyncError) */
  async scan(task: SegmentTask): Promise<SegmentResult> {
    this.backgroundFlush?.check();
    try {
      const result = await this.scanSegment(task);
      if (result.counters.bytesWritten + result.counters.bytesZeroed > 0) this.backgroundFlush?.start();
      return result;
    } finally {
      this.releaseMappings();
    }
  }

  /** New answers for segments with nothing allocated, for one run (see UnallocatedAnswerer), where this scan's mode has them. */
  unallocatedAnswerer(): UnallocatedAnswerer | undefined {
    return unallocatedAnswererFor(this.config, this.source, this.target);
  }

  /** Takes back a result's data buffer, once the caller has written it, for a later segment's data. */
  giveBack(buffer: ArrayBuffer): void {
    this.spareData.give(buffer);
  }

  /** Puts zero pages back where file pages were mapped, so no mapping outlives a segment. */
  private releaseMappings(): void {
    if (this.mappedA > 0) this.mapper!.release(this.bufferA, this.mappedA);
    if (this.mappedB > 0) this.mapper!.release(this.bufferB, this.mappedB);
    this.mappedA = this.mappedB = 0;
  }

  private async scanSegment(task: SegmentTask): Promise<SegmentResult> {
    const block = this.config.blockSizeBytes;
    const startBytes = task.firstBlock * block;
    const endBytes = Math.min(this.source.virtualSize, (task.firstBlock + task.blockCount) * block);
    const sourceMap = await allocationPairsOf(this.source, startBytes, endBytes - startBytes);
    const targetMap = this.config.mode === "compare" && this.target ? await allocationPairsOf(this.target, startBytes, endBytes - startBytes) : NO_EXTENTS;
    const hashing = this.config.mode === "hash" || this.config.mode === "hash-compare";
    if (hashing) this.frame.prepare(task);
    const state: ScanState = {
      counters: emptyCounters(),
      changes: new ChangeList(),
      data: undefined,
      dataBytes: 0,
      segmentBytes: endBytes - startBytes,
      frameDigestBytes: 0,
      lastChangedBlock: -1,
      lastComparedBlock: -1,
      nonZeroBlocks: 0,
      lastNonZeroBlock: -1,
      targetDigestIndex: 0,
      pendingZero: undefined,
    };
    for (let offset = startBytes; offset < endBytes; offset += this.windowBytes) {
      const length = Math.min(this.windowBytes, endBytes - offset);
      if (this.config.mode === "compare") await this.compareWindow(offset, length, sourceMap, targetMap, state);
      else if (this.config.mode === "copy") await this.copyWindow(offset, length, sourceMap, state);
      else await this.hashWindow(offset, length, sourceMap, task, state);
    }
    await this.flushPendingZero(state);
    // Compare and copy count the blocks with data (a block larger than a window in parts); the others read as zeros.
    if (!hashing) state.counters.blocksZero = task.blockCount - state.nonZeroBlocks;
    // Compare and copy: the blocks no compared range overlaps were unallocated (on both sides).
    if (!hashing) state.counters.blocksUnallocated = task.blockCount - state.counters.blocksCompared;
    const result: SegmentResult = { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters: state.counters, changes: state.changes.toArray() };
    if (state.data) result.data = state.data.subarray(0, state.dataBytes);
    if (hashing) {
      result.frameFlags = this.wasm.view(this.frame.flags, task.blockCount).slice();
      result.frameDigests = this.wasm.view(this.frame.digests, state.frameDigestBytes).slice();
    }
    return result;
  }

  /**
   * Direct compare of one window of source and target. Only the unit ranges where either side
   * has allocated data are read and compared; the rest of the window (unallocated on both
   * sides) reads as zeros on both and is counted as such without touching it.
   */
  private async compareWindow(offset: number, length: number, sourceMap: ExtentPairs, targetMap: ExtentPairs, state: ScanState): Promise<void> {
    const unit = this.unit;
    const units = Math.ceil(length / unit);
    const sourceParts = clip(sourceMap, offset, length);
    const targetParts = clip(targetMap, offset, length);
    const counters = state.counters;
    if (sourceParts.length === 0 && targetParts.length === 0) return; // unallocated: counted at the segment's end
    let cursor = 0;
    const active = activeUnits(sourceParts, targetParts, offset, unit, units);
    for (let i = 0; i < active.length; i += 2) {
      const [first, last] = [active[i], active[i + 1]];
      if (first > cursor) this.skipUnits(cursor, first);
      const start = offset + first * unit;
      const size = Math.min(offset + length, offset + last * unit) - start;
      const at = first * unit;
      await this.readParts(this.source, this.bufferA, at, start, size, clip(sourceParts, start, size), counters);
      await this.readParts(this.target!, this.bufferB, at, start, size, clip(targetParts, start, size), counters);
      checkStatus(this.wasm.exports.compareZeroBlocks(this.bufferA + at, this.bufferB + at, size, unit, this.flags + first, this.zeroFlags + first, this.countAddress), "block compare");
      this.countComparedBlocks(start, size, state);
      const [differing, zeros] = this.counts;
      this.noteNonZeroUnits(first, last, offset, unit, zeros, state);
      if (differing > 0) this.noteChangedUnits(first, last, offset, unit, state);
      cursor = last;
    }
    if (cursor < units) this.skipUnits(cursor, units);
    await this.recordRuns(offset, length, unit, { flags: this.flagsView, value: 1 }, state);
  }

  /** Units [first, last) of a window are unallocated on both sides: no difference, zeros, nothing read (counted at the segment's end). */
  private skipUnits(first: number, last: number): void {
    this.wasm.bytes.fill(0, this.flags + first, this.flags + last);
    this.wasm.bytes.fill(1, this.zeroFlags + first, this.zeroFlags + last);
  }

  /**
   * Counts as compared the blocks that overlap [start, start+size) and are not counted yet: a
   * block is compared when any part of it is (units may be smaller than blocks: the 4 KiB
   * pieces of a resync that writes, a dynamic image's own blocks), as the native scan counts.
   */
  private countComparedBlocks(start: number, size: number, state: ScanState): void {
    const block = this.config.blockSizeBytes;
    const first = Math.max(Math.floor(start / block), state.lastComparedBlock + 1);
    const last = Math.ceil((start + size) / block) - 1;
    if (last < first) return;
    state.counters.blocksCompared += last - first + 1;
    state.lastComparedBlock = last;
  }

  /**
   * Records the units `pick` selects (every unit when null) as changes, one per run of
   * neighbours of the same kind (data/zero). The flag arrays are searched with indexOf: a
   * per-unit loop here (and in compareWindow) made V8 spend ~0.2 s of CPU per 2 GiB resync
   * optimizing and re-optimizing those async functions, on the cores the scan needs.
   */
  private async recordRuns(offset: number, length: number, unit: number, pick: UnitPick | null, state: ScanState): Promise<void> {
    const units = Math.ceil(length / unit);
    const zero = this.zeroView;
    for (let first = nextPicked(pick, 0, units); first < units; ) {
      const end = runEnd(pick, zero, first, units);
      const start = offset + first * unit;
      await this.recordChange(start, Math.min(offset + length, offset + end * unit) - start, zero[first] === 1, this.bufferA + first * unit, state);
      first = nextPicked(pick, end, units);
    }
  }

  /** Counts the blocks of the flagged (changed) units in [first, last) of a window. */
  private noteChangedUnits(first: number, last: number, offset: number, unit: number, state: ScanState): void {
    const flags = this.flagsView;
    for (let i = flags.indexOf(1, first); i >= 0 && i < last; i = flags.indexOf(1, i + 1)) this.noteChangedBlock(offset + i * unit, state);
  }

  /** Copies one window: data blocks are written, zero/unallocated ones become zero ranges (skipped on a fresh target). */
  private async copyWindow(offset: number, length: number, sourceMap: ExtentPairs, state: ScanState): Promise<void> {
    const unit = this.unit;
    const units = Math.ceil(length / unit);
    const parts = clip(sourceMap, offset, length);
    if (parts.length > 0) {
      await this.readParts(this.source, this.bufferA, 0, offset, length, parts, state.counters);
      this.zeroBlocks(length, unit);
    } else this.wasm.bytes.fill(1, this.zeroFlags, this.zeroFlags + units);
    // Blocks overlapping allocated parts were read ("compared", as the native copy counts them);
    // the others are counted unallocated at the segment's end.
    const active = parts.length > 0 ? activeUnits(parts, NO_EXTENTS, offset, unit, units) : NO_EXTENTS;
    for (let i = 0; i < active.length; i += 2) {
      const start = offset + active[i] * unit;
      this.countComparedBlocks(start, Math.min(offset + length, offset + active[i + 1] * unit) - start, state);
    }
    if (parts.length > 0) {
      this.noteNonZeroUnits(0, units, offset, unit, this.counts[0], state); // zeroBlocks' count of zero units
    }
    await this.recordRuns(offset, length, unit, this.config.targetFresh ? { flags: this.zeroView, value: 0 } : null, state);
  }

  /**
   * Hashes one window of the source into the segment's frame (WASM frameWindow: block states,
   * packed digests); in hash-compare mode also finds the blocks whose target digest differs.
   */
  private async hashWindow(offset: number, length: number, sourceMap: ExtentPairs, task: SegmentTask, state: ScanState): Promise<void> {
    const block = this.config.blockSizeBytes;
    const blocks = Math.ceil(length / block);
    const firstIndex = offset / block - task.firstBlock;
    const parts = clip(sourceMap, offset, length);
    this.markAllocated(parts, offset, length, blocks);
    // Unallocated blocks read as zeros (recordRuns writes holes). Only the block ranges that
    // overlap allocated parts are read and hashed; a fragmented sparse window used to be
    // zero-filled and zero-scanned whole.
    this.wasm.bytes.fill(1, this.zeroFlags, this.zeroFlags + blocks);
    const active = activeUnits(parts, NO_EXTENTS, offset, block, blocks);
    for (let i = 0; i < active.length; i += 2) {
      const [first, last] = [active[i], active[i + 1]];
      const start = offset + first * block;
      const size = Math.min(offset + length, offset + last * block) - start;
      await this.readParts(this.source, this.bufferA, first * block, start, size, clip(parts, start, size), state.counters);
      hashNonZeroBlocksAt(this.config.algo!, this.bufferA + first * block, size, block, this.digests + first * this.digestLength, this.zeroFlags + first);
    }
    const frame = this.frame;
    const digestLength = this.digestLength;
    const target = frame.targetDigestCount >= 0;
    const status = this.wasm.exports.frameWindow(
      this.allocatedFlags,
      this.zeroFlags,
      this.digests,
      blocks,
      digestLength,
      frame.flags + firstIndex,
      frame.digests + state.frameDigestBytes,
      target ? frame.targetFlags + firstIndex : 0,
      frame.targetDigests + state.targetDigestIndex * digestLength,
      Math.max(0, frame.targetDigestCount - state.targetDigestIndex),
      this.flags,
      this.countAddress,
    );
    if (status !== 0) throw new VhdsyncError("VHDSYNC_CORRUPT", `target digest frame at block ${task.firstBlock} has fewer digests than data blocks`, { firstBlock: task.firstBlock });
    const [dataBlocks, unallocatedBlocks, consumed, changedBlocks] = this.counts;
    state.frameDigestBytes += dataBlocks * digestLength;
    state.targetDigestIndex += consumed;
    state.counters.blocksZero += blocks - dataBlocks;
    state.counters.blocksUnallocated += unallocatedBlocks;
    state.counters.blocksCompared += blocks - unallocatedBlocks;
    if (!target || changedBlocks === 0) return;
    this.noteChangedUnits(0, blocks, offset, block, state);
    await this.recordRuns(offset, length, block, { flags: this.flagsView, value: 1 }, state);
  }

  /** allocatedFlags[i] = 1 when an allocated part overlaps block i of the window. */
  private markAllocated(parts: ExtentPairs, offset: number, length: number, blocks: number): void {
    const block = this.config.blockSizeBytes;
    const flags = this.wasm.bytes;
    const base = this.allocatedFlags;
    if (parts.length === 2 && parts[0] === offset && parts[1] === length) {
      flags.fill(1, base, base + blocks);
      return;
    }
    flags.fill(0, base, base + blocks);
    for (let i = 0; i < parts.length; i += 2) {
      const first = Math.floor((parts[i] - offset) / block);
      const last = Math.ceil((parts[i] + parts[i + 1] - offset) / block);
      flags.fill(1, base + first, base + last);
    }
  }

  /**
   * Counts the blocks with a non-zero unit among units [first, last) of a window, `zeros` of
   * which the kernel found zero: by count when units are blocks, else block by block (once
   * per block, which may span windows).
   */
  private noteNonZeroUnits(first: number, last: number, offset: number, unit: number, zeros: number, state: ScanState): void {
    if (unit === this.config.blockSizeBytes) {
      state.nonZeroBlocks += last - first - zeros;
      return;
    }
    const zero = this.zeroView;
    for (let i = indexOrEnd(zero, 0, first, last); i < last; i = indexOrEnd(zero, 0, i + 1, last)) {
      const blockIndex = Math.floor((offset + i * unit) / this.config.blockSizeBytes);
      if (blockIndex !== state.lastNonZeroBlock) {
        state.lastNonZeroBlock = blockIndex;
        state.nonZeroBlocks++;
      }
    }
  }

  /** Counts a changed block once even when it spans several windows. */
  private noteChangedBlock(offsetBytes: number, state: ScanState): void {
    const blockIndex = Math.floor(offsetBytes / this.config.blockSizeBytes);
    if (blockIndex !== state.lastChangedBlock) {
      state.lastChangedBlock = blockIndex;
      state.counters.blocksChanged++;
    }
  }

  /** Records (and, when applying here, performs) one change. */
  private async recordChange(offsetBytes: number, lengthBytes: number, zero: boolean, address: number, state: ScanState): Promise<void> {
    state.changes.add(offsetBytes, lengthBytes, zero);
    if (this.config.apply === "none") return;
    if (zero) state.counters.bytesZeroed += lengthBytes;
    else state.counters.bytesWritten += lengthBytes;
    if (this.config.apply === "caller") {
      if (!zero) {
        // Packed as they come into one buffer, which doubles as needed up to the segment's
        // size: no copy per run and no join at the end (that took a segment's data twice).
        const needed = state.dataBytes + lengthBytes;
        if (!state.data || state.data.length < needed) {
          let size = Math.max(state.data?.length ?? 0, 64 * 1024);
          while (size < needed) size *= 2;
          const grown = this.spareData.take(Math.min(size, state.segmentBytes));
          if (state.data) {
            grown.set(state.data.subarray(0, state.dataBytes));
            this.giveBack(state.data.buffer as ArrayBuffer); // outgrown: a spare for a later segment
          }
          state.data = grown;
        }
        state.data.set(this.wasm.view(address, lengthBytes), state.dataBytes);
        state.dataBytes = needed;
      }
      return;
    }
    const target = this.target!;
    const pending = state.pendingZero;
    if (zero && pending && pending.offset + pending.length === offsetBytes) {
      pending.length += lengthBytes;
      return;
    }
    await this.flushPendingZero(state);
    if (zero) state.pendingZero = { offset: offsetBytes, length: lengthBytes };
    else if (target instanceof RawImage) target.writeSync(this.wasm.view(address, lengthBytes), offsetBytes);
    else await target.write(this.wasm.view(address, lengthBytes), offsetBytes);
  }

  /** Zero ranges are coalesced before being written (one hole punch per run). */
  private async flushPendingZero(state: ScanState): Promise<void> {
    if (!state.pendingZero) return;
    await this.target!.writeZeros(state.pendingZero.offset, state.pendingZero.length);
    state.pendingZero = undefined;
  }

  /** Records that the buffer at `buffer` has file pages mapped in its first `bytes`. */
  private noteMapped(buffer: number, bytes: number): void {
    if (buffer === this.bufferA) this.mappedA = Math.max(this.mappedA, bytes);
    else this.mappedB = Math.max(this.mappedB, bytes);
  }

  /**
   * Reads the allocated `parts` of [offset, offset+length) into the window buffer at `buffer`,
   * `at` bytes in (raw images: their
   * whole pages mapped in place where possible, the rest read); the rest becomes zeros.
   */
  private async readParts(image: DiskImage, buffer: number, at: number, offset: number, length: number, parts: ExtentPairs, counters: SegmentCounters): Promise<void> {
    const address = buffer + at;
    const flat = flatDataOf(image);
    let cursor = offset;
    for (let i = 0; i < parts.length; i += 2) {
      const [partOffset, partLength] = [parts[i], parts[i + 1]];
      if (partOffset > cursor) this.wasm.bytes.fill(0, address + cursor - offset, address + partOffset - offset);
      const partAddress = address + partOffset - offset;
      if (flat) {
        const view = this.wasm.view(partAddress, partLength);
        if (!this.mapper) readExactlySync(flat.handle.fd, view, partOffset, flat.path);
        else {
          const mapped = this.mapper.mapOrRead(view, flat.handle.fd, partOffset, flat.path);
          if (mapped > 0) this.noteMapped(buffer, partAddress + mapped - buffer);
        }
      } else await image.read(this.wasm.view(partAddress, partLength), partOffset);
      counters.bytesRead += partLength;
      cursor = partOffset + partLength;
    }
    if (cursor < offset + length) this.wasm.bytes.fill(0, address + cursor - offset, address + length);
  }
}

/** The image's allocation map as (offset, length) pairs; flat images (raw, block devices, fixed VHD) answer on this thread, straight from the addon. */
export async function allocationPairsOf(image: DiskImage, offset: number, length: number): Promise<ExtentPairs> {
  const flat = flatDataOf(image);
  return flat ? allocationPairsFlatSync(flat, offset, length) : pairsOfExtents(await image.allocationMap(offset, length));
}

/** Opens an image as the format the caller detected (raw directly), or detects it. */
export function openAs(path: string, format: ImageFormat | undefined, readOnly: boolean): Promise<DiskImage> {
  if (format === "raw" || format === "block-device") return RawImage.open(path, readOnly);
  return openImage(path, { readOnly, format });
}

/**
 * WASM scratch for one segment's digest frame (hash modes): the source frame being built
 * (block states, packed digests) and the target frame it is diffed against. Grows to the
 * largest segment seen; the arrays are copied out once per segment.
 */
class SegmentFrame {
  flags = 0;
  digests = 0;
  targetFlags = 0;
  targetDigests = 0;
  /** Digests in the target frame of the current segment; -1 when there is none. */
  targetDigestCount = -1;
  private blocks = 0;
  private targetBytes = 0;

  constructor(private readonly wasm: WasmInstance, private readonly digestLength: number) {}

  /** Sizes the scratch for `task` and copies its target frame in. */
  prepare(task: SegmentTask): void {
    const wasm = this.wasm;
    if (task.blockCount > this.blocks) {
      this.releaseSource();
      this.flags = wasm.alloc(task.blockCount);
      this.digests = wasm.alloc(Math.max(8, task.blockCount * this.digestLength));
      this.targetFlags = wasm.alloc(task.blockCount);
      this.blocks = task.blockCount;
    }
    if (!task.targetFlags || !task.targetDigests) {
      this.targetDigestCount = -1;
      return;
    }
    if (task.targetDigests.length > this.targetBytes || this.targetDigests === 0) {
      if (this.targetDigests) wasm.release(this.targetDigests);
      this.targetBytes = Math.max(8, task.targetDigests.length);
      this.targetDigests = wasm.alloc(this.targetBytes);
    }
    wasm.bytes.set(task.targetFlags.subarray(0, task.blockCount), this.targetFlags);
    wasm.bytes.set(task.targetDigests, this.targetDigests);
    this.targetDigestCount = Math.floor(task.targetDigests.length / this.digestLength);
  }

  private releaseSource(): void {
    for (const address of [this.flags, this.digests, this.targetFlags]) if (address) this.wasm.release(address);
    this.flags = this.digests = this.targetFlags = 0;
    this.blocks = 0;
  }

  release(): void {
    this.releaseSource();
    if (this.targetDigests) this.wasm.release(this.targetDigests);
    this.targetDigests = 0;
    this.targetBytes = 0;
  }
}

interface ScanState {
  counters: SegmentCounters;
  changes: ChangeList;
  /** Source data of the non-zero changes so far ("caller" apply), packed; `dataBytes` of it used. */
  data: Uint8Array | undefined;
  dataBytes: number;
  /** Bytes the segment covers: the most its changes can hold. */
  segmentBytes: number;
  /** Bytes of packed digests in the segment's frame so far (hash modes). */
  frameDigestBytes: number;
  lastChangedBlock: number;
  /** The last block counted as compared (compare and copy modes). */
  lastComparedBlock: number;
  /** Blocks with data so far (compare, copy), and the last of them (units smaller than blocks). */
  nonZeroBlocks: number;
  lastNonZeroBlock: number;
  /** Digests of the target frame consumed so far (hash-compare). */
  targetDigestIndex: number;
  pendingZero?: Extent;
}

/** Units of a window whose flag in `flags` equals `value`. */
interface UnitPick {
  flags: Uint8Array;
  value: number;
}

/** The first unit at or after `from` that `pick` selects (every unit when null), or `units`. */
function nextPicked(pick: UnitPick | null, from: number, units: number): number {
  return pick ? indexOrEnd(pick.flags, pick.value, from, units) : Math.min(from, units);
}

/** The end of the run that starts at selected unit `first`: the next unit not selected or of the other kind (data/zero). */
function runEnd(pick: UnitPick | null, zero: Uint8Array, first: number, units: number): number {
  let end = indexOrEnd(zero, zero[first] ^ 1, first + 1, units);
  if (pick) end = Math.min(end, indexOrEnd(pick.flags, pick.value ^ 1, first + 1, units));
  return end;
}

function indexOrEnd(flags: Uint8Array, value: number, from: number, units: number): number {
  const found = from < units ? flags.indexOf(value, from) : -1;
  return found < 0 || found > units ? units : found;
}

/**
 * The unit ranges [first, last) of a window (numbered from `offset`, `units` in all) that
 * overlap an allocated part of either side, merged and in order, as pairs (first at [2i],
 * last at [2i + 1]). Each map comes sorted (a file's extents, a BAT's blocks), so the two are
 * merged as they are read; a map out of order is sorted first. Linear, with nothing allocated
 * per extent: a fragmented sparse file has thousands of extents per segment.
 */
export function activeUnits(a: ExtentPairs, b: ExtentPairs, offset: number, unit: number, units: number): Float64Array {
  // Each extent opens at most one range.
  const merged = new Float64Array(a.length + b.length);
  let count = 0;
  let open = false;
  let first = 0;
  let last = 0;
  for (let i = 0, j = 0; i < a.length || j < b.length; ) {
    const fromA = j >= b.length || (i < a.length && a[i] <= b[j]);
    const at = fromA ? a[i] : b[j];
    const end = at + (fromA ? a[i + 1] : b[j + 1]);
    if (fromA) i += 2;
    else j += 2;
    const from = Math.floor((at - offset) / unit);
    const to = Math.min(units, Math.ceil((end - offset) / unit));
    // Once both maps are sorted, `from` never decreases (the merge reads them in order).
    if (open && from < first) return activeUnits(sortedPairs(a), sortedPairs(b), offset, unit, units);
    if (open && from <= last) {
      last = Math.max(last, to);
      continue;
    }
    if (open) count = putPair(merged, count, first, last);
    open = true;
    first = from;
    last = to;
  }
  if (open) count = putPair(merged, count, first, last);
  return merged.subarray(0, count);
}

function sortedPairs(map: ExtentPairs): ExtentPairs {
  const order = Array.from({ length: map.length >> 1 }, (_, i) => i).sort((x, y) => map[2 * x] - map[2 * y]);
  const sorted = new Float64Array(map.length);
  order.forEach((from, to) => sorted.set(map.subarray(2 * from, 2 * from + 2), 2 * to));
  return sorted;
}

/** The extents of `map` clipped to [offset, offset+length). */
function clip(map: ExtentPairs, offset: number, length: number): ExtentPairs {
  const end = offset + length;
  const overlaps = (i: number) => map[i] < end && map[i] + map[i + 1] > offset;
  // Counted first: a window's parts are few of a segment's extents, and a Float64Array the
  // size of the whole map per window cost more than the scan (a fragmented segment has 8,192).
  let found = 0;
  for (let i = 0; i < map.length; i += 2) if (overlaps(i)) found++;
  const parts = new Float64Array(2 * found);
  for (let i = 0, count = 0; i < map.length && count < parts.length; i += 2) {
    if (overlaps(i)) count = putPair(parts, count, Math.max(map[i], offset), Math.min(map[i] + map[i + 1], end) - Math.max(map[i], offset));
  }
  return parts;
}
