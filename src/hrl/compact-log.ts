// Compaction: rewrites a log so that it holds only the final content of each disk range it
// writes (the last write wins, as when the log is applied). Applying the compacted log gives
// the same disk as applying the original; it keeps the original's UniqueId and
// PreviousUniqueId, so it takes the original's place in the chain.

import { resolve } from "node:path";
import { VhdsyncError } from "../errors.js";
import { getWasm } from "../wasm/driver.js";
import type { OverlaySegment } from "./extent-map.js";
import { openLog, type HrlLog } from "./hrl-log.js";
import type { HrlLogSummary, HrlWriter } from "./hrl-writer.js";
import { sameIdentity, writeLogFile } from "./log-output.js";
import { checkPath } from "../arguments.js";
import { refuseSameFile } from "../io/file.js";

/** Largest entry the compacted log gets (bytes). */
const RUN_BYTES = 1024 * 1024;

/** What compactLog() produced. */
export interface CompactLogResult {
  input: { entryCount: number; dataBytes: number };
  output: HrlLogSummary;
}

/** Refuses to write a log over its own input. */
export async function checkDistinctPaths(inputPath: string, outputPath: string): Promise<void> {
  if (resolve(inputPath) === resolve(outputPath)) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `output ${outputPath} is the input log`, { inputPath, outputPath });
  }
  // Another name of the same file (a symbolic or hard link, a linked directory): the output
  // replaces the file a link names, and would have replaced the input.
  await refuseSameFile(outputPath, [inputPath], "the output log", "the input log ");
}

/**
 * Writes `outputPath`: the final content of every range `inputPath` writes, in disk order.
 * The input is fully validated first; the output appears complete or not at all.
 * @throws codes of openLog()/verifyData(), VHDSYNC_INVALID_ARGUMENT (same path), I/O codes
 */
export async function compactLog(inputPath: string, outputPath: string): Promise<CompactLogResult> {
  checkPath(inputPath, "inputPath");
  checkPath(outputPath, "outputPath");
  await checkDistinctPaths(inputPath, outputPath);
  const log = await openLog(inputPath);
  try {
    await log.verifyData();
    const output = await writeLogFile(outputPath, sameIdentity(log.header), (writer) => writeRuns(log, log.lastWriters(), writer));
    return { input: { entryCount: log.entryCount, dataBytes: log.dataBytes }, output };
  } finally {
    await log.close();
  }
}

/** Appends the segments, joining disk-contiguous ones into runs of up to RUN_BYTES. */
async function writeRuns(log: HrlLog, segments: Iterable<OverlaySegment>, writer: HrlWriter): Promise<void> {
  const wasm = getWasm();
  const address = wasm.alloc(RUN_BYTES);
  let runOffset = 0;
  let runBytes = 0;
  let runTimestamp = 0;
  const flushRun = async (): Promise<void> => {
    if (runBytes > 0) await writer.append(runOffset, wasm.view(address, runBytes), runTimestamp);
    runBytes = 0;
    runTimestamp = 0;
  };
  try {
    for (const segment of segments) {
      for (let done = 0; done < segment.length; ) {
        if (runBytes > 0 && (runOffset + runBytes !== segment.offset + done || runBytes === RUN_BYTES)) await flushRun();
        if (runBytes === 0) runOffset = segment.offset + done;
        const pieceBytes = Math.min(segment.length - done, RUN_BYTES - runBytes);
        await log.readEntryData(segment.entryIndex, segment.entryDelta + done, wasm.view(address + runBytes, pieceBytes));
        runTimestamp = Math.max(runTimestamp, log.entry(segment.entryIndex).timestamp);
        runBytes += pieceBytes;
        done += pieceBytes;
      }
    }
    await flushRun();
  } finally {
    wasm.release(address);
  }
}
