// The resync engine's public API: digest files, checksum, diff, resync, copy, verify.

export { checksum } from "./checksum.js";
export type { ChecksumOptions, ChecksumReport } from "./checksum.js";
export { resync } from "./resync.js";
export type { ResyncOptions, ResyncReport } from "./resync.js";
export { copy } from "./copy.js";
export { resizeImage } from "./resize.js";
export type { ResizeOptions, ResizeReport } from "./resize.js";
export type { CopyOptions, CopyReport } from "./copy.js";
export { verify } from "./verify.js";
export type { CompareOptions as SyncCompareOptions } from "./verify.js";
export { diff } from "./diff.js";
export type { DiffReport } from "./diff-report.js";
export { DigestReader, isDigestFile } from "./digest-reader.js";
export { DigestWriter } from "./digest-writer.js";
export type { DigestHeader, DigestFrame } from "./digest-format.js";
export { BLOCK_UNALLOCATED, BLOCK_ZERO, BLOCK_DATA } from "./digest-format.js";
export { imageIdentity } from "./image-identity.js";
export type { ImageIdentity } from "./image-identity.js";
export type { BlockHashAlgorithm } from "./block-hasher.js";
export type { ResyncCheckpoint } from "./resync-checkpoint.js";
export { SegmentPool } from "./segment-pool.js";
