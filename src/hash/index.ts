// Hashing API: xxHash (WASM) and SHA-256 digests of bytes, WASM memory, files and disk images.

export { DEFAULT_HASH_ALGORITHM, HASH_ALGORITHMS, checkAlgorithm, digestLength, toHex } from "./algorithm.js";
export type { HashAlgorithm } from "./algorithm.js";
export { hashBytes, hashBlocks, hashBlocksAt, hashNonZeroBlocksAt } from "./hash-bytes.js";
export { createHasher } from "./hasher.js";
export type { Hasher } from "./hasher.js";
export { hashFile, hashImage } from "./hash-image.js";
export type { HashResult, HashStreamOptions } from "./hash-image.js";
