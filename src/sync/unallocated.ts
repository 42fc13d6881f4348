// Segments with nothing allocated in the images a scan reads are answered on the main thread,
// without a scanner (docs/resync.md "How it works": "Empty segments go to no scanner"). Every
// segment used to go to one: a worker's message round trip or a pool job per segment only to
// count zeros, and a 2040 GiB dynamic VHD is 261,120 segments of 8 MiB.

import type { DiskImage } from "../formats/disk-image.js";
import { flatDataOf, nextDataFlatSync, type FlatFile } from "../formats/flat-file.js";
import { NO_EXTENTS, pairsOfExtents, type ExtentPairs } from "../io/extent-pairs.js";
import type { ScanConfig } from "./segment-scanner.js";
import { emptyCounters, type SegmentResult, type SegmentTask } from "./segment-task.js";

/**
 * Answers for the segments of a scan in which nothing is allocated in the images it reads,
 * given without reading or writing. Each scanner's scan of such a segment gives the same
 * result (test/unallocated-segments.test.ts).
 */
export interface UnallocatedAnswerer {
  readonly blockSizeBytes: number;
  /** Whether a run of empty segments is answered as one result (not in the hash modes: a result there is one digest frame). */
  readonly merges: boolean;
  /**
   * Whether nothing in [start, end) holds data in the images the scan reads (the source, and
   * in a compare the target too), by the maps the scanners ask. Ranges are asked in
   * increasing order (an earlier one asks the images afresh).
   */
  isEmpty(start: number, end: number): Promise<boolean>;
  /**
   * What a scan of `task` returns when its range is empty (and, hashing against a target
   * digest, the task's frame of it has no data block): every block zero and unallocated,
   * nothing read; a copy into an existing target turns the range into one zero change
   * (counted as zeroed, the caller writes it), the other modes record nothing; the hash modes
   * give the digest frame of unallocated blocks (state 0, no digest). Where runs merge, the
   * task may span many segments: the result is theirs taken together.
   */
  unallocatedResult(task: SegmentTask): SegmentResult;
}

/**
 * The answerer for a scan of `config` over `source` (and `target`), where its mode has one: a
 * compare (nothing is read, nothing differs), a checksum or a hash against a target digest
 * (a frame of unallocated blocks; nothing differs where the target's frame has no data), or a
 * copy whose zero ranges need no write (a fresh target) or go back to the caller to write.
 * Not a copy that writes zeros into an existing target itself.
 */
export function unallocatedAnswererFor(config: ScanConfig, source: DiskImage, target: DiskImage | undefined): UnallocatedAnswerer | undefined {
  const { mode, apply, targetFresh, blockSizeBytes } = config;
  if (mode === "copy" && targetFresh !== true && apply !== "caller") return undefined;
  const finders = (mode === "compare" && target ? [source, target] : [source]).map((image) => new DataFinder(image));
  const zeroChange = mode === "copy" && !targetFresh;
  const hashing = mode === "hash" || mode === "hash-compare";
  return {
    blockSizeBytes,
    merges: !hashing,
    async isEmpty(start, end) {
      for (const finder of finders) if (!(await finder.isEmpty(start, end))) return false;
      return true;
    },
    unallocatedResult(task) {
      const startBytes = task.firstBlock * blockSizeBytes;
      const bytes = Math.min(source.virtualSize, (task.firstBlock + task.blockCount) * blockSizeBytes) - startBytes;
      const counters = emptyCounters();
      counters.blocksZero = counters.blocksUnallocated = task.blockCount;
      if (zeroChange) counters.bytesZeroed = bytes;
      const result: SegmentResult = { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters, changes: zeroChange ? Float64Array.of(startBytes, bytes, 1) : new Float64Array(0) };
      if (hashing) {
        result.frameFlags = new Uint8Array(task.blockCount);
        result.frameDigests = new Uint8Array(0);
      }
      return result;
    },
  };
}

/** Bytes of a format's allocation map (a BAT walk) asked for at once by a DataFinder. */
export const MAP_LOOKAHEAD_BYTES = 1024 * 1024 * 1024;

