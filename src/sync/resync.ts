// resync(): makes a target image's content equal to a source's, writing only the blocks that
// differ (docs/resync.md). Workers read both images (or the source and a trusted digest of
// the target) and find the differing blocks; changes are written as they are found (zero
// blocks become holes/unallocated blocks where the target's format allows). Progress is
// checkpointed every few seconds so a killed run resumes; everything is flushed before success.

import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { VhdsyncError } from "../errors.js";
import { checkFlags } from "../arguments.js";
import { sealIntact } from "../hash/sealed-json.js";
import type { DiskImage } from "../formats/disk-image.js";
import { refuseWritingDependedOn } from "../formats/vhd/vhd-children.js";
import { openImage } from "../formats/open-image.js";
import { throttle, type ProgressListener } from "../progress.js";
import type { BlockHashAlgorithm } from "./block-hasher.js";
import { BLOCK_DATA, BLOCK_UNALLOCATED, BLOCK_ZERO, checkBlockSize } from "./digest-format.js";
import { DigestReader } from "./digest-reader.js";
import { DigestWriter } from "./digest-writer.js";
import { checkIdentity, fileState, imageIdentity, parentsOf, refuseReadOnlyFormat, refuseSameFile } from "./image-identity.js";
import { CHECKPOINT_VERSION, checkCheckpointPath, checkpointMismatch, defaultCheckpointPath, loadCheckpoint, removeCheckpoint, saveCheckpoint, targetStateMismatch, type CheckpointBase } from "./resync-checkpoint.js";
import { applyChanges } from "./apply-changes.js";
import { BackgroundFlush } from "./background-flush.js";
import { SegmentPool, runSegments } from "./segment-pool.js";
import { activeUnits, allocationPairsOf } from "./segment-scanner.js";
import { NO_EXTENTS } from "../io/extent-pairs.js";
import { workerCountFor } from "./scan-workers.js";
import { checkScanOptions, callerSegmentsWholeBlocks, DEFAULT_ALGORITHM, DEFAULT_BLOCK_BYTES, DEFAULT_WINDOW_BYTES, blockCountFor, segmentBlocksFor, segmentTasks } from "./segment-plan.js";
import { addCounters, emptyCounters, type SegmentCounters, type SegmentResult, type SegmentTask } from "./segment-task.js";
import { monotonicMs } from "../io/clock.js";
import { acquireWriteLock } from "../io/write-lock.js";
import { removeStaleTempFiles } from "../io/atomic-file.js";
import { refuseUnresizable } from "./resize.js";

/** Options of resync(). */
export interface ResyncOptions {
  /** Block size in bytes, a power of two from 4 KiB to 64 MiB (default 4 KiB; a target digest's own). */
  blockSizeBytes?: number;
  /** The target digest's algorithm, checked against it (only with targetDigestPath). */
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
  /**
   * A resumed run's counters cover only its own part (from resumedFromBlock on). These are
   * the whole job's: the stopped runs' (from the checkpoint) plus this one's. Only when the
   * run resumed.
   */
  jobTotals?: SegmentCounters;
  /**
   * With jobTotals: false when a run before was killed (resumed from a periodic checkpoint,
   * now or earlier in the job) or stopped by an error. Its writes after its last checkpoint,
   * or in the segments it dropped, are counted by no run, so the totals are a lower bound.
   * True after clean stops (abort signals, Ctrl-C) only.
   */
  jobTotalsComplete?: boolean;
  checkpointIgnored?: string;
  digestUpdated: boolean;
  /** Why a requested digest update (updateTargetDigest) was not made: the digest is then stale. */
  digestNotUpdated?: string;
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
  checkpointBase: CheckpointBase;
  resumeBlock: number;
  resumeCounters: SegmentCounters;
  /** See ResyncCheckpoint.countersComplete (true for a run that starts at block 0). */
  resumeCountersComplete: boolean;
  checkpointIgnored?: string;
  resized: boolean;
}

