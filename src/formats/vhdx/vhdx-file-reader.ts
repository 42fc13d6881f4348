// Positional reads of a VHDX file's bytes as they are after log replay: the file's own bytes,
// zeros between its physical end and the size the log says it has, then the LogOverlay.

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError } from "../../errors.js";
import { readUpTo } from "../../io/file.js";
import type { LogOverlay } from "./log-overlay.js";

/** Reads file bytes of a VHDX through its (optional) in-memory log replay. */
export class VhdxFileReader {
  constructor(
    readonly handle: FileHandle,
    readonly path: string,
    /** Size of the file on disk, in bytes. */
    readonly physicalSizeBytes: number,
    /** Size reads may cover: the physical size, or more when the log extends the file. */
    readonly effectiveSizeBytes: number,
    readonly overlay?: LogOverlay,
  ) {}

  /**
   * Fills `buffer` with file bytes from `fileOffsetBytes` (may be a view of WASM memory).
   * @throws VHDSYNC_TRUNCATED past the effective end of file; I/O codes from the OS.
   */
  async read(buffer: Uint8Array, fileOffsetBytes: number): Promise<void> {
    const end = fileOffsetBytes + buffer.length;
    if (end > this.effectiveSizeBytes) {
      throw new VhdsyncError("VHDSYNC_TRUNCATED", `${this.path}: read of ${buffer.length} bytes at ${fileOffsetBytes} past the end of the file`, {
        path: this.path,
        offset: fileOffsetBytes,
      });
    }
    const got = await readUpTo(this.handle, buffer, fileOffsetBytes, this.path);
    if (got < buffer.length) {
      if (fileOffsetBytes + got < this.physicalSizeBytes) {
        throw new VhdsyncError("VHDSYNC_TRUNCATED", `${this.path}: file shrank while reading at ${fileOffsetBytes + got}`, { path: this.path });
      }
      buffer.fill(0, got);
    }
    this.overlay?.apply(buffer, fileOffsetBytes);
  }
}
