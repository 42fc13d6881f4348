// The vhdsync library API: what other DR tools embed. The CLI (src/cli) is a thin shell over
// these exports. Each area adds its exports here.

export { VhdsyncError, ERROR_CODES, codeForErrno, toVhdsyncError, exitCodeFor } from "./errors.js";
export type { ErrorCode, ErrorDetails } from "./errors.js";
export type { ProgressEvent, ProgressListener } from "./progress.js";
export { getWasm, WasmInstance, DEFAULT_ARENA_BYTES } from "./wasm/driver.js";
export type { WasmVariant } from "./wasm/driver.js";
export { openImage, registerFormat } from "./formats/open-image.js";
export type { FormatHandler } from "./formats/open-image.js";
export { RawImage } from "./formats/raw.js";
export { compareImages } from "./formats/compare-images.js";
export type { CompareResult, CompareOptions } from "./formats/compare-images.js";
export { unionExtents, totalLength, splitExtents, alignExtents } from "./formats/extents.js";
export type { DiskImage, Extent, ImageFormat, ImageInfo, OpenOptions, ChainLayer, AllocationScope } from "./formats/disk-image.js";
export { isZero, isZeroAt, zeroBlocksAt, compareBlocksAt, compareBuffers, diffDigests, diffDigestsAt, flagsToRanges, flagsToRangesAt } from "./blocks/index.js";
export type { BlockRange } from "./blocks/index.js";
export { fileExtents, punchHole, zeroRange, reflink, fdatasync, fadvise, blockDeviceInfo, nativeStatus, cloneFile, copyFileRange } from "./io/native.js";
export type { NativeStatus, NativeFeature, BlockDeviceInfo, FadviseAdvice, CloneOptions, CloneResult, CopyMethod, CopyRangeResult } from "./io/native.js";
export { probeFilesystem } from "./io/native-probe.js";
export type { FilesystemProbe, ProbeCheck } from "./io/native-probe.js";
export { VhdxImage, isVhdx, checkVhdx } from "./formats/vhdx/index.js";
export type { VhdxStructure } from "./formats/vhdx/index.js";
export { openVhd, createVhd, VHD_MIN_NEW_BLOCK_BYTES, VhdImage, VhdFixedImage, VhdDynamicImage, VhdDifferencingImage, geometryForSize as vhdGeometryForSize } from "./formats/vhd/index.js";
export type { CreateVhdOptions, OpenVhdOptions, VhdFooter, VhdHeader, VhdGeometry } from "./formats/vhd/index.js";
export { DEFAULT_HASH_ALGORITHM, HASH_ALGORITHMS, digestLength, toHex, hashBytes, hashBlocks, hashBlocksAt, createHasher, hashFile, hashImage } from "./hash/index.js";
export type { HashAlgorithm, Hasher, HashResult, HashStreamOptions } from "./hash/index.js";
export * from "./hrl/index.js";
export { checkImage, registerChecker, MAX_CHECK_PROBLEMS, ProblemList } from "./formats/check.js";
export type { CheckProblem, CheckReport, CheckResult, FormatChecker } from "./formats/check.js";
export { createSnapshot, revertSnapshot, deleteSnapshot, mergeSnapshots, resumeSnapshotOperation, listSnapshots, snapshotPaths, layerFileName, setFaultHook } from "./snapshot/index.js";
export type { SnapshotOperationResult, SnapshotListing, SnapshotListEntry, SnapshotEntry, SnapshotCatalogue, OperationState as SnapshotOperationState, CopyTuning, FaultHook } from "./snapshot/index.js";
export { checksum, resync, copy, resizeImage, verify, diff, DigestReader, DigestWriter, isDigestFile, imageIdentity, SegmentPool } from "./sync/index.js";
export type { ChecksumOptions, ChecksumReport, ResyncOptions, ResyncReport, CopyOptions, CopyReport, ResizeOptions, ResizeReport, SyncCompareOptions, DiffReport, DigestHeader, DigestFrame, ImageIdentity, BlockHashAlgorithm, ResyncCheckpoint } from "./sync/index.js";
export { convertImage, CONVERT_TARGETS } from "./sync/convert.js";
export type { ConvertOptions, ConvertReport, ConvertTarget } from "./sync/convert.js";
