// Re-points a differencing VHD at a new parent (VHD spec 1.0, dynamic header: Parent Unique
// ID, Parent Time Stamp, Parent Unicode Name, Parent Locator Entries), or turns it into a
// dynamic disk when the new parent is "none" (its old parent was a base layer it absorbed).
// The locator data is rewritten inside the space each entry already has, then the 1024-byte
// header is written in one piece: until then the old parent is still found through the
// parent name, afterwards the new one. A locator whose space is too small for the new path is
// dropped (the parent name holds the absolute path). Writes are planned before any is made.

import { stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { openFile, readExactly, writeExactly } from "../io/file.js";
import { locatorData, vhdTimestamp } from "../formats/vhd/create-vhd.js";
import { readFooter } from "../formats/vhd/open-vhd.js";
import { VHD_HEADER_BYTES, buildFooter, buildHeader, parseHeader, type VhdHeader, type VhdLocatorEntry } from "../formats/vhd/vhd-structures.js";
import { inspectLayer } from "./layer-files.js";

/** One positional write of a plan. */
interface PlannedWrite {
  offsetBytes: number;
  bytes: Uint8Array;
}

/** Bytes a locator entry may hold: its data space (sectors per the spec, bytes as Windows writes it) or at least its sector-rounded length. */
function locatorCapacityBytes(entry: VhdLocatorEntry): number {
  const space = entry.dataSpace < 512 ? entry.dataSpace * 512 : entry.dataSpace;
  return Math.max(space, Math.ceil(entry.dataLengthBytes / 512) * 512);
}

function uuidBytes(uuid: string): Uint8Array {
  return Uint8Array.from(Buffer.from(uuid.replace(/-/g, ""), "hex"));
}

/** Plans the locator and header writes that make `childPath` point at `parentPath`. */
async function planNewParent(childPath: string, header: VhdHeader, headerOffsetBytes: number, parentPath: string): Promise<PlannedWrite[]> {
  const parent = await inspectLayer(parentPath);
  const parentMtimeMs = (await stat(parentPath)).mtimeMs;
  const writes: PlannedWrite[] = [];
  const locators = header.locators.map((entry) => ({ ...entry }));
  for (const { code, data } of locatorData(childPath, parentPath)) {
    const entry = locators.find((candidate) => candidate.platformCode === code);
    if (!entry) continue;
    const capacity = locatorCapacityBytes(entry);
    // A path longer than the space this locator has: drop the locator (the others and the
    // parent name, which holds the absolute path, still find the parent).
    if (data.length > capacity) continue;
    const padded = new Uint8Array(capacity);
    padded.set(data);
    writes.push({ offsetBytes: entry.dataOffsetBytes, bytes: padded });
    entry.dataLengthBytes = data.length;
  }
  for (const entry of locators) {
    if (entry.platformCode && !writes.some((write) => write.offsetBytes === entry.dataOffsetBytes)) {
      Object.assign(entry, { platformCode: "", dataSpace: 0, dataLengthBytes: 0, dataOffsetBytes: 0 });
    }
  }
  const newHeader: VhdHeader = {
    ...header,
    locators,
    parentUniqueId: uuidBytes(parent.uniqueId),
    parentTimestamp: vhdTimestamp(parentMtimeMs),
    parentName: parentPath.length <= 255 ? parentPath : basename(parentPath),
  };
  writes.push({ offsetBytes: headerOffsetBytes, bytes: buildHeader(newHeader) });
  return writes;
}

/** Reads footer and header of a layer about to be re-pointed. */
async function readLayout(handle: FileHandle, path: string) {
  const { size } = await handle.stat();
  const { footer, footerOffsetBytes } = await readFooter(handle, path, size);
  if (footer.diskType === 2) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path}: a fixed VHD has no parent`, { path });
  const headerOffsetBytes = Number(footer.dataOffset);
  const raw = new Uint8Array(VHD_HEADER_BYTES);
  await readExactly(handle, raw, headerOffsetBytes, path);
  const header = parseHeader(raw, { headerOffsetBytes, fileSizeBytes: size, virtualSizeBytes: footer.virtualSizeBytes, isDifferencing: footer.diskType === 4 }, { path });
  return { footer, footerOffsetBytes, header, headerOffsetBytes };
}

/** Plans the writes that turn a differencing layer into a dynamic disk (no parent). */
function planNoParent(layout: Awaited<ReturnType<typeof readLayout>>): PlannedWrite[] {
  const { footer, footerOffsetBytes, header, headerOffsetBytes } = layout;
  const footerBytes = buildFooter({ ...footer, diskType: 3 });
  const empty: VhdLocatorEntry = { platformCode: "", dataSpace: 0, dataLengthBytes: 0, dataOffsetBytes: 0 };
  const headerBytes = buildHeader({ ...header, parentUniqueId: new Uint8Array(16), parentTimestamp: 0, parentName: "", locators: header.locators.map(() => ({ ...empty })) });
  return [
    { offsetBytes: footerOffsetBytes, bytes: footerBytes },
    { offsetBytes: 0, bytes: footerBytes },
    { offsetBytes: headerOffsetBytes, bytes: headerBytes },
  ];
}

async function plan(handle: FileHandle, childPath: string, parentPath: string | null): Promise<PlannedWrite[]> {
  const layout = await readLayout(handle, childPath);
  if (parentPath === null) return layout.footer.diskType === 3 ? [] : planNoParent(layout);
  if (layout.footer.diskType !== 4) throw new VhdsyncError("VHDSYNC_BAD_STATE", `${childPath}: expected a differencing VHD`, { path: childPath });
  return planNewParent(childPath, layout.header, layout.headerOffsetBytes, parentPath);
}

/**
 * Checks that `childPath` can be re-pointed at `parentPath` (null: made a dynamic disk)
 * without writing anything.
 * @throws VHDSYNC_CORRUPT, VHDSYNC_CHAIN_BROKEN, I/O codes
 */
export async function checkReparent(childPath: string, parentPath: string | null): Promise<void> {
  const handle = await openFile(childPath, "r");
  try {
    await plan(handle, childPath, parentPath);
  } finally {
    await handle.close();
  }
}

/**
 * Re-points `childPath` at `parentPath`, or with null makes it a dynamic disk. Idempotent.
 * Locator data first, header (and footers) last, then fdatasync.
 * @throws as checkReparent(), plus I/O codes while writing
 */
export async function reparentLayer(childPath: string, parentPath: string | null): Promise<void> {
  const handle = await openFile(childPath, "r+");
  try {
    for (const write of await plan(handle, childPath, parentPath)) await writeExactly(handle, write.bytes, write.offsetBytes, childPath);
    await handle.datasync();
  } catch (error) {
    throw toVhdsyncError(error, { path: childPath });
  } finally {
    await handle.close();
  }
}
