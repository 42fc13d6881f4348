// Streaming whole-disk hashing with bounded memory: chunks are read straight into WASM memory
// views, with up to `buffers - 1` reads in flight on the libuv thread pool while the main
// thread hashes the previous chunk, so reading and hashing use two cores. The arena holds
// `buffers` chunks for the whole run and memory never grows. Chunks default to 1 MiB: small
// enough that the buffers stay in the CPU caches between the kernel's copy and the hash
// (measured 2-3x faster than 8 MiB chunks on a cached 1 GiB file; docs/hashing.md).

import { openFile, readExactly } from "../io/file.js";
import { PageMapper } from "../io/file-map.js";
import type { DiskImage } from "../formats/disk-image.js";
import { throttle, type ProgressListener } from "../progress.js";
import { getWasm } from "../wasm/driver.js";
import { VhdsyncError, stopIfAborted, toVhdsyncError } from "../errors.js";
import { checkCount, checkFunction, checkImage, checkOptions, checkPath } from "../arguments.js";
import { DEFAULT_HASH_ALGORITHM, checkAlgorithm, digestLength, toSeed, type HashAlgorithm } from "./algorithm.js";
import { NativeXxh3Stream, checkBlockSize, hashBlocksAt } from "./hash-bytes.js";
import { createHasher } from "./hasher.js";

/** Options of hashImage() and hashFile(). */
export interface HashStreamOptions {
  /** Algorithm (default xxh3-128). */
  algo?: HashAlgorithm;
  /** xxHash seed of the whole-content digest (default 0; per-block digests always use 0). */
  seed?: number | bigint;
  /** When set, produce one digest per block of this size (a power of two) instead of one digest. */
  blockSizeBytes?: number;
  /** Bytes read per I/O (default 1 MiB; rounded up to a multiple of blockSizeBytes). */
  chunkBytes?: number;
  /** Chunk buffers in WASM memory (default 3: two reads in flight while one chunk is hashed). */
  buffers?: number;
  onProgress?: ProgressListener;
  /**
   * Per-block mode: receives each chunk's digests (`digests` covers the blocks starting at
   * `offsetBytes`; valid only until it returns, not across an await). When given, digests are
   * not collected, so memory stays bounded for any image size and `blockDigests` is absent
   * from the result. A returned promise is awaited before the next chunk (backpressure).
   */
  onBlockDigests?: (offsetBytes: number, digests: Uint8Array) => void | Promise<void>;
  /**
   * A file descriptor whose bytes at each offset are the content (raw images): chunks are
   * then mapped into WASM memory instead of read when VHDSYNC_SCAN_MMAP=1 asks for it and the
   * native addon allows (io/file-map.ts). hashFile() sets it itself.
   */
  mapFd?: number;
  /** Abort to stop between chunks (VHDSYNC_INTERRUPTED). */
  signal?: AbortSignal;
}

/** What hashImage() and hashFile() return. */
export interface HashResult {
  algorithm: HashAlgorithm;
  /** Bytes hashed (virtual disk size, or file size). */
  sizeBytes: number;
  /** Canonical digest of the whole content (absent in per-block mode). */
  digest?: Uint8Array;
  blockSizeBytes?: number;
  /** Per-block canonical digests, concatenated (per-block mode without onBlockDigests). */
  blockDigests?: Uint8Array;
}

/** Reads `view.length` bytes at `offset` into `view` (a WASM memory view). */
type ReadAt = (view: Uint8Array, offset: number) => Promise<void>;

export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/**
 * Hashes the virtual content of a disk image (what a guest sees), streaming.
 * @throws VHDSYNC_INVALID_ARGUMENT (algorithm, block size), VHDSYNC_NO_MEMORY (arena too small
 *   for the buffers), VHDSYNC_INTERRUPTED (options.signal), and any error of image.read()
 */
export async function hashImage(image: DiskImage, options: HashStreamOptions = {}): Promise<HashResult> {
  checkImage(image, "image");
  checkStreamOptions(options);
  return hashSource((view, offset) => image.read(view, offset), image.virtualSize, options, image.path);
}