/**
 * Where one image's data lies, for ranges asked in increasing order. A flat image (raw file,
 * block device, fixed VHD) asks SEEK_DATA for the first data at or after a range: one system
 * call per range with data, and none for the ranges before data already found. Enumerating
 * its extents instead would repeat the scan's own work, a lot of it for a fragmented file
 * (262,144 extents in 2 GiB: +0.26 s on a 0.59 s dry run with FIEMAP, +0.95 s with lseek,
 * measured). Other formats read their map from tables in memory, MAP_LOOKAHEAD_BYTES at a time.
 */
class DataFinder {
  private readonly flat: FlatFile | undefined;
  /** Flat: the first data offset at or after `askedFrom` (no data in between). */
  private nextData = -1;
  private askedFrom = Infinity;
  /** Others: the map of [mapStart, mapEnd), and the first of its pairs not wholly before the last range asked. */
  private map: ExtentPairs = NO_EXTENTS;
  private mapStart = Infinity;
  private mapEnd = -1;
  private cursor = 0;

  constructor(private readonly image: DiskImage) {
    this.flat = flatDataOf(image);
  }

  async isEmpty(start: number, end: number): Promise<boolean> {
    if (this.flat) {
      if (start < this.askedFrom || this.nextData < start) {
        this.nextData = nextDataFlatSync(this.flat, Math.min(start, this.flat.sizeBytes));
        this.askedFrom = start;
      }
      return this.nextData >= end;
    }
    if (start < this.mapStart || end > this.mapEnd) {
      const mapEnd = Math.min(this.image.virtualSize, Math.max(end, start + MAP_LOOKAHEAD_BYTES));
      this.map = mapEnd > start ? pairsOfExtents(await this.image.allocationMap(start, mapEnd - start)) : NO_EXTENTS;
      this.mapStart = start;
      this.mapEnd = Math.max(end, mapEnd);
      this.cursor = 0;
    }
    // The map is sorted and coalesced: skip the pairs that end before the range.
    while (this.cursor < this.map.length && this.map[this.cursor] + this.map[this.cursor + 1] <= start) this.cursor += 2;
    return this.cursor >= this.map.length || this.map[this.cursor] >= end;
  }
}

/** A run of segments answered without scanning (answerUnallocated). */
export interface Answered {
  result: SegmentResult;
}

export function isAnswered(item: SegmentTask | Answered): item is Answered {
  return "result" in item;
}

/** Most segments one answered run covers: results keep coming (progress, checkpoints, a stop) through a large empty disk. */
export const UNALLOCATED_RUN_SEGMENTS = 1024;

/**
 * The tasks, with each run of consecutive segments that are empty in the images `answerer`
 * reads replaced by its answer for the whole run, up to UNALLOCATED_RUN_SEGMENTS (each
 * segment by its own answer where runs do not merge). The images are asked as the tasks
 * come, while earlier segments are still being scanned and written. A run writes only the
 * segments it has scanned (the caller: their results), so the data of the segments ahead is
 * what their own scans would see; where a target's blocks span segments
 * (callerSegmentsWholeBlocks false), no less current than the maps the WASM scanners opened
 * the target with.
 */
export async function* answerUnallocated(answerer: UnallocatedAnswerer, tasks: AsyncIterable<SegmentTask> | Iterable<SegmentTask>): AsyncGenerator<SegmentTask | Answered> {
  const block = answerer.blockSizeBytes;
  let run: SegmentTask | undefined;
  let runSegments = 0;
  const answer = (): Answered => {
    const result = answerer.unallocatedResult(run!);
    run = undefined;
    runSegments = 0;
    return { result };
  };
  for await (const task of tasks) {
    // Against a target digest, a frame with data blocks is scanned: the source's zeros differ from them.
    const targetData = task.targetDigests !== undefined && task.targetDigests.length > 0;
    if (targetData || !(await answerer.isEmpty(task.firstBlock * block, (task.firstBlock + task.blockCount) * block))) {
      if (run) yield answer();
      yield task;
      continue;
    }
    if (run && answerer.merges && run.firstBlock + run.blockCount === task.firstBlock) run = { ...run, blockCount: run.blockCount + task.blockCount };
    else {
      if (run) yield answer();
      run = { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount };
    }
    if (++runSegments >= UNALLOCATED_RUN_SEGMENTS) yield answer();
  }
  if (run) yield answer();
}
