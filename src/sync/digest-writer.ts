// Streams a digest file (docs/digest-file.md) to disk with bounded memory: header, then frames
// as they are produced, then the trailer with the checksum of the frames. The header is
// rewritten at the end when the caller supplies the final identity (after resync wrote the
// image), and the zero / unallocated states of blocks restated from the image as it ended up
// (see finish()). The file appears at its path only when complete (temp, fsync, rename, fsync
// dir).

import { createSha256, type Sha256 } from "../hash/sha256.js";
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { commitTempFile, removeStaleTempFiles, tempPathFor } from "../io/atomic-file.js";
import { BLOCK_DATA, FRAME_HEADER_BYTES, countDataFlags, decodeFrameHeader, encodeFrameHeader, encodeHeader, encodeTrailer, type DigestFrame, type DigestHeader } from "./digest-format.js";
import { readExactly, readSmallHere, writeExactly, writeSmallHere } from "../io/file.js";
import { blockDigestLength } from "./block-hasher.js";

const BUFFER_BYTES = 1024 * 1024;

/** Header fields a writer needs (lengths and checksum are computed). */
export type DigestHeaderInit = Omit<DigestHeader, "headerLength" | "headerChecksum" | "digestLength">;

/**
 * Rewrites, in place, the states of one frame's blocks that are not BLOCK_DATA (zero or
 * unallocated: neither carries a digest, so the frame keeps its layout). `firstBlock` is the
 * frame's first block.
 */
export type RestateFrame = (firstBlock: number, flags: Uint8Array) => Promise<void>;

/** Writes one digest file; call writeFrame() in block order, then finish() (or abort()). */
export class DigestWriter {
  private hash: Sha256 = createSha256();
  private buffer = new Uint8Array(BUFFER_BYTES);
  private buffered = 0;
  private position = 0;
  private nextBlock = 0;
  private frameCount = 0;
  private headerLength = 0;

  private constructor(
    readonly path: string,
    private tempPath: string,
    private handle: FileHandle,
    readonly header: DigestHeaderInit,
  ) {}

  /** Starts a digest file at `path` (written to a temp file until finish()). @throws I/O codes */
  static async create(path: string, header: DigestHeaderInit): Promise<DigestWriter> {
    await removeStaleTempFiles(path);
    const tempPath = tempPathFor(path);
    let handle: FileHandle;
    try {
      handle = await fsp.open(tempPath, "w+");
    } catch (error) {
      throw toVhdsyncError(error, { path });
    }
    const writer = new DigestWriter(path, tempPath, handle, header);
    const headerBytes = encodeHeader(header);
    await writeExactly(handle, headerBytes, 0, tempPath).catch(async (error) => {
      await writer.abort();
      throw error;
    });
    writer.position = headerBytes.length;
    writer.headerLength = headerBytes.length;
    return writer;
  }

  /** Appends the next frame (must start where the previous one ended). */
  async writeFrame(frame: DigestFrame): Promise<void> {
    if (frame.firstBlock !== this.nextBlock || frame.flags.length !== frame.blockCount) {
      throw new VhdsyncError("VHDSYNC_INTERNAL", `digest frame out of order: block ${frame.firstBlock}, expected ${this.nextBlock}`);
    }
    const dataBlocks = countDataFlags(frame.flags);
    if (dataBlocks < 0) throw new VhdsyncError("VHDSYNC_INTERNAL", `digest frame at block ${frame.firstBlock} has an unknown block state`);
    await this.append(encodeFrameHeader(frame.firstBlock, frame.blockCount, dataBlocks));
    await this.append(frame.flags);
    await this.append(frame.digests.subarray(0, dataBlocks * blockDigestLength(this.header.algo)));
    this.nextBlock += frame.blockCount;
    this.frameCount++;
  }

  /**
   * Writes the trailer (and the header again with `identity`, when given), fsyncs, and moves
   * the file into place. With `restate`, the frames' zero and unallocated blocks are restated
   * first (resync --update-digest: a block the source had as zeros may now be a hole in the
   * target, or allocated zeros where the source had none), so that the file says what a
   * fresh checksum of the image would. An identity whose header is sized otherwise than the
   * one written first (a much longer path) moves the frames behind the new header. @throws VHDSYNC_INTERNAL if blocks are missing or `restate`
   * touches a data block
   */
  async finish(identity?: DigestHeaderInit["identity"], restate?: RestateFrame): Promise<void> {
    if (this.nextBlock !== this.header.blockCount) {
      throw new VhdsyncError("VHDSYNC_INTERNAL", `digest file incomplete: ${this.nextBlock} of ${this.header.blockCount} blocks`);
    }
    try {
      await this.flushBuffer();
      if (restate && (await this.restateFrames(restate))) await this.rehashFrames();
    } catch (error) {
      await this.abort();
      throw toVhdsyncError(error, { path: this.path });
    }
    const trailer = encodeTrailer(this.frameCount, this.nextBlock, this.hash.digest());
    try {
      if (identity) {
        // Sized as any writer sizes it, so the file is what a fresh checksum would write.
        const headerBytes = encodeHeader({ ...this.header, identity });
        if (headerBytes.length === this.headerLength) await writeExactly(this.handle, headerBytes, 0, this.tempPath);
        else await this.moveFramesBehind(headerBytes);
      }
      await writeExactly(this.handle, trailer, this.position, this.tempPath);
      await this.handle.sync();
      await this.handle.close();
    } catch (error) {
      await this.abort();
      throw toVhdsyncError(error, { path: this.path });
    }
    await commitTempFile(this.tempPath, this.path);
  }

