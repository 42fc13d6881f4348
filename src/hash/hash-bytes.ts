// One-shot and per-block hashing of bytes already in memory. Bytes that live in WASM memory
// (views from getWasm().view()) are hashed in place; other bytes are copied in slices
// bounded by STAGING_BYTES, so the arena never needs more than that.

import { sha256 } from "./sha256.js";
import { VhdsyncError } from "../errors.js";
import { getWasm, type WasmInstance } from "../wasm/driver.js";
import { checkStatus } from "../wasm/status.js";
import { callNative, hashScanShortestBlock, nativeAddon, nativeDigestId, type NativeAddon } from "../io/native-addon.js";
import { digestLength, toSeed, wasmAlgorithmId, type HashAlgorithm } from "./algorithm.js";
import { createHasher } from "./hasher.js";

/**
 * The addon when it can hash blocks with `algorithm` (all four digests; an older addon XXH3
 * only), its id for it, and the shortest block it takes (XXH3: 241 bytes, the others: any):
 * loaded, new enough, and not turned off with VHDSYNC_NO_NATIVE_HASH=1.
 */
function nativeBlockHasher(algorithm: HashAlgorithm): { addon: NativeAddon; id: number; shortest: number } | null {
  if (process.env.VHDSYNC_NO_NATIVE_HASH === "1") return null;
  const addon = nativeAddon();
  if (!addon || typeof addon.hashBlocksNonZero !== "function") return null;
  const id = nativeDigestId(addon, algorithm);
  return id === undefined ? null : { addon, id, shortest: hashScanShortestBlock(algorithm) };
}

/**
 * Whole-input XXH3 by the addon (AVX2 when the CPU has it): for hashSource, which knows the
 * length up front and feeds chunks that are multiples of 64 bytes. The WASM streaming hasher
 * keeps XXH64, seeded digests, inputs up to 240 bytes, runs without the addon and
 * VHDSYNC_NO_NATIVE_HASH=1.
 */
export class NativeXxh3Stream {
  private readonly state: ArrayBuffer;

  private constructor(private readonly addon: NativeAddon, private readonly id: number, private readonly algorithm: HashAlgorithm, totalLength: number) {
    this.state = new ArrayBuffer(addon.xxh3StreamStateBytes);
    callNative(() => addon.xxh3StreamReset(this.state, totalLength), { totalLength });
  }

  /** A stream over `totalLength` bytes, or null when the addon cannot compute this digest. */
  static for(algorithm: HashAlgorithm, seed: bigint, totalLength: number): NativeXxh3Stream | null {
    const id = wasmAlgorithmId(algorithm);
    if ((id !== 2 && id !== 3) || seed !== 0n || totalLength < hashScanShortestBlock(algorithm)) return null;
    const addon = nativeBlockHasher(algorithm)?.addon;
    if (!addon || typeof addon.xxh3StreamUpdate !== "function") return null;
    return new NativeXxh3Stream(addon, id, algorithm, totalLength);
  }

  /** Feeds `lengthBytes` at WASM address `address` (a multiple of 64 bytes unless it is the last piece). */
  updateAt(address: number, lengthBytes: number): void {
    const memory = getWasm().memory.buffer;
    callNative(() => this.addon.xxh3StreamUpdate(memory, address, lengthBytes, this.state), { lengthBytes });
  }

  /** The canonical digest, once every byte has been fed. */
  digest(): Uint8Array {
    callNative(() => this.addon.xxh3StreamDigest(this.state, this.id));
    return new Uint8Array(this.state, this.addon.xxh3StreamDigestOffset, digestLength(this.algorithm)).slice();
  }
}

/** Largest slice copied into WASM memory at once. */
export const STAGING_BYTES = 8 * 1024 * 1024;

/** Address of `bytes` inside WASM memory, or undefined when they live elsewhere. */
export function wasmAddressOf(wasm: WasmInstance, bytes: Uint8Array): number | undefined {
  return bytes.buffer === wasm.memory.buffer ? bytes.byteOffset : undefined;
}

/**
 * The canonical digest of `bytes` (hex of it equals `xxhsum -H1/-H2/-H3` output).
 * @param seed xxHash seed (default 0; sha256 ignores it)
 * @throws VHDSYNC_INVALID_ARGUMENT for an unknown algorithm or bad seed
 */
