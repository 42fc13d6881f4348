// The hash algorithms of the resync engine (over src/hash) and the ids the digest file
// format stores (stable on disk).

import { VhdsyncError } from "../errors.js";
import { digestLength, type HashAlgorithm } from "../hash/index.js";

/** Hash algorithms a digest file can use. */
export type BlockHashAlgorithm = HashAlgorithm;

/** All algorithms, in digest-file id order (id = index + 1). Never reorder: on-disk format. */
export const BLOCK_HASH_ALGORITHMS: readonly BlockHashAlgorithm[] = ["xxh3-128", "xxh3-64", "xxh64", "sha256"];

/** Digest length in bytes of an algorithm. @throws VHDSYNC_INVALID_ARGUMENT */
export function blockDigestLength(algo: BlockHashAlgorithm): number {
  if (!BLOCK_HASH_ALGORITHMS.includes(algo)) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `unknown hash algorithm ${String(algo)}`, { algo });
  return digestLength(algo);
}