  /**
   * Writes the file again under a header of another length (an identity that outgrew the room
   * kept for it: the image named by a much longer path than when the digest was begun), the
   * frames copied behind it. The frames' bytes and checksum do not change.
   */
  private async moveFramesBehind(headerBytes: Uint8Array): Promise<void> {
    const tempPath = tempPathFor(this.path);
    const handle = await fsp.open(tempPath, "w+");
    try {
      await writeExactly(handle, headerBytes, 0, tempPath);
      for await (const { piece, at } of this.framePieces()) await writeExactly(handle, piece, at - this.headerLength + headerBytes.length, tempPath);
    } catch (error) {
      await handle.close().catch(() => undefined);
      await fsp.rm(tempPath, { force: true });
      throw error;
    }
    await this.handle.close();
    await fsp.rm(this.tempPath, { force: true });
    [this.handle, this.tempPath] = [handle, tempPath];
    this.position += headerBytes.length - this.headerLength;
    this.headerLength = headerBytes.length;
  }

  /**
   * Restates the blocks of the frames with zero or unallocated blocks, found by walking the
   * frame headers in the file: nothing is kept per frame while writing (a list of the sparse
   * frames grew with the image: `checksum` of an empty 64 TiB VHDX in 64 KiB blocks peaked at
   * 266 MB with it, 118 MB without). Whether any state changed.
   */
  private async restateFrames(restate: RestateFrame): Promise<boolean> {
    const header = { ...this.header, digestLength: blockDigestLength(this.header.algo), headerLength: this.headerLength, headerChecksum: "" };
    const frameHeader = new Uint8Array(FRAME_HEADER_BYTES);
    let changed = false;
    for (let at = this.headerLength, firstBlock = 0; at < this.position; ) {
      await readSmallHere(this.handle, frameHeader, at, this.tempPath);
      const { blockCount, dataBlocks, payloadBytes } = decodeFrameHeader(frameHeader, firstBlock, header, this.tempPath);
      if (dataBlocks < blockCount && (await this.restateFrame(restate, firstBlock, blockCount, at + FRAME_HEADER_BYTES))) changed = true;
      at += FRAME_HEADER_BYTES + payloadBytes;
      firstBlock += blockCount;
    }
    return changed;
  }

  /** Restates one frame's flags at `flagsAt`; whether any changed. */
  private async restateFrame(restate: RestateFrame, firstBlock: number, blockCount: number, flagsAt: number): Promise<boolean> {
    const flags = new Uint8Array(blockCount);
    await readSmallHere(this.handle, flags, flagsAt, this.tempPath);
    const before = Buffer.from(flags);
    await restate(firstBlock, flags);
    if (before.equals(flags)) return false;
    // Zero and unallocated trade places only: the frame's data blocks (and digests) stay.
    if (!sameDataBlocks(flags, before)) {
      throw new VhdsyncError("VHDSYNC_INTERNAL", `restating the digest frame at block ${firstBlock} would change its data blocks`);
    }
    await writeSmallHere(this.handle, flags, flagsAt, this.tempPath);
    return true;
  }

  /** Hashes the frames again from the file, after restateFrames() changed some. */
  private async rehashFrames(): Promise<void> {
    this.hash = createSha256();
    for await (const { piece } of this.framePieces()) this.hash.update(piece);
  }

  /** The frames' bytes read back from the file (all written out), a buffer's worth at a time (reused: use each before the next). */
  private async *framePieces(): AsyncGenerator<{ piece: Uint8Array; at: number }> {
    for (let at = this.headerLength; at < this.position; at += this.buffer.length) {
      const piece = this.buffer.subarray(0, Math.min(this.buffer.length, this.position - at));
      await readExactly(this.handle, piece, at, this.tempPath);
      yield { piece, at };
    }
  }

  /** Discards the partial file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await fsp.rm(this.tempPath, { force: true });
  }

  private async append(bytes: Uint8Array): Promise<void> {
    this.hash.update(bytes);
    if (this.buffered + bytes.length > this.buffer.length) await this.flushBuffer();
    if (bytes.length > this.buffer.length) {
      await writeExactly(this.handle, bytes, this.position, this.tempPath);
      this.position += bytes.length;
      return;
    }
    this.buffer.set(bytes, this.buffered);
    this.buffered += bytes.length;
  }

  private async flushBuffer(): Promise<void> {
    if (this.buffered === 0) return;
    await writeExactly(this.handle, this.buffer.subarray(0, this.buffered), this.position, this.tempPath);
    this.position += this.buffered;
    this.buffered = 0;
  }
}

/** Whether `a` and `b` (block states of one frame) have their data blocks at the same places, and no unknown state. */
function sameDataBlocks(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] > BLOCK_DATA || (a[i] === BLOCK_DATA) !== (b[i] === BLOCK_DATA)) return false;
  return true;
}