export function hashBytes(algorithm: HashAlgorithm, bytes: Uint8Array, seed: number | bigint = 0): Uint8Array {
  const id = wasmAlgorithmId(algorithm);
  if (id === undefined) return sha256(bytes);
  const wasm = getWasm();
  const address = wasmAddressOf(wasm, bytes);
  if (address === undefined && bytes.length > STAGING_BYTES) {
    const hasher = createHasher(algorithm, seed);
    try {
      return hasher.update(bytes).digest();
    } finally {
      hasher.dispose();
    }
  }
  const outBytes = digestLength(algorithm);
  return wasm.withScratch(outBytes, (out, outView) => {
    const hashAt = (data: number) => checkStatus(wasm.exports.hash_oneShot(id, data, bytes.length, toSeed(seed), out), "hash");
    if (address !== undefined) hashAt(address);
    else wasm.withCopy(bytes, hashAt);
    return outView.slice();
  });
}

/** Per-block hashing takes power-of-two block sizes up to 1 GiB. @throws VHDSYNC_INVALID_ARGUMENT */
export function checkBlockSize(blockSizeBytes: number): void {
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes <= 0 || (blockSizeBytes & (blockSizeBytes - 1)) !== 0 || blockSizeBytes > 2 ** 30) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `block size must be a power of two up to 1 GiB: ${blockSizeBytes}`, { blockSizeBytes });
  }
}

/**
 * Hashes every `blockSizeBytes` block of the `lengthBytes` bytes at WASM address
 * `dataAddress` and writes ceil(lengthBytes / blockSizeBytes) canonical digests back to back
 * at `digestAddress` (zero-copy; the last partial block is hashed with its real length).
 * @throws VHDSYNC_INVALID_ARGUMENT (unknown algorithm, block size not a power of two),
 *   VHDSYNC_INTERNAL (ranges outside WASM memory)
 */
export function hashBlocksAt(algorithm: HashAlgorithm, dataAddress: number, lengthBytes: number, blockSizeBytes: number, digestAddress: number): void {
  checkBlockSize(blockSizeBytes);
  const wasm = getWasm();
  const id = wasmAlgorithmId(algorithm);
  if (id !== undefined) {
    checkStatus(wasm.exports.hash_blocks(id, dataAddress, lengthBytes, blockSizeBytes, 0n, digestAddress), "hash blocks", {
      lengthBytes,
      blockSizeBytes,
    });
    return;
  }
  const digestBytes = digestLength(algorithm);
  const blockCount = Math.ceil(lengthBytes / blockSizeBytes);
  const digests = wasm.view(digestAddress, blockCount * digestBytes);
  const native = nativeBlockHasher(algorithm);
  if (native && blockSizeBytes >= native.shortest && blockCount > 0) {
    // SHA-256 by the addon (hashNonZeroBlocksAt takes its native path: two blocks at a time on
    // the SHA extensions), which leaves all-zero blocks' slots alone: those take the digest of
    // zeros of their length.
    wasm.withScratch(blockCount, (zeroAddress, zeroFlags) => {
      hashNonZeroBlocksAt(algorithm, dataAddress, lengthBytes, blockSizeBytes, digestAddress, zeroAddress);
      for (let block = 0; block < blockCount; block++) {
        if (zeroFlags[block]) digests.set(zerosDigest(Math.min(blockSizeBytes, lengthBytes - block * blockSizeBytes)), block * digestBytes);
      }
    });
    return;
  }
  for (let block = 0; block < blockCount; block++) {
    const offset = block * blockSizeBytes;
    const data = wasm.view(dataAddress + offset, Math.min(blockSizeBytes, lengthBytes - offset));
    digests.set(sha256(data), block * digestBytes);
  }
}

const zerosDigests = new Map<number, Uint8Array>();

/** SHA-256 of `length` zero bytes (kept: a run has one block size and at most one shorter last block). */
function zerosDigest(length: number): Uint8Array {
  let digest = zerosDigests.get(length);
  if (!digest) zerosDigests.set(length, (digest = sha256(new Uint8Array(length))));
  return digest;
}

