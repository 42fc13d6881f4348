// resizeImage(): changes an image's virtual size on its own (`vhdsync resize`), where a resync
// --resize changes its target's to the source's. Raw files and fixed and dynamic VHDs
// (docs/vhd.md "Resizing"); not block devices, VHDX files, differencing VHDs, or disks that
// differencing disks depend on. Data below the smaller size
// is kept, a grown range reads as zeros. Shrinking discards data, so it is refused unless asked
// for (as qemu-img resize --shrink). The image's write lock is held throughout, as a resync
// holds its target's.

import { checkFlags, checkOptions, checkPath } from "../arguments.js";
import { VhdsyncError } from "../errors.js";
import { openImage } from "../formats/open-image.js";
import type { DiskImage, ImageFormat } from "../formats/disk-image.js";
import { refuseWritingDependedOn } from "../formats/vhd/vhd-children.js";
import { acquireWriteLock } from "../io/write-lock.js";
import { refuseReadOnlyFormat } from "./image-identity.js";

/** Options of resizeImage(). */
export interface ResizeOptions {
  /** Allow a size below the current one (the data past it is discarded). Default false. */
  allowShrink?: boolean;
}

/** What resizeImage() did. */
export interface ResizeReport {
  path: string;
  format: ImageFormat;
  type: string;
  oldSizeBytes: number;
  sizeBytes: number;
  /** False when the image already had the size (nothing written). */
  resized: boolean;
}

/**
 * Resizes the image at `path` to `sizeBytes`; durable when it returns.
 * @throws VHDSYNC_INVALID_ARGUMENT (bad arguments; a smaller size without allowShrink:
 *   details.shrink), VHDSYNC_UNSUPPORTED (a format or size the image cannot take; block
 *   devices, VHDX), VHDSYNC_BUSY (another run writes the image), I/O codes. Nothing is written
 *   when it throws before resizing.
 */
export async function resizeImage(path: string, sizeBytes: number, options: ResizeOptions = {}): Promise<ResizeReport> {
  checkPath(path, "path");
  if (typeof sizeBytes !== "number" || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `sizeBytes must be a positive integer, got ${String(sizeBytes)}`, { argument: "sizeBytes" });
  }
  checkOptions(options);
  checkFlags(options, ["allowShrink"]);
  const lock = await acquireWriteLock(path, "resize");
  try {
    const image = await openImage(path, { readOnly: false });
    try {
      refuseReadOnlyFormat(image);
      const oldSizeBytes = image.virtualSize;
      const type = image.chain()[0]?.type ?? image.format; // (info() may walk the allocation map)
      const report = { path, format: image.format, type, oldSizeBytes, sizeBytes, resized: sizeBytes !== oldSizeBytes };
      if (!report.resized) {
        // At the size asked for: a dynamic VHD's resize() finishes a shrink stopped after the footer.
        await image.resize?.(sizeBytes);
        return report;
      }
      // A size or kind of image that cannot be resized is named before a shrink's refusal.
      await refuseUnresizable(image, sizeBytes);
      if (sizeBytes < oldSizeBytes && !options.allowShrink) {
        throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path}: shrinking from ${oldSizeBytes} to ${sizeBytes} bytes discards the data past ${sizeBytes}; allow it explicitly (allowShrink)`, { path, shrink: true, oldSizeBytes, sizeBytes });
      }
      await image.resize!(sizeBytes);
      await image.flush();
      return report;
    } finally {
      await image.close();
    }
  } finally {
    await lock.release();
  }
}

/**
 * Refuses to resize an image to `sizeBytes` when it cannot be, or must not be: a format
 * without resize(); what its checkResize() refuses (a size the format cannot hold, a
 * differencing VHD, whose size follows its parent's); a VHD that differencing disks in its
 * directory (the real file's, through symlinks) depend on: snapshot layers, hand-made
 * children, which would no longer match their parent's size. Nothing is written.
 * @throws VHDSYNC_UNSUPPORTED (details.sizeProblem, details.dependents)
 */
export async function refuseUnresizable(image: DiskImage, sizeBytes: number): Promise<void> {
  if (typeof image.resize !== "function") {
    throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${image.path}: this ${image.format} image cannot be resized`, { path: image.path });
  }
  image.checkResize?.(sizeBytes);
  await refuseWritingDependedOn(image, "resize", "they would no longer match its size; merge or delete them first");
}
