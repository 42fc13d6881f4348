// Opens a VHD file as the right DiskImage class: reads the footer (falling back to the copy
// at offset 0 when the one at the end is damaged, as the spec says), then for dynamic and
// differencing disks the dynamic header and the BAT (validated by the WASM scan), and for
// differencing disks the parent chain (locators, unique ID, time stamp, loop detection).
// A failed open writes nothing and closes every file it opened.

import { realpath, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../../errors.js";
import { openFile, readExactly, refusePipe } from "../../io/file.js";
import { checkFlags, checkOptions, checkPath } from "../../arguments.js";
import { BlockTable, scanBat, type FileRange } from "./vhd-bat.js";
import { VhdDifferencingImage } from "./vhd-differencing-image.js";
import { VhdDynamicImage, type VhdDynamicState } from "./vhd-dynamic-image.js";
import { VhdFixedImage } from "./vhd-fixed-image.js";
import type { FooterSource, VhdImage, VhdOpenState } from "./vhd-image.js";
import { parentCandidates, readLocators } from "./vhd-parent.js";
import { VHD_EPOCH_SECONDS, VHD_FOOTER_BYTES, VHD_HEADER_BYTES, formatUuid, parseFooter, parseHeader, type VhdFooter, type VhdHeader } from "./vhd-structures.js";

/** Longest chain followed before giving up. */
const MAX_CHAIN_DEPTH = 1024;

/** Options of openVhd(). */
export interface OpenVhdOptions {
  readOnly?: boolean;
}

/**
 * Opens a VHD (fixed, dynamic or differencing with its whole parent chain, parents read-only).
 * @throws VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_TRUNCATED, VHDSYNC_UNSUPPORTED,
 *   VHDSYNC_CHAIN_BROKEN (missing parent, unique-ID mismatch, loop), OS error codes
 */
export async function openVhd(path: string, options: OpenVhdOptions = {}): Promise<VhdImage> {
  checkPath(path, "path");
  checkOptions(options);
  checkFlags(options, ["readOnly"]);
  const real = await realpath(path).catch((error) => Promise.reject(toVhdsyncError(error, { path })));
  return openLayer(path, options.readOnly ?? true, [real]);
}

async function openLayer(path: string, readOnly: boolean, visited: string[]): Promise<VhdImage> {
  // A FIFO (a parent named by a locator, too) would block the open until a writer came.
  await refusePipe(path, "VHD files");
  const handle = await openFile(path, readOnly ? "r" : "r+");
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path}: not a regular file`, { path });
    const fileSizeBytes = info.size;
    const { footer, footerSource, footerOffsetBytes } = await readFooter(handle, path, fileSizeBytes);
    const state: VhdOpenState = { path, handle, readOnly, footer, footerSource, fileSizeBytes };
    if (footer.diskType === 2) return new VhdFixedImage(state);
    const dynamic = await readDynamicParts(state, footerOffsetBytes);
    if (footer.diskType === 3) return new VhdDynamicImage(dynamic);
    const locators = await readLocators(handle, dynamic.header, path);
    const parent = await openParent(path, dynamic.header, locators, visited);
    try {
      const parentTimestampMatches = await timestampMatches(dynamic.header, parent);
      return new VhdDifferencingImage({ ...dynamic, parent, locators, parentTimestampMatches });
    } catch (error) {
      await parent.close();
      throw error;
    }
  } catch (error) {
    await handle.close();
    throw toVhdsyncError(error, { path });
  }
}

/** Reads the footer at the end; if it is damaged, the copy at offset 0 (dynamic/differencing only). */
export async function readFooter(handle: FileHandle, path: string, fileSizeBytes: number): Promise<{ footer: VhdFooter; footerSource: FooterSource; footerOffsetBytes: number }> {
  if (fileSizeBytes < VHD_FOOTER_BYTES) {
    throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: file is shorter than a VHD footer (${fileSizeBytes} bytes)`, { path, fileSize: fileSizeBytes });
  }
  const tail = new Uint8Array(VHD_FOOTER_BYTES);
  await readExactly(handle, tail, fileSizeBytes - VHD_FOOTER_BYTES, path);
  try {
    return { ...parseEndFooter(tail, fileSizeBytes, path), footerSource: "end" };
  } catch (endError) {
    const head = new Uint8Array(VHD_FOOTER_BYTES);
    await readExactly(handle, head, 0, path);
    let copy: VhdFooter;
    try {
      copy = parseFooter(head, fileSizeBytes, { path, offset: 0 });
    } catch {
      throw endError;
    }
    if (copy.diskType === 2) throw endError;
    const tailHasCookie = Buffer.from(tail.subarray(0, 8)).toString("latin1") === "conectix";
    return { footer: copy, footerSource: "copy", footerOffsetBytes: tailHasCookie ? fileSizeBytes - 512 : fileSizeBytes };
  }
}

/**
 * Parses the footer at the end of a file from its last 512 bytes: a 512-byte footer, or the
 * 511-byte footer of Virtual PC versions before 2004 (VHD spec 1.0, "Hard Disk Footer Format").
 * @throws the 512-byte footer's error when neither form is valid
 */
