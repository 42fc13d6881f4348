// The block copy of merges and deletes: reads byte ranges of one image's virtual content
// straight into WASM memory and writes them into another image (or the same one), with a
// resume cursor. Idempotent by construction — every caller copies a view that the copy
// itself does not change — so resuming from any earlier cursor is safe. When source and
// target are different objects, the read of the next piece overlaps the write of this one.
// The ranges come a window of the virtual disk at a time (RangeSource), so a layer whose
// allocation map has millions of runs never has it all in memory.

import { VhdsyncError } from "../errors.js";
import type { DiskImage, Extent } from "../formats/disk-image.js";
import { splitExtents, totalLength } from "../formats/extents.js";
import type { ProgressListener } from "../progress.js";
import { getWasm } from "../wasm/driver.js";
import { faultPoint } from "./fault-injection.js";
import { eventLoopTurns } from "../io/clock.js";

/** Default bytes per read/write (8 MiB). */
export const DEFAULT_COPY_BATCH_BYTES = 8 * 1024 * 1024;
/** Default bytes copied between durable cursor checkpoints (256 MiB). */
export const DEFAULT_CHECKPOINT_BYTES = 256 * 1024 * 1024;
/** Default span of the virtual disk whose ranges are listed at once (32 MiB: at most 32,768 runs of a sector, sector-granular differencing bitmaps being the worst case). */
export const DEFAULT_WINDOW_BYTES = 32 * 1024 * 1024;

/**
 * Tuning of a copy (environment: VHDSYNC_SNAPSHOT_BATCH_BYTES, VHDSYNC_SNAPSHOT_CHECKPOINT_BYTES,
 * VHDSYNC_SNAPSHOT_WINDOW_BYTES). `windowBytes` must be a multiple of 512.
 */
export interface CopyTuning {
  batchBytes?: number;
  checkpointBytes?: number;
  windowBytes?: number;
  onProgress?: ProgressListener;
  /**
   * Abort to stop cleanly: the piece being written is finished, the target flushed and the
   * cursor checkpointed, then VHDSYNC_INTERRUPTED is thrown; resuming goes on from there.
   */
  signal?: AbortSignal;
}

