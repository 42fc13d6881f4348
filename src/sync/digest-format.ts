// The digest file codec (docs/digest-file.md): header, frame and trailer layouts declared once
// as field tables, with encoders and validating decoders. Pure: bytes in, values out; every
// malformed input becomes a coded VhdsyncError (never an assertion).
//
//   header  : fixed 48 bytes + identity JSON (space-padded so the header is 4 KiB and can be
//             rewritten in place) + sha256 of everything before it (32 bytes)
//   frame*  : 24-byte frame header + flag byte per block + digests of the data blocks
//   trailer : 56 bytes: magic, frame count, block count, sha256 of all frames

import { toHex } from "../hash/algorithm.js";
import { sha256 } from "../hash/sha256.js";
import { VhdsyncError } from "../errors.js";
import { BLOCK_HASH_ALGORITHMS, blockDigestLength, type BlockHashAlgorithm } from "./block-hasher.js";
import type { ImageIdentity } from "./image-identity.js";
import { DIGEST_MAGIC, DIGEST_SIGNATURE, signatureOf, startsWith } from "../formats/signatures.js";
import { nativeAddon } from "../io/native-addon.js";

export { DIGEST_MAGIC };

export const DIGEST_VERSION = 1;
export const FRAME_MAGIC = "FRAM";
export const TRAILER_MAGIC = "VHDSEND1";

/** The frame and trailer magics' bytes, made once (a TextDecoder made per frame header cost ~2 ms per 64 frames). */
const FRAME_SIGNATURE = signatureOf(FRAME_MAGIC);
export const TRAILER_SIGNATURE = signatureOf(TRAILER_MAGIC);

/** Header fields: byte offsets in the fixed part. */
const H = { magic: 0, version: 8, flags: 10, headerLength: 12, algorithm: 16, digestLength: 17, blockSize: 20, virtualSize: 24, blockCount: 32, frameBlocks: 40, identityLength: 44 } as const;
export const HEADER_FIXED_BYTES = 48;
export const HEADER_CHECKSUM_BYTES = 32;
/** Frame header fields. */
const F = { magic: 0, blockCount: 4, firstBlock: 8, dataBlocks: 16, reserved: 20 } as const;
export const FRAME_HEADER_BYTES = 24;
/** Trailer fields. */
const T = { magic: 0, frameCount: 8, blockCount: 16, checksum: 24 } as const;
export const TRAILER_BYTES = 56;

/** Header sizes writers use are multiples of this (identity JSON padded with spaces to fill it). */
export const PADDED_HEADER_BYTES = 4096;
/** Padding a written header keeps at least. */
const SPARE_IDENTITY_BYTES = 64;
/** Largest identity JSON accepted (bytes). */
const MAX_IDENTITY_BYTES = 64 * 1024;
/** Block sizes the engine accepts: powers of two from 4 KiB to 64 MiB. */
export const MIN_BLOCK_BYTES = 4096;
export const MAX_BLOCK_BYTES = 64 * 1024 * 1024;
/** Most blocks one frame may describe. */
export const MAX_FRAME_BLOCKS = 1 << 20;

/** Per-block state in a digest file. */
export const BLOCK_UNALLOCATED = 0;
export const BLOCK_ZERO = 1;
export const BLOCK_DATA = 2;

/** Everything a digest file's header says. */
export interface DigestHeader {
  algo: BlockHashAlgorithm;
  digestLength: number;
  blockSizeBytes: number;
  virtualSizeBytes: number;
  blockCount: number;
  /** Blocks per frame (the last frame may hold fewer). */
  frameBlocks: number;
  identity: ImageIdentity;
  /** Total header length in bytes (frames start here). */
  headerLength: number;
  /** sha256 of the header, hex: names this exact digest file. */
  headerChecksum: string;
}

/** One frame: the states of `blockCount` blocks from `firstBlock`, digests of the data blocks packed. */
export interface DigestFrame {
  firstBlock: number;
  blockCount: number;
  /** One byte per block: BLOCK_UNALLOCATED, BLOCK_ZERO or BLOCK_DATA. */
  flags: Uint8Array;
  /** Digests of the BLOCK_DATA blocks, in block order, `digestLength` bytes each. */
  digests: Uint8Array;
}