/** Checks resync()'s arguments before anything is opened or written. @throws VHDSYNC_INVALID_ARGUMENT */
function checkResyncOptions(sourcePath: string, targetPath: string, options: ResyncOptions): void {
  const { targetDigestPath, checkpointPath } = options ?? {};
  checkScanOptions(options, {
    sourcePath,
    targetPath,
    ...(targetDigestPath !== undefined ? { targetDigestPath } : {}),
    ...(checkpointPath !== undefined ? { checkpointPath } : {}),
  });
  checkFlags(options, ["updateTargetDigest", "dryRun", "resize", "resume"]);
  // Milliseconds: any non-negative number (Infinity: no periodic checkpoints).
  const interval = options.checkpointIntervalMs;
  if (interval !== undefined && !(typeof interval === "number" && interval >= 0)) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `checkpointIntervalMs must be a non-negative number of milliseconds, got ${String(interval)}`, { argument: "checkpointIntervalMs" });
  }
  // Without a target digest the blocks' bytes are compared: an algorithm would be ignored, and
  // there is no digest to update.
  if (options.algo !== undefined && !targetDigestPath) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", "a digest algorithm applies only with a target digest (a resync without one compares the blocks' bytes)", { argument: "algo" });
  }
  if (options.updateTargetDigest && !targetDigestPath) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", "updateTargetDigest applies only with a target digest (targetDigestPath)", { argument: "updateTargetDigest" });
  }
}

/**
 * Makes `targetPath`'s content equal to `sourcePath`'s.
 * @throws VHDSYNC_SIZE_MISMATCH, VHDSYNC_IDENTITY_MISMATCH, VHDSYNC_CORRUPT / VHDSYNC_TRUNCATED /
 *   VHDSYNC_BAD_CHECKSUM (target digest; nothing is written), VHDSYNC_INTERRUPTED (resumable),
 *   VHDSYNC_INVALID_ARGUMENT, VHDSYNC_UNSUPPORTED (resize), I/O codes
 */
export async function resync(sourcePath: string, targetPath: string, options: ResyncOptions = {}): Promise<ResyncReport> {
  const started = monotonicMs();
  // Arguments first: nothing is opened, resized or written for a bad one.
  checkResyncOptions(sourcePath, targetPath, options);
  // One writer per target (src/io/write-lock.ts), from before anything is written or resized.
  const lock = options.dryRun ? undefined : await acquireWriteLock(targetPath, "resync");
  let plan: Plan;
  try {
    plan = await preparePlan(sourcePath, targetPath, options);
  } catch (error) {
    await lock?.release();
    throw error;
  }
  const workers = workerCountFor(plan.source.virtualSize, options.workers);
  try {
    const { counters, complete, digestUpdated, scanner } = await runPlan(plan, options, workers);
    const seconds = (monotonicMs() - started) / 1000;
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
      ...(plan.resumeBlock > 0 ? { jobTotals: addCounters({ ...plan.resumeCounters }, counters), jobTotalsComplete: plan.resumeCountersComplete } : {}),
      ...(plan.checkpointIgnored ? { checkpointIgnored: plan.checkpointIgnored } : {}),
      digestUpdated,
      ...(options.updateTargetDigest && !digestUpdated ? { digestNotUpdated: digestNotUpdatedReason(plan, options) } : {}),
      workers,
      scanner,
      seconds,
      throughputBytesPerSecond: virtualSizeBytes / Math.max(seconds, 1e-9),
    };
  } finally {
    await plan.digest?.close().catch(() => undefined);
    await plan.source.close().catch(() => undefined);
    await plan.target.close().catch(() => undefined);
    await lock?.release();
  }
}

