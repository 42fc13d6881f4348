// Compare-mode scanning by the native addon (src/io/native-compare.ts, native/src/scan.rs) of
// two images whose data lies in plain runs of their files: raw files, block devices, fixed
// VHDs, dynamic VHDs and clean VHDX files (one run per allocated block;
// src/formats/data-location.ts). Each
// segment is one job on a libuv pool thread, which maps both images' allocated ranges,
// compares them block by block, writes the differing data to the target and starts its
// writeback (sync_file_range, no device cache flush: the final fdatasync makes it durable).
// No worker thread boots and no WASM instance is made, so every core scans from the first
// segment on. This thread computes the allocation maps and where each range lies in the
// files, punches the zero runs and keeps the counters; results are those of the WASM scanner
// (test/native-scan.test.ts checks both against each other).

import type { DiskImage } from "../formats/disk-image.js";
import { dataLocatorOf, type DataLocator } from "../formats/data-location.js";
import { flatDataOf } from "../formats/flat-file.js";
import { compareSegment, nativeCompareAvailable, type CompareRange } from "../io/native-compare.js";
import { activeUnits, allocationMapOf, openAs, type ScanConfig } from "./segment-scanner.js";
import { compareUnitBytes } from "./segment-plan.js";
import { emptyCounters, eachChange, type SegmentResult, type SegmentTask } from "./segment-task.js";

export class NativeCompareScanner {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  /** Compare granularity: the block, or a part of it. */
  private readonly unit: number;

  private constructor(
    readonly config: ScanConfig,
    readonly threads: number,
    private readonly source: DiskImage,
    private readonly target: DiskImage,
    private readonly sourceData: DataLocator,
    private readonly targetData: DataLocator,
  ) {
    // Parts of large blocks lie in one run of each file (a dynamic image's block at most).
    this.unit = compareUnitBytes(config.blockSizeBytes, [sourceData.granuleBytes, targetData.granuleBytes]);
  }

  /**
   * A native scanner for `config` running up to `threads` segments at once, when it applies:
   * compare mode, results that carry no data ("none" or "here"), the addon available, both
   * images' data in plain runs of their files, and a flat target when writing (other formats
   * allocate as they are written). Otherwise undefined (nothing stays open).
   * @throws open errors from the images
   */
  static async open(config: ScanConfig, threads: number): Promise<NativeCompareScanner | undefined> {
    if (config.mode !== "compare" || config.apply === "caller" || !config.targetPath || !nativeCompareAvailable()) return undefined;
    const source = await openAs(config.sourcePath, config.sourceFormat, true);
    let target: DiskImage | undefined;
    try {
      target = await openAs(config.targetPath, config.targetFormat, config.apply !== "here");
      const sourceData = dataLocatorOf(source);
      const targetData = dataLocatorOf(target);
      const writable = config.apply !== "here" || flatDataOf(target) !== undefined;
      if (sourceData && targetData && writable) return new NativeCompareScanner(config, Math.max(1, threads), source, target, sourceData, targetData);
    } catch (error) {
      await source.close();
      throw error;
    }
    await source.close();
    await target.close();
    return undefined;
  }

  /** Compares one segment (and writes its differences when applying). @throws I/O errors (VhdsyncError) */
  async scan(task: SegmentTask): Promise<SegmentResult> {
    const block = this.config.blockSizeBytes;
    const unit = this.unit;
    const start = task.firstBlock * block;
    const end = Math.min(this.source.virtualSize, (task.firstBlock + task.blockCount) * block);
    // Flat images answer with extents clipped to the range, on this thread; VHDs from their BAT.
    const sourceMap = await allocationMapOf(this.source, start, end - start);
    const targetMap = await allocationMapOf(this.target, start, end - start);
    const ranges = activeUnits(sourceMap, targetMap, start, unit, Math.ceil((end - start) / unit)).flatMap(([first, last]) =>
      placeRange(start + first * unit, Math.min(end, start + last * unit), this.sourceData, this.targetData),
    );
    // Unallocated on both sides: equal zeros, nothing to map.
    const outcome = ranges.length === 0 ? { blocksCompared: 0, blocksChanged: 0, blocksNonZero: 0, bytesWritten: 0, changes: 0, changesArray: new Float64Array(0) } : await this.exclusive(() =>
      compareSegment({
        sourceFd: this.sourceData.fd,
        targetFd: this.targetData.fd,
        blockSizeBytes: block,
        unitBytes: unit,
        startBytes: start,
        lengthBytes: end - start,
        ranges,
        write: this.config.apply === "here",
      }),
    );
    const counters = emptyCounters();
    counters.blocksCompared = outcome.blocksCompared;
    counters.blocksUnallocated = task.blockCount - outcome.blocksCompared;
    counters.blocksZero = task.blockCount - outcome.blocksNonZero;
    counters.blocksChanged = outcome.blocksChanged;
    counters.bytesRead = [...sourceMap, ...targetMap].reduce((sum, extent) => sum + extent.length, 0);
    counters.bytesWritten = outcome.bytesWritten;
    if (this.config.apply === "here") {
      for (const change of eachChange(outcome.changesArray)) {
        if (!change.zero) continue;
        await this.target.writeZeros(change.offsetBytes, change.lengthBytes);
        counters.bytesZeroed += change.lengthBytes;
      }
    }
    return { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters, changes: outcome.changesArray };
  }

  /** Runs `job` once fewer than `threads` jobs are running. */
  private async exclusive<T>(job: () => Promise<T>): Promise<T> {
    while (this.running >= this.threads) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await job();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  /** Closes the images (the caller flushes the target before success). */
  async close(): Promise<void> {
    try {
      await this.source.close();
    } finally {
      await this.target.close();
    }
  }
}

/**
 * [from, to) split where either image's data moves to another run of its file (at most at
 * each granule, which the unit divides), with each part's file offsets (null: reads as zeros).
 */
function placeRange(from: number, to: number, source: DataLocator, target: DataLocator): CompareRange[] {
  const sourcePieces = source.locate(from, to - from);
  const targetPieces = target.locate(from, to - from);
  const ranges: CompareRange[] = [];
  const fileOffset = (piece: { offset: number; fileOffset: number | null }, at: number) => (piece.fileOffset === null ? null : piece.fileOffset + (at - piece.offset));
  for (let at = from, i = 0, j = 0; at < to; ) {
    const a = sourcePieces[i];
    const b = targetPieces[j];
    const end = Math.min(a.offset + a.length, b.offset + b.length);
    ranges.push([at, end, fileOffset(a, at), fileOffset(b, at)]);
    if (end === a.offset + a.length) i++;
    if (end === b.offset + b.length) j++;
    at = end;
  }
  return ranges;
}