function corrupt(path: string, message: string, details: Record<string, unknown> = {}): VhdsyncError {
  return new VhdsyncError("VHDSYNC_CORRUPT", `${path}: digest file: ${message}`, { path, ...details });
}

/** Checks a block size (power of two, 4 KiB..64 MiB). @throws VHDSYNC_INVALID_ARGUMENT */
export function checkBlockSize(blockSizeBytes: number): void {
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes < MIN_BLOCK_BYTES || blockSizeBytes > MAX_BLOCK_BYTES || (blockSizeBytes & (blockSizeBytes - 1)) !== 0) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `block size must be a power of two from 4 KiB to 64 MiB, got ${blockSizeBytes}`, { blockSizeBytes });
  }
}

/**
 * Encodes a header (the checksum is computed here): a multiple of PADDED_HEADER_BYTES with at
 * least SPARE_IDENTITY_BYTES of padding. Every writer sizes it so; a rewrite with another
 * identity (resync --update-digest) is made in place when its size comes out the same.
 */
export function encodeHeader(header: Omit<DigestHeader, "headerLength" | "headerChecksum" | "digestLength">): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header.identity));
  const fixed = HEADER_FIXED_BYTES + HEADER_CHECKSUM_BYTES;
  const room = Math.ceil((fixed + json.length + SPARE_IDENTITY_BYTES) / PADDED_HEADER_BYTES) * PADDED_HEADER_BYTES - fixed;
  const identity = new Uint8Array(Math.max(json.length, Math.min(room, MAX_IDENTITY_BYTES))).fill(0x20);
  identity.set(json);
  const headerLength = HEADER_FIXED_BYTES + identity.length + HEADER_CHECKSUM_BYTES;
  const bytes = new Uint8Array(headerLength);
  const view = new DataView(bytes.buffer);
  bytes.set(DIGEST_SIGNATURE, H.magic);
  view.setUint16(H.version, DIGEST_VERSION, true);
  view.setUint32(H.headerLength, headerLength, true);
  view.setUint8(H.algorithm, BLOCK_HASH_ALGORITHMS.indexOf(header.algo) + 1);
  view.setUint8(H.digestLength, blockDigestLength(header.algo));
  view.setUint32(H.blockSize, header.blockSizeBytes, true);
  view.setBigUint64(H.virtualSize, BigInt(header.virtualSizeBytes), true);
  view.setBigUint64(H.blockCount, BigInt(header.blockCount), true);
  view.setUint32(H.frameBlocks, header.frameBlocks, true);
  view.setUint32(H.identityLength, identity.length, true);
  bytes.set(identity, HEADER_FIXED_BYTES);
  bytes.set(sha256(bytes.subarray(0, headerLength - HEADER_CHECKSUM_BYTES)), headerLength - HEADER_CHECKSUM_BYTES);
  return bytes;
}