/**
 * Hashes the bytes of a file (like xxhsum), streaming.
 * @throws VHDSYNC_NOT_FOUND, VHDSYNC_ACCESS_DENIED, VHDSYNC_IO, VHDSYNC_TRUNCATED (file shrank),
 *   VHDSYNC_INVALID_ARGUMENT, VHDSYNC_NO_MEMORY
 */
export async function hashFile(path: string, options: HashStreamOptions = {}): Promise<HashResult> {
  checkPath(path, "path");
  checkStreamOptions(options);
  const handle = await openFile(path, "r");
  try {
    let sizeBytes: number;
    try {
      sizeBytes = (await handle.stat()).size;
    } catch (error) {
      throw toVhdsyncError(error, { path });
    }
    return await hashSource((view, offset) => readExactly(handle, view, offset, path), sizeBytes, { mapFd: handle.fd, ...options }, path);
  } finally {
    await handle.close();
  }
}

/** Checks hashImage()'s and hashFile()'s options before anything is read. @throws VHDSYNC_INVALID_ARGUMENT */
function checkStreamOptions(options: HashStreamOptions): void {
  checkOptions(options);
  checkCount(options.chunkBytes, "chunkBytes");
  checkCount(options.buffers, "buffers");
  checkFunction(options.onBlockDigests, "onBlockDigests");
}

/** Chunk size when chunks are mapped rather than read: no copy, so no cache to fit. */
export const MAPPED_CHUNK_BYTES = 4 * 1024 * 1024;

/** Per-block mode: blocks larger than this are hashed as streams over chunks of this size. */
export const STREAMED_BLOCK_BYTES = 8 * 1024 * 1024;

