// Writing a whole derived log (undo, compacted, recovered) safely: to a temp file beside it
// (named as every vhdsync temp file is: tempPathFor), then closed cleanly and renamed into
// place, so the output is complete or absent. The temp file once was `<path>.partial`, which
// could be the input log or the image the command was reading: truncated, then renamed away.

import { promises as fsp } from "node:fs";
import type { HrlHeader } from "./header.js";
import { HrlWriter, type HrlLogSummary, type HrlWriterOptions } from "./hrl-writer.js";
import { commitTempFile, removeStaleTempFiles, tempPathFor } from "../io/atomic-file.js";
import { refuseSpecialOutput } from "../io/file.js";

/** Writer options that give a new log the identity of `header` (ids, MetadataSize, creator, time). */
export function sameIdentity(header: HrlHeader): HrlWriterOptions {
  return {
    uniqueId: header.uniqueId,
    previousUniqueId: header.previousUniqueId,
    vhd2DataWriteGuid: header.vhd2DataWriteGuid,
    metadataSizeBytes: header.metadataSizeBytes,
    timestamp: header.timestamp,
    creatorApplication: header.creatorApplication,
    creatorVersion: header.creatorVersion,
  };
}

/**
 * Creates a log at `path` via a temporary file, lets `fill` append its entries, closes it
 * cleanly and renames it into place. On error the temporary file is removed.
 * @throws VHDSYNC_INVALID_ARGUMENT (`path` exists and is not a regular file)
 */
export async function writeLogFile(path: string, options: HrlWriterOptions, fill: (writer: HrlWriter) => Promise<void>): Promise<HrlLogSummary> {
  // Renaming over a FIFO or a device would replace it with a regular file (a FIFO's reader would
  // never get the log; as root, `log compact … /dev/null` replaced /dev/null): refused, as
  // checksum's and convert's outputs are.
  await refuseSpecialOutput(path, "the output log");
  // A killed run's temp file is removed by the next one to write `path`.
  await removeStaleTempFiles(path);
  const temp = tempPathFor(path);
  // Every failure removes the temporary file: also one of the header's first write (create) or
  // of the final flush and header (close), which is where a full filesystem (ENOSPC) often
  // stops it; before, those left `<path>.partial`, as large as the log so far, on that full
  // filesystem.
  let writer: HrlWriter;
  try {
    writer = await HrlWriter.create(temp, options);
  } catch (error) {
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
  try {
    await fill(writer);
    const summary = await writer.close();
    await commitTempFile(temp, path);
    return { ...summary, path };
  } catch (error) {
    // abandon() after a failed close() finds the writer released already: a no-op.
    await writer.abandon().catch(() => undefined);
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
}
