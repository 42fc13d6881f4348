// Scanning by the native addon (src/io/native-compare.ts; native/src/scan.rs and
// native/src/hash_scan.rs) of images whose data lies in plain runs of their files: raw
// files, block devices, fixed VHDs, dynamic VHDs and clean VHDX files (one run per allocated
// block; src/formats/data-location.ts), and a target read through its format into memory
// (a differencing VHD a resync writes to). Each segment is one job on a libuv pool thread, which
// maps the allocated ranges read-only and either compares two images block by block
// (NativeCompareScanner: resync, verify, diff, and copy into a new target) or builds the source's digest frame, and
// against the target's frame finds the differing blocks (NativeHashScanner: checksum,
// resync --target-digest). Differing data is written to the target there, followed by its
// writeback (sync_file_range, no device cache flush: the final fdatasync makes it durable).
// No worker thread boots and no WASM instance is made, so every core scans from the first
// segment on. This thread computes the allocation maps and where each range lies in the
// files, punches the zero runs and keeps the counters; results are those of the WASM scanner
// (test/native-scan.test.ts checks both against each other).

import { availableParallelism } from "node:os";
import type { DiskImage, Extent } from "../formats/disk-image.js";
import { dataLocatorOf, type DataLocator } from "../formats/data-location.js";
import { allocationMapFlat, flatDataOf } from "../formats/flat-file.js";
import { readExactlySync, settleAll } from "../io/file.js";
import { SpareBuffers } from "./spare-buffers.js";
import { closeJobGate, compareSegment, hashSegment, nativeCompareAvailable, nativeHashScanAvailable, openJobGate, type CompareRange } from "../io/native-compare.js";
import { wasmAlgorithmId } from "../hash/algorithm.js";
import { activeUnits, allocationMapOf, openAs, type ScanConfig } from "./segment-scanner.js";
import { callerSegmentsWholeBlocks, compareUnitBytes } from "./segment-plan.js";
import { blockDigestLength } from "./block-hasher.js";
import { emptyCounters, eachChange, type SegmentCounters, type SegmentResult, type SegmentTask } from "./segment-task.js";
import { NATIVE_JOBS_PER_THREAD } from "./scan-workers.js";

/**
 * How many of a native scanner's jobs run at once for `threads` scanning threads on `cores`
 * cores: all it submits (`threads` x NATIVE_JOBS_PER_THREAD) when the threads cover every core, else
 * exactly `threads`.
 */
export function jobsRunningAtOnce(threads: number, cores = availableParallelism()): number {
  return threads >= cores ? threads * NATIVE_JOBS_PER_THREAD : threads;
}

/**
 * Submits up to `threads` x NATIVE_JOBS_PER_THREAD jobs at once. How many of them run is up to a job
 * gate (native/src/gate.rs), where the others wait on their own pool threads to start the
 * moment a running one finishes: all of them when `threads` covers every core (the default;
 * time-sharing the cores measured faster than letting only `threads` run), exactly `threads`
 * when fewer threads than cores were asked for, so that `--workers N` keeps N cores busy and no
 * more. Without gates in the addon, `threads` jobs are submitted.
 */
class JobSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly limit: number;
  /** The gate every job waits at (undefined: the addon has none). */
  readonly gate: number | undefined;

  constructor(threads: number) {
    const submitted = threads * NATIVE_JOBS_PER_THREAD;
    this.gate = openJobGate(jobsRunningAtOnce(threads));
    this.limit = this.gate === undefined ? threads : submitted;
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    while (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await job();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  /** Closes the gate (after the last job has settled). */
  close(): void {
    if (this.gate !== undefined) closeJobGate(this.gate);
  }
}

/** A segment map with more extents than this marks its image as fragmented (SegmentMaps). */
const FRAGMENTED_EXTENTS = 64;

/**
 * The allocation maps of one image, segment by segment. A flat image's map comes from
 * SEEK_DATA/SEEK_HOLE: on this thread while its segments hold few extents (a hop to the libuv
 * pool costs ~100 us while the jobs keep every core busy), on the pool once a segment held
 * more than FRAGMENTED_EXTENTS: a sparse file with data in small pieces costs ~1 us of lseek
 * per extent, and this thread would hold up the scan while the pool threads waited for it.
 */
class SegmentMaps {
  private fragmented = false;
  private readonly flat;

  constructor(private readonly image: DiskImage) {
    this.flat = flatDataOf(image);
  }

  async of(offset: number, length: number): Promise<Extent[]> {
    if (this.flat && this.fragmented) return allocationMapFlat(this.flat, offset, length);
    const map = await allocationMapOf(this.image, offset, length);
    if (map.length > FRAGMENTED_EXTENTS) this.fragmented = true;
    return map;
  }
}

/** Punches the changes whose source reads as zeros into the target; returns the bytes made zero. */
async function zeroRuns(target: DiskImage, changes: Float64Array): Promise<number> {
  let zeroed = 0;
  for (const change of eachChange(changes)) {
    if (!change.zero) continue;
    await target.writeZeros(change.offsetBytes, change.lengthBytes);
    zeroed += change.lengthBytes;
  }
  return zeroed;
}

/**
 * For "caller" apply: the source's bytes of the non-zero changes, packed in order (what
 * applyChanges writes), read on this thread (page-cache reads of the changed blocks only),
 * and the bytes of data and of zeros the changes make.
 */
function changedData(source: DataLocator, changes: Float64Array, path: string, take: (bytes: number) => Uint8Array): { data: Uint8Array; written: number; zeroed: number } {
  let written = 0;
  let zeroed = 0;
  for (const change of eachChange(changes)) {
    if (change.zero) zeroed += change.lengthBytes;
    else written += change.lengthBytes;
  }
  const data = take(written);
  let at = 0;
  for (const change of eachChange(changes)) {
    if (change.zero) continue;
    for (const piece of source.locate(change.offsetBytes, change.lengthBytes)) {
      const view = data.subarray(at + piece.offset - change.offsetBytes, at + piece.offset - change.offsetBytes + piece.length);
      if (piece.fileOffset !== null) readExactlySync(source.fd, view, piece.fileOffset, path);
      else view.fill(0); // reads as zeros (the buffer may be a reused one)
    }
    at += change.lengthBytes;
  }
  return { data, written, zeroed };
}

/** Bytes of allocated data in the maps (what a scan of them reads). */
function mappedBytes(...maps: Array<Array<{ length: number }>>): number {
  return maps.flat().reduce((sum, extent) => sum + extent.length, 0);
}

/** New data buffers of "caller" results are made in steps of this size (so that later segments can reuse them). */
const DATA_BUFFER_STEP_BYTES = 1024 * 1024;

export class NativeCompareScanner {
  private readonly slots: JobSlots;
  private readonly spareBuffers = new SpareBuffers();
  /** Segment buffers of a target read into memory (one per job in flight, at most four kept). */
  private readonly targetBuffers = new SpareBuffers(4);

  /** Compare granularity: the block, or a part of it. */
  private readonly unit: number;

  private constructor(
    readonly config: ScanConfig,
    readonly threads: number,
    private readonly source: DiskImage,
    private readonly target: DiskImage,
    private readonly sourceData: DataLocator,
    /** Undefined: the target is read through its format into memory, segment by segment (open()). */
    private readonly targetData: DataLocator | undefined,
  ) {
    // Parts of large blocks lie in one run of each file (a dynamic image's block at most); a
    // copy works in whole blocks (open() checked that they lie in one run).
    const granules = [sourceData.granuleBytes, ...(targetData ? [targetData.granuleBytes] : [])];
    this.unit = config.mode === "copy" ? config.blockSizeBytes : compareUnitBytes(config.blockSizeBytes, granules);
    this.slots = new JobSlots(threads);
    this.sourceMaps = new SegmentMaps(source);
    this.targetMaps = new SegmentMaps(target);
  }

  private readonly sourceMaps: SegmentMaps;
  private readonly targetMaps: SegmentMaps;

  /**
   * A native scanner for `config` running up to `threads` segments at once, when it applies:
   * compare mode, results that carry no data ("none" or "here"), the addon available, both
   * images' data in plain runs of their files, and a flat target when writing (other formats
   * allocate as they are written). A target whose data is not in plain runs of its file
   * (a differencing VHD; VHDX targets are read-only) is read through its format into memory
   * segment by segment when its changes go through the format too ("caller") and each of its
   * blocks lies in one segment: the jobs compare the source's file against that memory. Also
   * copy mode into a fresh flat target (which reads as
   * zeros: the source's data is "compared" against zeros, not read from it), from a source
   * whose blocks each lie in one run of its file. Otherwise undefined (nothing stays open).
   * @throws open errors from the images
   */
  static async open(config: ScanConfig, threads: number): Promise<NativeCompareScanner | undefined> {
    const copying = config.mode === "copy" && config.targetFresh === true && config.apply === "here";
    if ((config.mode !== "compare" && !copying) || !config.targetPath || !nativeCompareAvailable()) return undefined;
    const source = await openAs(config.sourcePath, config.sourceFormat, true);
    let target: DiskImage | undefined;
    try {
      target = await openAs(config.targetPath, config.targetFormat, config.apply !== "here");
      const sourceData = dataLocatorOf(source);
      const targetData = dataLocatorOf(target);
      const writable = config.apply !== "here" || flatDataOf(target) !== undefined;
      // A copy writes whole non-zero blocks, as the WASM copy does: each must lie in one run.
      const blocksWhole = !copying || (sourceData !== undefined && config.blockSizeBytes <= sourceData.granuleBytes);
      if (sourceData && targetData && writable && blocksWhole) return new NativeCompareScanner(config, Math.max(1, threads), source, target, sourceData, targetData);
      // Read into memory: the target's blocks change only once their segment has been scanned.
      const inMemory = config.mode === "compare" && config.apply === "caller" && callerSegmentsWholeBlocks(target);
      if (sourceData && !targetData && inMemory) return new NativeCompareScanner(config, Math.max(1, threads), source, target, sourceData, undefined);
    } catch (error) {
      await source.close();
      throw error;
    }
    await source.close();
    await target.close();
    return undefined;
  }

  /** Compares one segment (and writes its differences when applying). @throws I/O errors (VhdsyncError) */
  async scan(task: SegmentTask): Promise<SegmentResult> {
    const block = this.config.blockSizeBytes;
    const unit = this.unit;
    const start = task.firstBlock * block;
    const end = Math.min(this.source.virtualSize, (task.firstBlock + task.blockCount) * block);
    // Flat images answer with extents clipped to the range (SegmentMaps); VHDs from their BAT.
    const copying = this.config.mode === "copy";
    const sourceMap = await this.sourceMaps.of(start, end - start);
    // A fresh copy target reads as zeros: nothing of it to map.
    const targetMap = copying ? [] : await this.targetMaps.of(start, end - start);
    const spans = activeUnits(sourceMap, targetMap, start, unit, Math.ceil((end - start) / unit)).map(([first, last]): [number, number] => [start + first * unit, Math.min(end, start + last * unit)]);
    const targetMemory = this.targetData || spans.length === 0 ? undefined : await this.readTarget(spans, start, end);
    let outcome;
    try {
      const targetData = this.targetData ?? memoryLocator(start);
      const ranges = spans.flatMap(([from, to]) => placeRange(from, to, this.sourceData, targetData));
      // Unallocated on both sides: equal zeros, nothing to map.
      outcome = ranges.length === 0 ? { blocksCompared: 0, blocksChanged: 0, blocksNonZero: 0, bytesWritten: 0, changes: 0, changesArray: new Float64Array(0) } : await this.slots.run(() =>
        compareSegment({
          sourceFd: this.sourceData.fd,
          targetFd: this.targetData?.fd ?? this.sourceData.fd,
          blockSizeBytes: block,
          unitBytes: unit,
          startBytes: start,
          lengthBytes: end - start,
          ranges,
          write: this.config.apply === "here",
          targetZeros: copying,
          gate: this.slots.gate,
          targetMemory,
        }),
      );
    } finally {
      if (targetMemory) this.targetBuffers.give(targetMemory.buffer as ArrayBuffer);
    }
    const counters = emptyCounters();
    counters.blocksCompared = outcome.blocksCompared;
    counters.blocksUnallocated = task.blockCount - outcome.blocksCompared;
    counters.blocksZero = task.blockCount - outcome.blocksNonZero;
    // A copy compares nothing: like the WASM copy it reports no changed blocks, only what it wrote.
    counters.blocksChanged = copying ? 0 : outcome.blocksChanged;
    counters.bytesRead = mappedBytes(sourceMap, targetMap);
    counters.bytesWritten = outcome.bytesWritten;
    const result: SegmentResult = { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters, changes: outcome.changesArray };
    if (this.config.apply === "here") counters.bytesZeroed = await zeroRuns(this.target, outcome.changesArray);
    if (this.config.apply === "caller") {
      const changed = changedData(this.sourceData, outcome.changesArray, this.source.path, (bytes) =>
        bytes === 0 ? new Uint8Array(0) : this.spareBuffers.take(bytes, Math.ceil(bytes / DATA_BUFFER_STEP_BYTES) * DATA_BUFFER_STEP_BYTES).subarray(0, bytes),
      );
      result.data = changed.data;
      result.release = () => this.spareBuffers.give(changed.data.buffer as ArrayBuffer);
      counters.bytesWritten = changed.written;
      counters.bytesZeroed = changed.zeroed;
    }
    return result;
  }

  /**
   * The target's bytes of `spans` (in [start, end)) read through its format, at their offsets
   * from `start` in a buffer of the segment's length.
   */
  private async readTarget(spans: Array<[number, number]>, start: number, end: number): Promise<Uint8Array> {
    const memory = this.targetBuffers.take(end - start);
    try {
      // Disjoint parts of the buffer: all in flight at once, all settled before it is given back.
      await settleAll(spans.map(([from, to]) => this.target.read(memory.subarray(from - start, to - start), from)));
    } catch (error) {
      this.targetBuffers.give(memory.buffer as ArrayBuffer);
      throw error;
    }
    return memory;
  }

  /** Closes the images (the caller flushes the target before success). */
  async close(): Promise<void> {
    this.slots.close();
    try {
      await this.source.close();
    } finally {
      await this.target.close();
    }
  }
}

/** Where a segment's target bytes lie when read into memory from `start` on (readTarget). */
function memoryLocator(start: number): DataLocator {
  return { fd: -1, granuleBytes: 2 ** 52, locate: (offset, length) => [{ offset, length, fileOffset: offset - start }] };
}

/** XXH3's "large input" path, the only one the addon has, starts above this many bytes. */
const NATIVE_HASH_MIN_BLOCK_BYTES = 240;

/**
 * Hash modes (checksum; resync --target-digest) by the native addon: each segment's digest
 * frame built by one job (hashSegment), which against the target's frame also finds the
 * differing blocks and writes their data to a flat target.
 */
export class NativeHashScanner {
  private readonly slots: JobSlots;
  private readonly algorithmId: number;
  private readonly digestLength: number;

  private constructor(
    readonly config: ScanConfig,
    readonly threads: number,
    private readonly source: DiskImage,
    private readonly sourceData: DataLocator,
    /** The target when writing to it (a flat image). */
    private readonly target: DiskImage | undefined,
  ) {
    this.slots = new JobSlots(threads);
    this.algorithmId = wasmAlgorithmId(config.algo!)!;
    this.digestLength = blockDigestLength(config.algo!);
    this.sourceMaps = new SegmentMaps(source);
  }

  private readonly sourceMaps: SegmentMaps;

  /**
   * A native scanner for `config` running up to `threads` segments at once, when it applies:
   * a hash mode with XXH3-128 or XXH3-64, results that carry no data, the addon available, the
   * source's data in plain runs of its file with each block inside one run, a last block longer
   * than 240 bytes, and a flat target when writing. Otherwise undefined (nothing stays open).
   * @throws open errors from the images
   */
  static async open(config: ScanConfig, threads: number): Promise<NativeHashScanner | undefined> {
    if (config.mode !== "hash" && config.mode !== "hash-compare") return undefined;
    const id = config.algo ? wasmAlgorithmId(config.algo) : undefined;
    if ((id !== 2 && id !== 3) || config.apply === "caller" || !nativeHashScanAvailable()) return undefined;
    const writes = config.mode === "hash-compare" && config.apply === "here";
    if (writes && !config.targetPath) return undefined;
    const source = await openAs(config.sourcePath, config.sourceFormat, true);
    let target: DiskImage | undefined;
    try {
      const sourceData = dataLocatorOf(source);
      const block = config.blockSizeBytes;
      const tail = source.virtualSize % block;
      if (sourceData && block <= sourceData.granuleBytes && (tail === 0 || tail > NATIVE_HASH_MIN_BLOCK_BYTES)) {
        if (writes) target = await openAs(config.targetPath!, config.targetFormat, false);
        if (!writes || flatDataOf(target!)) return new NativeHashScanner(config, Math.max(1, threads), source, sourceData, target);
      }
    } catch (error) {
      await source.close();
      throw error;
    }
    await source.close();
    await target?.close();
    return undefined;
  }

  /** Hashes one segment (and writes its differences when applying). @throws I/O errors (VhdsyncError) */
  async scan(task: SegmentTask): Promise<SegmentResult> {
    const block = this.config.blockSizeBytes;
    const start = task.firstBlock * block;
    const end = Math.min(this.source.virtualSize, (task.firstBlock + task.blockCount) * block);
    const sourceMap = await this.sourceMaps.of(start, end - start);
    // The blocks an allocated part overlaps, split where the source's data moves to another
    // run of its file (at granules, which the block divides); flat targets are written in place.
    const ranges = activeUnits(sourceMap, [], start, block, task.blockCount).flatMap(([first, last]) =>
      this.sourceData.locate(start + first * block, Math.min(end, start + last * block) - (start + first * block)).map((piece): CompareRange => [piece.offset, piece.offset + piece.length, piece.fileOffset, this.target ? piece.offset : null]),
    );
    // DigestReader.frames() has checked each frame's digests against its data blocks (and the addon checks again).
    const frame = task.targetFlags && task.targetDigests ? { flags: task.targetFlags, digests: task.targetDigests } : undefined;
    // Unallocated in the source, and no data in the target's frame: a frame of unallocated
    // blocks (state 0), nothing differs. Sparse images are mostly such segments.
    const empty = ranges.length === 0 && (frame === undefined || frame.digests.length === 0);
    const outcome = empty ? { dataBlocks: 0, unallocatedBlocks: task.blockCount, changedBlocks: 0, bytesWritten: 0, changes: 0, flags: new Uint8Array(task.blockCount), digests: new Uint8Array(0), changesArray: new Float64Array(0) } : await this.slots.run(() =>
      hashSegment({
        sourceFd: this.sourceData.fd,
        targetFd: this.target ? flatDataOf(this.target)!.handle.fd : this.sourceData.fd,
        algorithmId: this.algorithmId,
        digestLength: this.digestLength,
        blockSizeBytes: block,
        startBytes: start,
        lengthBytes: end - start,
        ranges,
        target: frame,
        write: this.target !== undefined,
        gate: this.slots.gate,
      }),
    );
    const counters: SegmentCounters = {
      ...emptyCounters(),
      blocksCompared: task.blockCount - outcome.unallocatedBlocks,
      blocksChanged: outcome.changedBlocks,
      blocksZero: task.blockCount - outcome.dataBlocks,
      blocksUnallocated: outcome.unallocatedBlocks,
      bytesRead: mappedBytes(sourceMap),
      bytesWritten: outcome.bytesWritten,
    };
    if (this.target) counters.bytesZeroed = await zeroRuns(this.target, outcome.changesArray);
    return { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters, changes: outcome.changesArray, frameFlags: outcome.flags, frameDigests: outcome.digests };
  }

  /** Closes the images (the caller flushes the target before success). */
  async close(): Promise<void> {
    this.slots.close();
    try {
      await this.source.close();
    } finally {
      await this.target?.close();
    }
  }
}

/**
 * [from, to) split where either image's data moves to another run of its file (at most at
 * each granule, which the unit divides), with each part's file offsets (null: reads as zeros).
 */
function placeRange(from: number, to: number, source: DataLocator, target: DataLocator): CompareRange[] {
  const sourcePieces = source.locate(from, to - from);
  const targetPieces = target.locate(from, to - from);
  const ranges: CompareRange[] = [];
  const fileOffset = (piece: { offset: number; fileOffset: number | null }, at: number) => (piece.fileOffset === null ? null : piece.fileOffset + (at - piece.offset));
  for (let at = from, i = 0, j = 0; at < to; ) {
    const a = sourcePieces[i];
    const b = targetPieces[j];
    const end = Math.min(a.offset + a.length, b.offset + b.length);
    ranges.push([at, end, fileOffset(a, at), fileOffset(b, at)]);
    if (end === a.offset + a.length) i++;
    if (end === b.offset + b.length) j++;
    at = end;
  }
  return ranges;
}