/** Total header length declared by the first HEADER_FIXED_BYTES (after checking magic and version). */
export function headerLengthOf(fixed: Uint8Array, path: string): number {
  if (fixed.length < HEADER_FIXED_BYTES) throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: digest file: header truncated`, { path });
  if (!startsWith(fixed, DIGEST_SIGNATURE)) throw corrupt(path, "bad magic (not a vhdsync digest file)");
  const view = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
  const version = view.getUint16(H.version, true);
  if (version !== DIGEST_VERSION) throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path}: digest file version ${version} is not supported`, { path, version });
  // Flags would mark features of a later writer: none is known, so any is refused. (The
  // reserved fields are written as zeros and not read.)
  const flags = view.getUint16(H.flags, true);
  if (flags !== 0) throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path}: digest file flags 0x${flags.toString(16)} are not supported`, { path, flags });
  const identityLength = view.getUint32(H.identityLength, true);
  const headerLength = view.getUint32(H.headerLength, true);
  if (identityLength > MAX_IDENTITY_BYTES || headerLength !== HEADER_FIXED_BYTES + identityLength + HEADER_CHECKSUM_BYTES) {
    throw corrupt(path, "inconsistent header length", { headerLength, identityLength });
  }
  return headerLength;
}

/** Decodes and validates a whole header. @throws VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_UNSUPPORTED */
export function decodeHeader(bytes: Uint8Array, path: string): DigestHeader {
  const headerLength = headerLengthOf(bytes, path);
  if (bytes.length < headerLength) throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: digest file: header truncated`, { path });
  const body = bytes.subarray(0, headerLength - HEADER_CHECKSUM_BYTES);
  const checksum = sha256(body);
  if (!equalBytes(checksum, bytes.subarray(headerLength - HEADER_CHECKSUM_BYTES, headerLength))) {
    throw new VhdsyncError("VHDSYNC_BAD_CHECKSUM", `${path}: digest file: header checksum mismatch`, { path });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerLength);
  const algo = BLOCK_HASH_ALGORITHMS[view.getUint8(H.algorithm) - 1];
  if (!algo) throw corrupt(path, `unknown hash algorithm id ${view.getUint8(H.algorithm)}`);
  const digestLength = view.getUint8(H.digestLength);
  const blockSizeBytes = view.getUint32(H.blockSize, true);
  const virtualSizeBytes = Number(view.getBigUint64(H.virtualSize, true));
  const blockCount = Number(view.getBigUint64(H.blockCount, true));
  const frameBlocks = view.getUint32(H.frameBlocks, true);
  if (digestLength !== blockDigestLength(algo)) throw corrupt(path, `digest length ${digestLength} does not match ${algo}`);
  try {
    checkBlockSize(blockSizeBytes);
  } catch {
    throw corrupt(path, `bad block size ${blockSizeBytes}`);
  }
  if (!Number.isSafeInteger(virtualSizeBytes) || blockCount !== Math.ceil(virtualSizeBytes / blockSizeBytes)) throw corrupt(path, "block count does not match the virtual size");
  if (frameBlocks < 1 || frameBlocks > MAX_FRAME_BLOCKS) throw corrupt(path, `bad frame size ${frameBlocks}`);
  let identity: ImageIdentity;
  try {
    identity = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(HEADER_FIXED_BYTES, headerLength - HEADER_CHECKSUM_BYTES)));
  } catch {
    throw corrupt(path, "identity is not valid JSON");
  }
  if (typeof identity !== "object" || identity === null || Array.isArray(identity)) throw corrupt(path, "identity is not an object");
  return { algo, digestLength, blockSizeBytes, virtualSizeBytes, blockCount, frameBlocks, identity, headerLength, headerChecksum: toHex(checksum) };
}

/** Encodes a frame header. */
export function encodeFrameHeader(firstBlock: number, blockCount: number, dataBlocks: number): Uint8Array {
  const bytes = new Uint8Array(FRAME_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(FRAME_SIGNATURE, F.magic);
  view.setUint32(F.blockCount, blockCount, true);
  view.setBigUint64(F.firstBlock, BigInt(firstBlock), true);
  view.setUint32(F.dataBlocks, dataBlocks, true);
  return bytes;
}

/** Decodes a frame header, checking it continues at `expectedFirstBlock`. @throws VHDSYNC_CORRUPT */
export function decodeFrameHeader(bytes: Uint8Array, expectedFirstBlock: number, header: DigestHeader, path: string): { blockCount: number; dataBlocks: number; payloadBytes: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_BYTES);
  if (!startsWith(bytes, FRAME_SIGNATURE)) throw corrupt(path, `bad frame magic at block ${expectedFirstBlock}`);
  const blockCount = view.getUint32(F.blockCount, true);
  const firstBlock = Number(view.getBigUint64(F.firstBlock, true));
  const dataBlocks = view.getUint32(F.dataBlocks, true);
  if (firstBlock !== expectedFirstBlock) throw corrupt(path, `frame starts at block ${firstBlock}, expected ${expectedFirstBlock}`);
  if (blockCount < 1 || blockCount > header.frameBlocks || firstBlock + blockCount > header.blockCount || dataBlocks > blockCount) {
    throw corrupt(path, `bad frame at block ${firstBlock}`, { blockCount, dataBlocks });
  }
  return { blockCount, dataBlocks, payloadBytes: blockCount + dataBlocks * header.digestLength };
}