/** The read/hash pipeline over any positional source of `sizeBytes` bytes. */
export async function hashSource(readAt: ReadAt, sizeBytes: number, options: HashStreamOptions, path = ""): Promise<HashResult> {
  const algorithm = checkAlgorithm(options.algo ?? DEFAULT_HASH_ALGORITHM);
  const blockSizeBytes = options.blockSizeBytes;
  if (blockSizeBytes !== undefined) checkBlockSize(blockSizeBytes);
  const digestBytes = digestLength(algorithm);
  const wasm = getWasm();
  const mapper = options.mapFd !== undefined ? PageMapper.for(wasm.memory) : null;
  if (mapper) readAt = async (view, offset) => void mapper.mapOrRead(view, options.mapFd!, offset, path);
  // Blocks larger than STREAMED_BLOCK_BYTES are hashed as streams over chunks of that size:
  // `buffers` chunks of a whole block each (up to 1 GiB) would not fit the arena (128 MiB).
  const streamBlocks = blockSizeBytes !== undefined && blockSizeBytes > STREAMED_BLOCK_BYTES;
  const chunkBytes = streamBlocks ? STREAMED_BLOCK_BYTES : chunkSize(options.chunkBytes ?? (mapper ? MAPPED_CHUNK_BYTES : DEFAULT_CHUNK_BYTES), blockSizeBytes, digestBytes);
  const bufferCount = Math.max(2, Math.floor(options.buffers ?? 3));
  const progress = throttle(options.onProgress);
  const chunkCount = Math.ceil(sizeBytes / chunkBytes);
  const buffers: number[] = [];
  const pending: Promise<void>[] = [];
  // The addon's XXH3 (AVX2) takes the whole-content digest when it can; chunks are whole
  // 64-byte stripes except the last, as it needs.
  const native = blockSizeBytes === undefined && chunkBytes % 64 === 0 ? NativeXxh3Stream.for(algorithm, toSeed(options.seed), sizeBytes) : null;
  const hasher = blockSizeBytes === undefined && !native ? createHasher(algorithm, toSeed(options.seed)) : undefined;
  const collect = blockSizeBytes !== undefined && !options.onBlockDigests;
  const blockDigests = collect ? new Uint8Array(Math.ceil(sizeBytes / blockSizeBytes) * digestBytes) : undefined;
  const chunkDigestBytes = blockSizeBytes === undefined || streamBlocks ? 0 : (chunkBytes / blockSizeBytes) * digestBytes;
  let digestStaging: number | undefined;
  let blockHasher: ReturnType<typeof createHasher> | undefined; // the block being streamed
  const startRead = (chunk: number) => {
    if (chunk >= chunkCount) return;
    const offset = chunk * chunkBytes;
    pending[chunk] = readAt(wasm.view(buffers[chunk % bufferCount], Math.min(chunkBytes, sizeBytes - offset)), offset);
    pending[chunk].catch(() => {}); // awaited below; avoids an unhandled rejection meanwhile
  };
  try {
    for (let i = 0; i < Math.min(bufferCount, chunkCount); i++) buffers.push(wasm.alloc(chunkBytes, mapper ? mapper.pageSize : 64));
    if (blockSizeBytes !== undefined && !streamBlocks) digestStaging = wasm.alloc(chunkDigestBytes, 16);
    for (let chunk = 0; chunk < bufferCount - 1; chunk++) startRead(chunk);
    for (let chunk = 0; chunk < chunkCount; chunk++) {
      stopIfAborted(options.signal, `hash of ${path}`, { path });
      await pending[chunk];
      startRead(chunk + bufferCount - 1); // reuses the buffer hashed in the previous round
      const offset = chunk * chunkBytes;
      const lengthBytes = Math.min(chunkBytes, sizeBytes - offset);
      const address = buffers[chunk % bufferCount];
      if (native) native.updateAt(address, lengthBytes);
      else if (hasher) hasher.updateAt(address, lengthBytes);
      else if (streamBlocks) await streamChunkOfBlock(address, lengthBytes, offset);
      else await hashChunkBlocks(address, lengthBytes, offset);
      progress.report({ operation: "hash", doneBytes: offset + lengthBytes, totalBytes: sizeBytes });
    }
    progress.flush();
    if (native) return { algorithm, sizeBytes, digest: native.digest() };
    if (hasher) return { algorithm, sizeBytes, digest: hasher.digest() };
    return { algorithm, sizeBytes, blockSizeBytes, blockDigests };
  } finally {
    await Promise.allSettled(pending);
    hasher?.dispose();
    blockHasher?.dispose();
    for (const address of buffers) {
      mapper?.release(address, chunkBytes);
      wasm.release(address);
    }
    if (digestStaging !== undefined) wasm.release(digestStaging);
  }

  function hashChunkBlocks(address: number, lengthBytes: number, offset: number): void | Promise<void> {
    const count = Math.ceil(lengthBytes / blockSizeBytes!);
    hashBlocksAt(algorithm, address, lengthBytes, blockSizeBytes!, digestStaging!);
    const digests = wasm.view(digestStaging!, count * digestBytes);
    if (blockDigests) blockDigests.set(digests, (offset / blockSizeBytes!) * digestBytes);
    else return options.onBlockDigests!(offset, digests);
  }

  /** Adds a chunk to the block it lies in (chunks divide blocks); at the block's end, its digest. */
  async function streamChunkOfBlock(address: number, lengthBytes: number, offset: number): Promise<void> {
    blockHasher ??= createHasher(algorithm); // per-block digests use seed 0, as hashBlocksAt does
    blockHasher.updateAt(address, lengthBytes);
    const end = offset + lengthBytes;
    if (end % blockSizeBytes! !== 0 && end !== sizeBytes) return;
    const digest = blockHasher.digest();
    blockHasher.dispose();
    blockHasher = undefined;
    const blockOffset = offset - (offset % blockSizeBytes!);
    if (blockDigests) blockDigests.set(digest, (blockOffset / blockSizeBytes!) * digestBytes);
    else await options.onBlockDigests!(blockOffset, digest);
  }
}

/** Chunk size: a multiple of the block size whose digests stay within 8 MiB. */
function chunkSize(requestedBytes: number, blockSizeBytes: number | undefined, digestBytes: number): number {
  const base = Math.max(64 * 1024, Math.floor(requestedBytes));
  if (blockSizeBytes === undefined) return base;
  const maxBlocks = Math.max(1, Math.floor((8 * 1024 * 1024) / digestBytes));
  return Math.min(Math.ceil(base / blockSizeBytes), maxBlocks) * blockSizeBytes;
}
