// Undo logs: before a log is applied, the current content of every disk range it will
// overwrite is saved as an HRL of its own; applying that undo log restores the disk exactly.
// The undo log continues the chain: PreviousUniqueId = the applied log's UniqueId, and its
// UniqueId = the applied log's PreviousUniqueId (the state it restores), see docs/hrl.md.

import { existsSync, promises as fsp } from "node:fs";
import { VhdsyncError, stopIfAborted } from "../errors.js";
import type { DiskImage, Extent } from "../formats/disk-image.js";
import { readExactly, refuseSpecialOutput } from "../io/file.js";
import { getWasm } from "../wasm/driver.js";
import { parseHeader, type HrlHeader } from "./header.js";
import type { HrlLog } from "./hrl-log.js";
import { HRL_HEADER_BYTES } from "./layout.js";
import type { HrlLogSummary, HrlWriter } from "./hrl-writer.js";
import { sameIdentity, writeLogFile } from "./log-output.js";
import { checkImage, checkPath } from "../arguments.js";

/**
 * Refuses to replace an existing file at `undoPath` unless it is an undo log of this very
 * log (left by an interrupted apply before it wrote anything to the image).
 * @throws VHDSYNC_INVALID_ARGUMENT
 */
export async function checkUndoTarget(undoPath: string, log: HrlLog): Promise<void> {
  if (!existsSync(undoPath)) return;
  // Reading a FIFO to see whether it is an old undo log would wait for a writer.
  await refuseSpecialOutput(undoPath, "the undo log");
  let header: HrlHeader | undefined;
  try {
    const handle = await fsp.open(undoPath, "r");
    try {
      const bytes = new Uint8Array(HRL_HEADER_BYTES);
      await readExactly(handle, bytes, 0, undoPath);
      header = parseHeader(bytes, false, undoPath);
    } finally {
      await handle.close();
    }
  } catch {
    header = undefined;
  }
  if (header?.uniqueId === log.header.previousUniqueId && header.previousUniqueId === log.header.uniqueId) return;
  throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${undoPath}: exists and is not an undo log of ${log.path}; refusing to replace it`, { undoPath });
}

/** Bytes read from the image per undo entry, and at most per read. */
const UNDO_PIECE_BYTES = 1024 * 1024;
/** Extents at most this far apart are read from the image with one read, gap included. */
const UNDO_READ_GAP_BYTES = 64 * 1024;
/** Most extents served by one read (bounds the extents held while it is made). */
const UNDO_SPAN_EXTENTS = 4096;

/**
 * Writes `undoPath` holding the present content of `image` over every range `log` writes.
 * Written to a temporary name and renamed when complete and durable, so `undoPath` is either
 * absent or whole. The extents are streamed from the log's entry table; nearby ones are read
 * with one read of up to 1 MiB (one read per extent of a 1M-entry log took 86 s). An aborted
 * `signal` stops it between extents and leaves no undo log.
 * @throws VHDSYNC_INTERRUPTED, I/O codes from the image or the undo file
 */
export async function writeUndoLog(image: DiskImage, log: HrlLog, undoPath: string, signal?: AbortSignal): Promise<HrlLogSummary> {
  checkImage(image, "image");
  checkPath(undoPath, "undoPath");
  const options = { ...sameIdentity(log.header), uniqueId: log.header.previousUniqueId, previousUniqueId: log.header.uniqueId, creatorApplication: "vhdu", timestamp: undefined };
  const wasm = getWasm();
  const address = wasm.alloc(UNDO_PIECE_BYTES);
  try {
    return await writeLogFile(undoPath, options, async (writer) => {
      // Extents waiting for the read of [spanStart, spanEnd): their offsets and lengths.
      const pending: Extent[] = [];
      let spanStart = 0;
      let spanEnd = 0;
      const flushSpan = async (): Promise<void> => {
        if (pending.length === 0) return;
        await image.read(wasm.view(address, spanEnd - spanStart), spanStart);
        for (const extent of pending) await writer.append(extent.offset, wasm.view(address + extent.offset - spanStart, extent.length));
        pending.length = 0;
      };
      for (const extent of log.extents()) {
        // Stopping leaves no undo log: writeLogFile removes its temporary file.
        stopIfAborted(signal, `${undoPath}: writing the undo log`, { path: undoPath });
        const joins = extent.offset - spanEnd <= UNDO_READ_GAP_BYTES && extent.offset + extent.length - spanStart <= UNDO_PIECE_BYTES;
        if (pending.length > 0 && (!joins || pending.length === UNDO_SPAN_EXTENTS)) await flushSpan();
        if (extent.length > UNDO_PIECE_BYTES) {
          await writeLargeExtent(image, writer, extent, address);
          continue;
        }
        if (pending.length === 0) spanStart = extent.offset;
        pending.push(extent);
        spanEnd = extent.offset + extent.length;
      }
      await flushSpan();
    });
  } finally {
    wasm.release(address);
  }
}

/** An extent longer than UNDO_PIECE_BYTES, read and appended a piece at a time. */
async function writeLargeExtent(image: DiskImage, writer: HrlWriter, extent: Extent, address: number): Promise<void> {
  const wasm = getWasm();
  for (let done = 0; done < extent.length; done += UNDO_PIECE_BYTES) {
    const view = wasm.view(address, Math.min(UNDO_PIECE_BYTES, extent.length - done));
    await image.read(view, extent.offset + done);
    await writer.append(extent.offset + done, view);
  }
}
