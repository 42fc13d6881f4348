// Finds VHD files in a directory whose header names a given disk as parent (by Parent Unique
// ID), without opening their chains: footer and dynamic header only. Used to refuse what would
// break a differencing disk that depends on a disk: snapshot operations on layers vhdsync does
// not manage the children of, and resizing a disk others depend on.

import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { toVhdsyncError } from "../../errors.js";
import { openFile, readExactly } from "../../io/file.js";
import { readFooter } from "./open-vhd.js";
import { VHD_HEADER_BYTES, formatUuid, parseHeader } from "./vhd-structures.js";

/** Parent unique id of a differencing VHD, or null (not a regular file, not a VHD, not differencing, unreadable). */
async function parentUniqueIdOf(path: string): Promise<string | null> {
  // Only regular files: opening a FIFO for reading would wait for a writer (forever).
  if (!(await fsp.stat(path).catch(() => undefined))?.isFile()) return null;
  let handle;
  try {
    handle = await openFile(path, "r");
  } catch {
    return null;
  }
  try {
    const { size } = await handle.stat();
    const { footer } = await readFooter(handle, path, size);
    if (footer.diskType !== 4) return null;
    const headerOffsetBytes = Number(footer.dataOffset);
    const raw = new Uint8Array(VHD_HEADER_BYTES);
    await readExactly(handle, raw, headerOffsetBytes, path);
    const header = parseHeader(raw, { headerOffsetBytes, fileSizeBytes: size, virtualSizeBytes: footer.virtualSizeBytes, isDifferencing: true }, { path });
    return formatUuid(header.parentUniqueId);
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/**
 * Maps each parent unique id to the paths of the differencing VHDs in `directory` naming it:
 * every regular file is looked at (a child need not be named *.vhd), but not those whose names
 * start with "." (vhdsync's temp files) nor subdirectories. A child of a copy of a disk (the
 * same unique id) counts as the disk's.
 * @throws I/O codes when the directory cannot be listed
 */
export async function childrenInDirectory(directory: string): Promise<Map<string, string[]>> {
  let names: string[];
  try {
    names = await fsp.readdir(directory);
  } catch (error) {
    throw toVhdsyncError(error, { path: directory });
  }
  const byParent = new Map<string, string[]>();
  for (const name of names.sort()) {
    if (name.startsWith(".")) continue;
    const path = join(directory, name);
    const parentId = await parentUniqueIdOf(path);
    if (parentId) byParent.set(parentId, [...(byParent.get(parentId) ?? []), path]);
  }
  return byParent;
}
