// resync(): makes a target image's content equal to a source's, writing only the blocks that
// differ (docs/resync.md). Workers read both images (or the source and a trusted digest of
// the target) and find the differing blocks; changes are written as they are found (zero
// blocks become holes/unallocated blocks where the target's format allows). Progress is
// checkpointed every few seconds so a killed run resumes; everything is flushed before success.

import { VhdsyncError } from "../errors.js";
import type { DiskImage } from "../formats/disk-image.js";
import { openImage } from "../formats/open-image.js";
import { throttle, type ProgressListener } from "../progress.js";
import type { BlockHashAlgorithm } from "./block-hasher.js";
import { checkBlockSize } from "./digest-format.js";
import { DigestReader } from "./digest-reader.js";
import { DigestWriter } from "./digest-writer.js";
import { checkIdentity, imageIdentity } from "./image-identity.js";
import { checkpointMismatch, defaultCheckpointPath, loadCheckpoint, removeCheckpoint, saveCheckpoint, type ResyncCheckpoint } from "./resync-checkpoint.js";
import { applyChanges } from "./apply-changes.js";
import { SegmentPool, runSegments } from "./segment-pool.js";
import { workerCountFor } from "./scan-workers.js";
import { CALLER_SEGMENT_BYTES, DEFAULT_ALGORITHM, DEFAULT_BLOCK_BYTES, DEFAULT_WINDOW_BYTES, blockCountFor, segmentBlocks, segmentTasks } from "./segment-plan.js";
import { addCounters, emptyCounters, type SegmentCounters, type SegmentResult, type SegmentTask } from "./segment-task.js";

/** Options of resync(). */
export interface ResyncOptions {
  /** Block size in bytes, a power of two from 4 KiB to 64 MiB (default 4 KiB; a target digest's own). */
  blockSizeBytes?: number;
  /** Digest algorithm when hashing (default xxh3-128; a target digest's own). */
  algo?: BlockHashAlgorithm;
  /** Digest file of the target, trusted instead of reading the target (its identity must still match). */
  targetDigestPath?: string;
  /** After success, rewrite the target digest to describe the new target (target-digest mode). */
  updateTargetDigest?: boolean;
  /** Compare and report only; write nothing. */
  dryRun?: boolean;
  /** Resize the target to the source's size when they differ (else VHDSYNC_SIZE_MISMATCH). */
  resize?: boolean;
  /** Checkpoint file (default TARGET.vhdsync-checkpoint). */
  checkpointPath?: string;
  /** Continue from a matching checkpoint, if there is one. */
  resume?: boolean;
  /** Milliseconds between checkpoints (default 2000). */
  checkpointIntervalMs?: number;
  /** Abort to stop cleanly: writes are flushed, a checkpoint is saved, VHDSYNC_INTERRUPTED is thrown. */
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Scanning threads, this one included (default: the cores available; 0 or 1 = this thread only). */
  workers?: number;
}

/** What resync() did. */
export interface ResyncReport extends SegmentCounters {
  source: string;
  target: string;
  mode: "compare" | "target-digest";
  blockSizeBytes: number;
  algo: BlockHashAlgorithm | null;
  virtualSizeBytes: number;
  blocksTotal: number;
  dryRun: boolean;
  resized: boolean;
  resumedFromBlock: number;
  checkpointIgnored?: string;
  digestUpdated: boolean;
  workers: number;
  /** What compared the blocks: the native addon's scanner (flat images, compare mode) or WASM scanners. */
  scanner: "native" | "wasm";
  seconds: number;
  throughputBytesPerSecond: number;
}

interface Plan {
  source: DiskImage;
  target: DiskImage;
  digest?: DigestReader;
  blockSizeBytes: number;
  algo: BlockHashAlgorithm | null;
  mode: "compare" | "target-digest";
  checkpointPath: string;
  checkpointBase: Omit<ResyncCheckpoint, "nextBlock" | "counters" | "updatedAt">;
  resumeBlock: number;
  resumeCounters: SegmentCounters;
  checkpointIgnored?: string;
  resized: boolean;
}

