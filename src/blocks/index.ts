// TypeScript side of the block kernels (assembly/blocks.ts): zero detection, block-by-block
// comparison and digest diffing. The *At functions work on WASM memory addresses (zero-copy,
// for the hot path); the others take Uint8Arrays and copy them into the arena.

import { getWasm } from "../wasm/driver.js";
import { checkStatus } from "../wasm/status.js";
import { VhdsyncError } from "../errors.js";

/** A run of blocks: `blockCount` blocks starting at block number `firstBlock`. */
export interface BlockRange {
  firstBlock: number;
  blockCount: number;
}

const COUNT_BYTES = 8;

function checkBlockSize(blockSizeBytes: number): void {
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes <= 0 || (blockSizeBytes & (blockSizeBytes - 1)) !== 0) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `block size must be a power of two, got ${blockSizeBytes}`, { blockSizeBytes });
  }
}

/** Runs a kernel that stores a u32 count at an out-pointer; returns the count. */
function withCount(what: string, kernel: (countAddress: number) => number): number {
  const wasm = getWasm();
  return wasm.withScratch(COUNT_BYTES, (countAddress) => {
    checkStatus(kernel(countAddress), what);
    return wasm.dataView(countAddress, 4).getUint32(0, true);
  });
}

/** True when every byte of the `length` bytes at WASM `address` is zero. */
export function isZeroAt(address: number, length: number): boolean {
  return getWasm().exports.isZero(address, length) === 1;
}

/** True when every byte of `bytes` is zero. */
export function isZero(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return true;
  return getWasm().withCopy(bytes, (address, length) => isZeroAt(address, length));
}

/**
 * Writes one flag byte per block at `flagsAddress` (1 = block all zero); the last block may
 * be partial. Returns the number of zero blocks. @throws VHDSYNC_INVALID_ARGUMENT
 */
export function zeroBlocksAt(dataAddress: number, lengthBytes: number, blockSizeBytes: number, flagsAddress: number): number {
  checkBlockSize(blockSizeBytes);
  const wasm = getWasm();
  return withCount("zero-block scan", (countAddress) =>
    wasm.exports.zeroBlocks(dataAddress, lengthBytes, blockSizeBytes, flagsAddress, countAddress),
  );
}

/**
 * Compares `lengthBytes` at two WASM addresses block by block: one flag byte per block at
 * `flagsAddress` (1 = differs). Returns the number of differing blocks.
 */
export function compareBlocksAt(aAddress: number, bAddress: number, lengthBytes: number, blockSizeBytes: number, flagsAddress: number): number {
  checkBlockSize(blockSizeBytes);
  const wasm = getWasm();
  return withCount("block compare", (countAddress) =>
    wasm.exports.compareBlocks(aAddress, bAddress, lengthBytes, blockSizeBytes, flagsAddress, countAddress),
  );
}

/** The kernels' ranges (u32 block numbers, relative to the buffer), numbered from `firstBlock`. */
function readRanges(address: number, count: number, firstBlock = 0): BlockRange[] {
  const view = getWasm().dataView(address, count * 8);
  const ranges: BlockRange[] = new Array(count);
  for (let i = 0; i < count; i++) {
    ranges[i] = { firstBlock: firstBlock + view.getUint32(i * 8, true), blockCount: view.getUint32(i * 8 + 4, true) };
  }
  return ranges;
}

/** Most ranges `blocks` flags or digests can produce (alternating set/unset). */
function maxRangesFor(blocks: number): number {
  return Math.ceil(blocks / 2);
}

/**
 * Coalesced ranges of differing blocks between two digest arrays of `count` digests of
 * `digestLength` bytes (a multiple of 8) at WASM addresses `aAddress` and `bAddress`.
 */
export function diffDigestsAt(aAddress: number, bAddress: number, count: number, digestLength: number): BlockRange[] {
  const wasm = getWasm();
  const maxRanges = maxRangesFor(count);
  return wasm.withScratch(Math.max(8, maxRanges * 8), (rangesAddress) => {
    const ranges = withCount("digest diff", (countAddress) =>
      wasm.exports.diffDigests(aAddress, bAddress, count, digestLength, rangesAddress, maxRanges, countAddress),
    );
    return readRanges(rangesAddress, ranges);
  });
}

/**
 * Coalesced ranges of differing blocks between two concatenated digest arrays.
 * @throws VHDSYNC_SIZE_MISMATCH when the arrays differ in length
 */
export function diffDigests(a: Uint8Array, b: Uint8Array, digestLength: number): BlockRange[] {
  if (a.length !== b.length) {
    throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `digest arrays differ in length (${a.length} vs ${b.length} bytes)`);
  }
  if (digestLength <= 0 || digestLength % 8 !== 0 || a.length % digestLength !== 0) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `bad digest length ${digestLength} for ${a.length} bytes`);
  }
  if (a.length === 0) return [];
  const wasm = getWasm();
  return wasm.withCopy(a, (aAddress) => wasm.withCopy(b, (bAddress) => diffDigestsAt(aAddress, bAddress, a.length / digestLength, digestLength)));
}

/**
 * Coalesced ranges of set flags (non-zero bytes) at WASM `flagsAddress`, numbered from
 * `firstBlock` (any safe integer ≥ 0: added here, not in the kernel, whose block numbers are
 * u32 and would wrap past 2^32 blocks, e.g. 16 TiB in 4 KiB blocks).
 * @throws VHDSYNC_INVALID_ARGUMENT when firstBlock is not a safe integer ≥ 0
 */
export function flagsToRangesAt(flagsAddress: number, count: number, firstBlock = 0): BlockRange[] {
  if (!Number.isSafeInteger(firstBlock) || firstBlock < 0 || !Number.isSafeInteger(firstBlock + count)) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `first block must be a safe integer >= 0, got ${firstBlock}`, { firstBlock });
  }
  const wasm = getWasm();
  const maxRanges = maxRangesFor(count);
  return wasm.withScratch(Math.max(8, maxRanges * 8), (rangesAddress) => {
    const ranges = withCount("flag ranges", (countAddress) =>
      wasm.exports.flagsToRanges(flagsAddress, count, 0, rangesAddress, maxRanges, countAddress),
    );
    return readRanges(rangesAddress, ranges, firstBlock);
  });
}

/** Coalesced ranges of set flags in a flag map (one byte per block). */
export function flagsToRanges(flags: Uint8Array, firstBlock = 0): BlockRange[] {
  if (flags.length === 0) return [];
  return getWasm().withCopy(flags, (address, count) => flagsToRangesAt(address, count, firstBlock));
}

/** Compares two equal-length buffers block by block; returns ranges of differing blocks. */
export function compareBuffers(a: Uint8Array, b: Uint8Array, blockSizeBytes: number): BlockRange[] {
  if (a.length !== b.length) throw new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `buffers differ in length (${a.length} vs ${b.length})`);
  if (a.length === 0) return [];
  const wasm = getWasm();
  const blocks = Math.ceil(a.length / blockSizeBytes);
  return wasm.withCopy(a, (aAddress) =>
    wasm.withCopy(b, (bAddress) =>
      wasm.withScratch(blocks, (flagsAddress) => {
        compareBlocksAt(aAddress, bAddress, a.length, blockSizeBytes, flagsAddress);
        return flagsToRangesAt(flagsAddress, blocks);
      }),
    ),
  );
}
