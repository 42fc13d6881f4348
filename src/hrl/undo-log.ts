// Undo logs: before a log is applied, the current content of every disk range it will
// overwrite is saved as an HRL of its own; applying that undo log restores the disk exactly.
// The undo log continues the chain: PreviousUniqueId = the applied log's UniqueId, and its
// UniqueId = the applied log's PreviousUniqueId (the state it restores), see docs/hrl.md.

import type { DiskImage } from "../formats/disk-image.js";
import { getWasm } from "../wasm/driver.js";
import type { HrlLog } from "./hrl-log.js";
import type { HrlLogSummary } from "./hrl-writer.js";
import { sameIdentity, writeLogFile } from "./log-output.js";

/** Bytes read from the image per undo entry. */
const UNDO_PIECE_BYTES = 1024 * 1024;

/**
 * Writes `undoPath` holding the present content of `image` over every range `log` writes.
 * Written to a temporary name and renamed when complete and durable, so `undoPath` is either
 * absent or whole.
 * @throws I/O codes from the image or the undo file
 */
export async function writeUndoLog(image: DiskImage, log: HrlLog, undoPath: string): Promise<HrlLogSummary> {
  const options = { ...sameIdentity(log.header), uniqueId: log.header.previousUniqueId, previousUniqueId: log.header.uniqueId, creatorApplication: "vhdu", timestamp: undefined };
  const wasm = getWasm();
  const address = wasm.alloc(UNDO_PIECE_BYTES);
  try {
    return await writeLogFile(undoPath, options, async (writer) => {
      for (const extent of log.extents()) {
        for (let done = 0; done < extent.length; done += UNDO_PIECE_BYTES) {
          const view = wasm.view(address, Math.min(UNDO_PIECE_BYTES, extent.length - done));
          await image.read(view, extent.offset + done);
          await writer.append(extent.offset + done, view);
        }
      }
    });
  } finally {
    wasm.release(address);
  }
}
