// Reading a Hyper-V Replica log ([MS-HRL] 2.5): validate the header and every metadata block
// (traversal.ts), then expose the entries in forward (write) order and stream their data
// straight into WASM memory (small logs stay resident after the traversal read them). Logs not
// closed cleanly (EOLLocation 0) open only with `allowUnclean`, through the forward salvage
// scan (salvage-scan.ts).

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, stopIfAborted } from "../errors.js";
import { checkFlags, checkOptions, checkPath } from "../arguments.js";
import type { Extent } from "../formats/disk-image.js";
import { openFile, readExactly, readSmallHere, refusePipe } from "../io/file.js";
import { getWasm } from "../wasm/driver.js";
import { statusError } from "../wasm/status.js";
import { parseHeader, type HrlHeader } from "./header.js";
import { lastWriterSegments, type OverlaySegment } from "./extent-map.js";
import { unionOfRanges } from "./range-sweep.js";
import { ENTRY_RECORD, HRL_HEADER_BYTES, HRL_STATUS } from "./layout.js";
import type { ParsedBlock } from "./parsed-block.js";
import { scanMetadataBlocks } from "./salvage-scan.js";
import { readWhole, traverseBackwards, traverseInMemory } from "./traversal.js";

/** Logs up to this size are traversed in memory by hrlTraverse (bytes). */
const IN_MEMORY_TRAVERSAL_MAX_BYTES = 8 * 1024 * 1024;
/** Default size of the reads that stream entry data (bytes): two of them stay within L2. */
export const DEFAULT_READ_CHUNK_BYTES = 2 * 1024 * 1024;

/** One write recorded in a log. */
export interface HrlEntry {
  /** Position in the log, 0-based, in write order. */
  index: number;
  /** Disk offset written (bytes). */
  byteOffset: number;
  dataLength: number;
  /** Where the data sits in the log file (bytes). */
  logPosition: number;
  /** [MS-HRL] 2.6 checksum of the data; 0 = not recorded. */
  dataChecksum: number;
  /** Seconds since 2000-01-01 UTC. */
  timestamp: number;
}

/** A piece of one entry's data, a view of WASM memory valid until the next piece is requested. */
export interface HrlDataPiece {
  entryIndex: number;
  /** Disk offset of this piece's first byte. */
  byteOffset: number;
  data: Uint8Array;
  /** Address of `data` in WASM memory. */
  address: number;
  /** Whether this piece ends its entry. */
  last: boolean;
  /** Whether the buffer behind `data` is reused after this piece (finish using it first). */
  endOfWindow: boolean;
}

/** A run of entries read with one read: [start, start + bytes) of the log, entries up to `end`. */
interface DataWindow {
  start: number;
  end: number;
  bytes: number;
}

/** Options of openLog(). */
export interface OpenLogOptions {
  /** Open a log with EOLLocation 0 through the salvage scan instead of failing (default false). */
  allowUnclean?: boolean;
  /** Reject entries that write past this disk size (bytes). */
  diskSizeBytes?: number;
  /** Find metadata blocks with the forward salvage scan even if the log is clean (default false). */
  scan?: boolean;
  /**
   * Logs up to this size (bytes) are read whole, traversed in one WASM call and kept in WASM
   * memory until close(), so data is not read again (default 8 MiB).
   */
  inMemoryMaxBytes?: number;
}

