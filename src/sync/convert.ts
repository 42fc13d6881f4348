// convertImage(): writes an image of any readable format as raw, fixed VHD or dynamic VHD.
// The output is built under a temporary name beside OUT and renamed into place only when
// complete and flushed, so an interrupted convert never leaves a half-written OUT. Data moves
// through copy() (sparse-aware: unallocated and zero ranges stay holes / unallocated blocks).

import { existsSync, promises as fsp } from "node:fs";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { openImage } from "../formats/open-image.js";
import { RawImage } from "../formats/raw.js";
import { createVhdInPlace, DEFAULT_BLOCK_SIZE_BYTES } from "../formats/vhd/index.js";
import { reportedAs, type ProgressListener } from "../progress.js";
import { commitNewFile, commitTempFile, removeStaleTempFiles, tempPathFor } from "../io/atomic-file.js";
import { copy, type CopyReport } from "./copy.js";
import { MAX_BLOCK_BYTES, MIN_BLOCK_BYTES } from "./digest-format.js";
import { parentsOf, refuseSameFile } from "./image-identity.js";
import { refuseSpecialOutput } from "../io/file.js";
import { refuseWritingDependedOn } from "../formats/vhd/vhd-children.js";
import { checkFlags, checkPath, checkRequiredOptions } from "../arguments.js";
import { acquireWriteLock } from "../io/write-lock.js";

/** Output formats of convertImage(). */
export const CONVERT_TARGETS = ["raw", "vhd-fixed", "vhd-dynamic"] as const;
export type ConvertTarget = (typeof CONVERT_TARGETS)[number];

/** Options of convertImage(). */
export interface ConvertOptions {
  to: ConvertTarget;
  /** Block size of a dynamic VHD output (default 2 MiB). */
  blockSizeBytes?: number;
  /** Replace OUT if it exists (default: refuse). */
  overwrite?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/** What convertImage() did (`created`: OUT did not exist before; with overwrite it may have been replaced). */
export interface ConvertReport extends CopyReport {
  to: ConvertTarget;
  /** Virtual size of the output (VHD sizes are rounded up to whole 512-byte sectors). */
  outputVirtualSizeBytes: number;
}

const SECTOR_BYTES = 512;

/**
 * Converts `inputPath` to `outputPath` in format `options.to`.
 * @throws VHDSYNC_INVALID_ARGUMENT (OUT exists without overwrite, same path), format and I/O codes
 */
export async function convertImage(inputPath: string, outputPath: string, options: ConvertOptions): Promise<ConvertReport> {
  checkPath(inputPath, "inputPath");
  checkPath(outputPath, "outputPath");
  checkRequiredOptions(options);
  checkFlags(options, ["overwrite"]);
  if (!CONVERT_TARGETS.includes(options.to)) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `unknown output format ${options.to} (use ${CONVERT_TARGETS.join(", ")})`);
  }
  const existed = existsSync(outputPath);
  await refuseSpecialOutput(outputPath, "the output");
  if (existed && !options.overwrite) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${outputPath} exists (pass overwrite: true to replace it)`, { path: outputPath, outputExists: true });
  }
  const input = await openImage(inputPath, { readOnly: true });
  const inputSize = input.virtualSize;
  try {
    // OUT may replace the input itself (its data is read first), but not a parent the input
    // reads through: that would break the input's chain.
    await refuseSameFile(outputPath, await parentsOf(input), "the output", "the input's parent ");
  } finally {
    await input.close();
  }
  // Replacing a VHD that differencing disks depend on breaks them (the new file has another
  // unique id): refused, as resync, copy and log apply refuse to write to one. An OUT that does
  // not open as an image is replaced as before.
  if (existed) {
    const previous = await openImage(outputPath, { readOnly: true }).catch(() => undefined);
    if (previous) {
      try {
        await refuseWritingDependedOn(previous, "replace");
      } finally {
        await previous.close();
      }
    }
  }
  // Replacing OUT is refused while a run writes it (its result would be renamed away under it).
  const lock = existed ? await acquireWriteLock(outputPath, "convert") : undefined;
  await removeStaleTempFiles(outputPath);
  const tempPath = tempPathFor(outputPath);
  let outputSize = inputSize;
  try {
    if (options.to === "raw") {
      await (await RawImage.create(tempPath, inputSize)).close();
    } else {
      outputSize = Math.ceil(inputSize / SECTOR_BYTES) * SECTOR_BYTES;
      const type = options.to === "vhd-fixed" ? "fixed" : "dynamic";
      const blockSizeBytes = options.to === "vhd-dynamic" ? (options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES) : undefined;
      await (await createVhdInPlace(tempPath, { type, sizeBytes: outputSize, blockSizeBytes })).close();
    }
    const report = await copy(inputPath, tempPath, {
      targetFresh: true,
      // Zero detection at the output's allocation unit keeps zero blocks unallocated, within the
      // range a copy's blocks take (4 KiB to 64 MiB; new VHD blocks go from 4 KiB to 256 MiB):
      // a larger VHD block is detected in 64 MiB parts.
      blockSizeBytes: options.to === "vhd-dynamic" ? copyBlockSizeFor(options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES) : undefined,
      allowLargerTarget: outputSize !== inputSize,
      signal: options.signal,
      onProgress: reportedAs(options.onProgress, "convert"),
    });
    // A new output never replaces a file that appeared during the run (another convert to it):
    // only the one that existed at the start, with overwrite, is replaced.
    if (existed) await commitTempFile(tempPath, outputPath);
    else await commitNewFile(tempPath, outputPath);
    return { ...report, target: outputPath, created: !existed, to: options.to, outputVirtualSizeBytes: outputSize };
  } catch (error) {
    await fsp.rm(tempPath, { force: true }).catch(() => undefined);
    // Copy's engine wrote the temp file: the interruption is the convert's, of OUT.
    if (error instanceof VhdsyncError && error.code === "VHDSYNC_INTERRUPTED") {
      throw new VhdsyncError(error.code, `convert to ${outputPath} interrupted (rerun to convert again)`, { path: outputPath }, { cause: error });
    }
    throw toVhdsyncError(error, { path: outputPath });
  } finally {
    await lock?.release();
  }
}

/** The copy's zero-detection block for a dynamic VHD's block size: the same, within 4 KiB..64 MiB. */
function copyBlockSizeFor(vhdBlockSizeBytes: number): number {
  return Math.min(MAX_BLOCK_BYTES, Math.max(MIN_BLOCK_BYTES, vhdBlockSizeBytes));
}
