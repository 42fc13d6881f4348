// Per-block hashing for the resync engine, over src/hash: every block of a WASM-memory buffer
// hashed in one call, and the algorithm ids the digest file format stores (stable on disk).

import { VhdsyncError } from "../errors.js";
import { digestLength, hashBlocksAt, type HashAlgorithm } from "../hash/index.js";
import type { WasmInstance } from "../wasm/driver.js";

/** Hash algorithms a digest file can use. */
export type BlockHashAlgorithm = HashAlgorithm;

/** All algorithms, in digest-file id order (id = index + 1). Never reorder: on-disk format. */
export const BLOCK_HASH_ALGORITHMS: readonly BlockHashAlgorithm[] = ["xxh3-128", "xxh3-64", "xxh64", "sha256"];

/** Digest length in bytes of an algorithm. @throws VHDSYNC_INVALID_ARGUMENT */
export function blockDigestLength(algo: BlockHashAlgorithm): number {
  if (!BLOCK_HASH_ALGORITHMS.includes(algo)) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `unknown hash algorithm ${String(algo)}`, { algo });
  return digestLength(algo);
}

/**
 * Hashes each `blockSizeBytes` block of the `lengthBytes` at WASM `dataAddress` (last block may
 * be partial), writing canonical digests back to back at `digestAddress`.
 * @throws VHDSYNC_INVALID_ARGUMENT
 */
export function hashBlocks(_wasm: WasmInstance, algo: BlockHashAlgorithm, dataAddress: number, lengthBytes: number, blockSizeBytes: number, digestAddress: number): void {
  hashBlocksAt(algo, dataAddress, lengthBytes, blockSizeBytes, digestAddress);
}
