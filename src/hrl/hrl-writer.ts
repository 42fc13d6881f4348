// Writes a Hyper-V Replica log ([MS-HRL] 2.1): the header with EOLLocation 0 and an empty
// first metadata block at 4096 when created, then batches of entry data each followed by its
// metadata block, and on close the header with the real EOLLocation (after an fsync, so a
// clean header never points at data that is not durable). Batches are assembled in WASM
// memory (checksums computed there) and written in the background while the next fills: by
// the native addon's idle-priority appender thread when it is loaded (on 2 cores the log's
// writes then use the time the disk writes leave idle), else on the libuv pool.

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { BackgroundAppender } from "../io/background-appender.js";
import { openFile, writeExactly } from "../io/file.js";
import { getWasm } from "../wasm/driver.js";
import { checkStatus } from "../wasm/status.js";
import { buildHeader, type HrlHeader } from "./header.js";
import { DEFAULT_METADATA_BYTES, HRL_HEADER_BYTES, HRL_VERSION_2, NIL_GUID, entryCapacity, hrlTimestamp, randomGuid } from "./layout.js";

/** Data bytes per batch (data + its metadata block, one writev) unless told otherwise. */
const DEFAULT_BATCH_BYTES = 1024 * 1024;

/** Options of HrlWriter.create(). */
export interface HrlWriterOptions {
  /** UniqueId of the new log (default: a random GUID). */
  uniqueId?: string;
  /** UniqueId of the log this one follows (default: the nil GUID). */
  previousUniqueId?: string;
  vhd2DataWriteGuid?: string;
  /** MetadataSize in bytes (default 4096: 127 entries per block). */
  metadataSizeBytes?: number;
  /** Data bytes buffered before a metadata block is written (default 1 MiB: two batches stay in L2). */
  batchBytes?: number;
  /** Largest entry; longer writes are split (default 1 MiB; keeps the byte sum below 2^32). */
  maxEntryBytes?: number;
  /** CreatorApplication, up to 4 characters (default "vhds"). */
  creatorApplication?: string;
  creatorVersion?: number;
  /** Creation time, seconds since 2000-01-01 UTC (default now). */
  timestamp?: number;
  /** Fail with VHDSYNC_INVALID_ARGUMENT if the file exists, instead of replacing it (default false). */
  exclusive?: boolean;
  /** Clock for entry and LastModifiedTimeStamp values, seconds since 2000-01-01 UTC (default: the system clock). */
  now?: () => number;
}

/** What a closed log holds. */
export interface HrlLogSummary {
  path: string;
  uniqueId: string;
  previousUniqueId: string;
  /** EOLLocation = file size (bytes). */
  eolLocation: number;
  entryCount: number;
  /** Sum of the entries' data lengths (bytes). */
  dataBytes: number;
}

interface Batch {
  /** batchBytes of data, then room for the metadata block (copied there to write both at once). */
  dataAddress: number;
  metaAddress: number;
  dataUsed: number;
  entryCount: number;
  /** Its write on the libuv pool, if it went there. */
  writing: Promise<void>;
  /** Its job with the appender (which reads the batch's memory until finished), or 0. */
  token: number;
}

/** Batches per writer: one filling, the others being written. */
const BATCHES = 4;

