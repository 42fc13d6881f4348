// Scanning by the native addon (src/io/native-compare.ts; native/src/scan.rs and
// native/src/hash_scan.rs) of images whose data lies in plain runs of their files: raw
// files, block devices, fixed VHDs, dynamic VHDs and clean VHDX files (one run per allocated
// block; src/formats/data-location.ts); differencing VHDs and VHDX files, whose pieces lie in
// their own file and their parents' (the jobs gather them: native/src/gather.rs); and other
// images (VHDX files with a log replayed in memory) read through their format into memory,
// chunk by chunk. Each
// segment (or chunk) is one job on a libuv pool thread, which reads (or maps) the allocated
// ranges window by window and either compares two images block by block
// (NativeCompareScanner: resync, verify, diff, and copy into a new target) or builds the
// source's digest frame, and against the target's frame finds the differing blocks
// (NativeHashScanner: checksum, resync --target-digest). Differing data is written to the
// target there, followed by its writeback (sync_file_range, no device cache flush: the final
// fdatasync makes it durable). No worker thread boots and no WASM instance is made, so every
// core scans from the first segment on. This thread computes the allocation maps and where
// each range lies in the files, punches the zero runs and keeps the counters; results are
// those of the WASM scanner (test/native-scan.test.ts checks both against each other).

import { availableParallelism } from "node:os";
import type { DiskImage } from "../formats/disk-image.js";
import { dataLocatorOf, filePiecesOf, type DataLocator, type DataPiece, type FilePiece } from "../formats/data-location.js";
import { allocationPairsFlat, flatDataOf } from "../formats/flat-file.js";
import { NO_EXTENTS, pairsBytes, type ExtentPairs } from "../io/extent-pairs.js";
import { readExactlySync, settleAll } from "../io/file.js";
import { SpareBuffers } from "./spare-buffers.js";
import { closeJobGate, compareSegment, hashScanAlgorithmId, hashSegment, nativeCompareAvailable, openJobGate, type PackedRanges } from "../io/native-compare.js";
import { hashScanShortestBlock } from "../io/native-addon.js";
import { activeUnits, allocationPairsOf, openAs, type ScanConfig } from "./segment-scanner.js";
import { unallocatedAnswererFor, type UnallocatedAnswerer } from "./unallocated.js";
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

/** Runs jobs `limit` at a time; the others wait, in the order they came. */
class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

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
  private readonly limiter: Limiter;
  /** The gate every job waits at (undefined: the addon has none). */
  readonly gate: number | undefined;

  constructor(threads: number) {
    const submitted = threads * NATIVE_JOBS_PER_THREAD;
    this.gate = openJobGate(jobsRunningAtOnce(threads));
    this.limiter = new Limiter(this.gate === undefined ? threads : submitted);
  }

  run<T>(job: () => Promise<T>): Promise<T> {
    return this.limiter.run(job);
  }

  /** Closes the gate (after the last job has settled). */
  close(): void {
    if (this.gate !== undefined) closeJobGate(this.gate);
  }
}

/**
 * Bytes of an image read through its format into memory at a time: such scans go in chunks
 * of this size (or of a block, when larger), each one job.
 */
export const MEMORY_CHUNK_BYTES = 4 * 1024 * 1024;
/** Bytes of chunk buffers in flight (both sides together; one chunk at least). */
export const MEMORY_IN_FLIGHT_BYTES = 32 * 1024 * 1024;
/** The descriptor passed for a side read from memory (the addon does not use it). */
const UNUSED_FD = 0;

/**
 * Byte ranges [from, to) of the virtual disk, in order and disjoint, as pairs (from at [2i],
 * to at [2i + 1]): a fragmented sparse file has one per 4 KiB block.
 */
type SpanPairs = Float64Array;

/** A chunk of a segment: [start, end), and the spans to scan inside it. */
export interface Chunk {
  start: number;
  end: number;
  spans: SpanPairs;
}

/**
 * [start, end) cut every `chunkBytes` from `start`, each part with the pieces of `spans`
 * (in order, disjoint, inside [start, end)) that lie in it; with `all`, also the parts
 * without any.
 */
