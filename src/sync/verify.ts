// verify(): DRBD-style online verify — reads two images block by block (in parallel, skipping
// ranges unallocated in both) and reports the blocks that differ. Writes nothing.

import { VhdsyncError } from "../errors.js";
import { openImage } from "../formats/open-image.js";
import type { ProgressListener } from "../progress.js";
import { collectDifferences, diffReport, type DiffReport } from "./diff-report.js";
import { SegmentPool } from "./segment-pool.js";
import { workerCountFor } from "./scan-workers.js";
import { checkScanOptions, DEFAULT_BLOCK_BYTES, DEFAULT_WINDOW_BYTES, blockCountFor, segmentBlocks, segmentTasks } from "./segment-plan.js";
import { monotonicMs } from "../io/clock.js";

/** Options of verify() and diff(). */
export interface CompareOptions {
  /** Block size in bytes for image-vs-image compares (default 4 KiB). */
  blockSizeBytes?: number;
  /** Most extents to list (default 100 000; counts stay exact). */
  maxExtents?: number;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Scanning threads, this one included (default: the cores available; 0 or 1 = this thread only). */
  workers?: number;
}

/**
 * Compares two images block by block.
 * @throws VHDSYNC_SIZE_MISMATCH, VHDSYNC_INTERRUPTED, VHDSYNC_INVALID_ARGUMENT, I/O codes
 */
export async function verify(aPath: string, bPath: string, options: CompareOptions = {}): Promise<DiffReport> {
  const started = monotonicMs();
  checkScanOptions(options, { aPath, bPath });
  const blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_BYTES;
  const virtualSizeBytes = await imageVirtualSize(aPath);
  const sizeB = await imageVirtualSize(bPath);
  if (virtualSizeBytes !== sizeB) {
    throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `${aPath} is ${virtualSizeBytes} bytes but ${bPath} is ${sizeB}`, { aSizeBytes: virtualSizeBytes, bSizeBytes: sizeB });
  }
  const pool = await SegmentPool.start(
    { mode: "compare", sourcePath: aPath, targetPath: bPath, blockSizeBytes, apply: "none", windowBytes: DEFAULT_WINDOW_BYTES },
    workerCountFor(virtualSizeBytes, options.workers),
  );
  const blocksTotal = blockCountFor(virtualSizeBytes, blockSizeBytes);
  const { counters, extents, scanner } = await collectDifferences(pool, segmentTasks(blocksTotal, segmentBlocks(blockSizeBytes)), { operation: "verify", virtualSizeBytes, blockSizeBytes }, options);
  return diffReport({ a: aPath, b: bPath, method: "images", blockSizeBytes, virtualSizeBytes, blocksTotal, scanner }, counters, extents, started);
}

/** Virtual size of the image at `path` in bytes. @throws open errors */
export async function imageVirtualSize(path: string): Promise<number> {
  const image = await openImage(path, { readOnly: true });
  try {
    return image.virtualSize;
  } finally {
    await image.close();
  }
}