/**
 * Makes `targetPath`'s content equal to `sourcePath`'s.
 * @throws VHDSYNC_SIZE_MISMATCH, VHDSYNC_IDENTITY_MISMATCH, VHDSYNC_CORRUPT / VHDSYNC_TRUNCATED /
 *   VHDSYNC_BAD_CHECKSUM (target digest; nothing is written), VHDSYNC_INTERRUPTED (resumable),
 *   VHDSYNC_INVALID_ARGUMENT, VHDSYNC_UNSUPPORTED (resize), I/O codes
 */
export async function resync(sourcePath: string, targetPath: string, options: ResyncOptions = {}): Promise<ResyncReport> {
  const started = performance.now();
  const plan = await preparePlan(sourcePath, targetPath, options);
  const workers = workerCountFor(plan.source.virtualSize, options.workers);
  try {
    const { counters, complete, digestUpdated, scanner } = await runPlan(plan, options, workers);
    const seconds = (performance.now() - started) / 1000;
    if (!complete) {
      throw new VhdsyncError("VHDSYNC_INTERRUPTED", `resync of ${targetPath} interrupted; rerun with --resume to continue`, {
        path: targetPath,
        checkpointPath: plan.checkpointPath,
      });
    }
    const virtualSizeBytes = plan.source.virtualSize;
    return {
      source: sourcePath,
      target: targetPath,
      mode: plan.mode,
      blockSizeBytes: plan.blockSizeBytes,
      algo: plan.algo,
      virtualSizeBytes,
      blocksTotal: blockCountFor(virtualSizeBytes, plan.blockSizeBytes),
      ...counters,
      dryRun: Boolean(options.dryRun),
      resized: plan.resized,
      resumedFromBlock: plan.resumeBlock,
      ...(plan.checkpointIgnored ? { checkpointIgnored: plan.checkpointIgnored } : {}),
      digestUpdated,
      workers,
      scanner,
      seconds,
      throughputBytesPerSecond: virtualSizeBytes / Math.max(seconds, 1e-9),
    };
  } finally {
    await plan.digest?.close().catch(() => undefined);
    await plan.source.close().catch(() => undefined);
    await plan.target.close().catch(() => undefined);
  }
}

/** Opens everything and validates every input before anything is written. */
async function preparePlan(sourcePath: string, targetPath: string, options: ResyncOptions): Promise<Plan> {
  const source = await openImage(sourcePath, { readOnly: true });
  let target: DiskImage | undefined;
  let digest: DigestReader | undefined;
  try {
    target = await openImage(targetPath, { readOnly: Boolean(options.dryRun) });
    let blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_BYTES;
    let algo: BlockHashAlgorithm | null = null;
    if (options.targetDigestPath) {
      digest = await DigestReader.open(options.targetDigestPath);
      ({ blockSizeBytes, algo } = digestSettings(digest, options));
      await digest.validate();
    }
    checkBlockSize(blockSizeBytes);
    const sizeMismatch = source.virtualSize !== target.virtualSize;
    if (sizeMismatch && !options.resize) {
      throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `${sourcePath} is ${source.virtualSize} bytes but ${targetPath} is ${target.virtualSize} (use --resize)`, {
        sourceSizeBytes: source.virtualSize,
        targetSizeBytes: target.virtualSize,
      });
    }
    if (sizeMismatch && options.dryRun) {
      throw new VhdsyncError("VHDSYNC_UNSUPPORTED", "a dry run cannot preview a resize; run without --dry-run, or compare with vhdsync diff", { path: targetPath });
    }
    if (sizeMismatch && digest) {
      throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", "cannot resize a target described by a target digest; resync without --target-digest", { path: targetPath });
    }
    const mode = digest ? "target-digest" : "compare";
    const checkpointPath = options.checkpointPath ?? defaultCheckpointPath(targetPath);
    const checkpointBase = {
      kind: "vhdsync-resync-checkpoint" as const,
      version: 1,
      source: await imageIdentity(source),
      targetPath: target.path,
      virtualSizeBytes: source.virtualSize,
      blockSizeBytes,
      mode: mode as Plan["mode"],
      algo,
      digestChecksum: digest?.header.headerChecksum ?? null,
    };
    const resume = await resumePoint(options, checkpointPath, checkpointBase);
    if (digest && !(resume.block > 0)) {
      if (digest.header.virtualSizeBytes !== target.virtualSize) {
        throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `target digest describes ${digest.header.virtualSizeBytes} bytes, target is ${target.virtualSize}`, { path: targetPath });
      }
      checkIdentity(digest.header.identity, await imageIdentity(target), "target digest");
    }
    let resized = false;
    if (sizeMismatch && !options.dryRun) {
      await resizeImage(target, source.virtualSize);
      resized = true;
    }
    return { source, target, digest, blockSizeBytes, algo, mode, checkpointPath, checkpointBase, resumeBlock: resume.block, resumeCounters: resume.counters, checkpointIgnored: resume.ignored, resized };
  } catch (error) {
    await digest?.close().catch(() => undefined);
    await target?.close().catch(() => undefined);
    await source.close().catch(() => undefined);
    throw error;
  }
}

