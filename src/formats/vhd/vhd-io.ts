// Positional vectored I/O for VHD blocks: a block's bitmap and its data go to the file in one
// writev() call (no read-modify-write for full blocks), and runs of blocks that follow each
// other in the file are read with one readv(); short transfers finish piece by piece.

import type { FileHandle } from "node:fs/promises";
import { toVhdsyncError } from "../../errors.js";
import { readExactly, writeExactly } from "../../io/file.js";

/** Reads or writes `buffers` back to back at `positionBytes`. */
async function vectored(kind: "read" | "write", handle: FileHandle, buffers: Uint8Array[], positionBytes: number, path: string): Promise<void> {
  const totalBytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
  let done: number;
  try {
    done = kind === "read" ? (await handle.readv(buffers, positionBytes)).bytesRead : (await handle.writev(buffers, positionBytes)).bytesWritten;
  } catch (error) {
    throw toVhdsyncError(error, { path, offset: positionBytes });
  }
  if (done === totalBytes) return;
  const finish = kind === "read" ? readExactly : writeExactly;
  let position = positionBytes;
  for (const buffer of buffers) {
    const skip = Math.min(buffer.length, Math.max(0, done - (position - positionBytes)));
    if (skip < buffer.length) await finish(handle, buffer.subarray(skip), position + skip, path);
    position += buffer.length;
  }
}

/** Writes `buffers` back to back at `positionBytes`. */
export function writevExactly(handle: FileHandle, buffers: Uint8Array[], positionBytes: number, path: string): Promise<void> {
  return vectored("write", handle, buffers, positionBytes, path);
}

/** Reads back to back into `buffers` from `positionBytes`. @throws VHDSYNC_TRUNCATED at end of file */
export function readvExactly(handle: FileHandle, buffers: Uint8Array[], positionBytes: number, path: string): Promise<void> {
  return vectored("read", handle, buffers, positionBytes, path);
}

/** Rounds `value` up to a multiple of `alignment`. */
export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
