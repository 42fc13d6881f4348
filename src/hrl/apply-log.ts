// Applies a Hyper-V Replica log to a disk image: the whole log is validated first (header,
// every metadata block and entry checksum, every data checksum, entries inside the disk),
// then an optional undo log is written, then entries are applied in order with progress
// checkpoints in the image's state sidecar (apply-state.ts), so a crash mid-apply resumes
// where it stopped and a log is only marked applied once all of it is on the image.

import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { VhdsyncError } from "../errors.js";
import type { DiskImage } from "../formats/disk-image.js";
import { refuseWritingDependedOn } from "../formats/vhd/vhd-children.js";
import { RawImage } from "../formats/raw.js";
import { throttle, type ProgressListener } from "../progress.js";
import { defaultStatePath, readApplyState, writeApplyState, type ApplyInProgress, type ApplyState } from "./apply-state.js";
import { crashPoint } from "./fault.js";
import { openLog, type HrlLog } from "./hrl-log.js";
import { normalizeGuid } from "./layout.js";
import { checkUndoTarget, writeUndoLog } from "./undo-log.js";
import { checkFlags, checkImage, checkOptions, checkPath } from "../arguments.js";
import { acquireWriteLock } from "../io/write-lock.js";
import { eventLoopTurns } from "../io/clock.js";
import { refuseSpecialOutput } from "../io/file.js";

/** Options of applyLog(). */
export interface ApplyLogOptions {
  /** Also write an undo log here (restores the image when applied). */
  undoPath?: string;
  /** State sidecar (default `<image>.hrl-state.json`). */
  statePath?: string;
  /** UniqueId the log's PreviousUniqueId must equal (default: the sidecar's last applied log). */
  expectedPreviousUniqueId?: string;
  /** Check the chain position (default true). */
  checkSequence?: boolean;
  /** Bytes applied between progress checkpoints (image flush + state write; default 64 MiB). */
  checkpointBytes?: number;
  onProgress?: ProgressListener;
  /**
   * Abort to stop cleanly: after the entry being written, the image is flushed and the state
   * sidecar records the next entry, then VHDSYNC_INTERRUPTED is thrown; the same call again
   * resumes there. Before the first write (while the log's data is checked or the undo log
   * written) nothing is left behind.
   */
  signal?: AbortSignal;
}

/** What applyLog() did. */
export interface ApplyLogResult {
  logPath: string;
  uniqueId: string;
  previousUniqueId: string;
  entryCount: number;
  dataBytes: number;
  /** Entry the run started at (> 0 when an interrupted apply was resumed). */
  resumedFromEntry: number;
  undoPath: string | null;
  statePath: string;
}

/**
 * Applies `logPath` to `image` (opened writable). Nothing is written if validation fails.
 * @throws VHDSYNC_HRL_OUT_OF_SEQUENCE (PreviousUniqueId does not follow the last applied log),
 *   VHDSYNC_INVALID_ARGUMENT (undoPath holds some other file),
 *   VHDSYNC_BAD_STATE (another log's apply is unfinished, or the undo path differs on resume),
 *   VHDSYNC_HRL_UNCLEAN, VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_TRUNCATED,
 *   VHDSYNC_SIZE_MISMATCH, VHDSYNC_READ_ONLY, VHDSYNC_INTERRUPTED (resumable), I/O codes
 */
export async function applyLog(image: DiskImage, logPath: string, options: ApplyLogOptions = {}): Promise<ApplyLogResult> {
  checkImage(image, "image");
  checkPath(logPath, "logPath");
  checkOptions(options);
  checkFlags(options, ["checkSequence"]);
  if (options?.statePath !== undefined) checkPath(options.statePath, "statePath");
  if (options?.undoPath !== undefined) checkPath(options.undoPath, "undoPath");
  if (image.readOnly) throw new VhdsyncError("VHDSYNC_READ_ONLY", `${image.path}: image is open read-only`, { path: image.path });
  await refuseWritingDependedOn(image, "apply a log to");
  const statePath = options.statePath ?? defaultStatePath(image.path);
  // The sidecar is read, then replaced by a rename: a FIFO would block the read.
  await refuseSpecialOutput(statePath, "the state sidecar");
  const undoPath = options.undoPath ? resolve(options.undoPath) : null;
  // One writer per image, as for resync and copy (src/io/write-lock.ts).
  const lock = await acquireWriteLock(image.path, "log apply");
  let log: HrlLog;
  try {
    log = await openLog(logPath, { diskSizeBytes: image.virtualSize });
  } catch (error) {
    await lock.release();
    throw error;
  }
  try {
    await log.verifyData(undefined, options.signal);
    const state = await readApplyState(statePath);
    let fromEntry = 0;
    if (state.applying) {
      checkResumable(state.applying, log, undoPath, statePath);
      fromEntry = state.applying.nextEntry;
    } else {
      checkSequence(log, state, options);
      if (undoPath) {
        await checkUndoTarget(undoPath, log);
        await writeUndoLog(image, log, undoPath, options.signal);
        crashPoint("undo");
      }
      state.applying = progressRecord(log, undoPath);
      await writeApplyState(statePath, state);
    }
    await applyEntries(image, log, fromEntry, state, statePath, options);
    await image.flush();
    crashPoint("commit");
    await writeApplyState(statePath, { ...state, lastAppliedUniqueId: log.header.uniqueId, appliedCount: state.appliedCount + 1, applying: null });
    return {
      logPath,
      uniqueId: log.header.uniqueId,
      previousUniqueId: log.header.previousUniqueId,
      entryCount: log.entryCount,
      dataBytes: log.dataBytes,
      resumedFromEntry: fromEntry,
      undoPath,
      statePath,
    };
  } finally {
    await log.close();
    await lock.release();
  }
}

