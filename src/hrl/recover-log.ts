// Salvage of a log that was not closed cleanly (or is damaged past some point): the forward
// scan finds the metadata blocks that are intact and linked, data checksums are checked, and
// every entry up to the last good block is copied, in order, into a new clean log with the
// same UniqueId and PreviousUniqueId.

import { VhdsyncError } from "../errors.js";
import { openLog, type HrlLog } from "./hrl-log.js";
import type { HrlLogSummary, HrlWriter } from "./hrl-writer.js";
import { sameIdentity, writeLogFile } from "./log-output.js";
import { checkDistinctPaths } from "./compact-log.js";
import { HRL_HEADER_BYTES } from "./layout.js";
import { checkPath } from "../arguments.js";

/** What recoverLog() salvaged. */
export interface RecoverLogResult {
  wasClean: boolean;
  /** Metadata blocks found intact (those kept; the empty first block included). */
  blocksKept: number;
  /** Entries dropped because their data failed its checksum (with all later entries). */
  entriesDropped: number;
  /** Bytes of the input after the last kept block. */
  bytesDropped: number;
  output: HrlLogSummary;
}

/**
 * Writes `outputPath`, a clean log holding the entries of `inputPath` up to its last valid
 * metadata block whose data (and all data before it) is intact.
 * @throws VHDSYNC_CORRUPT / VHDSYNC_BAD_CHECKSUM / VHDSYNC_TRUNCATED for an unusable header, I/O codes
 */
export async function recoverLog(inputPath: string, outputPath: string): Promise<RecoverLogResult> {
  checkPath(inputPath, "inputPath");
  checkPath(outputPath, "outputPath");
  await checkDistinctPaths(inputPath, outputPath);
  const log = await openLog(inputPath, { allowUnclean: true, scan: true });
  try {
    const keptBlocks = await blocksWithGoodData(log);
    const keptEntries = log.blockFirstEntry[keptBlocks];
    const lastKept = keptBlocks > 0 ? log.metadataLocations[keptBlocks - 1] + log.header.metadataSizeBytes : HRL_HEADER_BYTES;
    const output = await writeLogFile(outputPath, sameIdentity(log.header), (writer) => copyEntries(log, keptEntries, writer));
    return {
      wasClean: log.clean,
      blocksKept: keptBlocks,
      entriesDropped: log.entryCount - keptEntries,
      bytesDropped: log.fileSizeBytes - lastKept,
      output,
    };
  } finally {
    await log.close();
  }
}

/** How many blocks, from the first, have intact data (the block count if all do). */
async function blocksWithGoodData(log: HrlLog): Promise<number> {
  const blockCount = log.metadataLocations.length;
  try {
    await log.verifyData();
    return blockCount;
  } catch (error) {
    const entryIndex = (error as VhdsyncError).details?.entryIndex;
    if (!(error instanceof VhdsyncError) || error.code !== "VHDSYNC_BAD_CHECKSUM" || typeof entryIndex !== "number") throw error;
    let block = 0;
    while (block < blockCount && log.blockFirstEntry[block + 1] <= entryIndex) block++;
    return block;
  }
}

/** Appends entries [0, count) of `log` to `writer`, with their timestamps. */
async function copyEntries(log: HrlLog, count: number, writer: HrlWriter): Promise<void> {
  if (count === 0) return;
  for await (const piece of log.pieces()) {
    if (piece.entryIndex >= count) break;
    await writer.append(piece.byteOffset, piece.data, log.entry(piece.entryIndex).timestamp);
  }
}