export function chunksOf(spans: SpanPairs, start: number, end: number, chunkBytes: number, all = false): Chunk[] {
  const chunks: Chunk[] = [];
  let i = 0;
  for (let from = start; from < end; from += chunkBytes) {
    const to = Math.min(end, from + chunkBytes);
    const inside: number[] = [];
    while (i < spans.length && spans[i] < to) {
      const [a, b] = [spans[i], spans[i + 1]];
      inside.push(Math.max(a, from), Math.min(b, to));
      if (b > to) break; // the rest of this span lies in the next chunk
      i += 2;
    }
    if (inside.length > 0 || all) chunks.push({ start: from, end: to, spans: Float64Array.from(inside) });
  }
  return chunks;
}

/** The unit pairs of activeUnits() as byte spans of [start, end) (in place). */
function unitSpans(units: Float64Array, start: number, unit: number, end: number): SpanPairs {
  for (let i = 0; i < units.length; i += 2) {
    units[i] = start + units[i] * unit;
    units[i + 1] = Math.min(end, start + units[i + 1] * unit);
  }
  return units;
}

/**
 * Reads parts of an image through its format (DiskImage.read) into chunk buffers, given
 * back after use and reused.
 */
class ChunkReader {
  private readonly buffers = new SpareBuffers(4);

  constructor(private readonly image: DiskImage) {}

  /** The image's bytes of `spans` (in [start, end)) at their offsets from `start`, in a buffer of at least end - start bytes. */
  async read(spans: SpanPairs, start: number, end: number): Promise<Uint8Array> {
    const memory = this.buffers.take(end - start);
    try {
      // Disjoint parts of the buffer: all in flight at once, all settled before it is given back.
      const reads: Array<Promise<unknown>> = [];
      for (let i = 0; i < spans.length; i += 2) reads.push(this.image.read(memory.subarray(spans[i] - start, spans[i + 1] - start), spans[i]));
      await settleAll(reads);
    } catch (error) {
      this.give(memory);
      throw error;
    }
    return memory;
  }

  give(memory: Uint8Array): void {
    this.buffers.give(memory.buffer as ArrayBuffer);
  }
}

/**
 * The changes of consecutive chunks as one list: a change that ends where the next chunk's
 * first one begins, of the same kind, becomes one (as a single job over both would make it).
 */
