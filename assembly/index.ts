// WebAssembly entry point: re-exports every kernel. One module, one instance per thread,
// memory imported from the driver (fixed size, never grown). See docs/architecture.md.

export { heapBase } from "./memory";
export { hash_digestLength, hash_stateSize, hash_init, hash_update, hash_digest, hash_oneShot, hash_blocks, hash_blocks_nonzero } from "./hash/hash-blocks";
export { xxh64, xxh64_stateSize, xxh64_init, xxh64_update, xxh64_digest } from "./hash/xxh64";
export { xxh3_64, xxh3_128 } from "./hash/xxh3";
export { xxh3_stateSize, xxh3_init, xxh3_update, xxh3_64_digest, xxh3_128_digest } from "./hash/xxh3-stream";
export { isZero, bytesEqual, zeroBlocks, compareBlocks, compareZeroBlocks, flagsToRanges, diffDigests, frameWindow } from "./blocks";
export { vhdFooterParse, vhdFooterBuild, vhdChecksum, vhdHeaderParse, vhdHeaderBuild, vhdBitmapBytes, vhdBatScan, vhdBitmapGet, vhdBitmapSetRange, vhdBitmapRun, vhdBitmapCount, vhdBitmapZeroCheck, vhdGeometryForSize } from "./vhd/index";
export { hrlByteSum, hrlDataChecksum } from "./hrl/checksum";
export { hrlHeaderParse, hrlHeaderBuild } from "./hrl/header";
export { hrlMetadataParse, hrlEntryBuild, hrlMetadataHeaderBuild } from "./hrl/metadata";
export { hrlScanMetadata } from "./hrl/scan";
export { hrlTraverse } from "./hrl/traverse";
export { vhdxCrc32c, vhdxCrc32cUpdate, vhdxParseHeaders, vhdxParseRegionTable, vhdxParseMetadata, vhdxParseParentLocator, vhdxValidateBat, vhdxLogEntryCheck, vhdxLogFindActive, vhdxLogDescriptor } from "./vhdx/index";
