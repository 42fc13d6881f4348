// Reads a digest file (docs/digest-file.md) frame by frame with bounded memory, validating
// structure as it goes and the whole-file checksum at the end. validate() makes one full pass
// so callers can refuse a corrupt or truncated file before they write anything.

import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { openFile, readExactly } from "../io/file.js";
import {
  FRAME_HEADER_BYTES,
  HEADER_FIXED_BYTES,
  TRAILER_BYTES,
  checkFrameFlags,
  decodeFrameHeader,
  decodeHeader,
  decodeTrailer,
  equalBytes,
  headerLengthOf,
  type DigestFrame,
  type DigestHeader,
} from "./digest-format.js";

const CHUNK_BYTES = 1024 * 1024;

/** True when the file at `path` starts with the digest-file magic. */
export async function isDigestFile(path: string): Promise<boolean> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(path, "r");
    const magic = new Uint8Array(8);
    const { bytesRead } = await handle.read(magic, 0, 8, 0);
    return bytesRead === 8 && new TextDecoder().decode(magic) === "VHDSDIGS";
  } catch (error) {
    throw toVhdsyncError(error, { path });
  } finally {
    await handle?.close();
  }
}

/** An open digest file. */
export class DigestReader {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: DigestHeader,
    private readonly framesEnd: number,
  ) {}

  /**
   * Opens a digest file and checks its header and trailer.
   * @throws VHDSYNC_CORRUPT, VHDSYNC_TRUNCATED, VHDSYNC_BAD_CHECKSUM, VHDSYNC_UNSUPPORTED, VHDSYNC_NOT_FOUND
   */
  static async open(path: string): Promise<DigestReader> {
    const handle = await openFile(path, "r");
    try {
      const size = (await handle.stat()).size;
      const truncated = () => new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: digest file truncated (${size} bytes)`, { path, sizeBytes: size });
      if (size < HEADER_FIXED_BYTES) throw truncated();
      const fixed = new Uint8Array(HEADER_FIXED_BYTES);
      await readExactly(handle, fixed, 0, path);
      const headerLength = headerLengthOf(fixed, path);
      if (size < headerLength + TRAILER_BYTES) throw truncated();
      const headerBytes = new Uint8Array(headerLength);
      await readExactly(handle, headerBytes, 0, path);
      const header = decodeHeader(headerBytes, path);
      const trailerBytes = new Uint8Array(TRAILER_BYTES);
      await readExactly(handle, trailerBytes, size - TRAILER_BYTES, path);
      const trailer = decodeTrailer(trailerBytes, path);
      if (trailer.blockCount !== header.blockCount) {
        throw new VhdsyncError("VHDSYNC_CORRUPT", `${path}: digest file: trailer block count ${trailer.blockCount} does not match the header (${header.blockCount})`, { path });
      }
      return new DigestReader(path, handle, header, size - TRAILER_BYTES);
    } catch (error) {
      await handle.close();
      throw toVhdsyncError(error, { path });
    }
  }

  /**
   * Yields every frame in order. The checksum over the whole file is checked after the last
   * frame (VHDSYNC_BAD_CHECKSUM); structural errors raise VHDSYNC_CORRUPT as soon as they are seen.
   * Yielded arrays are fresh copies the caller may keep or transfer.
   */
  async *frames(): AsyncGenerator<DigestFrame> {
    const hash = createHash("sha256");
    const input = new ChunkReader(this.handle, this.path, this.header.headerLength, this.framesEnd);
    let nextBlock = 0;
    let frameCount = 0;
    while (nextBlock < this.header.blockCount) {
      const frameHeader = await input.take(FRAME_HEADER_BYTES);
      hash.update(frameHeader);
      const { blockCount, dataBlocks } = decodeFrameHeader(frameHeader, nextBlock, this.header, this.path);
      const flags = await input.take(blockCount);
      hash.update(flags);
      checkFrameFlags(flags, dataBlocks, nextBlock, this.path);
      const digests = await input.take(dataBlocks * this.header.digestLength);
      hash.update(digests);
      yield { firstBlock: nextBlock, blockCount, flags, digests };
      nextBlock += blockCount;
      frameCount++;
    }
    if (!input.atEnd()) throw new VhdsyncError("VHDSYNC_CORRUPT", `${this.path}: digest file: unexpected bytes after the last frame`, { path: this.path });
    const trailerBytes = new Uint8Array(TRAILER_BYTES);
    await readExactly(this.handle, trailerBytes, this.framesEnd, this.path);
    const trailer = decodeTrailer(trailerBytes, this.path);
    if (trailer.frameCount !== frameCount) {
      throw new VhdsyncError("VHDSYNC_CORRUPT", `${this.path}: digest file: trailer says ${trailer.frameCount} frames, found ${frameCount}`, { path: this.path });
    }
    if (!equalBytes(hash.digest(), trailer.checksum)) {
      throw new VhdsyncError("VHDSYNC_BAD_CHECKSUM", `${this.path}: digest file checksum mismatch (corrupt)`, { path: this.path });
    }
  }

  /** Reads the whole file once, checking structure and checksum. @throws as frames() */
  async validate(): Promise<void> {
    for await (const _frame of this.frames()) {
      // structure is checked while iterating
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Sequential reads of [start, end) in 1 MiB chunks; take(n) returns n fresh bytes. */
class ChunkReader {
  private chunk = new Uint8Array(0);
  private chunkPosition = 0;
  private filePosition: number;

  constructor(private readonly handle: FileHandle, private readonly path: string, start: number, private readonly end: number) {
    this.filePosition = start;
  }

  atEnd(): boolean {
    return this.chunkPosition === this.chunk.length && this.filePosition === this.end;
  }

  async take(length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (this.chunkPosition === this.chunk.length) await this.refill();
      const n = Math.min(length - filled, this.chunk.length - this.chunkPosition);
      out.set(this.chunk.subarray(this.chunkPosition, this.chunkPosition + n), filled);
      this.chunkPosition += n;
      filled += n;
    }
    return out;
  }

  private async refill(): Promise<void> {
    const n = Math.min(CHUNK_BYTES, this.end - this.filePosition);
    if (n <= 0) throw new VhdsyncError("VHDSYNC_CORRUPT", `${this.path}: digest file: frames run past the trailer`, { path: this.path });
    this.chunk = new Uint8Array(n);
    await readExactly(this.handle, this.chunk, this.filePosition, this.path);
    this.filePosition += n;
    this.chunkPosition = 0;
  }
}