/** An open, structurally validated log. Entry data is checked by verifyData() / pieces({verify}). */
export class HrlLog {
  readonly entryCount: number;
  readonly dataBytes: number;
  private readonly byteOffsets: Float64Array;
  private readonly logPositions: Float64Array;
  private readonly lengths: Uint32Array;
  private readonly checksums: Uint32Array;
  private readonly timestamps: Uint32Array;
  /** Index of the first entry of each metadata block, in log order (plus entryCount at the end). */
  readonly blockFirstEntry: number[];
  /** Metadata block locations in log order (bytes). */
  readonly metadataLocations: number[];
  private closed = false;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: HrlHeader,
    readonly fileSizeBytes: number,
    blocks: ParsedBlock[],
    /** WASM address of the whole file when it was read into memory (small logs), else undefined. */
    private resident?: number,
  ) {
    const total = blocks.reduce((sum, block) => sum + block.entryCount, 0);
    this.entryCount = total;
    this.byteOffsets = new Float64Array(total);
    this.logPositions = new Float64Array(total);
    this.lengths = new Uint32Array(total);
    this.checksums = new Uint32Array(total);
    this.timestamps = new Uint32Array(total);
    this.blockFirstEntry = [];
    this.metadataLocations = blocks.map((block) => block.location);
    let index = 0;
    let dataBytes = 0;
    for (const block of blocks) {
      this.blockFirstEntry.push(index);
      const view = new DataView(block.records.buffer, block.records.byteOffset, block.records.byteLength);
      for (let i = 0; i < block.entryCount; i++, index++) {
        const at = i * ENTRY_RECORD.bytes;
        this.byteOffsets[index] = view.getFloat64(at + ENTRY_RECORD.byteOffset, true);
        this.logPositions[index] = view.getFloat64(at + ENTRY_RECORD.logPosition, true);
        this.lengths[index] = view.getUint32(at + ENTRY_RECORD.dataLength, true);
        this.checksums[index] = view.getUint32(at + ENTRY_RECORD.dataChecksum, true);
        this.timestamps[index] = view.getUint32(at + ENTRY_RECORD.timestamp, true);
        dataBytes += this.lengths[index];
      }
    }
    this.blockFirstEntry.push(total);
    this.dataBytes = dataBytes;
  }

  /** Whether the log was closed cleanly (EOLLocation ≠ 0). */
  get clean(): boolean {
    return this.header.eolLocation !== 0;
  }

  /** Entry `index` (0-based, write order). */
  entry(index: number): HrlEntry {
    return {
      index,
      byteOffset: this.byteOffsets[index],
      dataLength: this.lengths[index],
      logPosition: this.logPositions[index],
      dataChecksum: this.checksums[index],
      timestamp: this.timestamps[index],
    };
  }

  /** All entries in write order. */
  *entries(): IterableIterator<HrlEntry> {
    for (let i = 0; i < this.entryCount; i++) yield this.entry(i);
  }

  /**
   * Disk ranges the log writes: sorted, coalesced (bytes), one at a time. Made from the entry
   * table without an object per entry (8 bytes of scratch per entry while the first is made).
   */
  extents(): Generator<Extent> {
    return unionOfRanges(this.byteOffsets, this.lengths, this.entryCount);
  }

  /** Number and total length of the extents() (bytes). */
  extentTotals(): { extents: number; bytesTouched: number } {
    let extents = 0;
    let bytesTouched = 0;
    for (const extent of this.extents()) {
      extents++;
      bytesTouched += extent.length;
    }
    return { extents, bytesTouched };
  }

  /** For every byte the log writes, the entry that wrote it last: segments in disk order (see lastWriterSegments). */
  lastWriters(): Generator<OverlaySegment> {
    return lastWriterSegments(this.byteOffsets, this.lengths, this.entryCount);
  }

  /**
   * Streams entry data from `fromEntry` on, in write order, in pieces of at most `chunkBytes`.
   * Two buffers alternate: the next window is read while the current one is consumed, so a
   * consumer must be done with a piece's data once it asks for the piece after one whose
   * `endOfWindow` is set. With `verify`, each entry's data is checked against its
   * DataChecksum before it is yielded (entries larger than a chunk: before their last piece).
   * @throws VHDSYNC_BAD_CHECKSUM (details.entryIndex), VHDSYNC_TRUNCATED, I/O codes
   */
  async *pieces(options: { fromEntry?: number; verify?: boolean; chunkBytes?: number } = {}): AsyncGenerator<HrlDataPiece> {
    this.checkOpen();
    if (this.resident !== undefined) {
      yield* this.residentPieces(this.resident, options.fromEntry ?? 0, Boolean(options.verify));
      return;
    }
    const wasm = getWasm();
    const chunkBytes = options.chunkBytes ?? DEFAULT_READ_CHUNK_BYTES;
    const addresses = [wasm.alloc(chunkBytes), wasm.alloc(chunkBytes)];
    let prefetch: { window: DataWindow; read: Promise<void> } | undefined;
    try {
      let index = options.fromEntry ?? 0;
      let slot = 0;
      while (index < this.entryCount) {
        const window = prefetch?.window ?? this.planWindow(index, chunkBytes);
        if (!window) {
          yield* this.largeEntryPieces(index, addresses[slot], chunkBytes, Boolean(options.verify));
          index++;
          continue;
        }
        const address = addresses[slot];
        const read = prefetch?.read ?? readExactly(this.handle, wasm.view(address, window.bytes), window.start, this.path);
        prefetch = undefined;
        await read;
        const next = window.end < this.entryCount ? this.planWindow(window.end, chunkBytes) : undefined;
        if (next) {
          const nextRead = readExactly(this.handle, wasm.view(addresses[1 - slot], next.bytes), next.start, this.path);
          nextRead.catch(() => undefined); // awaited when its window comes up (or in finally)
          prefetch = { window: next, read: nextRead };
        }
        for (let i = index; i < window.end; i++) {
          const at = address + (this.logPositions[i] - window.start);
          if (options.verify) this.checkData(i, wasm.exports.hrlByteSum(at, this.lengths[i], 0));
          yield { entryIndex: i, byteOffset: this.byteOffsets[i], data: wasm.view(at, this.lengths[i]), address: at, last: true, endOfWindow: i === window.end - 1 };
        }
        index = window.end;
        slot = 1 - slot;
      }
    } finally {
      await prefetch?.read.catch(() => undefined);
      for (const address of addresses) wasm.release(address);
    }
  }

  /** The entries from `index` whose data fits in one read of `chunkBytes` (undefined: entry `index` alone is larger). */
  private planWindow(index: number, chunkBytes: number): DataWindow | undefined {
    const start = this.logPositions[index];
    let end = index;
    while (end < this.entryCount && this.logPositions[end] + this.lengths[end] - start <= chunkBytes) end++;
    if (end === index) return undefined;
    return { start, end, bytes: this.logPositions[end - 1] + this.lengths[end - 1] - start };
  }

  /** Pieces of a log held in memory: one per entry, never reused while the log is open. */
  private *residentPieces(resident: number, fromEntry: number, verify: boolean): Generator<HrlDataPiece> {
    const wasm = getWasm();
    for (let i = fromEntry; i < this.entryCount; i++) {
      const at = resident + this.logPositions[i];
      if (verify) this.checkData(i, wasm.exports.hrlByteSum(at, this.lengths[i], 0));
      yield { entryIndex: i, byteOffset: this.byteOffsets[i], data: wasm.view(at, this.lengths[i]), address: at, last: true, endOfWindow: false };
    }
  }

  private async *largeEntryPieces(index: number, address: number, chunkBytes: number, verify: boolean): AsyncGenerator<HrlDataPiece> {
    const wasm = getWasm();
    const length = this.lengths[index];
    let sum = 0;
    for (let done = 0; done < length; done += chunkBytes) {
      const pieceBytes = Math.min(chunkBytes, length - done);
      const view = wasm.view(address, pieceBytes);
      await readExactly(this.handle, view, this.logPositions[index] + done, this.path);
      const last = done + pieceBytes >= length;
      if (verify) {
        sum = wasm.exports.hrlByteSum(address, pieceBytes, sum);
        if (last) this.checkData(index, sum);
      }
      yield { entryIndex: index, byteOffset: this.byteOffsets[index] + done, data: view, address, last, endOfWindow: true };
    }
  }

  private checkData(index: number, byteSum: number): void {
    const expected = this.checksums[index];
    if (expected !== 0 && (~byteSum >>> 0) !== expected) {
      throw statusError(HRL_STATUS.dataChecksum, `${this.path}: entry ${index} (disk offset ${this.byteOffsets[index]})`, {
        path: this.path,
        entryIndex: index,
        logPosition: this.logPositions[index],
        expected,
        actual: ~byteSum >>> 0,
      });
    }
  }

  /**
   * Reads `target.length` bytes of entry `index`'s data, starting `deltaBytes` into it (up to
   * SMALL_IO_BYTES on the calling thread: compaction reads a piece per segment, and a 1M-entry
   * log took 36 s through the libuv pool).
   * @throws VHDSYNC_INVALID_ARGUMENT outside the entry, VHDSYNC_TRUNCATED, I/O codes
   */
  async readEntryData(index: number, deltaBytes: number, target: Uint8Array): Promise<void> {
    this.checkOpen();
    if (index < 0 || index >= this.entryCount || deltaBytes < 0 || deltaBytes + target.length > this.lengths[index]) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${this.path}: read outside entry ${index}`, { path: this.path, index, deltaBytes });
    }
    if (this.resident !== undefined) target.set(getWasm().view(this.resident + this.logPositions[index] + deltaBytes, target.length));
    else await readSmallHere(this.handle, target, this.logPositions[index] + deltaBytes, this.path);
  }

  /**
   * Checks every entry's data against its DataChecksum; an aborted `signal` stops it between
   * pieces.
   * @throws VHDSYNC_BAD_CHECKSUM (details.entryIndex), VHDSYNC_TRUNCATED, VHDSYNC_INTERRUPTED
   */
  async verifyData(chunkBytes?: number, signal?: AbortSignal): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    for await (const _piece of this.pieces({ verify: true, chunkBytes })) {
      // The generator checks; its finally releases the buffers when the loop is left.
      stopIfAborted(signal, `${this.path}: check of the log's data`, { path: this.path });
    }
  }

  /** Closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.resident !== undefined) getWasm().release(this.resident);
    this.resident = undefined;
    await this.handle.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${this.path}: log is closed`, { path: this.path });
  }
}

/**
 * Opens a log: reads and validates the header and every metadata block (checksums, links,
 * layout, entries inside `diskSizeBytes`). Data checksums are checked by verifyData().
 * @throws VHDSYNC_HRL_UNCLEAN (EOLLocation 0 without allowUnclean, or ErrorCode ≠ 0),
 *   VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_TRUNCATED, VHDSYNC_UNSUPPORTED,
 *   VHDSYNC_SIZE_MISMATCH, VHDSYNC_NOT_FOUND and other I/O codes
 */
