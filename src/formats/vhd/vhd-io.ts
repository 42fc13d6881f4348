// Positional gather-write for VHD blocks: a block's bitmap and its data go to the file in one
// writev() call (no read-modify-write for full blocks), with a fallback for short writes.

import type { FileHandle } from "node:fs/promises";
import { toVhdsyncError } from "../../errors.js";
import { writeExactly } from "../../io/file.js";

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