export function joinChanges(parts: Float64Array[]): Float64Array {
  const joined = new Float64Array(parts.reduce((sum, part) => sum + part.length, 0));
  let length = 0;
  for (const part of parts) {
    let at = 0;
    if (length > 0 && part.length > 0 && joined[length - 3] + joined[length - 2] === part[0] && joined[length - 1] === part[2]) {
      joined[length - 2] += part[1];
      at = 3;
    }
    joined.set(part.subarray(at), length);
    length += part.length - at;
  }
  return joined.slice(0, length);
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

  async of(offset: number, length: number): Promise<ExtentPairs> {
    if (this.flat && this.fragmented) return allocationPairsFlat(this.flat, offset, length);
    const map = await allocationPairsOf(this.image, offset, length);
    if (map.length > 2 * FRAGMENTED_EXTENTS) this.fragmented = true;
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
 * How a scanner reaches one image's bytes: from plain runs of its file (a locator), gathered
 * by the jobs from pieces of several files (a differencing disk over its parents), or read
 * through its format into memory, chunk by chunk (any other image).
 */
type Access =
  | { kind: "located"; data: DataLocator }
  | { kind: "gathered"; pieces: (offset: number, length: number) => Promise<FilePiece[]> }
  | { kind: "memory"; reader: ChunkReader };

function accessOf(image: DiskImage): Access {
  const data = dataLocatorOf(image);
  if (data) return { kind: "located", data };
  // VHDSYNC_NO_GATHER=1: read such images into memory instead (how VHDX files with a log
  // replayed in memory are read; the tests run both ways).
  const pieces = process.env.VHDSYNC_NO_GATHER === "1" ? undefined : filePiecesOf(image);
  return pieces ? { kind: "gathered", pieces } : { kind: "memory", reader: new ChunkReader(image) };
}


/** One side of a job over a chunk: where its ranges point, its descriptor, its gathered pieces or memory. */
interface JobSide {
  locator: DataLocator;
  fd: number;
  gather?: FilePiece[];
  memory?: Uint8Array;
}

/** The pieces of `spans` (in order, disjoint) in the files, in order. */
async function piecesOfSpans(pieces: (offset: number, length: number) => Promise<FilePiece[]>, spans: SpanPairs): Promise<FilePiece[]> {
  const asked: Array<Promise<FilePiece[]>> = [];
  for (let i = 0; i < spans.length; i += 2) asked.push(pieces(spans[i], spans[i + 1] - spans[i]));
  return (await Promise.all(asked)).flat();
}

/** Fills `view` with the source's bytes from virtual offset `offset` on. */
type SourceFill = (view: Uint8Array, offset: number) => void | Promise<void>;

/** A SourceFill reading the source's file where its locator says (page-cache reads, on this thread). */
function fileFill(source: DataLocator, path: string): SourceFill {
  return (view, offset) => {
    for (const piece of source.locate(offset, view.length)) {
      const part = view.subarray(piece.offset - offset, piece.offset - offset + piece.length);
      if (piece.fileOffset !== null) readExactlySync(source.fd, part, piece.fileOffset, path);
      else part.fill(0); // reads as zeros (the buffer may be a reused one)
    }
  };
}

/**
 * A SourceFill reading the source's bytes again: from its file's runs when it has them (only
 * the changed blocks' pages), else through its format (the changed bytes only).
 */
function rereadFill(source: DiskImage, access: Access): SourceFill {
  return access.kind === "located" ? fileFill(access.data, source.path) : (view, offset) => source.read(view, offset);
}

/** A SourceFill copying from a chunk's memory (the bytes of the virtual disk from `start` on). */
function memoryFill(memory: Uint8Array, start: number): SourceFill {
  return (view, offset) => view.set(memory.subarray(offset - start, offset - start + view.length));
}

/**
 * For "caller" apply: the source's bytes of the non-zero changes, packed in order (what
 * applyChanges writes), and the bytes of data and of zeros the changes make.
 */
async function changedData(changes: Float64Array, fill: SourceFill, take: (bytes: number) => Uint8Array): Promise<{ data: Uint8Array; written: number; zeroed: number }> {
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
    // Only a gathered source's fill is asynchronous: the others cost no turn of the event loop.
    const filling = fill(data.subarray(at, at + change.lengthBytes), change.offsetBytes);
    if (filling) await filling;
    at += change.lengthBytes;
  }
  return { data, written, zeroed };
}

/**
 * "caller" apply: puts the source's bytes of `result`'s non-zero changes (from `fill`) into a
 * spare buffer as `result.data` (given back by `result.release`), and counts what the caller
 * will write and zero.
 */
async function attachChangedData(result: SegmentResult, fill: SourceFill, spare: SpareBuffers): Promise<void> {
  const changed = await changedData(result.changes, fill, (bytes) =>
    bytes === 0 ? new Uint8Array(0) : spare.take(bytes, Math.ceil(bytes / DATA_BUFFER_STEP_BYTES) * DATA_BUFFER_STEP_BYTES).subarray(0, bytes),
  );
  result.data = changed.data;
  result.release = () => spare.give(changed.data.buffer as ArrayBuffer);
  result.counters.bytesWritten = changed.written;
  result.counters.bytesZeroed = changed.zeroed;
}

/** New data buffers of "caller" results are made in steps of this size (so that later segments can reuse them). */
const DATA_BUFFER_STEP_BYTES = 1024 * 1024;

/** What a compare of a segment (or of its chunks, summed) found. */
type CompareOutcome = Awaited<ReturnType<typeof compareSegment>>;

/** Chunk buffers (MEMORY_CHUNK_BYTES, or a block) that may be in flight at once when `sides` sides are read into memory. */
function chunksInFlight(chunkBytes: number, sides: number): number {
  return Math.max(1, Math.floor(MEMORY_IN_FLIGHT_BYTES / (chunkBytes * Math.max(1, sides))));
}

export class NativeCompareScanner {
  private readonly slots: JobSlots;
  private readonly spareBuffers = new SpareBuffers();
  /** Chunks in flight (when a side is read into memory). */
  private readonly chunks: Limiter;
  private readonly chunkBytes: number;

  /** Compare granularity: the block, or a part of it. */
  private readonly unit: number;

  private constructor(
    readonly config: ScanConfig,
    readonly threads: number,
    private readonly source: DiskImage,
    private readonly target: DiskImage,
    private readonly sourceAccess: Access,
    private readonly targetAccess: Access,
  ) {
    // Parts of large blocks lie in one run of each located file (a dynamic image's block at
    // most); a copy works in whole blocks (open() checked that they lie in one run).
    const granules = [sourceAccess, targetAccess].map((access) => (access.kind === "located" ? access.data.granuleBytes : undefined));
    this.unit = config.mode === "copy" ? config.blockSizeBytes : compareUnitBytes(config.blockSizeBytes, granules, config.apply !== "none");
    this.slots = new JobSlots(threads);
    this.sourceMaps = new SegmentMaps(source);
    this.targetMaps = new SegmentMaps(target);
    this.chunkBytes = Math.max(MEMORY_CHUNK_BYTES, config.blockSizeBytes);
    this.chunks = new Limiter(chunksInFlight(this.chunkBytes, [sourceAccess, targetAccess].filter((access) => access.kind === "memory").length));
  }

  private readonly sourceMaps: SegmentMaps;
  private readonly targetMaps: SegmentMaps;

  /**
   * A native scanner for `config` running up to `threads` segments at once, when it applies:
   * compare mode, the addon available, and a flat target when writing (other formats allocate
   * as they are written). Each image's bytes are read from plain runs of its file where they
   * lie in such runs, else gathered from pieces of several files (differencing disks: their
   * own sectors and their parents'), else read through the format into memory chunk by chunk
   * (VHDX files with a log replayed in memory): always for a source; for a target when the run does
   * not change it, or when its changes go through the format ("caller") and each of its
   * blocks lies in one segment, so that the scan never reads a block the caller has changed.
   * Also copy mode into a fresh flat target (which reads as zeros: the source's data is
   * "compared" against zeros, not read from it), from a source whose blocks each lie in one
   * run of its file, or gathered, or read into memory. Otherwise undefined (nothing stays open).
   * @throws open errors from the images
   */
  static async open(config: ScanConfig, threads: number): Promise<NativeCompareScanner | undefined> {
    const copying = config.mode === "copy" && config.targetFresh === true && config.apply === "here";
    if ((config.mode !== "compare" && !copying) || !config.targetPath || !nativeCompareAvailable()) return undefined;
    const source = await openAs(config.sourcePath, config.sourceFormat, true);
    let target: DiskImage | undefined;
    try {
      target = await openAs(config.targetPath, config.targetFormat, config.apply !== "here");
      const sourceAccess = accessOf(source);
      const targetAccess = accessOf(target);
      const writable = config.apply !== "here" || flatDataOf(target) !== undefined;
      // A copy writes whole non-zero blocks, as the WASM copy does: each must lie in one run (or be gathered or in memory).
      const blocksWhole = !copying || sourceAccess.kind !== "located" || config.blockSizeBytes <= sourceAccess.data.granuleBytes;
      // A target not located: unchanged by the run, or its blocks change only once their segment has been scanned.
      const targetReadable = targetAccess.kind === "located" || config.apply === "none" || (config.apply === "caller" && callerSegmentsWholeBlocks(target));
      if (writable && blocksWhole && targetReadable) return new NativeCompareScanner(config, Math.max(1, threads), source, target, sourceAccess, targetAccess);
    } catch (error) {
      await source.close();
      throw error;
    }
    await source.close();
    await target.close();
    return undefined;
  }

  /** New answers for segments with nothing allocated, for one run (see UnallocatedAnswerer). */
  unallocatedAnswerer(): UnallocatedAnswerer | undefined {
    return unallocatedAnswererFor(this.config, this.source, this.target);
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
    const targetMap = copying ? NO_EXTENTS : await this.targetMaps.of(start, end - start);
    const spans = unitSpans(activeUnits(sourceMap, targetMap, start, unit, Math.ceil((end - start) / unit)), start, unit, end);
    // "caller" apply with the source read into memory: each chunk's changed data, packed.
    const pieces: Uint8Array[] = [];
    let outcome: CompareOutcome;
    if (spans.length === 0) {
      // Unallocated on both sides: equal zeros, nothing to read.
      outcome = { blocksCompared: 0, blocksChanged: 0, blocksNonZero: 0, bytesWritten: 0, changes: 0, changesArray: new Float64Array(0) };
    } else if (this.sourceAccess.kind !== "memory" && this.targetAccess.kind !== "memory") {
      outcome = await this.compareChunk({ start, end, spans }, 0, pieces);
    } else {
      // Chunks share no block (chunkBytes is a multiple of the block): their counts add up.
      const parts = await Promise.all(chunksOf(spans, start, end, this.chunkBytes).map((chunk, index) => this.chunks.run(() => this.compareChunk(chunk, index, pieces))));
      outcome = { blocksCompared: 0, blocksChanged: 0, blocksNonZero: 0, bytesWritten: 0, changes: 0, changesArray: joinChanges(parts.map((part) => part.changesArray)) };
      for (const part of parts) {
        outcome.blocksCompared += part.blocksCompared;
        outcome.blocksChanged += part.blocksChanged;
        outcome.blocksNonZero += part.blocksNonZero;
        outcome.bytesWritten += part.bytesWritten;
      }
      outcome.changes = outcome.changesArray.length / 3;
    }
    const counters = emptyCounters();
    counters.blocksCompared = outcome.blocksCompared;
    counters.blocksUnallocated = task.blockCount - outcome.blocksCompared;
    counters.blocksZero = task.blockCount - outcome.blocksNonZero;
    // A copy compares nothing: like the WASM copy it reports no changed blocks, only what it wrote.
    counters.blocksChanged = copying ? 0 : outcome.blocksChanged;
    counters.bytesRead = pairsBytes(sourceMap) + pairsBytes(targetMap);
    counters.bytesWritten = outcome.bytesWritten;
    const result: SegmentResult = { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters, changes: outcome.changesArray };
    if (this.config.apply === "here") counters.bytesZeroed = await zeroRuns(this.target, outcome.changesArray);
    if (this.config.apply === "caller") await attachChangedData(result, this.sourceFill(pieces), this.spareBuffers);
    return result;
  }

  /**
   * Where "caller" apply takes the changed data from: the source's file (located), its
   * format (gathered: the changed bytes only), or the chunks' copies in `pieces` (in memory:
   * changedData asks for the same changes in the same order, so their bytes are handed out
   * as they come).
   */
  private sourceFill(pieces: Uint8Array[]): SourceFill {
    const access = this.sourceAccess;
    if (access.kind !== "memory") return rereadFill(this.source, access);
    let piece = 0;
    let at = 0;
    return (view) => {
      for (let done = 0; done < view.length; ) {
        while (at === pieces[piece].length) [piece, at] = [piece + 1, 0];
        const take = Math.min(view.length - done, pieces[piece].length - at);
        view.set(pieces[piece].subarray(at, at + take), done);
        [done, at] = [done + take, at + take];
      }
    };
  }

  /** One side of a job over `chunk`: its memory read or its pieces found first where it needs them. */
  private async sideOf(access: Access, chunk: Chunk): Promise<JobSide> {
    switch (access.kind) {
      case "located":
        return { locator: access.data, fd: access.data.fd };
      case "gathered":
        return { locator: offsetLocator(0), fd: UNUSED_FD, gather: await piecesOfSpans(access.pieces, chunk.spans) };
      case "memory":
        return { locator: offsetLocator(chunk.start), fd: UNUSED_FD, memory: await access.reader.read(chunk.spans, chunk.start, chunk.end) };
    }
  }

  /**
   * Compares `chunk` (a segment, or a chunk of one when a side is read into memory) in one
   * job. With the source in memory and "caller" apply, the chunk's changed data goes to
   * `pieces[index]` before its memory is given back.
   */
  private async compareChunk(chunk: Chunk, index: number, pieces: Uint8Array[]): Promise<CompareOutcome> {
    const source = await this.sideOf(this.sourceAccess, chunk);
    let target: JobSide | undefined;
    try {
      target = await this.sideOf(this.targetAccess, chunk);
      const ranges = placeRanges(chunk.spans, source.locator, target.locator);
      const outcome = await this.slots.run(() =>
        compareSegment({
          sourceFd: source.fd,
          targetFd: target!.fd,
          blockSizeBytes: this.config.blockSizeBytes,
          unitBytes: this.unit,
          startBytes: chunk.start,
          lengthBytes: chunk.end - chunk.start,
          ranges,
          write: this.config.apply === "here",
          targetZeros: this.config.mode === "copy",
          gate: this.slots.gate,
          sourceMemory: source.memory,
          targetMemory: target!.memory,
          sourceGather: source.gather,
          targetGather: target!.gather,
        }),
      );
      if (source.memory && this.config.apply === "caller") pieces[index] = (await changedData(outcome.changesArray, memoryFill(source.memory, chunk.start), (bytes) => new Uint8Array(bytes))).data;
      return outcome;
    } finally {
      for (const [access, side] of [[this.sourceAccess, source], [this.targetAccess, target]] as const) {
        if (access.kind === "memory" && side?.memory) access.reader.give(side.memory);
      }
    }
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

/**
 * A side's locator when the job is not given its file: offsets from `start`, into a chunk read
 * into memory from `start` on (ChunkReader.read), or the virtual offsets themselves (start 0)
 * for a gathered side (gather.rs finds the files).
 */
function offsetLocator(start: number): DataLocator {
  return { fd: UNUSED_FD, granuleBytes: 2 ** 52, shift: -start, locate: (offset, length) => [{ offset, length, fileOffset: offset - start }] };
}

/** What hashing a segment (or its chunks, joined) found. */
type HashOutcome = Awaited<ReturnType<typeof hashSegment>>;

/** Counts of data states (2) in `states` before `index`. */
function dataStatesBefore(states: Uint8Array, index: number): number {
  let count = 0;
  for (let i = 0; i < index; i++) if (states[i] === 2) count++;
  return count;
}

/**
 * Hash modes (checksum; resync --target-digest) by the native addon: each segment's digest
 * frame built by one job (hashSegment; the source from its file, or gathered from several),
 * or by one per chunk for a source read through its format into memory, which against the
 * target's frame also finds the differing blocks and writes their data to a flat target.
 */
export class NativeHashScanner {
  private readonly slots: JobSlots;
  private readonly spareBuffers = new SpareBuffers();
  private readonly algorithmId: number;
  private readonly digestLength: number;
  private readonly chunks: Limiter;
  private readonly chunkBytes: number;

  private constructor(
    readonly config: ScanConfig,
    readonly threads: number,
    private readonly source: DiskImage,
    private readonly sourceAccess: Access,
    /** The target when writing to it (a flat image). */
    private readonly target: DiskImage | undefined,
  ) {
    this.slots = new JobSlots(threads);
    this.algorithmId = hashScanAlgorithmId(config.algo!)!;
    this.digestLength = blockDigestLength(config.algo!);
    this.sourceMaps = new SegmentMaps(source);
    this.chunkBytes = Math.max(MEMORY_CHUNK_BYTES, config.blockSizeBytes);
    this.chunks = new Limiter(chunksInFlight(this.chunkBytes, 1));
  }

  private readonly sourceMaps: SegmentMaps;

  /**
   * A native scanner for `config` running up to `threads` segments at once, when it applies:
   * a hash mode with a digest the addon computes (all four; an older addon: XXH3 only), the
   * source's data in plain runs of its file with each block inside one run (or gathered from
   * several files, or read through its format into memory), with XXH3 a last block longer than
   * 240 bytes, and when writing, a flat target (written by the jobs) or any other ("caller":
   * the results carry the changed blocks' source data, which the caller writes through the
   * target's format; the target is never read, so its blocks may span segments). Otherwise
   * undefined (nothing stays open).
   * @throws open errors from the images
   */
  static async open(config: ScanConfig, threads: number): Promise<NativeHashScanner | undefined> {
    if (config.mode !== "hash" && config.mode !== "hash-compare") return undefined;
    const id = config.algo ? hashScanAlgorithmId(config.algo) : undefined;
    if (id === undefined || (config.apply === "caller" && config.mode !== "hash-compare")) return undefined;
    const writes = config.mode === "hash-compare" && config.apply === "here";
    if (writes && !config.targetPath) return undefined;
    const source = await openAs(config.sourcePath, config.sourceFormat, true);
    let target: DiskImage | undefined;
    try {
      const sourceAccess = accessOf(source);
      const block = config.blockSizeBytes;
      const tail = source.virtualSize % block;
      if ((sourceAccess.kind !== "located" || block <= sourceAccess.data.granuleBytes) && (tail === 0 || tail >= hashScanShortestBlock(config.algo!))) {
        if (writes) target = await openAs(config.targetPath!, config.targetFormat, false);
        if (!writes || flatDataOf(target!)) return new NativeHashScanner(config, Math.max(1, threads), source, sourceAccess, target);
      }
    } catch (error) {
      await source.close();
      throw error;
    }
    await source.close();
    await target?.close();
    return undefined;
  }

  /** New answers for segments with nothing allocated, for one run (see UnallocatedAnswerer). */
  unallocatedAnswerer(): UnallocatedAnswerer | undefined {
    return unallocatedAnswererFor(this.config, this.source, this.target);
  }

  /** Hashes one segment (and writes its differences when applying). @throws I/O errors (VhdsyncError) */
  async scan(task: SegmentTask): Promise<SegmentResult> {
    const block = this.config.blockSizeBytes;
    const start = task.firstBlock * block;
    const end = Math.min(this.source.virtualSize, (task.firstBlock + task.blockCount) * block);
    const sourceMap = await this.sourceMaps.of(start, end - start);
    // The blocks an allocated part overlaps.
    const spans = unitSpans(activeUnits(sourceMap, NO_EXTENTS, start, block, task.blockCount), start, block, end);
    // DigestReader.frames() has checked each frame's digests against its data blocks (and the addon checks again).
    const frame = task.targetFlags && task.targetDigests ? { flags: task.targetFlags, digests: task.targetDigests } : undefined;
    const outcome = this.sourceAccess.kind === "memory" ? await this.hashInChunks(this.sourceAccess.reader, spans, start, end, frame) : await this.hash({ start, end, spans }, frame);
    const counters: SegmentCounters = {
      ...emptyCounters(),
      blocksCompared: task.blockCount - outcome.unallocatedBlocks,
      blocksChanged: outcome.changedBlocks,
      blocksZero: task.blockCount - outcome.dataBlocks,
      blocksUnallocated: outcome.unallocatedBlocks,
      bytesRead: pairsBytes(sourceMap),
      bytesWritten: outcome.bytesWritten,
    };
    if (this.target) counters.bytesZeroed = await zeroRuns(this.target, outcome.changesArray);
    const result: SegmentResult = { id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters, changes: outcome.changesArray, frameFlags: outcome.flags, frameDigests: outcome.digests };
    // The changed blocks' source data, read again, for the caller to write through the target's format.
    if (this.config.apply === "caller") await attachChangedData(result, rereadFill(this.source, this.sourceAccess), this.spareBuffers);
    return result;
  }

  /**
   * The frame of `chunk` (a segment, or a part of one starting on a block) from one job, its
   * spans split where the source's data moves to another run of its file (at granules,
   * which the block divides), or gathered, or read from `memory`; flat targets are written
   * in place.
   */
  private async hash(chunk: Chunk, frame: { flags: Uint8Array; digests: Uint8Array } | undefined, memory?: Uint8Array): Promise<HashOutcome> {
    const blocks = Math.ceil((chunk.end - chunk.start) / this.config.blockSizeBytes);
    const access = this.sourceAccess;
    const sourceData = access.kind === "located" ? access.data : offsetLocator(access.kind === "gathered" ? 0 : chunk.start);
    // Flat targets are written in place: at each byte's own offset.
    const ranges = placeRanges(chunk.spans, sourceData, this.target ? FLAT_PLACE : null);
    // Unallocated in the source, and no data in the target's frame: a frame of unallocated
    // blocks (state 0), nothing differs. Sparse images are mostly such segments.
    if (ranges.length === 0 && (frame === undefined || frame.digests.length === 0)) {
      return { dataBlocks: 0, unallocatedBlocks: blocks, changedBlocks: 0, bytesWritten: 0, changes: 0, flags: new Uint8Array(blocks), digests: new Uint8Array(0), changesArray: new Float64Array(0) };
    }
    const gather = access.kind === "gathered" ? await piecesOfSpans(access.pieces, chunk.spans) : undefined;
    return this.slots.run(() =>
      hashSegment({
        sourceFd: sourceData.fd,
        targetFd: this.target ? flatDataOf(this.target)!.handle.fd : UNUSED_FD,
        algorithmId: this.algorithmId,
        digestLength: this.digestLength,
        blockSizeBytes: this.config.blockSizeBytes,
        startBytes: chunk.start,
        lengthBytes: chunk.end - chunk.start,
        ranges,
        target: frame,
        write: this.target !== undefined,
        gate: this.slots.gate,
        sourceMemory: memory,
        sourceGather: gather,
      }),
    );
  }

  /**
   * The segment's frame from one job per chunk, each reading the source's bytes of its spans
   * into memory first, joined in block order. Every chunk is hashed, spans or not: where the
   * source is unallocated the target's frame may still have data.
   */
  private async hashInChunks(reader: ChunkReader, spans: SpanPairs, start: number, end: number, frame: { flags: Uint8Array; digests: Uint8Array } | undefined): Promise<HashOutcome> {
    const block = this.config.blockSizeBytes;
    const parts = await Promise.all(
      chunksOf(spans, start, end, this.chunkBytes, true).map((chunk) =>
        this.chunks.run(async () => {
          // The target frame's part for the chunk: its states, and the digests of its data blocks.
          let part: typeof frame;
          if (frame) {
            const [first, last] = [(chunk.start - start) / block, Math.ceil((chunk.end - start) / block)];
            const before = dataStatesBefore(frame.flags, first);
            const within = dataStatesBefore(frame.flags, last) - before;
            part = { flags: frame.flags.subarray(first, last), digests: frame.digests.subarray(before * this.digestLength, (before + within) * this.digestLength) };
          }
          if (chunk.spans.length === 0) return this.hash(chunk, part);
          const memory = await reader.read(chunk.spans, chunk.start, chunk.end);
          try {
            return await this.hash(chunk, part, memory);
          } finally {
            reader.give(memory);
          }
        }),
      ),
    );
    const flags = new Uint8Array(parts.reduce((sum, part) => sum + part.flags.length, 0));
    const digests = new Uint8Array(parts.reduce((sum, part) => sum + part.digests.length, 0));
    const outcome: HashOutcome = { dataBlocks: 0, unallocatedBlocks: 0, changedBlocks: 0, bytesWritten: 0, changes: 0, flags, digests, changesArray: joinChanges(parts.map((part) => part.changesArray)) };
    let [flagsAt, digestsAt] = [0, 0];
    for (const part of parts) {
      flags.set(part.flags, flagsAt);
      digests.set(part.digests, digestsAt);
      [flagsAt, digestsAt] = [flagsAt + part.flags.length, digestsAt + part.digests.length];
      outcome.dataBlocks += part.dataBlocks;
      outcome.unallocatedBlocks += part.unallocatedBlocks;
      outcome.changedBlocks += part.changedBlocks;
      outcome.bytesWritten += part.bytesWritten;
    }
    outcome.changes = outcome.changesArray.length / 3;
    return outcome;
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

/** Where the bytes of a flat image lie: at their own offsets (a target written in place). */
const FLAT_PLACE: DataLocator = offsetLocator(0);

/**
 * The compare ranges of `spans`: each split where either image's data moves to another run of
 * its file (at most at each granule, which the unit divides), with each part's file offsets
 * (-1: reads as zeros; a null `target`: no place in the target). Images whose disk lies at one
 * shift in their file (flat ones, chunks in memory) take no locate() call per span.
 */
function placeRanges(spans: SpanPairs, source: DataLocator, target: DataLocator | null): PackedRanges {
  const [sourceShift, targetShift] = [source.shift, target === null ? 0 : target.shift];
  if (sourceShift !== undefined && targetShift !== undefined) {
    const ranges = new Float64Array(spans.length * 2);
    for (let i = 0, at = 0; i < spans.length; i += 2, at += 4) {
      ranges[at] = spans[i];
      ranges[at + 1] = spans[i + 1];
      ranges[at + 2] = spans[i] + sourceShift;
      ranges[at + 3] = target === null ? -1 : spans[i] + targetShift;
    }
    return ranges;
  }
  const ranges: number[] = [];
  const fileOffset = (piece: DataPiece, at: number) => (piece.fileOffset === null ? -1 : piece.fileOffset + (at - piece.offset));
  for (let s = 0; s < spans.length; s += 2) {
    const [from, to] = [spans[s], spans[s + 1]];
    const sourcePieces = source.locate(from, to - from);
    const targetPieces = target?.locate(from, to - from);
    for (let at = from, i = 0, j = 0; at < to; ) {
      const a = sourcePieces[i];
      const b = targetPieces?.[j];
      const end = b ? Math.min(a.offset + a.length, b.offset + b.length) : a.offset + a.length;
      ranges.push(at, end, fileOffset(a, at), b ? fileOffset(b, at) : -1);
      if (end === a.offset + a.length) i++;
      if (b && end === b.offset + b.length) j++;
      at = end;
    }
  }
  return Float64Array.from(ranges);
}