/** The ranges to copy, listed a window of the virtual disk at a time. */
export interface RangeSource {
  /** Virtual size in bytes: the ranges lie below it. */
  sizeBytes: number;
  /** The sorted, non-overlapping ranges inside [offsetBytes, offsetBytes + lengthBytes). */
  rangesIn(offsetBytes: number, lengthBytes: number): Promise<Extent[]>;
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

/**
 * The batch/checkpoint/window sizes from options, then the environment, then the defaults.
 * @throws VHDSYNC_USAGE (windowBytes not a positive multiple of 512)
 */
export function copyTuning(options: CopyTuning): Required<Omit<CopyTuning, "onProgress" | "signal">> {
  const fromEnv = (name: string) => {
    const value = Number(process.env[name]);
    return Number.isSafeInteger(value) && value >= 512 ? value : undefined;
  };
  const batchBytes = options.batchBytes ?? fromEnv("VHDSYNC_SNAPSHOT_BATCH_BYTES") ?? DEFAULT_COPY_BATCH_BYTES;
  const envWindow = fromEnv("VHDSYNC_SNAPSHOT_WINDOW_BYTES");
  const windowBytes = options.windowBytes ?? (envWindow !== undefined && envWindow % 512 === 0 ? envWindow : DEFAULT_WINDOW_BYTES);
  if (!Number.isSafeInteger(windowBytes) || windowBytes <= 0 || windowBytes % 512 !== 0) {
    throw new VhdsyncError("VHDSYNC_USAGE", `copy window of ${windowBytes} bytes: must be a positive multiple of 512`, { windowBytes });
  }
  return { batchBytes, checkpointBytes: options.checkpointBytes ?? fromEnv("VHDSYNC_SNAPSHOT_CHECKPOINT_BYTES") ?? DEFAULT_CHECKPOINT_BYTES, windowBytes };
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
 * Windows of `ranges` from the one holding `startBytes` on, each clipped to [startBytes, ∞);
 * only one window's ranges are in memory at a time.
 */
async function* windowsOf(ranges: RangeSource, startBytes: number, windowBytes: number): AsyncGenerator<Extent[]> {
  for (let offset = Math.floor(startBytes / windowBytes) * windowBytes; offset < ranges.sizeBytes; offset += windowBytes) {
    yield clipBelow(await ranges.rangesIn(offset, Math.min(windowBytes, ranges.sizeBytes - offset)), startBytes);
  }
}

/** Bytes to copy from `startBytes` on (a pass over the windows; only run when progress is reported). */
async function bytesToCopy(ranges: RangeSource, startBytes: number, windowBytes: number): Promise<number> {
  let total = 0;
  for await (const window of windowsOf(ranges, startBytes, windowBytes)) total += totalLength(window);
  return total;
}

/**
 * Copies `source`'s virtual content over `ranges` into `target` at the same offsets, from
 * `options.startBytes` on, window by window (the checkpoint cursor is a virtual offset, so
 * it stays valid across windows). Calls faultPoint after every piece.
 * @returns bytes copied by this call
 * @throws I/O codes from either image (VHDSYNC_IO, VHDSYNC_NO_SPACE, ...), VHDSYNC_USAGE (tuning),
 *   VHDSYNC_INTERRUPTED (options.signal; the cursor is checkpointed first)
 */
export async function copyRanges(source: DiskImage, target: DiskImage, ranges: RangeSource, options: CopyRangesOptions): Promise<number> {
  const { batchBytes, checkpointBytes, windowBytes } = copyTuning(options);
  const totalBytes = options.onProgress ? await bytesToCopy(ranges, options.startBytes, windowBytes) : 0;
  const wasm = getWasm();
  const overlap = source !== target;
  const addresses = [wasm.alloc(batchBytes, 4096), overlap ? wasm.alloc(batchBytes, 4096) : 0];
  let doneBytes = 0;
  let sinceCheckpoint = 0;
  let pendingWrite: Promise<void> | undefined;
  // A Ctrl-C reaches options.signal only when the event loop turns; small pieces may not let it.
  const turn = eventLoopTurns();
  try {
    let index = 0;
    for await (const window of windowsOf(ranges, options.startBytes, windowBytes)) {
      for (const piece of splitExtents(window, batchBytes)) {
        const buffer = wasm.view(addresses[overlap ? index % 2 : 0], piece.length);
        await source.read(buffer, piece.offset);
        if (pendingWrite) await pendingWrite;
        pendingWrite = target.write(buffer, piece.offset);
        // Marked handled at once: it is awaited (and its error thrown) only after the next
        // piece's read, and a write that fails before then (ENOSPC allocating a block) was an
        // unhandled rejection, which ended the process with a stack trace and status 1.
        pendingWrite.catch(() => undefined);
        if (!overlap) await pendingWrite;
        index++;
        doneBytes += piece.length;
        sinceCheckpoint += piece.length;
        faultPoint(`${options.operation}:copied ${piece.offset}+${piece.length}`);
        const turning = turn();
        if (turning) await turning;
        const stopping = Boolean(options.signal?.aborted);
        if (stopping || sinceCheckpoint >= checkpointBytes) {
          await pendingWrite;
          pendingWrite = undefined;
          await target.flush();
          await options.onCheckpoint(piece.offset + piece.length);
          sinceCheckpoint = 0;
        }
        options.onProgress?.({ operation: options.operation, doneBytes, totalBytes });
        if (stopping) {
          throw new VhdsyncError("VHDSYNC_INTERRUPTED", `${options.operation} interrupted after ${piece.offset + piece.length} bytes of the virtual disk`, {
            operation: options.operation,
            cursorBytes: piece.offset + piece.length,
          });
        }
      }
    }
    if (pendingWrite) await pendingWrite;
  } finally {
    if (pendingWrite) await pendingWrite.catch(() => {});
    for (const address of addresses) if (address) wasm.release(address);
  }
  await target.flush();
  return doneBytes;
}
