// Writes a segment result's changes to a target on the calling thread (for formats whose
// metadata only one writer may update, e.g. dynamic VHD): data ranges from the result's
// packed data, zero ranges through writeZeros (holes / unallocated blocks).

import type { DiskImage } from "../formats/disk-image.js";
import { eachChange, type SegmentResult } from "./segment-task.js";

/** Applies `result.changes` to `target`. @throws write errors */
export async function applyChanges(target: DiskImage, result: SegmentResult): Promise<void> {
  let position = 0;
  for (const change of eachChange(result.changes)) {
    if (change.zero) await target.writeZeros(change.offsetBytes, change.lengthBytes);
    else {
      await target.write(result.data!.subarray(position, position + change.lengthBytes), change.offsetBytes);
      position += change.lengthBytes;
    }
  }
}
