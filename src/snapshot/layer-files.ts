// The VHD facts the snapshot machinery needs about one layer file (type, unique id, parent,
// sizes) and the creation of a new differencing child, on top of the VHD format module
// (src/formats/vhd). Everything here opens files read-only except createChildLayer().

import { stat } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import type { DiskImage } from "../formats/disk-image.js";
import { openImage } from "../formats/open-image.js";
import { createVhdInPlace, VHD_MIN_NEW_BLOCK_BYTES } from "../formats/vhd/index.js";

/** What `snapshot list` and the step machines know about a layer. */
export interface LayerFacts {
  path: string;
  /** "fixed", "dynamic" or "differencing". */
  type: string;
  uniqueId: string;
  /** Absolute path of the parent layer, null for a base layer. */
  parentPath: string | null;
  virtualSizeBytes: number;
  blockSizeBytes: number | null;
  allocatedBytes: number;
  fileSizeBytes: number;
  /** File modification time in milliseconds since the epoch. */
  mtimeMs: number;
}

/** The default block size of new active children whose parent is a fixed disk (2 MiB). */
const DEFAULT_CHILD_BLOCK_BYTES = 2 * 1024 * 1024;

/**
 * Opens a disk (read-only, with its chain) and checks that it is a VHD snapshots can use.
 * @throws VHDSYNC_UNSUPPORTED for raw images (with how to convert), block devices and VHDX;
 *   VHDSYNC_CHAIN_BROKEN, VHDSYNC_CORRUPT, VHDSYNC_NOT_FOUND, ...
 */
export async function openVhdLayer(path: string, readOnly = true): Promise<DiskImage> {
  const image = await openImage(path, { readOnly });
  if (image.format === "vhd") return image;
  await image.close();
  if (image.format === "raw") {
    throw new VhdsyncError(
      "VHDSYNC_UNSUPPORTED",
      `${path} is a raw image; snapshots need a VHD. Convert it first (vhdsync convert ${path} OUT.vhd --to vhd-fixed, or --to vhd-dynamic) and snapshot the VHD`,
      { path, format: image.format },
    );
  }
  throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path}: snapshots are supported on VHD images only, not ${image.format}`, { path, format: image.format });
}

/** Reads the facts of an opened VHD layer. */
export async function factsOf(image: DiskImage): Promise<LayerFacts> {
  const info = await image.info();
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(image.path)).mtimeMs;
  } catch (error) {
    throw toVhdsyncError(error, { path: image.path });
  }
  return {
    path: image.path,
    type: info.type,
    uniqueId: info.uniqueId ?? "",
    parentPath: info.chain[1]?.path ?? null,
    virtualSizeBytes: info.virtualSize,
    blockSizeBytes: info.blockSize ?? null,
    allocatedBytes: info.allocatedBytes,
    fileSizeBytes: info.fileSize ?? 0,
    mtimeMs,
  };
}

/** Opens a layer read-only and returns its facts. @throws as openVhdLayer() */
export async function inspectLayer(path: string): Promise<LayerFacts> {
  const image = await openVhdLayer(path);
  try {
    return await factsOf(image);
  } finally {
    await image.close();
  }
}

/**
 * Creates an empty differencing VHD at `path` whose parent is `parentPath` (same size; block
 * size of the parent when it has one, at least 4 KiB). Refuses to overwrite.
 * @throws VHDSYNC_INVALID_ARGUMENT (file exists), VHDSYNC_CHAIN_BROKEN, OS error codes
 */
export async function createChildLayer(path: string, parent: LayerFacts): Promise<void> {
  const child = await createVhdInPlace(path, {
    type: "differencing",
    parentPath: parent.path,
    // A parent with blocks under 4 KiB (readable, but not a size vhdsync creates) gets 4 KiB ones.
    blockSizeBytes: Math.max(parent.blockSizeBytes ?? DEFAULT_CHILD_BLOCK_BYTES, VHD_MIN_NEW_BLOCK_BYTES),
  });
  await child.close();
}