/** Opens everything and validates every input before anything is written. */
async function preparePlan(sourcePath: string, targetPath: string, options: ResyncOptions): Promise<Plan> {
  // Files that would be destroyed: the target or the checkpoint being an input, a checkpoint
  // path naming a file that is not a checkpoint (it is replaced during the run and removed
  // after it).
  await refuseSameFile(targetPath, [sourcePath], "the target");
  const checkpointPath = options.checkpointPath ?? defaultCheckpointPath(targetPath);
  await refuseSameFile(checkpointPath, [sourcePath, targetPath, options.targetDigestPath], "the checkpoint file");
  await checkCheckpointPath(checkpointPath, { written: !options.dryRun });
  // A run killed while it rewrote the target digest (--update-digest) left the new digest's
  // temp file beside it; the next run that uses the digest removes it (when it is refused, or
  // resumes and so does not rewrite the digest, nothing else would until a checksum of it).
  if (options.targetDigestPath && !options.dryRun) await removeStaleTempFiles(options.targetDigestPath);
  const source = await openImage(sourcePath, { readOnly: true });
  let target: DiskImage | undefined;
  let digest: DigestReader | undefined;
  try {
    // A target that is one of the source's parents would change the source under the run.
    const sourceParents = await parentsOf(source);
    await refuseSameFile(targetPath, sourceParents, "the target", "the source's parent ");
    target = await openImage(targetPath, { readOnly: Boolean(options.dryRun) });
    if (!options.dryRun) {
      refuseReadOnlyFormat(target);
      await refuseWritingDependedOn(target, "resync into");
    }
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
      throw new VhdsyncError("VHDSYNC_UNSUPPORTED", "a dry run cannot preview a resize; run without --dry-run (vhdsync compare SOURCE TARGET says whether the images differ past a zero tail, and where they first do)", { path: targetPath });
    }
    if (sizeMismatch && digest) {
      throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", "cannot resize a target described by a target digest; resync without --target-digest", { path: targetPath });
    }
    const mode = digest ? "target-digest" : "compare";
    const checkpointBase = {
      kind: "vhdsync-resync-checkpoint" as const,
      version: CHECKPOINT_VERSION,
      source: await imageIdentity(source),
      // Absolute: a resume may name the target another way, or run from another directory.
      targetPath: resolve(target.path),
      sourceParents: await Promise.all(sourceParents.map(fileState)),
      targetParents: await Promise.all((await parentsOf(target)).map(fileState)),
      virtualSizeBytes: source.virtualSize,
      blockSizeBytes,
      mode: mode as Plan["mode"],
      algo,
      digestChecksum: digest?.header.headerChecksum ?? null,
    };
    const resume = await resumePoint(options, checkpointPath, checkpointBase, source, target);
    if (digest && !(resume.block > 0)) {
      if (digest.header.virtualSizeBytes !== target.virtualSize) {
        throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `target digest describes ${digest.header.virtualSizeBytes} bytes, target is ${target.virtualSize}`, { path: targetPath });
      }
      await checkDigestIdentity(digest, target, checkpointPath, options);
    }
    let resized = false;
    if (sizeMismatch && !options.dryRun) {
      await resizeTarget(target, source.virtualSize);
      resized = true;
    } else if (options.resize && !options.dryRun && !digest) {
      // The source's size already: a dynamic VHD's resize() to it finishes a shrink that a
      // killed run stopped after the footer (docs/vhd.md "Resizing"); others have nothing to do.
      await target.resize?.(target.virtualSize);
    }
    return { source, target, digest, blockSizeBytes, algo, mode, checkpointPath, checkpointBase, resumeBlock: resume.block, resumeCounters: resume.counters, resumeCountersComplete: resume.countersComplete, checkpointIgnored: resume.ignored, resized };
  } catch (error) {
    await digest?.close().catch(() => undefined);
    await target?.close().catch(() => undefined);
    await source.close().catch(() => undefined);
    throw error;
  }
}

/**
 * The target digest must describe the target as it is. A refusal names --resume when a stopped
 * run's checkpoint is there: that run's own writes changed the target (a kill, or a full
 * filesystem when --update-digest rewrote the digest), and resuming it skips this check.
 */
async function checkDigestIdentity(digest: DigestReader, target: DiskImage, checkpointPath: string, options: ResyncOptions): Promise<void> {
  try {
    checkIdentity(digest.header.identity, await imageIdentity(target), "target digest");
  } catch (error) {
    // Named only when --resume would take it (whole, sealed).
    const stopped = await loadCheckpoint(checkpointPath).catch(() => undefined);
    if (options.resume || !(error instanceof VhdsyncError) || !stopped || !sealIntact(stopped)) throw error;
    throw new VhdsyncError(error.code, `${error.message}, or, if a run stopped by an error or a kill changed it, resume that run: its checkpoint ${checkpointPath} is there (--resume)`, { ...error.details, checkpointPath });
  }
}

