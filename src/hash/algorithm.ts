// Hash algorithm names, their WASM ids and digest lengths, and hex formatting. Digests are
// always canonical big-endian bytes, so their hex equals what `xxhsum` prints
// (XXH3-128: high 64 bits first). See docs/hashing.md.

import { VhdsyncError } from "../errors.js";

/** Digest algorithms: the three xxHash variants (WASM) and SHA-256 (node:crypto, for digest files). */
export type HashAlgorithm = "xxh3-128" | "xxh3-64" | "xxh64" | "sha256";

/** Every supported algorithm, default first. */
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ["xxh3-128", "xxh3-64", "xxh64", "sha256"];

/** The algorithm `vhdsync hash` and the library use when none is given. */
export const DEFAULT_HASH_ALGORITHM: HashAlgorithm = "xxh3-128";

/** WASM algorithm ids (assembly/hash/constants.ts, numbered like `xxhsum -H<n>`). */
const WASM_IDS: Partial<Record<HashAlgorithm, number>> = { xxh64: 1, "xxh3-128": 2, "xxh3-64": 3 };

const DIGEST_BYTES: Record<HashAlgorithm, number> = { "xxh3-128": 16, "xxh3-64": 8, xxh64: 8, sha256: 32 };

/**
 * Checks that `name` is a supported algorithm.
 * @throws VHDSYNC_INVALID_ARGUMENT for anything else
 */
export function checkAlgorithm(name: string): HashAlgorithm {
  if ((HASH_ALGORITHMS as readonly string[]).includes(name)) return name as HashAlgorithm;
  throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `unknown hash algorithm "${name}" (use one of ${HASH_ALGORITHMS.join(", ")})`, {
    algorithm: name,
  });
}

/** Digest length of `algorithm` in bytes (16, 8, 8, 32). @throws VHDSYNC_INVALID_ARGUMENT */
export function digestLength(algorithm: HashAlgorithm): number {
  return DIGEST_BYTES[checkAlgorithm(algorithm)];
}

/** The WASM id of an xxHash algorithm, or undefined for sha256. @throws VHDSYNC_INVALID_ARGUMENT */
export function wasmAlgorithmId(algorithm: HashAlgorithm): number | undefined {
  return WASM_IDS[checkAlgorithm(algorithm)];
}

/**
 * A seed as the unsigned 64-bit value WASM takes (default 0; ignored by sha256).
 * @throws VHDSYNC_INVALID_ARGUMENT for non-integers or values outside [-2^63, 2^64)
 */
export function toSeed(seed: number | bigint = 0): bigint {
  const value = typeof seed === "bigint" ? seed : Number.isSafeInteger(seed) ? BigInt(seed) : undefined;
  if (value === undefined || value < -(1n << 63n) || value >= 1n << 64n) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `hash seed must be a 64-bit integer: ${String(seed)}`);
  }
  return BigInt.asUintN(64, value);
}

/** Lower-case hex of a digest (or any bytes). */
export function toHex(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString("hex");
}
