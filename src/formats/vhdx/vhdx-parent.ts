// Finds and opens the parent of a differencing VHDX ([MS-VHDX] 2.6.2.6.3): tries the locator's
// relative_path, then absolute_win32_path (when it names a path this host can open), checks
// the parent's DataWriteGuid against parent_linkage/parent_linkage2, the sector size, and
// refuses loops. Any failure is VHDSYNC_CHAIN_BROKEN with the paths involved.

import { access, realpath } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { VhdsyncError } from "../../errors.js";
import { openFile, readUpTo, refusePipe } from "../../io/file.js";
import type { DiskImage } from "../disk-image.js";
import { openImage } from "../open-image.js";
import { normalizeGuid, type VhdxParentLocator } from "./vhdx-structures.js";

/** Longest chain followed before giving up. */
export const MAX_CHAIN_DEPTH = 64;

/** Opens a VHDX as a chain member (`visited` holds real paths already in the chain). */
export type VhdxChainOpener = (path: string, visited: Set<string>) => Promise<DiskImage & { dataWriteGuid?: string }>;

function chainBroken(message: string, details: Record<string, unknown>): VhdsyncError {
  return new VhdsyncError("VHDSYNC_CHAIN_BROKEN", message, details);
}

/** Candidate host paths for the parent, in the order the spec says to try them. */
export function parentPathCandidates(childPath: string, locator: VhdxParentLocator): string[] {
  const candidates: string[] = [];
  if (locator.relativePath) {
    const relative = locator.relativePath.replace(/\\/g, "/");
    candidates.push(isAbsolute(relative) ? relative : resolve(dirname(childPath), relative));
  }
  if (locator.absoluteWin32Path) {
    const stripped = locator.absoluteWin32Path.replace(/^\\\\\?\\/, "");
    // A drive letter or UNC share cannot be opened on this host; a POSIX path can.
    if (!/^[A-Za-z]:/.test(stripped) && !stripped.startsWith("\\\\") && !stripped.startsWith("UNC\\")) {
      const posix = stripped.replace(/\\/g, "/");
      if (isAbsolute(posix)) candidates.push(posix);
    }
  }
  return candidates;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function isVhdx(path: string): Promise<boolean> {
  // A FIFO would block the open until a writer came.
  await refusePipe(path, "VHDX files");
  const handle = await openFile(path, "r");
  try {
    const head = new Uint8Array(8);
    const got = await readUpTo(handle, head, 0, path);
    return got === 8 && Buffer.from(head).toString("latin1") === "vhdxfile";
  } finally {
    await handle.close();
  }
}

/**
 * Opens the parent of the differencing VHDX at `childPath`.
 * @throws VHDSYNC_CHAIN_BROKEN (missing parent, linkage mismatch, loop, sector size mismatch,
 * chain deeper than MAX_CHAIN_DEPTH); errors of the parent's own open pass through.
 */
export async function openVhdxParent(
  childPath: string, locator: VhdxParentLocator, logicalSectorSize: number, visited: Set<string>, openVhdx: VhdxChainOpener,
): Promise<DiskImage> {
  const candidates = parentPathCandidates(childPath, locator);
  let parentPath: string | undefined;
  for (const candidate of candidates) {
    if (await exists(candidate)) {
      parentPath = await realpath(candidate);
      break;
    }
  }
  if (!parentPath) throw chainBroken(`${childPath}: parent not found (tried ${candidates.join(", ") || "no usable locator path"})`, { path: childPath, candidates, locator });
  if (visited.has(parentPath)) throw chainBroken(`${childPath}: differencing chain loops back to ${parentPath}`, { path: childPath, parentPath });
  if (visited.size >= MAX_CHAIN_DEPTH) throw chainBroken(`${childPath}: chain deeper than ${MAX_CHAIN_DEPTH}`, { path: childPath });
  const parent = (await isVhdx(parentPath)) ? await openVhdx(parentPath, visited) : await openImage(parentPath, { readOnly: true });
  try {
    const expected = [locator.parentLinkage, locator.parentLinkage2].filter((g): g is string => !!g).map(normalizeGuid);
    const actual = "dataWriteGuid" in parent && typeof parent.dataWriteGuid === "string" ? parent.dataWriteGuid : (await parent.info()).uniqueId;
    if (actual === undefined || !expected.includes(normalizeGuid(actual))) {
      throw chainBroken(`${childPath}: parent ${parentPath} has identity ${actual ?? "(none)"}, child expects ${expected.join(" or ")}`, {
        path: childPath, parentPath, expected, actual,
      });
    }
    if (parent.logicalSectorSize !== logicalSectorSize) {
      throw chainBroken(`${childPath}: parent ${parentPath} has ${parent.logicalSectorSize}-byte sectors, child ${logicalSectorSize}`, { path: childPath, parentPath });
    }
    return parent;
  } catch (error) {
    await parent.close();
    throw error;
  }
}