export function parseEndFooter(tail: Uint8Array, fileSizeBytes: number, path: string): { footer: VhdFooter; footerOffsetBytes: number } {
  try {
    return { footer: parseFooter(tail, fileSizeBytes, { path, offset: fileSizeBytes - 512 }), footerOffsetBytes: fileSizeBytes - 512 };
  } catch (error) {
    if (Buffer.from(tail.subarray(1, 9)).toString("latin1") !== "conectix") throw error;
    const padded = new Uint8Array(VHD_FOOTER_BYTES);
    padded.set(tail.subarray(1));
    try {
      // The missing last byte is reserved (zero); +1 lets the size checks count 511 bytes of footer.
      return { footer: parseFooter(padded, fileSizeBytes + 1, { path, offset: fileSizeBytes - 511 }), footerOffsetBytes: fileSizeBytes - 511 };
    } catch {
      throw error;
    }
  }
}

/** Reads and validates the dynamic header and the BAT. */
async function readDynamicParts(state: VhdOpenState, footerOffsetBytes: number): Promise<VhdDynamicState> {
  const { handle, path, footer, fileSizeBytes } = state;
  const headerOffsetBytes = Number(footer.dataOffset);
  const headerBytes = new Uint8Array(VHD_HEADER_BYTES);
  await readExactly(handle, headerBytes, headerOffsetBytes, path);
  const header = parseHeader(
    headerBytes,
    { headerOffsetBytes, fileSizeBytes, virtualSizeBytes: footer.virtualSizeBytes, isDifferencing: footer.diskType === 4 },
    { path, offset: headerOffsetBytes },
  );
  const raw = new Uint8Array(Math.ceil((header.maxTableEntries * 4) / 512) * 512);
  await readExactly(handle, raw, header.tableOffsetBytes, path);
  const scan = scanBat(raw, batLayout(header, footer, headerOffsetBytes, footerOffsetBytes), { path }, 1);
  if (scan.problems.length > 0) throw scan.problems[0].error;
  return { ...state, header, table: new BlockTable(raw, header.maxTableEntries), footerOffsetBytes: Math.max(footerOffsetBytes, scan.blocksEndBytes) };
}

/** The layout the BAT scan checks blocks against: metadata ranges and where data must end. */
export function batLayout(header: VhdHeader, footer: VhdFooter, headerOffsetBytes: number, footerOffsetBytes: number) {
  const metadata: FileRange[] = [
    { startBytes: 0, endBytes: 512 },
    { startBytes: headerOffsetBytes, endBytes: headerOffsetBytes + VHD_HEADER_BYTES },
    { startBytes: header.tableOffsetBytes, endBytes: header.tableOffsetBytes + Math.ceil((header.maxTableEntries * 4) / 512) * 512 },
  ];
  if (footer.diskType === 4) {
    for (const locator of header.locators) {
      if (locator.platformCode && locator.dataLengthBytes > 0) {
        metadata.push({ startBytes: locator.dataOffsetBytes, endBytes: locator.dataOffsetBytes + locator.dataLengthBytes });
      }
    }
  }
  return {
    entries: header.maxTableEntries,
    blockSizeBytes: header.blockSizeBytes,
    bitmapBytes: header.bitmapBytes,
    virtualSizeBytes: footer.virtualSizeBytes,
    dataEndBytes: footerOffsetBytes,
    metadata,
  };
}

/**
 * Opens the parent of a differencing disk: the first candidate path whose unique ID matches.
 * @throws VHDSYNC_CHAIN_BROKEN with the paths tried, or for a loop, with the chain
 */
async function openParent(childPath: string, header: VhdHeader, locators: Awaited<ReturnType<typeof readLocators>>, visited: string[]): Promise<VhdImage> {
  const wantedId = formatUuid(header.parentUniqueId);
  const tried: { path: string; source: string; problem: string }[] = [];
  for (const candidate of parentCandidates(childPath, header, locators)) {
    let real: string;
    try {
      real = await realpath(candidate.path);
    } catch {
      tried.push({ ...candidate, problem: "not found" });
      continue;
    }
    if (visited.includes(real)) {
      const chain = [...visited, real];
      throw new VhdsyncError("VHDSYNC_CHAIN_BROKEN", `${childPath}: differencing chain loops back to ${real} (${chain.join(" -> ")})`, { path: childPath, chain });
    }
    if (visited.length >= MAX_CHAIN_DEPTH) {
      throw new VhdsyncError("VHDSYNC_CHAIN_BROKEN", `${childPath}: differencing chain deeper than ${MAX_CHAIN_DEPTH}`, { path: childPath, chain: visited });
    }
    const parent = await openLayer(candidate.path, true, [...visited, real]);
    const foundId = formatUuid(parent.footer.uniqueId);
    if (foundId === wantedId) return parent;
    await parent.close();
    tried.push({ ...candidate, problem: `unique ID ${foundId} does not match ${wantedId}` });
  }
  const summary = tried.length ? tried.map((t) => `${t.path} (${t.source}): ${t.problem}`).join("; ") : "no parent locator or name";
  throw new VhdsyncError("VHDSYNC_CHAIN_BROKEN", `${childPath}: parent ${wantedId} not found: ${summary}`, {
    path: childPath,
    parentUniqueId: wantedId,
    parentName: header.parentName,
    tried,
  });
}

/** The header's parent time stamp equals the parent's footer time stamp or its file mtime. */
async function timestampMatches(header: VhdHeader, parent: VhdImage): Promise<boolean> {
  if (header.parentTimestamp === parent.footer.timestamp) return true;
  const mtimeSeconds = Math.floor((await stat(parent.path)).mtimeMs / 1000) - VHD_EPOCH_SECONDS;
  return header.parentTimestamp === mtimeSeconds;
}