/** Checks a frame's flags: known values, and as many data blocks as declared. @throws VHDSYNC_CORRUPT */
export function checkFrameFlags(flags: Uint8Array, dataBlocks: number, firstBlock: number, path: string): void {
  const data = countDataFlags(flags);
  if (data < 0) {
    const at = flags.findIndex((flag) => flag > BLOCK_DATA);
    throw corrupt(path, `bad block state ${flags[at]} at block ${firstBlock + at}`);
  }
  if (data !== dataBlocks) throw corrupt(path, `frame at block ${firstBlock} declares ${dataBlocks} digests but has ${data} data blocks`);
}

/** Frames with fewer flags are counted here: a call into the addon costs more than the loop. */
const NATIVE_COUNT_MIN_FLAGS = 512;

/**
 * The number of BLOCK_DATA flags, or -1 when a flag is not a known state. Counted by the
 * native addon when it is loaded: the loop below runs unoptimized at first, ~4 ms for a
 * 2 GiB image's 64 frames in a fresh process (the check `resync --target-digest` makes of
 * every frame before it starts).
 */
export function countDataFlags(flags: Uint8Array): number {
  const addon = flags.length >= NATIVE_COUNT_MIN_FLAGS ? nativeAddon() : null;
  if (addon && typeof addon.countDataStates === "function") return addon.countDataStates(flags.buffer as ArrayBuffer, flags.byteOffset, flags.length);
  return countDataFlagsPortable(flags);
}

/** countDataFlags() without the addon. */
export function countDataFlagsPortable(flags: Uint8Array): number {
  // Four flags per step where they are 4-aligned: a byte is a known state (0, 1 or 2) when no
  // bit above bit 1 is set and not both low bits; bit 1 marks BLOCK_DATA, and the multiply
  // adds the four of them. Two words per step, in locals (no closure holds them: V8 would keep
  // captured counters in memory, ~4x slower on a 1 TiB image's 32,768 frames).
  const head = Math.min(flags.length, (4 - (flags.byteOffset % 4)) % 4);
  const aligned = (flags.byteOffset + head) % 4 === 0;
  const words = new Uint32Array(flags.buffer, aligned ? flags.byteOffset + head : 0, aligned ? (flags.length - head) >>> 2 : 0);
  let unknown = 0;
  let data = 0;
  const pairs = words.length & ~1;
  for (let i = 0; i < pairs; i += 2) {
    const a = words[i];
    const b = words[i + 1];
    unknown |= (a & 0xfcfcfcfc) | (a & (a >>> 1) & 0x01010101) | (b & 0xfcfcfcfc) | (b & (b >>> 1) & 0x01010101);
    data += Math.imul(((a >>> 1) & 0x01010101) + ((b >>> 1) & 0x01010101), 0x01010101) >>> 24;
  }
  if (pairs < words.length) {
    const a = words[pairs];
    unknown |= (a & 0xfcfcfcfc) | (a & (a >>> 1) & 0x01010101);
    data += Math.imul((a >>> 1) & 0x01010101, 0x01010101) >>> 24;
  }
  // The bytes before and after the words.
  for (const [from, to] of [[0, head], [head + words.length * 4, flags.length]]) {
    for (let i = from; i < to; i++) {
      unknown |= flags[i] > BLOCK_DATA ? 1 : 0;
      data += flags[i] === BLOCK_DATA ? 1 : 0;
    }
  }
  return unknown === 0 ? data : -1;
}

/** Encodes the trailer. */
export function encodeTrailer(frameCount: number, blockCount: number, checksum: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(TRAILER_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(TRAILER_SIGNATURE, T.magic);
  view.setBigUint64(T.frameCount, BigInt(frameCount), true);
  view.setBigUint64(T.blockCount, BigInt(blockCount), true);
  bytes.set(checksum, T.checksum);
  return bytes;
}

/** Decodes the trailer. @throws VHDSYNC_TRUNCATED when the magic is missing (a cut file) */
export function decodeTrailer(bytes: Uint8Array, path: string): { frameCount: number; blockCount: number; checksum: Uint8Array } {
  if (bytes.length < TRAILER_BYTES || !startsWith(bytes, TRAILER_SIGNATURE)) {
    throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: digest file: trailer missing (file truncated or incomplete)`, { path });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, TRAILER_BYTES);
  return { frameCount: Number(view.getBigUint64(T.frameCount, true)), blockCount: Number(view.getBigUint64(T.blockCount, true)), checksum: bytes.subarray(T.checksum, T.checksum + 32) };
}

/** Byte-wise equality. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