/** Why updateTargetDigest was not honoured (the only two ways a complete run skips it). */
function digestNotUpdatedReason(plan: Plan, options: ResyncOptions): string {
  if (options.dryRun) return "a dry run writes nothing";
  return `a resumed run did not hash the blocks before block ${plan.resumeBlock}; the digest no longer describes the target: make a new one with vhdsync checksum`;
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

/**
 * Where a --resume run starts: the checkpoint's nextBlock when the checkpoint belongs to this
 * run's source, settings and target file, and the target still holds what the checkpoint
 * says is done; otherwise block 0 with the reason in `ignored`.
 */
async function resumePoint(options: ResyncOptions, path: string, expected: Plan["checkpointBase"], source: DiskImage, target: DiskImage): Promise<{ block: number; counters: SegmentCounters; countersComplete: boolean; ignored?: string }> {
  const fresh = { block: 0, counters: emptyCounters(), countersComplete: true };
  if (!options.resume || options.dryRun) return fresh;
  const checkpoint = await loadCheckpoint(path);
  if (!checkpoint) return existsSync(path) ? { ...fresh, ignored: "the checkpoint is of another vhdsync version, or incomplete" } : fresh;
  // A checkpointed run's target had the source's size (it resized it first, if it had to): a
  // target of another size now was resized since, and the part marked done may be gone.
  const resized = target.virtualSize !== checkpoint.virtualSizeBytes ? `the target was resized since the checkpoint (${target.virtualSize} bytes, not ${checkpoint.virtualSizeBytes})` : undefined;
  const mismatch =
    checkpointMismatch(checkpoint, expected) ??
    resized ??
    targetStateMismatch(checkpoint, await fileState(target.path)) ??
    (checkpoint.final ? undefined : await sampleDonePart(source, target, Math.min(source.virtualSize, checkpoint.nextBlock * expected.blockSizeBytes)));
  if (mismatch) return { ...fresh, ignored: mismatch };
  // A periodic checkpoint is a killed run's: what it wrote after it is counted by no run.
  return { block: checkpoint.nextBlock, counters: { ...emptyCounters(), ...checkpoint.counters }, countersComplete: checkpoint.final && checkpoint.countersComplete !== false };
}

/** Pieces of the done part that a resume after a killed run compares (4 KiB each: 1 MiB per side). */
const RESUME_SAMPLE_PIECES = 256;
const RESUME_SAMPLE_BYTES = 4096;

/**
 * After a killed run the target's times cannot tell its writes from anyone else's, so a
 * sample of the part its checkpoint marks done is compared with the source: pieces spread
 * evenly over it, and as many at random places. A target restored or rewritten since differs
 * in many places and is caught; a change of a few blocks can slip through (docs/resync.md
 * "Crashes, Ctrl-C and resume"). Returns the reason to start over, or undefined.
 */
async function sampleDonePart(source: DiskImage, target: DiskImage, doneBytes: number): Promise<string | undefined> {
  const pieces = Math.floor(doneBytes / RESUME_SAMPLE_BYTES);
  if (pieces === 0) return undefined;
  const a = new Uint8Array(RESUME_SAMPLE_BYTES);
  const b = new Uint8Array(RESUME_SAMPLE_BYTES);
  const half = RESUME_SAMPLE_PIECES / 2;
  const picks = new Set<number>();
  for (let i = 0; i < half; i++) picks.add(Math.floor((i * pieces) / half));
  for (let i = 0; i < half; i++) picks.add(Math.floor(Math.random() * pieces));
  for (const piece of picks) {
    const offset = piece * RESUME_SAMPLE_BYTES;
    await source.read(a, offset);
    await target.read(b, offset);
    if (Buffer.compare(a, b) !== 0) return `the target differs from the source at byte ${offset}, in the part the checkpoint marks done: it was changed after the run stopped`;
  }
  return undefined;
}

async function resizeTarget(image: DiskImage, sizeBytes: number): Promise<void> {
  await refuseUnresizable(image, sizeBytes);
  await image.resize!(sizeBytes);
}

/** Runs the workers over the plan, applying changes, checkpointing and reporting progress. */
async function runPlan(plan: Plan, options: ResyncOptions, workers: number): Promise<{ counters: SegmentCounters; complete: boolean; digestUpdated: boolean; scanner: ResyncReport["scanner"] }> {
  const { source, target, blockSizeBytes } = plan;
  const apply = options.dryRun ? "none" : target.format === "raw" || target.format === "block-device" ? "here" : "caller";
  const blockCount = blockCountFor(source.virtualSize, blockSizeBytes);
  const blocksPerSegment = plan.digest ? plan.digest.header.frameBlocks : segmentBlocksFor(blockSizeBytes, apply, target);
  const pool = await SegmentPool.start(
    { mode: plan.digest ? "hash-compare" : "compare", sourcePath: source.path, targetPath: target.path, sourceFormat: source.format, targetFormat: target.format, blockSizeBytes, algo: plan.algo ?? undefined, apply, windowBytes: DEFAULT_WINDOW_BYTES },
    workers,
  );
  const scanner = pool.native ? "native" : "wasm";
  const writer =
    options.updateTargetDigest && plan.digest && plan.resumeBlock === 0 && !options.dryRun
      ? await DigestWriter.create(plan.digest.path, { ...plan.digest.header }).catch(async (error) => {
          await pool.close(); // its workers would keep the process alive
          throw error;
        })
      : undefined;
  const counters = emptyCounters();
  const progress = throttle(options.onProgress);
  const intervalMs = options.checkpointIntervalMs ?? Number(process.env.VHDSYNC_CHECKPOINT_MS ?? 2000);
  let lastCheckpointMs = monotonicMs();
  let nextBlock = plan.resumeBlock;
  // Writes through the format ("caller") start going to disk while the scan goes on, so that
  // the flush before success finds little left (raw targets: the scan jobs' sync_file_range).
  // Not when target blocks span segments: a flush may give back a block whose other part a
  // scanner has yet to read (through the BAT it opened with), and its room be taken again.
  const background = apply === "caller" && callerSegmentsWholeBlocks(target) ? new BackgroundFlush(target) : undefined;
  /**
   * Saves a checkpoint: `final` when the run stops after it (see ResyncCheckpoint.final).
   * `counted` is false when the run wrote more than its counters hold: a run stopped by an
   * error drops the results of the segments still in flight, and the failed one may have
   * written part of its blocks.
   */
  const checkpoint = async (final: boolean, counted = true, targetOpen = true) => {
    if (options.dryRun) return;
    if (targetOpen) {
      await background?.settle(); // its release of blocks must not outlast the target's state below
      await target.flush();
    }
    const total = addCounters({ ...plan.resumeCounters }, counters);
    await saveCheckpoint(plan.checkpointPath, { ...plan.checkpointBase, nextBlock, counters: total, countersComplete: plan.resumeCountersComplete && counted, updatedAt: new Date().toISOString(), target: await fileState(target.path), final });
    lastCheckpointMs = monotonicMs();
  };
  const onResult = async (result: SegmentResult) => {
    background?.check();
    if (apply === "caller") await applyChanges(target, result);
    if (result.counters.bytesWritten + result.counters.bytesZeroed > 0) background?.start();
    addCounters(counters, result.counters);
    if (writer) await writer.writeFrame({ firstBlock: result.firstBlock, blockCount: result.blockCount, flags: result.frameFlags!, digests: result.frameDigests! });
    nextBlock = result.firstBlock + result.blockCount;
    progress.report({
      operation: "resync",
      doneBytes: Math.min(source.virtualSize, nextBlock * blockSizeBytes),
      totalBytes: source.virtualSize,
      detail: `${counters.blocksChanged} ${counters.blocksChanged === 1 ? "block" : "blocks"} changed`,
      // The report's meanings: data written, and zeroed (holes punched, blocks released, zeros written).
      counters: { blocksChanged: counters.blocksChanged, bytesWritten: counters.bytesWritten, bytesZeroed: counters.bytesZeroed },
    });
    if (monotonicMs() - lastCheckpointMs >= intervalMs) await checkpoint(false);
  };
  let complete: boolean;
  try {
    // A resumed run writes past its checkpoint's nextBlock from here on: a final checkpoint
    // (a clean stop) becomes a running one first, so that a kill now still resumes.
    if (plan.resumeBlock > 0) await checkpoint(false);
    const tasks = plan.digest ? digestTasks(plan.digest, plan.resumeBlock) : segmentTasks(blockCount, blocksPerSegment, plan.resumeBlock);
    complete = await runSegments(pool, tasks, onResult, { signal: options.signal });
    await pool.close();
  } catch (error) {
    await pool.close().catch(() => undefined);
    await writer?.abort();
    if (nextBlock > plan.resumeBlock) await checkpoint(true, false).catch(() => undefined);
    throw error;
  }
  // The last progress event goes out once the run's state is safe: an exception from the
  // listener then leaves nothing undone.
  if (!complete) {
    await writer?.abort();
    await checkpoint(true);
    progress.flush();
    return { counters, complete, digestUpdated: false, scanner };
  }
  await background?.settle();
  await target.flush();
  if (writer) {
    // The target is complete and flushed. Its new digest is committed before the checkpoint
    // goes: when that fails (ENOSPC on the digest's filesystem), the old digest no longer
    // describes the target, and a rerun without a checkpoint would be refused for the target's
    // changed identity. A final checkpoint at the end lets it finish instead (reporting the
    // digest not updated, as for any resumed run).
    try {
      await finishDigest(writer, target, blockSizeBytes);
    } catch (error) {
      await checkpoint(true, true, false).catch(() => undefined);
      throw error;
    }
  }
  if (!options.dryRun) await removeCheckpoint(plan.checkpointPath);
  progress.flush();
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

/**
 * Closes the target so its identity is final, then commits the updated digest with it, its
 * zero and unallocated blocks restated from the target's allocation map as `checksum` states
 * them (a block with no allocated byte is unallocated), so the file is what a fresh checksum
 * of the target would write.
 */
async function finishDigest(writer: DigestWriter, target: DiskImage, blockSizeBytes: number): Promise<void> {
  await target.close();
  const reopened = await openImage(target.path, { readOnly: true });
  try {
    await writer.finish(await imageIdentity(reopened), (firstBlock, flags) => restateFromAllocation(reopened, blockSizeBytes, firstBlock, flags));
  } finally {
    await reopened.close();
  }
}

/**
 * Sets each non-data block of `flags` (blocks from `firstBlock`) to zero or unallocated, by the
 * rule the hash scans use (activeUnits): a block that overlaps an allocated part is zero.
 */
async function restateFromAllocation(image: DiskImage, blockSizeBytes: number, firstBlock: number, flags: Uint8Array): Promise<void> {
  const start = firstBlock * blockSizeBytes;
  const end = Math.min(image.virtualSize, start + flags.length * blockSizeBytes);
  const active = activeUnits(await allocationPairsOf(image, start, end - start), NO_EXTENTS, start, blockSizeBytes, flags.length);
  let from = 0;
  for (let i = 0; i < active.length; i += 2) {
    setNonData(flags.subarray(from, active[i]), BLOCK_UNALLOCATED);
    setNonData(flags.subarray(active[i], active[i + 1]), BLOCK_ZERO);
    from = active[i + 1];
  }
  setNonData(flags.subarray(from), BLOCK_UNALLOCATED);
}

/** Sets the blocks of `flags` that are not data to `state` (at once where none is data: the sparse frames' common case). */
function setNonData(flags: Uint8Array, state: number): void {
  if (flags.indexOf(BLOCK_DATA) < 0) flags.fill(state);
  else for (let i = 0; i < flags.length; i++) if (flags[i] !== BLOCK_DATA) flags[i] = state;
}