/** Appends entries to a new log. Calls are serialized internally. */
export class HrlWriter {
  readonly uniqueId: string;
  readonly previousUniqueId: string;
  private readonly metadataSize: number;
  private readonly capacity: number;
  private readonly batchBytes: number;
  private readonly maxEntryBytes: number;
  private readonly batches: Batch[];
  private current = 0;
  private filePosition: number;
  private lastMetadataLocation = HRL_HEADER_BYTES;
  private totalEntries = 0;
  private totalDataBytes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** Operations queued or running in `queue`. */
  private queued = 0;
  private failure: VhdsyncError | undefined;
  private state: "open" | "closed" = "open";
  private readonly now: () => number;
  /** Writes sealed batches from a native idle-priority thread; null: the libuv pool does. */
  private appender: BackgroundAppender | null = null;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly header: HrlHeader,
    options: HrlWriterOptions,
  ) {
    this.now = options.now ?? (() => hrlTimestamp());
    this.uniqueId = header.uniqueId;
    this.previousUniqueId = header.previousUniqueId;
    this.metadataSize = header.metadataSizeBytes;
    this.capacity = entryCapacity(this.metadataSize);
    this.batchBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
    this.maxEntryBytes = Math.min(options.maxEntryBytes ?? 1024 * 1024, this.batchBytes);
    const wasm = getWasm();
    const batch = (): Batch => ({
      dataAddress: wasm.alloc(this.batchBytes + this.metadataSize),
      metaAddress: wasm.alloc(this.metadataSize),
      dataUsed: 0,
      entryCount: 0,
      writing: Promise.resolve(),
      token: 0,
    });
    this.batches = Array.from({ length: BATCHES }, batch);
    this.filePosition = HRL_HEADER_BYTES + this.metadataSize;
  }

  /**
   * Creates (or truncates, unless `exclusive`) `path` as an open log: header with EOLLocation 0
   * and the empty first metadata block, made durable.
   * @throws VHDSYNC_INVALID_ARGUMENT (bad GUID, MetadataSize, batch size, exists with `exclusive`), I/O codes
   */
  static async create(path: string, options: HrlWriterOptions = {}): Promise<HrlWriter> {
    const metadataSizeBytes = options.metadataSizeBytes ?? DEFAULT_METADATA_BYTES;
    if (!Number.isInteger(metadataSizeBytes) || metadataSizeBytes < 64 || metadataSizeBytes > 1 << 20 || metadataSizeBytes % 32 !== 0) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `MetadataSize ${metadataSizeBytes} must be a multiple of 32 from 64 to 1 MiB`);
    }
    const batchBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
    if (!Number.isInteger(batchBytes) || batchBytes < 512) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `batch size ${batchBytes} too small`);
    const timestamp = options.timestamp ?? options.now?.() ?? hrlTimestamp();
    const header: HrlHeader = {
      version: HRL_VERSION_2,
      timestamp,
      creatorApplication: options.creatorApplication ?? "vhds",
      creatorVersion: options.creatorVersion ?? 0x00010000,
      originalSizeBytes: 0,
      currentSizeBytes: HRL_HEADER_BYTES + metadataSizeBytes,
      eolLocation: 0,
      errorCode: 0,
      metadataSizeBytes,
      uniqueId: options.uniqueId ?? randomGuid(),
      previousUniqueId: options.previousUniqueId ?? NIL_GUID,
      vhd2DataWriteGuid: options.vhd2DataWriteGuid ?? NIL_GUID,
      totalMetadataEntries: 0,
      lastModifiedTimestamp: timestamp,
      fileType: 0,
      flags: 0,
      checksum: 0,
    };
    const headerBytes = buildHeader(header);
    const handle = await openFile(path, options.exclusive ? "wx+" : "w+").catch((error) => {
      if (error?.details?.errno !== "EEXIST") throw error;
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path}: log already exists`, { path });
    });
    let writer: HrlWriter | undefined;
    try {
      writer = new HrlWriter(path, handle, header, options);
      const first = writer.batches[0];
      checkStatus(getWasm().exports.hrlMetadataHeaderBuild(first.metaAddress, metadataSizeBytes, 0, 0), "build metadata block");
      const start = new Uint8Array(HRL_HEADER_BYTES + metadataSizeBytes);
      start.set(headerBytes);
      start.set(getWasm().view(first.metaAddress, metadataSizeBytes), HRL_HEADER_BYTES);
      await writeExactly(handle, start, 0, path);
      await handle.datasync();
      writer.appender = BackgroundAppender.open(handle.fd, path);
      return writer;
    } catch (error) {
      writer?.releaseMemory();
      await handle.close();
      throw toVhdsyncError(error, { path });
    }
  }

  /** Entries appended so far. */
  get entryCount(): number {
    return this.totalEntries;
  }

  /** Data bytes appended so far. */
  get dataBytes(): number {
    return this.totalDataBytes;
  }

  /** Size the log file will have once pending entries are written (bytes, metadata included). */
  get sizeBytes(): number {
    const batch = this.batches[this.current];
    return this.filePosition + batch.dataUsed + (batch.entryCount > 0 ? this.metadataSize : 0);
  }

  /**
   * Appends a write of `data` at disk offset `byteOffset` (bytes); the data is copied before
   * the promise settles. Long writes become several entries.
   * @throws the first background write error (I/O codes), VHDSYNC_INVALID_ARGUMENT after close
   *   or for an offset that is not a non-negative safe integer
   */
  append(byteOffset: number, data: Uint8Array, timestamp = this.now()): Promise<void> {
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || !Number.isSafeInteger(byteOffset + data.length)) {
      return Promise.reject(new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${this.path}: bad disk offset ${byteOffset}`, { path: this.path, byteOffset }));
    }
    const batch = this.batches[this.current];
    if (this.queued === 0 && this.state === "open" && data.length <= this.maxEntryBytes && batch.entryCount < this.capacity && batch.dataUsed + data.length <= this.batchBytes) {
      // Fits the current batch and nothing is queued: append now, without a trip through the queue.
      try {
        this.appendPiece(batch, byteOffset, data, timestamp);
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.serialize(async () => {
      for (let done = 0; done < data.length; ) {
        const pieceBytes = Math.min(this.maxEntryBytes, data.length - done);
        let batch = this.batches[this.current];
        if (batch.entryCount === this.capacity || batch.dataUsed + pieceBytes > this.batchBytes) batch = await this.seal();
        this.appendPiece(batch, byteOffset + done, data.subarray(done, done + pieceBytes), timestamp);
        done += pieceBytes;
      }
    });
  }

  private appendPiece(batch: Batch, byteOffset: number, piece: Uint8Array, timestamp: number): void {
    const wasm = getWasm();
    const address = batch.dataAddress + batch.dataUsed;
    wasm.view(address, piece.length).set(piece);
    const checksum = wasm.exports.hrlDataChecksum(address, piece.length) >>> 0;
    const status = wasm.exports.hrlEntryBuild(batch.metaAddress, this.metadataSize, batch.entryCount, byteOffset, piece.length, timestamp, checksum);
    checkStatus(status, `${this.path}: entry at disk offset ${byteOffset}`);
    batch.entryCount++;
    batch.dataUsed += piece.length;
    this.totalEntries++;
    this.totalDataBytes += piece.length;
  }

  /** Writes the current batch and its metadata block in the background; returns the next (empty) batch. */
  private async seal(): Promise<Batch> {
    const wasm = getWasm();
    const batch = this.batches[this.current];
    if (batch.entryCount > 0) {
      const location = this.filePosition + batch.dataUsed;
      const status = wasm.exports.hrlMetadataHeaderBuild(batch.metaAddress, this.metadataSize, location - this.lastMetadataLocation, batch.entryCount);
      checkStatus(status, `${this.path}: metadata block at ${location}`);
      wasm.bytes.copyWithin(batch.dataAddress + batch.dataUsed, batch.metaAddress, batch.metaAddress + this.metadataSize);
      const bytes = wasm.view(batch.dataAddress, batch.dataUsed + this.metadataSize);
      const position = this.filePosition;
      batch.token = this.appender?.submit(bytes, position) ?? 0;
      if (batch.token === 0) {
        batch.writing = writeExactly(this.handle, bytes, position, this.path).catch((error) => this.noteFailure(error, position));
      }
      this.lastMetadataLocation = location;
      this.filePosition = location + this.metadataSize;
      this.current = (this.current + 1) % this.batches.length;
    }
    const next = this.batches[this.current];
    await this.reclaim(next);
    this.throwIfFailed();
    next.dataUsed = 0;
    next.entryCount = 0;
    return next;
  }

  /** Waits until nothing reads `batch`'s memory any more (its pool write or appender job is done). */
  private async reclaim(batch: Batch): Promise<void> {
    await batch.writing;
    if (batch.token !== 0 && this.appender && !this.appender.finished(batch.token)) {
      await this.appender.wait(batch.token).catch((error) => this.noteFailure(error));
    }
    batch.token = 0;
  }

  /** Waits for every sealed batch to be written; reports the first failure. */
  private async settleWrites(): Promise<void> {
    await Promise.all(this.batches.map((batch) => batch.writing));
    if (this.appender) await this.appender.drain().catch((error) => this.noteFailure(error));
    this.throwIfFailed();
  }

  /** Writes pending entries (data + metadata block) and waits for them (no fsync). */
  flush(): Promise<void> {
    return this.serialize(async () => {
      await this.seal();
      await this.settleWrites();
    });
  }

  /**
   * Writes pending entries, fsyncs, then writes the header with EOLLocation, CurrentSize,
   * TotalMetadataEntries and LastModifiedTimeStamp, and fsyncs again.
   * @throws I/O codes (the log then stays unclean)
   */
  close(): Promise<HrlLogSummary> {
    return this.serialize(async () => {
      try {
        await this.seal();
        await this.settleWrites();
        const eolLocation = this.filePosition;
        try {
          await this.handle.datasync();
          const header = { ...this.header, eolLocation, currentSizeBytes: eolLocation, totalMetadataEntries: this.totalEntries, lastModifiedTimestamp: this.now() };
          await writeExactly(this.handle, buildHeader(header), 0, this.path);
          await this.handle.datasync();
        } catch (error) {
          throw toVhdsyncError(error, { path: this.path });
        }
        return { path: this.path, uniqueId: this.uniqueId, previousUniqueId: this.previousUniqueId, eolLocation, entryCount: this.totalEntries, dataBytes: this.totalDataBytes };
      } finally {
        await this.release();
      }
    });
  }

  /** Stops without closing cleanly: pending entries are dropped, EOLLocation stays 0. */
  abandon(): Promise<void> {
    return this.serialize(async () => {
      await Promise.all(this.batches.map((batch) => batch.writing));
      await this.release();
    });
  }

  private async release(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    // The appender reads the batches' memory and writes to the fd until it is closed (a
    // failure was reported already, or is moot).
    await this.appender?.close().catch(() => undefined);
    this.releaseMemory();
    await this.handle.close();
  }

  private releaseMemory(): void {
    const wasm = getWasm();
    for (const batch of this.batches) {
      wasm.release(batch.dataAddress);
      wasm.release(batch.metaAddress);
    }
  }

  /** Keeps the first background write failure; the next seal, flush or close throws it. */
  private noteFailure(error: unknown, offset?: number): void {
    this.failure ??= toVhdsyncError(error, offset === undefined ? { path: this.path } : { path: this.path, offset });
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private serialize<T>(body: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.state !== "open") throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${this.path}: log writer is closed`, { path: this.path });
      return body();
    };
    this.queued++;
    const result = this.queue.then(run, run).finally(() => this.queued--);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
