// copy(): the "full download" — copies every allocated source block to the target without
// checksums; zero and unallocated ranges stay (or become) holes / unallocated blocks where
// the target's format allows. A missing target is created as a sparse raw file.

import { existsSync, promises as fsp } from "node:fs";
import { VhdsyncError } from "../errors.js";
import { checkFlags } from "../arguments.js";
import type { DiskImage } from "../formats/disk-image.js";
import { refuseWritingDependedOn } from "../formats/vhd/vhd-children.js";
import { openImage } from "../formats/open-image.js";
import { RawImage } from "../formats/raw.js";
import { throttle, type ProgressListener } from "../progress.js";
import { applyChanges } from "./apply-changes.js";
import { SegmentPool, runSegments } from "./segment-pool.js";
import { workerCountFor } from "./scan-workers.js";
import { parentsOf, refuseReadOnlyFormat, refuseSameFile } from "./image-identity.js";
import { commitNewFile, removeStaleTempFiles, tempPathFor } from "../io/atomic-file.js";
import { refuseDanglingLink } from "../io/file.js";
import { checkScanOptions, DEFAULT_BLOCK_BYTES, DEFAULT_WINDOW_BYTES, blockCountFor, segmentBlocksFor, segmentTasks } from "./segment-plan.js";
import { addCounters, emptyCounters, type SegmentCounters, type SegmentResult } from "./segment-task.js";
import { monotonicMs } from "../io/clock.js";
import { acquireWriteLock, type WriteLock } from "../io/write-lock.js";

/** Options of copy(). */
export interface CopyOptions {
  /** Granularity of zero detection in bytes (default 4 KiB). */
  blockSizeBytes?: number;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Scanning threads, this one included (default: the cores available; 0 or 1 = this thread only). */
  workers?: number;
  /**
   * The existing target was just created and reads as zeros everywhere (e.g. a new VHD made
   * by convert): zero source blocks are skipped instead of written as zeros.
   */
  targetFresh?: boolean;
  /** Accept an existing target larger than the source (its tail is left as it is). */
  allowLargerTarget?: boolean;
}

/** What copy() did. */
export interface CopyReport extends SegmentCounters {
  source: string;
  target: string;
  created: boolean;
  virtualSizeBytes: number;
  /** The granularity of zero detection. */
  blockSizeBytes: number;
  blocksTotal: number;
  /**
   * Blocks written with the source's data: every block that is not zero (a copy compares
   * nothing, so `blocksChanged` stays 0). Zero blocks are unallocated or zeroed instead,
   * counted in `bytesZeroed` when the target existed, whatever it held there.
   */
  blocksWritten: number;
  /** Which scanner copied: the addon's pool jobs (a new raw target) or the WASM kernels. */
  scanner: "native" | "wasm";
  seconds: number;
  throughputBytesPerSecond: number;
}

/**
 * Copies `sourcePath`'s content to `targetPath` (created as sparse raw if missing).
 * @throws VHDSYNC_SIZE_MISMATCH (existing target of another size), VHDSYNC_INTERRUPTED, I/O codes
 */
export async function copy(sourcePath: string, targetPath: string, options: CopyOptions = {}): Promise<CopyReport> {
  const started = monotonicMs();
  // Arguments first: no target is created or opened for a bad one.
  checkScanOptions(options, { sourcePath, targetPath });
  checkFlags(options, ["targetFresh", "allowLargerTarget"]);
  const blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_BYTES;
  await refuseSameFile(targetPath, [sourcePath], "the target");
  await refuseDanglingLink(targetPath, "the target");
  const source = await openImage(sourcePath, { readOnly: true });
  let target: DiskImage | undefined;
  const created = !existsSync(targetPath);
  // A new target is written under a temp name beside it and renamed into place once complete
  // and flushed: a copy killed at any moment leaves no partial target under its name (the
  // next copy to that name removes the temp file a killed one left).
  const writePath = created ? tempPathFor(targetPath) : targetPath;
  let committed = false;
  let lock: WriteLock | undefined;
  try {
    await refuseSameFile(targetPath, await parentsOf(source), "the target", "the source's parent ");
    // One writer per existing target (a new one is a temp file of this call's own; so is the
    // fresh image convert hands over).
    if (!created && !options.targetFresh) lock = await acquireWriteLock(targetPath, "copy");
    if (created) await removeStaleTempFiles(targetPath);
    target = created ? await RawImage.create(writePath, source.virtualSize) : await openImage(targetPath, { readOnly: false });
    refuseReadOnlyFormat(target);
    if (!created) await refuseWritingDependedOn(target, "copy into");
    const sizeAccepted = target.virtualSize === source.virtualSize || (options.allowLargerTarget && target.virtualSize > source.virtualSize);
    if (!sizeAccepted) {
      throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `${sourcePath} is ${source.virtualSize} bytes but ${targetPath} is ${target.virtualSize}`, { path: targetPath });
    }
    const apply = target.format === "raw" || target.format === "block-device" ? "here" : "caller";
    // Everything that can throw comes before the pool starts: nothing between its start and
    // the try that closes it (its workers would keep the process alive).
    const blocksPerSegment = segmentBlocksFor(blockSizeBytes, apply, target);
    const counters = emptyCounters();
    const progress = throttle(options.onProgress);
    const pool = await SegmentPool.start(
      { mode: "copy", sourcePath, targetPath: writePath, sourceFormat: source.format, targetFormat: target.format, blockSizeBytes, apply, windowBytes: DEFAULT_WINDOW_BYTES, targetFresh: created || Boolean(options.targetFresh) },
      workerCountFor(source.virtualSize, options.workers),
    );
    const scanner = pool.native ? "native" : "wasm";
    let complete: boolean;
    try {
      complete = await runSegments(
        pool,
        segmentTasks(blockCountFor(source.virtualSize, blockSizeBytes), blocksPerSegment),
        async (result) => {
          if (apply === "caller") await applyChanges(target!, result);
          addCounters(counters, result.counters);
          const doneBytes = Math.min(source.virtualSize, (result.firstBlock + result.blockCount) * blockSizeBytes);
          progress.report({ operation: "copy", doneBytes, totalBytes: source.virtualSize, counters: { bytesWritten: counters.bytesWritten } });
        },
        { signal: options.signal },
      );
    } finally {
      await pool.close();
    }
    await target.flush();
    if (!complete) throw new VhdsyncError("VHDSYNC_INTERRUPTED", `copy to ${targetPath} interrupted (rerun to copy again)`, { path: targetPath });
    await target.close();
    target = undefined;
    // Never over a file that appeared during the run (another copy to the same new target).
    if (created) await commitNewFile(writePath, targetPath);
    committed = true;
    progress.flush(); // once the copy is in place: an exception from the listener leaves nothing undone
    const seconds = (monotonicMs() - started) / 1000;
    const blocksTotal = blockCountFor(source.virtualSize, blockSizeBytes);
    return {
      source: sourcePath,
      target: targetPath,
      created,
      virtualSizeBytes: source.virtualSize,
      blockSizeBytes,
      blocksTotal,
      blocksWritten: blocksTotal - counters.blocksZero,
      ...counters,
      scanner,
      seconds,
      throughputBytesPerSecond: source.virtualSize / Math.max(seconds, 1e-9),
    };
  } finally {
    await target?.close().catch(() => undefined);
    await source.close().catch(() => undefined);
    // A target this call created appears only complete: a failed or interrupted copy removes it.
    if (created && !committed) await fsp.rm(writePath, { force: true }).catch(() => undefined);
    await lock?.release();
  }
}
