// Zero-copy reads: whole pages of a file mapped straight into a WebAssembly memory (native
// mapFile: mmap MAP_FIXED|MAP_PRIVATE over a page-aligned range of the memory), so the WASM
// kernels compare and hash page-cache data in place instead of after a copy. The memory
// stays ordinary memory of the same size whatever is mapped behind it; release() puts zero
// pages back. Off unless VHDSYNC_SCAN_MMAP=1: since the twelfth session positional reads are
// the default, which measured faster on its host (docs/native.md "Reading the files").
// Without the addon, with VHDSYNC_NO_MMAP=1, or where a file cannot be mapped, callers read. If a mapped file shrinks while in use, the addon's SIGBUS guard ends
// the process with "vhdsync: VHDSYNC_IO: ..." and exit status 4 (see docs/native.md).

import { readExactlySync } from "./file.js";
import { callNative, fromNativeError, isUnsupportedError, nativeAddon, type NativeAddon } from "./native-addon.js";

/** errno names meaning "read this file instead": not mappable (EACCES, ENODEV) or shorter than the range (ENXIO). */
const CANNOT_MAP = new Set(["EACCES", "ENODEV", "ENXIO"]);

/** Whether file pages are to be mapped rather than read: VHDSYNC_SCAN_MMAP=1, and not VHDSYNC_NO_MMAP=1. */
export function mappingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.VHDSYNC_SCAN_MMAP === "1" && env.VHDSYNC_NO_MMAP !== "1";
}

/** Maps file pages into one WebAssembly memory. */
export class PageMapper {
  private constructor(private readonly addon: NativeAddon, private readonly memory: WebAssembly.Memory, readonly pageSize: number) {}

  /** A mapper for `memory` when VHDSYNC_SCAN_MMAP=1 asks for mapping, else null (also without the addon, or with VHDSYNC_NO_MMAP=1). */
  static for(memory: WebAssembly.Memory): PageMapper | null {
    if (!mappingRequested()) return null;
    const addon = nativeAddon();
    if (!addon || typeof addon.mapFile !== "function") return null;
    return new PageMapper(addon, memory, addon.pageSize);
  }

  /**
   * Maps the whole pages at the start of [fileOffset, fileOffset+length) of `fd` at `address`
   * and returns how many bytes that covers: a multiple of the page size, 0 when the offsets
   * are not page-aligned or the file cannot be mapped (the caller reads those bytes instead).
   * A range past the end of the file maps nothing (the caller's read then reports the
   * truncation with its own code).
   * @throws VhdsyncError for a failure other than "cannot map this file"
   */
  map(address: number, fd: number, fileOffset: number, length: number): number {
    const page = this.pageSize;
    const bytes = Math.floor(length / page) * page;
    if (bytes === 0 || address % page !== 0 || fileOffset % page !== 0) return 0;
    try {
      this.addon.mapFile(this.memory.buffer, address, fd, fileOffset, bytes);
      return bytes;
    } catch (error) {
      if (isUnsupportedError(error) || CANNOT_MAP.has(String((error as { code?: unknown }).code))) return 0;
      throw fromNativeError(error, { offset: fileOffset, length: bytes });
    }
  }

  /**
   * Fills `view` (a view of this mapper's memory) with the bytes of `fd` at `fileOffset`: its
   * whole pages mapped where possible, the rest read. Returns the bytes mapped (from the start
   * of `view`). @throws as map(), and the read's VHDSYNC_TRUNCATED / I/O codes
   */
  mapOrRead(view: Uint8Array, fd: number, fileOffset: number, path: string): number {
    const mapped = this.map(view.byteOffset, fd, fileOffset, view.length);
    if (mapped < view.length) readExactlySync(fd, view.subarray(mapped), fileOffset + mapped, path);
    return mapped;
  }

  /** Puts zero pages back over [address, address+length) (rounded out to whole pages). */
  release(address: number, length: number): void {
    const page = this.pageSize;
    const start = Math.floor(address / page) * page;
    const end = Math.ceil((address + length) / page) * page;
    if (end <= start) return;
    callNative(() => this.addon.unmapFile(this.memory.buffer, start, end - start), { offset: start, length: end - start });
  }
}