function progressRecord(log: HrlLog, undoPath: string | null): ApplyInProgress {
  return {
    logPath: resolve(log.path),
    logUniqueId: log.header.uniqueId,
    logPreviousUniqueId: log.header.previousUniqueId,
    eolLocation: log.header.eolLocation,
    headerChecksum: log.header.checksum,
    entryCount: log.entryCount,
    undoPath,
    step: "apply",
    nextEntry: 0,
    startedAt: new Date().toISOString(),
  };
}

function checkResumable(applying: ApplyInProgress, log: HrlLog, undoPath: string | null, statePath: string): void {
  const same =
    applying.logUniqueId === log.header.uniqueId &&
    applying.eolLocation === log.header.eolLocation &&
    applying.headerChecksum === log.header.checksum &&
    applying.entryCount === log.entryCount;
  if (!same) {
    throw new VhdsyncError(
      "VHDSYNC_BAD_STATE",
      `${statePath}: the apply of log ${applying.logUniqueId} (${applying.logPath}) is unfinished; resume it before applying another log`,
      { statePath, unfinishedLog: applying.logPath, unfinishedUniqueId: applying.logUniqueId },
    );
  }
  if (applying.nextEntry > log.entryCount) throw new VhdsyncError("VHDSYNC_BAD_STATE", `${statePath}: resume point past the end of the log`, { statePath });
  if (applying.undoPath && !existsSync(applying.undoPath)) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${statePath}: the undo log of the interrupted apply (${applying.undoPath}) is missing`, {
      statePath,
      undoPath: applying.undoPath,
    });
  }
  if (applying.undoPath !== undoPath) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${statePath}: resume with the same undo log as the interrupted apply (${applying.undoPath ?? "none"})`, {
      statePath,
      undoPath: applying.undoPath,
    });
  }
}

function checkSequence(log: HrlLog, state: ApplyState, options: ApplyLogOptions): void {
  if (options.checkSequence === false) return;
  const expected = options.expectedPreviousUniqueId !== undefined ? normalizeGuid(options.expectedPreviousUniqueId) : state.lastAppliedUniqueId;
  if (options.expectedPreviousUniqueId !== undefined && !expected) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `not a GUID: ${options.expectedPreviousUniqueId}`);
  }
  if (!expected || log.header.previousUniqueId === expected) return;
  const already = log.header.uniqueId === expected;
  throw new VhdsyncError(
    "VHDSYNC_HRL_OUT_OF_SEQUENCE",
    already
      ? `${log.path}: log ${log.header.uniqueId} is already applied`
      : `${log.path}: log follows ${log.header.previousUniqueId}, but the last applied log is ${expected}`,
    { path: log.path, uniqueId: log.header.uniqueId, previousUniqueId: log.header.previousUniqueId, expectedPreviousUniqueId: expected },
  );
}

/**
 * Writes the entries from `fromEntry` on, one after another in log order (so overlapping
 * entries land in order). Raw images and block devices are written on this thread: into the
 * page cache a write takes microseconds, less than a thread-pool hop.
 */
async function applyEntries(image: DiskImage, log: HrlLog, fromEntry: number, state: ApplyState, statePath: string, options: ApplyLogOptions): Promise<void> {
  const checkpointBytes = options.checkpointBytes ?? 64 * 1024 * 1024;
  const progress = throttle(options.onProgress);
  const raw = image instanceof RawImage ? image : undefined;
  let sinceCheckpoint = 0;
  let doneBytes = 0;
  // A Ctrl-C reaches options.signal only when the event loop turns; a log held in memory
  // written into a raw image's page cache may not let it.
  const turn = eventLoopTurns();
  for await (const piece of log.pieces({ fromEntry })) {
    if (raw) raw.writeSync(piece.data, piece.byteOffset);
    else await image.write(piece.data, piece.byteOffset);
    sinceCheckpoint += piece.data.length;
    doneBytes += piece.data.length;
    if (!piece.last) continue;
    crashPoint("entry");
    progress.report({ operation: "apply", doneBytes, totalBytes: log.dataBytes, counters: { entries: piece.entryIndex + 1 } });
    const turning = turn();
    if (turning) await turning;
    const stopping = Boolean(options.signal?.aborted) && piece.entryIndex + 1 < log.entryCount;
    if (stopping || (sinceCheckpoint >= checkpointBytes && piece.entryIndex + 1 < log.entryCount)) {
      await image.flush();
      state.applying!.nextEntry = piece.entryIndex + 1;
      await writeApplyState(statePath, state);
      crashPoint("checkpoint");
      sinceCheckpoint = 0;
    }
    if (stopping) {
      progress.flush();
      throw new VhdsyncError("VHDSYNC_INTERRUPTED", `apply of ${log.path} to ${image.path} interrupted after entry ${piece.entryIndex + 1} of ${log.entryCount}; run it again to resume`, {
        path: image.path,
        logPath: log.path,
        nextEntry: piece.entryIndex + 1,
        statePath,
      });
    }
  }
  progress.flush();
}
