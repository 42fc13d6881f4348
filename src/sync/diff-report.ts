// The result of comparing two images or digests (verify, diff): differing extents (coalesced,
// capped so memory stays bounded), block and byte counts.

import type { Extent } from "../formats/disk-image.js";
import { VhdsyncError } from "../errors.js";
import { throttle, type ProgressListener } from "../progress.js";
import { runSegments, type SegmentPool } from "./segment-pool.js";
import { addCounters, eachChange, emptyCounters, type SegmentCounters, type SegmentResult, type SegmentTask } from "./segment-task.js";
import { monotonicMs } from "../io/clock.js";

/** Default cap on the extents a report lists (counts stay exact beyond it). */
export const DEFAULT_MAX_EXTENTS = 100_000;

/** What verify() and diff() report. */
export interface DiffReport {
  a: string;
  b: string;
  /** "images", "image-digest" or "digests". */
  method: string;
  equal: boolean;
  blockSizeBytes: number;
  virtualSizeBytes: number;
  blocksTotal: number;
  blocksCompared: number;
  blocksDiffering: number;
  bytesDiffering: number;
  bytesRead: number;
  /** Differing byte ranges, coalesced; at most maxExtents of them. */
  extents: Extent[];
  extentsTruncated: boolean;
  /** Which scanner read the images: "native" (the addon's compare) or "wasm"; absent for two digest files. */
  scanner?: "native" | "wasm";
  seconds: number;
}

/**
 * Accumulates differing ranges in order, merging adjacent ones, up to a cap. With `blocks`, each
 * range is widened to the whole blocks it touches (a compare of blocks larger than its unit
 * reports the differing parts: the report's extents and bytes are those of blocks).
 */
export class ExtentCollector {
  readonly extents: Extent[] = [];
  truncated = false;
  bytes = 0;
  /** End of the last range added (ranges come in order). */
  private end = 0;

  constructor(
    private readonly maxExtents = DEFAULT_MAX_EXTENTS,
    private readonly blocks?: { blockSizeBytes: number; virtualSizeBytes: number },
  ) {}

  add(offset: number, length: number): void {
    if (this.blocks) {
      const { blockSizeBytes, virtualSizeBytes } = this.blocks;
      const end = Math.min(virtualSizeBytes, Math.ceil((offset + length) / blockSizeBytes) * blockSizeBytes);
      offset = Math.max(this.end, Math.floor(offset / blockSizeBytes) * blockSizeBytes); // a block another part already added
      if (end <= offset) return;
      length = end - offset;
    }
    this.end = offset + length;
    this.bytes += length;
    const last = this.extents[this.extents.length - 1];
    if (last && last.offset + last.length === offset) {
      last.length += length;
      return;
    }
    if (this.extents.length >= this.maxExtents) {
      this.truncated = true;
      return;
    }
    this.extents.push({ offset, length });
  }

  /** Adds every change of a segment result. */
  addResult(result: SegmentResult): void {
    for (const change of eachChange(result.changes)) this.add(change.offsetBytes, change.lengthBytes);
  }
}

/** Runs compare tasks on a pool and gathers the differing extents. @throws VHDSYNC_INTERRUPTED */
export async function collectDifferences(
  pool: SegmentPool,
  tasks: AsyncIterable<SegmentTask> | Iterable<SegmentTask>,
  what: { operation: string; virtualSizeBytes: number; blockSizeBytes: number },
  options: { maxExtents?: number; signal?: AbortSignal; onProgress?: ProgressListener },
): Promise<{ counters: SegmentCounters; extents: ExtentCollector; scanner: "native" | "wasm" }> {
  const scanner = pool.native ? "native" : "wasm";
  const extents = new ExtentCollector(options.maxExtents, what);
  const counters = emptyCounters();
  const progress = throttle(options.onProgress);
  let complete: boolean;
  try {
    complete = await runSegments(
      pool,
      tasks,
      (result) => {
        addCounters(counters, result.counters);
        extents.addResult(result);
        const doneBytes = Math.min(what.virtualSizeBytes, (result.firstBlock + result.blockCount) * what.blockSizeBytes);
        progress.report({ operation: what.operation, doneBytes, totalBytes: what.virtualSizeBytes, detail: `${counters.blocksChanged} ${counters.blocksChanged === 1 ? "block differs" : "blocks differ"}` });
      },
      { signal: options.signal },
    );
  } finally {
    await pool.close();
  }
  progress.flush();
  if (!complete) throw new VhdsyncError("VHDSYNC_INTERRUPTED", `${what.operation} interrupted`);
  return { counters, extents, scanner };
}

/** Assembles a DiffReport. */
export function diffReport(
  base: { a: string; b: string; method: string; blockSizeBytes: number; virtualSizeBytes: number; blocksTotal: number; scanner?: "native" | "wasm" },
  counters: Pick<SegmentCounters, "blocksCompared" | "blocksChanged" | "bytesRead">,
  extents: ExtentCollector,
  startedMs: number,
): DiffReport {
  return {
    ...base,
    equal: counters.blocksChanged === 0,
    blocksCompared: counters.blocksCompared,
    blocksDiffering: counters.blocksChanged,
    bytesDiffering: extents.bytes,
    bytesRead: counters.bytesRead,
    extents: extents.extents,
    extentsTruncated: extents.truncated,
    seconds: (monotonicMs() - startedMs) / 1000,
  };
}
