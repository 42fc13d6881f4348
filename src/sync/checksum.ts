// checksum(): writes the digest file of an image (docs/digest-file.md). Segments are read and
// hashed on worker threads; frames are written in order by this thread, streamed to disk.

import type { DiskImage } from "../formats/disk-image.js";
import { openImage } from "../formats/open-image.js";
import { throttle, type ProgressListener } from "../progress.js";
import { VhdsyncError } from "../errors.js";
import type { BlockHashAlgorithm } from "./block-hasher.js";
import { DigestWriter } from "./digest-writer.js";
import { imageIdentity, parentsOf, refuseSameFile } from "./image-identity.js";
import { refuseSpecialOutput } from "../io/file.js";
import { SegmentPool, runSegments } from "./segment-pool.js";
import { workerCountFor } from "./scan-workers.js";
import { checkScanOptions, DEFAULT_ALGORITHM, DEFAULT_BLOCK_BYTES, DEFAULT_WINDOW_BYTES, blockCountFor, segmentBlocks, segmentTasks } from "./segment-plan.js";
import { addCounters, emptyCounters } from "./segment-task.js";
import { monotonicMs } from "../io/clock.js";
import { checkImage } from "../arguments.js";

/** Options of checksum(). */
export interface ChecksumOptions {
  /** Block size in bytes: a power of two from 4 KiB to 64 MiB (default 4 KiB). */
  blockSizeBytes?: number;
  /** Digest algorithm (default xxh3-128). */
  algo?: BlockHashAlgorithm;
  onProgress?: ProgressListener;
  /** Aborting stops the run; no digest file is left behind (VHDSYNC_INTERRUPTED). */
  signal?: AbortSignal;
  /** Scanning threads, this one included (default: the cores available; 0 or 1 = this thread only). */
  workers?: number;
}

/** What checksum() did. */
export interface ChecksumReport {
  image: string;
  digestPath: string;
  algo: BlockHashAlgorithm;
  blockSizeBytes: number;
  virtualSizeBytes: number;
  blocksTotal: number;
  blocksData: number;
  blocksZero: number;
  blocksUnallocated: number;
  bytesRead: number;
  /** Which scanner hashed the image: the addon's pool jobs or the WASM kernels on worker threads. */
  scanner: "native" | "wasm";
  seconds: number;
  throughputBytesPerSecond: number;
}

/**
 * Computes the digest file of `image` (a path or an open image) and writes it to `outPath`
 * atomically. Unallocated and all-zero blocks are recorded without a digest.
 * @throws VHDSYNC_INVALID_ARGUMENT (block size), VHDSYNC_INTERRUPTED, open/read/write errors
 */
export async function checksum(image: string | DiskImage, outPath: string, options: ChecksumOptions = {}): Promise<ChecksumReport> {
  const started = monotonicMs();
  if (typeof image !== "string") checkImage(image, "image", true);
  checkScanOptions(options, typeof image === "string" ? { image, outPath } : { outPath });
  const blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_BYTES;
  const algo = options.algo ?? DEFAULT_ALGORITHM;
  await refuseSpecialOutput(outPath, "the digest file");
  await refuseSameFile(outPath, [typeof image === "string" ? image : image.path], "the digest file");
  const opened = typeof image === "string" ? await openImage(image, { readOnly: true }) : image;
  let identity, virtualSizeBytes: number;
  try {
    // A parent of a differencing image is an input too: writing over it would break the chain.
    await refuseSameFile(outPath, await parentsOf(opened), "the digest file", "the image's parent ");
    identity = await imageIdentity(opened);
    virtualSizeBytes = opened.virtualSize;
  } finally {
    if (typeof image === "string") await opened.close();
  }
  const blockCount = blockCountFor(virtualSizeBytes, blockSizeBytes);
  const frameBlocks = segmentBlocks(blockSizeBytes);
  const pool = await SegmentPool.start(
    { mode: "hash", sourcePath: opened.path, sourceFormat: opened.format, blockSizeBytes, algo, apply: "none", windowBytes: DEFAULT_WINDOW_BYTES },
    workerCountFor(virtualSizeBytes, options.workers),
  );
  const writer = await DigestWriter.create(outPath, { algo, blockSizeBytes, virtualSizeBytes, blockCount, frameBlocks, identity }).catch(async (error) => {
    await pool.close();
    throw error;
  });
  const scanner = pool.native ? "native" : "wasm";
  const counters = emptyCounters();
  const progress = throttle(options.onProgress);
  let doneBytes = 0;
  try {
    const complete = await runSegments(
      pool,
      segmentTasks(blockCount, frameBlocks),
      async (result) => {
        addCounters(counters, result.counters);
        await writer.writeFrame({ firstBlock: result.firstBlock, blockCount: result.blockCount, flags: result.frameFlags!, digests: result.frameDigests! });
        doneBytes = Math.min(virtualSizeBytes, (result.firstBlock + result.blockCount) * blockSizeBytes);
        progress.report({ operation: "checksum", doneBytes, totalBytes: virtualSizeBytes });
      },
      { signal: options.signal },
    );
    if (!complete) throw new VhdsyncError("VHDSYNC_INTERRUPTED", `checksum of ${opened.path} interrupted`, { path: opened.path });
    await pool.close();
    await writer.finish();
  } catch (error) {
    await pool.close().catch(() => undefined);
    await writer.abort();
    throw error;
  }
  progress.flush();
  const seconds = (monotonicMs() - started) / 1000;
  return {
    image: opened.path,
    digestPath: outPath,
    algo,
    blockSizeBytes,
    virtualSizeBytes,
    blocksTotal: blockCount,
    blocksData: blockCount - counters.blocksZero,
    blocksZero: counters.blocksZero,
    blocksUnallocated: counters.blocksUnallocated,
    bytesRead: counters.bytesRead,
    scanner,
    seconds,
    throughputBytesPerSecond: virtualSizeBytes / Math.max(seconds, 1e-9),
  };
}
