// The snapshot catalogue: a small JSON sidecar (`<disk>.snapshots.json`) naming the layers
// of a disk's chain that are vhdsync snapshots (id, name, creation time, layer file, VHD
// unique id). The chain itself lives in the VHD headers; the catalogue only adds names and
// times. Written atomically (temp, fsync, rename, fsync dir). Format: docs/snapshots.md.

import { promises as fsp } from "node:fs";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic-file.js";

export const CATALOGUE_VERSION = 1;

/** One snapshot: a read-only layer file in the disk's directory. */
export interface SnapshotEntry {
  /** 8 hex digits, unique per disk. */
  id: string;
  /** User-given name ("" when none). */
  name: string;
  /** ISO 8601 UTC creation time. */
  createdAt: string;
  /** Layer file name, relative to the disk's directory. */
  layer: string;
  /** VHD unique id of the layer (footer), as a UUID string. */
  uniqueId: string;
}

/** The catalogue file's content. */
export interface SnapshotCatalogue {
  version: number;
  /** File name of the active disk the catalogue belongs to. */
  disk: string;
  snapshots: SnapshotEntry[];
}

const ID_PATTERN = /^[0-9a-f]{8}$/;

function isEntry(value: unknown): value is SnapshotEntry {
  const entry = value as SnapshotEntry;
  return (
    typeof entry === "object" && entry !== null && typeof entry.id === "string" && ID_PATTERN.test(entry.id) &&
    typeof entry.name === "string" && typeof entry.createdAt === "string" && typeof entry.uniqueId === "string" &&
    typeof entry.layer === "string" && entry.layer.length > 0 && !entry.layer.includes("/") && !entry.layer.includes("\\")
  );
}

/**
 * Reads the catalogue at `path`; a missing file is an empty catalogue for `diskFile`.
 * @throws VHDSYNC_BAD_STATE when the file is not a valid catalogue; I/O codes
 */
export async function readCatalogue(path: string, diskFile: string): Promise<SnapshotCatalogue> {
  let text: string;
  try {
    text = await fsp.readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { version: CATALOGUE_VERSION, disk: diskFile, snapshots: [] };
    throw toVhdsyncError(error, { path });
  }
  let parsed: SnapshotCatalogue;
  try {
    parsed = JSON.parse(text) as SnapshotCatalogue;
  } catch {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: snapshot catalogue is not valid JSON`, { path });
  }
  if (parsed?.version !== CATALOGUE_VERSION || !Array.isArray(parsed.snapshots) || !parsed.snapshots.every(isEntry)) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: not a version ${CATALOGUE_VERSION} snapshot catalogue`, { path });
  }
  const ids = new Set(parsed.snapshots.map((entry) => entry.id));
  if (ids.size !== parsed.snapshots.length) throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: duplicate snapshot ids`, { path });
  return { version: CATALOGUE_VERSION, disk: diskFile, snapshots: parsed.snapshots };
}

/** Writes the catalogue atomically. @throws I/O codes (VHDSYNC_NO_SPACE, VHDSYNC_IO, ...) */
export async function writeCatalogue(path: string, catalogue: SnapshotCatalogue): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(catalogue, null, 2) + "\n");
}