/**
 * hashBlocksAt() for digest frames: one flag byte per block at `zeroAddress` (1 = all zeros)
 * and digests only for the other blocks (zero blocks' digest slots are left as they were).
 * The addon hashes every block it takes (all four digests; with XXH3 not a last block of 240
 * bytes or less, which the WASM kernel then hashes); without it the WASM algorithms check and
 * hash each block while it is in the cache, and sha256 (node:crypto) checks all blocks first.
 * @throws as hashBlocksAt
 */
export function hashNonZeroBlocksAt(algorithm: HashAlgorithm, dataAddress: number, lengthBytes: number, blockSizeBytes: number, digestAddress: number, zeroAddress: number): void {
  checkBlockSize(blockSizeBytes);
  const wasm = getWasm();
  const id = wasmAlgorithmId(algorithm);
  const details = { lengthBytes, blockSizeBytes };
  const native = nativeBlockHasher(algorithm);
  if (native && blockSizeBytes >= native.shortest) {
    const tail = lengthBytes % blockSizeBytes;
    const nativeBytes = tail !== 0 && tail < native.shortest ? lengthBytes - tail : lengthBytes;
    if (nativeBytes > 0) callNative(() => native.addon.hashBlocksNonZero(wasm.memory.buffer, native.id, dataAddress, nativeBytes, blockSizeBytes, digestAddress, zeroAddress), details);
    if (nativeBytes < lengthBytes) {
      // A short last block, which only XXH3 leaves (so the algorithm has a WASM id).
      const index = nativeBytes / blockSizeBytes;
      const status = wasm.exports.hash_blocks_nonzero(id!, dataAddress + nativeBytes, tail, blockSizeBytes, 0n, digestAddress + index * digestLength(algorithm), zeroAddress + index);
      checkStatus(status, "hash blocks", details);
    }
    return;
  }
  if (id !== undefined) {
    checkStatus(wasm.exports.hash_blocks_nonzero(id, dataAddress, lengthBytes, blockSizeBytes, 0n, digestAddress, zeroAddress), "hash blocks", details);
    return;
  }
  // zeroBlocks' u32 zero count lands in the first digest slot, which hashBlocksAt then overwrites.
  checkStatus(wasm.exports.zeroBlocks(dataAddress, lengthBytes, blockSizeBytes, zeroAddress, digestAddress), "zero-block scan", details);
  hashBlocksAt(algorithm, dataAddress, lengthBytes, blockSizeBytes, digestAddress);
}

/**
 * Per-block digests of `bytes`: one canonical digest per `blockSizeBytes` block (the last
 * may be partial), concatenated. Bytes outside WASM memory are copied in slices of about 8 MiB.
 * @throws VHDSYNC_INVALID_ARGUMENT (unknown algorithm, block size not a power of two up to 1 GiB)
 */
export function hashBlocks(bytes: Uint8Array, blockSizeBytes: number, algorithm: HashAlgorithm): Uint8Array {
  checkBlockSize(blockSizeBytes);
  const digestBytes = digestLength(algorithm);
  const result = new Uint8Array(Math.ceil(bytes.length / blockSizeBytes) * digestBytes);
  const wasm = getWasm();
  const address = wasmAddressOf(wasm, bytes);
  // Slices keep the staged data plus its digests within about STAGING_BYTES.
  const sliceBlocks = Math.max(1, Math.floor(STAGING_BYTES / (blockSizeBytes + digestBytes)));
  const sliceBytes = sliceBlocks * blockSizeBytes;
  wasm.withScratch(sliceBlocks * digestBytes, (digestAddress, digestView) => {
    for (let offset = 0; offset < bytes.length; offset += sliceBytes) {
      const slice = bytes.subarray(offset, offset + sliceBytes);
      const sliceDigests = Math.ceil(slice.length / blockSizeBytes) * digestBytes;
      if (address !== undefined) hashBlocksAt(algorithm, address + offset, slice.length, blockSizeBytes, digestAddress);
      else wasm.withCopy(slice, (data, length) => hashBlocksAt(algorithm, data, length, blockSizeBytes, digestAddress));
      result.set(digestView.subarray(0, sliceDigests), (offset / blockSizeBytes) * digestBytes);
    }
  });
  return result;
}
