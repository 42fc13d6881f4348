// Where the files of a snapshotted disk live. Every layer sits in the disk's own directory
// (so relative W2ru parent locators of existing children stay valid when the active file is
// renamed into a layer): `<dir>/<stem>-<id><ext>`, e.g. `vm.vhd` → `vm-1a2b3c4d.vhd`. The
// catalogue is `<dir>/<file>.snapshots.json` and the pending-operation state file is
// `<dir>/<file>.snapshot-op.json` (docs/snapshots.md).

import { nodeCrypto } from "../io/node-crypto.js";
import { snapshotStatePath } from "../formats/vhd/vhd-children.js";
import { basename, dirname, extname, join, resolve } from "node:path";

/** The paths that belong to one snapshotted disk. */
export interface SnapshotPaths {
  /** Absolute path of the active (writable) disk. */
  disk: string;
  directory: string;
  catalogue: string;
  state: string;
}

/** Paths for the disk at `diskPath` (resolved to an absolute path). */
export function snapshotPaths(diskPath: string): SnapshotPaths {
  const disk = resolve(diskPath);
  const directory = dirname(disk);
  const file = basename(disk);
  return { disk, directory, catalogue: join(directory, `${file}.snapshots.json`), state: snapshotStatePath(disk) };
}

/** A new random snapshot id: 8 lowercase hex digits. */
export function newSnapshotId(): string {
  return nodeCrypto().randomBytes(4).toString("hex");
}

/** File name (not path) of the layer holding snapshot `id` of `diskPath`. */
export function layerFileName(diskPath: string, id: string): string {
  const file = basename(diskPath);
  const extension = extname(file) || ".vhd";
  const stem = extname(file) ? file.slice(0, -extension.length) : file;
  return `${stem}-${id}${extension}`;
}

/** Temp path beside the disk used while a new active child is being created. */
export function newChildTempPath(paths: SnapshotPaths, id: string): string {
  return join(paths.directory, `.${basename(paths.disk)}.${id}.new`);
}