/** Block size and algorithm come from the digest; conflicting options are refused. */
function digestSettings(digest: DigestReader, options: ResyncOptions): { blockSizeBytes: number; algo: BlockHashAlgorithm } {
  const { blockSizeBytes, algo } = digest.header;
  if (options.blockSizeBytes !== undefined && options.blockSizeBytes !== blockSizeBytes) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `the target digest uses ${blockSizeBytes}-byte blocks, not ${options.blockSizeBytes}`, { blockSizeBytes });
  }
  if (options.algo !== undefined && options.algo !== algo) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `the target digest uses ${algo}, not ${options.algo}`, { algo });
  }
  return { blockSizeBytes, algo };
}

async function resumePoint(options: ResyncOptions, path: string, expected: Plan["checkpointBase"]): Promise<{ block: number; counters: SegmentCounters; ignored?: string }> {
  const fresh = { block: 0, counters: emptyCounters() };
  if (!options.resume || options.dryRun) return fresh;
  const checkpoint = await loadCheckpoint(path);
  if (!checkpoint) return fresh;
  const mismatch = checkpointMismatch(checkpoint, expected);
  if (mismatch) return { ...fresh, ignored: mismatch };
  return { block: checkpoint.nextBlock, counters: { ...emptyCounters(), ...checkpoint.counters } };
}

