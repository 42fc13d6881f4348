// The block copy of merges and deletes: reads byte ranges of one image's virtual content
// straight into WASM memory and writes them into another image (or the same one), with a
// resume cursor. Idempotent by construction — every caller copies a view that the copy
// itself does not change — so resuming from any earlier cursor is safe. When source and
// target are different objects, the read of the next piece overlaps the write of this one.

import type { DiskImage, Extent } from "../formats/disk-image.js";
import { splitExtents, totalLength } from "../formats/extents.js";
import type { ProgressListener } from "../progress.js";
import { getWasm } from "../wasm/driver.js";
import { faultPoint } from "./fault-injection.js";

/** Default bytes per read/write (8 MiB). */
export const DEFAULT_COPY_BATCH_BYTES = 8 * 1024 * 1024;
/** Default bytes copied between durable cursor checkpoints (256 MiB). */
export const DEFAULT_CHECKPOINT_BYTES = 256 * 1024 * 1024;

/** Tuning of a copy (environment: VHDSYNC_SNAPSHOT_BATCH_BYTES, VHDSYNC_SNAPSHOT_CHECKPOINT_BYTES). */
export interface CopyTuning {
  batchBytes?: number;
  checkpointBytes?: number;
  onProgress?: ProgressListener;
}

/** Options of copyRanges(). */
export interface CopyRangesOptions extends CopyTuning {
  /** Resume cursor: ranges below this virtual offset are already copied. */
  startBytes: number;
  /** Called (after target.flush()) with the new cursor every `checkpointBytes`. */
  onCheckpoint: (cursorBytes: number) => Promise<void>;
  /** Progress event name ("merge", "delete"). */
  operation: string;
}

/** The batch/checkpoint sizes from options, then the environment, then the defaults. */
export function copyTuning(options: CopyTuning): Required<Omit<CopyTuning, "onProgress">> {
  const fromEnv = (name: string) => {
    const value = Number(process.env[name]);
    return Number.isSafeInteger(value) && value >= 512 ? value : undefined;
  };
  const batchBytes = options.batchBytes ?? fromEnv("VHDSYNC_SNAPSHOT_BATCH_BYTES") ?? DEFAULT_COPY_BATCH_BYTES;
  return { batchBytes, checkpointBytes: options.checkpointBytes ?? fromEnv("VHDSYNC_SNAPSHOT_CHECKPOINT_BYTES") ?? DEFAULT_CHECKPOINT_BYTES };
}

/** Clips sorted extents to [startBytes, ∞). */
function clipBelow(extents: Extent[], startBytes: number): Extent[] {
  const out: Extent[] = [];
  for (const extent of extents) {
    const end = extent.offset + extent.length;
    if (end <= startBytes) continue;
    const offset = Math.max(extent.offset, startBytes);
    out.push({ offset, length: end - offset });
  }
  return out;
}

/**
 * Copies `source`'s virtual content over `extents` (sorted, non-overlapping) into `target`
 * at the same offsets, from `options.startBytes` on. Calls faultPoint after every piece.
 * @returns bytes copied by this call
 * @throws I/O codes from either image (VHDSYNC_IO, VHDSYNC_NO_SPACE, ...)
 */
export async function copyRanges(source: DiskImage, target: DiskImage, extents: Extent[], options: CopyRangesOptions): Promise<number> {
  const { batchBytes, checkpointBytes } = copyTuning(options);
  const todo = clipBelow(extents, options.startBytes);
  const totalBytes = totalLength(todo);
  const wasm = getWasm();
  const overlap = source !== target;
  const addresses = [wasm.alloc(batchBytes, 4096), overlap ? wasm.alloc(batchBytes, 4096) : 0];
  let doneBytes = 0;
  let sinceCheckpoint = 0;
  let pendingWrite: Promise<void> | undefined;
  try {
    let index = 0;
    for (const piece of splitExtents(todo, batchBytes)) {
      const buffer = wasm.view(addresses[overlap ? index % 2 : 0], piece.length);
      await source.read(buffer, piece.offset);
      if (pendingWrite) await pendingWrite;
      pendingWrite = target.write(buffer, piece.offset);
      if (!overlap) await pendingWrite;
      index++;
      doneBytes += piece.length;
      sinceCheckpoint += piece.length;
      faultPoint(`${options.operation}:copied ${piece.offset}+${piece.length}`);
      if (sinceCheckpoint >= checkpointBytes) {
        await pendingWrite;
        pendingWrite = undefined;
        await target.flush();
        await options.onCheckpoint(piece.offset + piece.length);
        sinceCheckpoint = 0;
      }
      options.onProgress?.({ operation: options.operation, doneBytes, totalBytes });
    }
    if (pendingWrite) await pendingWrite;
  } finally {
    if (pendingWrite) await pendingWrite.catch(() => {});
    for (const address of addresses) if (address) wasm.release(address);
  }
  await target.flush();
  return doneBytes;
}
