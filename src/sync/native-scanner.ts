// Compare-mode scanning of two flat images (raw files, block devices, fixed VHDs) by the
// native addon (src/io/native-compare.ts, native/src/scan.rs): each segment is one job on a
// libuv pool thread, which maps both images' allocated ranges, compares them block by block,
// writes the differing data to the target and starts its writeback (sync_file_range, no
// device cache flush: the final fdatasync makes it durable). No worker thread boots and no WASM instance
// is made, so every core scans from the first segment on. This thread computes the
// allocation maps, punches the zero runs and keeps the counters; results are those of the
// WASM scanner (test/native-scan.test.ts checks both against each other).

import type { DiskImage } from "../formats/disk-image.js";
import { flatDataOf } from "../formats/flat-file.js";
import { compareSegment, nativeCompareAvailable } from "../io/native-compare.js";
import { activeUnits, allocationMapOf, openAs, type ScanConfig } from "./segment-scanner.js";
import { emptyCounters, eachChange, type SegmentResult, type SegmentTask } from "./segment-task.js";

/**
 * Blocks larger than this are compared (and rewritten) in parts of this size, a power of two
 * so that it divides every block size; the addon maps 4 MiB of each image at a time.
 */
const NATIVE_UNIT_BYTES = 4 * 1024 * 1024;

export class NativeCompareScanner {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  private constructor(readonly config: ScanConfig, readonly threads: number, private readonly source: DiskImage, private readonly target: DiskImage) {}

  /**
   * A native scanner for `config` running up to `threads` segments at once, when it applies:
   * compare mode, results that carry no data ("none" or "here"), the addon available, and
   * both images flat. Otherwise undefined (nothing stays open).
   * @throws open errors from the images
   */
  static async open(config: ScanConfig, threads: number): Promise<NativeCompareScanner | undefined> {
    if (config.mode !== "compare" || config.apply === "caller" || !config.targetPath || !nativeCompareAvailable()) return undefined;
    const source = await openAs(config.sourcePath, config.sourceFormat, true);
    let target: DiskImage | undefined;
    try {
      target = await openAs(config.targetPath, config.targetFormat, config.apply !== "here");
      if (flatDataOf(source) && flatDataOf(target)) return new NativeCompareScanner(config, Math.max(1, threads), source, target);
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
    const unit = Math.min(block, NATIVE_UNIT_BYTES);
    const start = task.firstBlock * block;
    const end = Math.min(this.source.virtualSize, (task.firstBlock + task.blockCount) * block);
    // Flat images answer with extents clipped to the range, on this thread.
    const sourceMap = await allocationMapOf(this.source, start, end - start);
    const targetMap = await allocationMapOf(this.target, start, end - start);
    const ranges = activeUnits(sourceMap, targetMap, start, unit, Math.ceil((end - start) / unit)).map(([first, last]): [number, number] => [start + first * unit, Math.min(end, start + last * unit)]);
    // Unallocated on both sides: equal zeros, nothing to map.
    const outcome = ranges.length === 0 ? { blocksCompared: 0, blocksChanged: 0, blocksNonZero: 0, bytesWritten: 0, changes: 0, changesArray: new Float64Array(0) } : await this.exclusive(() =>
      compareSegment({
        sourceFd: flatDataOf(this.source)!.handle.fd,
        targetFd: flatDataOf(this.target)!.handle.fd,
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