async function resizeImage(image: DiskImage, sizeBytes: number): Promise<void> {
  const resizable = image as DiskImage & { resize?: (sizeBytes: number) => Promise<void> };
  if (typeof resizable.resize !== "function") {
    throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${image.path}: this ${image.format} image cannot be resized`, { path: image.path });
  }
  await resizable.resize(sizeBytes);
}

/** Runs the workers over the plan, applying changes, checkpointing and reporting progress. */
async function runPlan(plan: Plan, options: ResyncOptions, workers: number): Promise<{ counters: SegmentCounters; complete: boolean; digestUpdated: boolean; scanner: ResyncReport["scanner"] }> {
  const { source, target, blockSizeBytes } = plan;
  const apply = options.dryRun ? "none" : target.format === "raw" || target.format === "block-device" ? "here" : "caller";
  const blockCount = blockCountFor(source.virtualSize, blockSizeBytes);
  const blocksPerSegment = plan.digest ? plan.digest.header.frameBlocks : segmentBlocks(blockSizeBytes, apply === "caller" ? CALLER_SEGMENT_BYTES : undefined);
  const pool = await SegmentPool.start(
    { mode: plan.digest ? "hash-compare" : "compare", sourcePath: source.path, targetPath: target.path, sourceFormat: source.format, targetFormat: target.format, blockSizeBytes, algo: plan.algo ?? undefined, apply, windowBytes: DEFAULT_WINDOW_BYTES },
    workers,
  );
  const scanner = pool.native ? "native" : "wasm";
  const writer = options.updateTargetDigest && plan.digest && plan.resumeBlock === 0 && !options.dryRun ? await DigestWriter.create(plan.digest.path, { ...plan.digest.header }) : undefined;
  const counters = emptyCounters();
  const progress = throttle(options.onProgress);
  const intervalMs = options.checkpointIntervalMs ?? Number(process.env.VHDSYNC_CHECKPOINT_MS ?? 2000);
  let lastCheckpointMs = performance.now();
  let nextBlock = plan.resumeBlock;
  const checkpoint = async () => {
    if (options.dryRun) return;
    await target.flush();
    const total = { ...plan.resumeCounters };
    addCounters(total, counters);
    await saveCheckpoint(plan.checkpointPath, { ...plan.checkpointBase, nextBlock, counters: total, updatedAt: new Date().toISOString() });
    lastCheckpointMs = performance.now();
  };
  const onResult = async (result: SegmentResult) => {
    if (apply === "caller") await applyChanges(target, result);
    addCounters(counters, result.counters);
    if (writer) await writer.writeFrame({ firstBlock: result.firstBlock, blockCount: result.blockCount, flags: result.frameFlags!, digests: result.frameDigests! });
    nextBlock = result.firstBlock + result.blockCount;
    progress.report({
      operation: "resync",
      doneBytes: Math.min(source.virtualSize, nextBlock * blockSizeBytes),
      totalBytes: source.virtualSize,
      detail: `${counters.blocksChanged} blocks changed`,
      counters: { blocksChanged: counters.blocksChanged, bytesWritten: counters.bytesWritten + counters.bytesZeroed },
    });
    if (performance.now() - lastCheckpointMs >= intervalMs) await checkpoint();
  };
  let complete: boolean;
  try {
    const tasks = plan.digest ? digestTasks(plan.digest, plan.resumeBlock) : segmentTasks(blockCount, blocksPerSegment, plan.resumeBlock);
    complete = await runSegments(pool, tasks, onResult, { signal: options.signal });
    await pool.close();
  } catch (error) {
    await pool.close().catch(() => undefined);
    await writer?.abort();
    if (nextBlock > plan.resumeBlock) await checkpoint().catch(() => undefined);
    throw error;
  }
  progress.flush();
  if (!complete) {
    await writer?.abort();
    await checkpoint();
    return { counters, complete, digestUpdated: false, scanner };
  }
  await target.flush();
  if (!options.dryRun) await removeCheckpoint(plan.checkpointPath);
  if (writer) await finishDigest(writer, target);
  return { counters, complete, digestUpdated: Boolean(writer), scanner };
}


/** Tasks from the target digest's frames, from `resumeBlock` on. */
async function* digestTasks(digest: DigestReader, resumeBlock: number): AsyncGenerator<SegmentTask> {
  let id = 0;
  for await (const frame of digest.frames()) {
    if (frame.firstBlock + frame.blockCount <= resumeBlock) continue;
    yield { id: id++, firstBlock: frame.firstBlock, blockCount: frame.blockCount, targetFlags: frame.flags, targetDigests: frame.digests };
  }
}

/** Closes the target so its identity is final, then commits the updated digest with it. */
async function finishDigest(writer: DigestWriter, target: DiskImage): Promise<void> {
  await target.close();
  const reopened = await openImage(target.path, { readOnly: true });
  try {
    await writer.finish(await imageIdentity(reopened));
  } finally {
    await reopened.close();
  }
}
