// A first-fit allocator over a fixed region of WASM memory. The memory never grows, so views
// created over it stay valid for the life of the instance (zero-copy I/O depends on that).
// Allocations are few and large (I/O batches, digest arrays, parser scratch).

import { VhdsyncError } from "../errors.js";

interface FreeRange {
  start: number;
  size: number;
}

/** Fixed-size allocator for WASM memory addresses in [start, start + sizeBytes). */
export class Arena {
  private readonly free: FreeRange[];
  private readonly used = new Map<number, number>();

  constructor(readonly start: number, readonly sizeBytes: number) {
    this.free = [{ start, size: sizeBytes }];
  }

  /** Bytes currently free (possibly fragmented). */
  get freeBytes(): number {
    return this.free.reduce((sum, range) => sum + range.size, 0);
  }

  /** Whether alloc(sizeBytes, alignBytes) would succeed now. */
  fits(sizeBytes: number, alignBytes = 64): boolean {
    return this.firstFit(blockSize(sizeBytes, alignBytes), alignBytes) >= 0;
  }

  /**
   * Reserves `sizeBytes` at an address aligned to `alignBytes` (a power of two).
   * @throws VHDSYNC_NO_MEMORY when no free range is large enough.
   */
  alloc(sizeBytes: number, alignBytes = 64): number {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `bad allocation size ${sizeBytes}`);
    }
    const size = blockSize(sizeBytes, alignBytes);
    const i = this.firstFit(size, alignBytes);
    if (i < 0) {
      throw new VhdsyncError(
        "VHDSYNC_NO_MEMORY",
        `WASM arena exhausted: ${sizeBytes} bytes requested, ${this.freeBytes} free of ${this.sizeBytes}`,
        { requestedBytes: sizeBytes, arenaBytes: this.sizeBytes },
      );
    }
    const range = this.free[i];
    const aligned = roundUp(range.start, alignBytes);
    const padding = aligned - range.start;
    const tailStart = aligned + size;
    const tailSize = range.start + range.size - tailStart;
    const replacement: FreeRange[] = [];
    if (padding > 0) replacement.push({ start: range.start, size: padding });
    if (tailSize > 0) replacement.push({ start: tailStart, size: tailSize });
    this.free.splice(i, 1, ...replacement);
    this.used.set(aligned, size);
    return aligned;
  }

  /** Index of the first free range holding `size` bytes at an `alignBytes` boundary, or -1. */
  private firstFit(size: number, alignBytes: number): number {
    return this.free.findIndex((range) => range.size >= roundUp(range.start, alignBytes) - range.start + size);
  }

  /** Returns a block obtained from alloc(). Freeing an unknown address is a programmer error. */
  release(address: number): void {
    const size = this.used.get(address);
    if (size === undefined) throw new VhdsyncError("VHDSYNC_INTERNAL", `arena: free of unknown address ${address}`);
    this.used.delete(address);
    let index = this.free.findIndex((range) => range.start > address);
    if (index < 0) index = this.free.length;
    this.free.splice(index, 0, { start: address, size });
    // Coalesce with neighbours.
    const next = this.free[index + 1];
    if (next && address + size === next.start) {
      this.free[index].size += next.size;
      this.free.splice(index + 1, 1);
    }
    const previous = this.free[index - 1];
    if (previous && previous.start + previous.size === address) {
      previous.size += this.free[index].size;
      this.free.splice(index, 1);
    }
  }
}

/** Bytes a block of `sizeBytes` takes: a whole number of alignments, at least one. */
function blockSize(sizeBytes: number, alignBytes: number): number {
  return Math.max(alignBytes, roundUp(sizeBytes, alignBytes));
}

/** Rounds `value` up to a multiple of `alignment` (a power of two). */
export function roundUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