export async function openLog(path: string, options: OpenLogOptions = {}): Promise<HrlLog> {
  checkPath(path, "path");
  checkOptions(options);
  checkFlags(options, ["allowUnclean", "scan"]);
  // A FIFO would block the open until a writer came.
  await refusePipe(path, "logs");
  const handle = await openFile(path, "r");
  let resident: number | undefined;
  try {
    const fileSizeBytes = (await handle.stat()).size;
    if (fileSizeBytes < HRL_HEADER_BYTES) {
      throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: log is ${fileSizeBytes} bytes, shorter than its 4096-byte header`, { path, fileSizeBytes });
    }
    const headerBytes = new Uint8Array(HRL_HEADER_BYTES);
    await readExactly(handle, headerBytes, 0, path);
    const header = parseHeader(headerBytes, false, path);
    const diskSizeBytes = options.diskSizeBytes ?? -1;
    let blocks: ParsedBlock[];
    if (options.scan || header.eolLocation === 0 || header.errorCode !== 0) {
      if (!options.allowUnclean) parseHeader(headerBytes, true, path);
      blocks = await scanMetadataBlocks(handle, path, header, fileSizeBytes, diskSizeBytes);
    } else {
      if (fileSizeBytes <= (options.inMemoryMaxBytes ?? IN_MEMORY_TRAVERSAL_MAX_BYTES)) {
        resident = await readWhole(handle, path, header, fileSizeBytes);
        blocks = traverseInMemory(resident, path, header, fileSizeBytes, diskSizeBytes);
      } else {
        blocks = await traverseBackwards(handle, path, header, fileSizeBytes, diskSizeBytes);
      }
      const total = blocks.reduce((sum, block) => sum + block.entryCount, 0);
      if (total !== header.totalMetadataEntries) {
        throw new VhdsyncError("VHDSYNC_CORRUPT", `${path}: header says ${header.totalMetadataEntries} metadata entries, the metadata blocks hold ${total}`, {
          path,
          totalMetadataEntries: header.totalMetadataEntries,
          entries: total,
        });
      }
    }
    return new HrlLog(path, handle, header, fileSizeBytes, blocks, resident);
  } catch (error) {
    if (resident !== undefined) getWasm().release(resident);
    await handle.close();
    throw error;
  }
}
