// Positional gather I/O for VHD blocks: a block's bitmap and its data go to the file in one
// writev() call (no read-modify-write for full blocks), and runs of blocks that follow each
// other in the file are read with one readv(); both fall back on short transfers.

import type { FileHandle } from "node:fs/promises";
import { toVhdsyncError } from "../../errors.js";
import { readExactly, writeExactly } from "../../io/file.js";

/** Writes `buffers` back to back at `positionBytes`. */
export async function writevExactly(handle: FileHandle, buffers: Uint8Array[], positionBytes: number, path: string): Promise<void> {
  const totalBytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
  let written: number;
  try {
    ({ bytesWritten: written } = await handle.writev(buffers, positionBytes));
  } catch (error) {
    throw toVhdsyncError(error, { path, offset: positionBytes });
  }
  if (written === totalBytes) return;
  let position = positionBytes;
  for (const buffer of buffers) {
    const skip = Math.min(buffer.length, Math.max(0, written - (position - positionBytes)));
    if (skip < buffer.length) await writeExactly(handle, buffer.subarray(skip), position + skip, path);
    position += buffer.length;
  }
}

/** Rounds `value` up to a multiple of `alignment`. */
export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Reads back to back into `buffers` from `positionBytes` (one readv; falls back on short reads). @throws VHDSYNC_TRUNCATED at end of file */
export async function readvExactly(handle: FileHandle, buffers: Uint8Array[], positionBytes: number, path: string): Promise<void> {
  const totalBytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
  let done: number;
  try {
    ({ bytesRead: done } = await handle.readv(buffers, positionBytes));
  } catch (error) {
    throw toVhdsyncError(error, { path, offset: positionBytes });
  }
  if (done === totalBytes) return;
  let position = positionBytes;
  for (const buffer of buffers) {
    const skip = Math.min(buffer.length, Math.max(0, done - (position - positionBytes)));
    if (skip < buffer.length) await readExactly(handle, buffer.subarray(skip), position + skip, path);
    position += buffer.length;
  }
}
