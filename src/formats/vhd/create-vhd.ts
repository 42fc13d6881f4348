// Creates VHD files (VHD spec 1.0): fixed (sparse data + footer), dynamic (footer copy,
// header, BAT of 0xFFFFFFFF, footer) and differencing (the same plus parent identity and
// W2ru / W2ku / MacX locators). The virtual size is exactly the requested size; the CHS
// geometry comes from the spec's algorithm (rounded down) and the creator application is
// "win " so that readers that follow qemu's size rule take the current size (docs/vhd.md).

import { nodeCrypto } from "../../io/node-crypto.js";
import { lstat, rm, stat } from "node:fs/promises";
import { basename, dirname, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { VhdsyncError, toVhdsyncError } from "../../errors.js";
import { openFile, writeExactly } from "../../io/file.js";
import { commitNewFile, removeStaleTempFiles, tempPathFor } from "../../io/atomic-file.js";
import { alignUp } from "./vhd-io.js";
import { openVhd } from "./open-vhd.js";
import type { VhdImage } from "./vhd-image.js";
import {
  VHD_EPOCH_SECONDS,
  VHD_MAX_DYNAMIC_BYTES,
  VHD_MAX_FIXED_BYTES,
  VHD_MAX_TABLE_ENTRIES,
  VHD_NO_OFFSET,
  bitmapBytesFor,
  buildFooter,
  buildHeader,
  fourCcToNumber,
  geometryForSize,
  type VhdDiskType,
  type VhdFooter,
  type VhdLocatorEntry,
} from "./vhd-structures.js";
import { checkChoice, checkPath, checkRequiredOptions } from "../../arguments.js";

export { VHD_MAX_DYNAMIC_BYTES, VHD_MAX_FIXED_BYTES };
export const DEFAULT_BLOCK_SIZE_BYTES = 2 * 1024 * 1024;
const TABLE_OFFSET_BYTES = 1536;

/** Options of createVhd(). */
export interface CreateVhdOptions {
  type: "fixed" | "dynamic" | "differencing";
  /** Virtual size in bytes, a multiple of 512 (differencing: defaults to the parent's size). */
  sizeBytes?: number;
  /** Block size of dynamic/differencing disks (power of two, 4 KiB .. 256 MiB; default 2 MiB). */
  blockSizeBytes?: number;
  /** Parent of a differencing disk. */
  parentPath?: string;
  /** Creator application, 4 ASCII characters (default "win "). */
  creatorApplication?: string;
}

function invalid(message: string, details: Record<string, unknown> = {}): VhdsyncError {
  return new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", message, details);
}

/** VHD time stamp (seconds since 2000-01-01 UTC) of a Date or epoch milliseconds. */
export function vhdTimestamp(when: number | Date = Date.now()): number {
  return Math.max(0, Math.floor(Number(when) / 1000) - VHD_EPOCH_SECONDS) >>> 0;
}

function makeFooter(diskType: VhdDiskType, sizeBytes: number, creator: string): VhdFooter {
  const uniqueId = nodeCrypto().randomBytes(16);
  uniqueId[6] = (uniqueId[6] & 0x0f) | 0x40;
  uniqueId[8] = (uniqueId[8] & 0x3f) | 0x80;
  return {
    features: 2,
    formatVersion: 0x00010000,
    dataOffset: diskType === 2 ? VHD_NO_OFFSET : 512n,
    timestamp: vhdTimestamp(),
    creatorApplication: creator,
    creatorVersion: 0x000a0000,
    creatorHostOs: fourCcToNumber("Wi2k"),
    originalSizeBytes: sizeBytes,
    currentSizeBytes: sizeBytes,
    geometry: geometryForSize(sizeBytes),
    diskType,
    checksum: 0,
    uniqueId,
    savedState: 0,
    virtualSizeBytes: sizeBytes,
  };
}

/** Why `sizeBytes` cannot be the size of a new VHD of `type`, or undefined when it can. */
export function vhdSizeProblem(type: CreateVhdOptions["type"], sizeBytes: number): string | undefined {
  const max = type === "fixed" ? VHD_MAX_FIXED_BYTES : VHD_MAX_DYNAMIC_BYTES;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % 512 !== 0 || sizeBytes > max) {
    return `VHD size must be a positive multiple of 512 bytes up to ${max}: ${sizeBytes}`;
  }
  return undefined;
}

/**
 * Smallest block size of a VHD vhdsync creates. The spec allows 512 B, and vhdsync reads such
 * disks, but qemu (7.2) reads blocks under 4 KiB at the wrong place (it sizes their sector
 * bitmap as 0 bytes) and libvhdi fails to read them: a disk made with them would be misread.
 */
export const VHD_MIN_NEW_BLOCK_BYTES = 4096;
/** Largest block size of a VHD vhdsync creates (and reads). */
export const VHD_MAX_BLOCK_BYTES = 256 * 1024 * 1024;

/** Why `blockSizeBytes` cannot be a new VHD's block size, or undefined when it can. */
export function vhdBlockSizeProblem(blockSizeBytes: number): string | undefined {
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes < VHD_MIN_NEW_BLOCK_BYTES || blockSizeBytes > VHD_MAX_BLOCK_BYTES || (blockSizeBytes & (blockSizeBytes - 1)) !== 0) {
    const small = Number.isSafeInteger(blockSizeBytes) && blockSizeBytes >= 512 && blockSizeBytes < VHD_MIN_NEW_BLOCK_BYTES && (blockSizeBytes & (blockSizeBytes - 1)) === 0;
    const why = small ? " (blocks under 4 KiB are valid by the spec, but qemu and libvhdi misread them)" : "";
    return `VHD block size must be a power of two from 4 KiB to 256 MiB${why}: ${blockSizeBytes}`;
  }
  return undefined;
}

/**
 * Why a new dynamic or differencing VHD of `sizeBytes` cannot have blocks of `blockSizeBytes`
 * (its BAT would have more than 2^22 entries, which no reader opens: 16 GiB of 4 KiB blocks),
 * or undefined when it can. Fixed disks have no BAT.
 */
export function vhdTableProblem(type: CreateVhdOptions["type"], sizeBytes: number, blockSizeBytes: number): string | undefined {
  if (type === "fixed") return undefined;
  const entries = Math.ceil(sizeBytes / blockSizeBytes);
  if (entries <= VHD_MAX_TABLE_ENTRIES) return undefined;
  return `${sizeBytes} bytes in blocks of ${blockSizeBytes} are ${entries} blocks, more than a VHD's BAT holds (${VHD_MAX_TABLE_ENTRIES}); use larger blocks`;
}

function validate(options: CreateVhdOptions, sizeBytes: number): void {
  const sizeProblem = vhdSizeProblem(options.type, sizeBytes);
  if (sizeProblem) throw invalid(sizeProblem, { sizeBytes });
  const block = options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES;
  const blockProblem = vhdBlockSizeProblem(block);
  if (blockProblem) throw invalid(blockProblem, { blockSizeBytes: block });
  const tableProblem = vhdTableProblem(options.type, sizeBytes, block);
  if (tableProblem) throw invalid(tableProblem, { sizeBytes, blockSizeBytes: block });
  const creator: unknown = options.creatorApplication ?? "win ";
  if (typeof creator !== "string" || !/^[\x20-\x7e\0]{4}$/.test(creator)) throw invalid("creator application must be 4 ASCII characters", { argument: "creatorApplication" });
}

/** UTF-16LE bytes of a string. */
function utf16le(text: string): Uint8Array {
  return Buffer.from(text, "utf16le");
}

/** Locator data for a parent: W2ru (relative, backslashes), W2ku (absolute), MacX (file URL). */
export function locatorData(childPath: string, parentPath: string): { code: string; data: Uint8Array }[] {
  let rel = relative(dirname(childPath), parentPath).replace(/\//g, "\\");
  if (!rel.startsWith("..")) rel = `.\\${rel}`;
  return [
    { code: "W2ru", data: utf16le(rel) },
    { code: "W2ku", data: utf16le(parentPath) },
    { code: "MacX", data: Buffer.from(pathToFileURL(parentPath).href.replace(/^file:\/\/\//, "file://localhost/"), "utf8") },
  ];
}

/**
 * Creates a VHD and opens it read-write. Refuses to overwrite an existing file.
 * @throws VHDSYNC_INVALID_ARGUMENT (bad size/block size, file exists), VHDSYNC_CHAIN_BROKEN /
 *   VHDSYNC_CORRUPT (unusable parent), OS error codes
 */
export async function createVhd(path: string, options: CreateVhdOptions): Promise<VhdImage> {
  return createVhdFile(path, options, true);
}

/**
 * createVhd() writing `path` itself, with no temp file of its own: for a caller whose `path`
 * is already its own temp file (convert), which would otherwise get a temp file of its temp
 * file that no sweep recognises.
 */
export async function createVhdInPlace(path: string, options: CreateVhdOptions): Promise<VhdImage> {
  return createVhdFile(path, options, false);
}

async function createVhdFile(path: string, options: CreateVhdOptions, atomic: boolean): Promise<VhdImage> {
  checkPath(path, "path");
  checkRequiredOptions(options);
  checkChoice(options.type, "type", ["fixed", "dynamic", "differencing"] as const);
  if (options.parentPath !== undefined) checkPath(options.parentPath, "parentPath");
  let parent: VhdImage | undefined;
  if (options.type === "differencing") {
    if (!options.parentPath) throw invalid("a differencing VHD needs a parent");
    parent = await openVhd(options.parentPath, { readOnly: true });
  } else if (options.parentPath) {
    throw invalid(`a ${options.type} VHD has no parent`);
  }
  try {
    const sizeBytes = options.sizeBytes ?? parent?.virtualSize ?? 0;
    validate(options, sizeBytes);
    if (parent && sizeBytes !== parent.virtualSize) {
      throw invalid(`differencing VHD size ${sizeBytes} differs from its parent's ${parent.virtualSize}`, { sizeBytes, parentSize: parent.virtualSize });
    }
    const diskType: VhdDiskType = options.type === "fixed" ? 2 : options.type === "dynamic" ? 3 : 4;
    const footer = makeFooter(diskType, sizeBytes, options.creatorApplication ?? "win ");
    // A new disk never replaces anything. It is written under a temp name beside `path` and
    // moved into place once complete and flushed (never over a file that appeared meanwhile:
    // VHDSYNC_BUSY), so a create killed at any moment leaves no partial disk under its name
    // (one with no footer opened as a raw file, and the rerun was refused with "already
    // exists"); the next create of that name removes the temp file a killed one left.
    // (The sweep first: a create killed between its link and its unlink left a second name of
    // the disk, which the refusal below would otherwise leave for ever.)
    if (atomic) await removeStaleTempFiles(path);
    if (await lstat(path).then(() => true, () => false)) throw invalid(`${path} already exists`, { path });
    const temp = atomic ? tempPathFor(path) : path;
    // Errors name `path`, not the hidden temp file.
    const handle = await openFile(temp, "wx").catch((error: VhdsyncError) => {
      throw new VhdsyncError(error.code, error.message.split(temp).join(path), { ...error.details, path }, { cause: error });
    });
    try {
      if (diskType === 2) {
        await handle.truncate(sizeBytes);
        await writeExactly(handle, buildFooter(footer), sizeBytes, path);
      } else {
        await writeDynamicLayout(handle, path, footer, options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES, parent);
      }
      await handle.datasync();
      await handle.close();
      if (atomic) await commitNewFile(temp, path);
    } catch (error) {
      // Unusable half-written (no footer, or a BAT and header without their footer): removed,
      // so a rerun after making room (ENOSPC, EFBIG) starts afresh.
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true }).catch(() => undefined);
      throw toVhdsyncError(error, { path });
    }
  } finally {
    await parent?.close();
  }
  return openVhd(path, { readOnly: false });
}

/** Writes footer copy, header, BAT, locators and footer of a new dynamic/differencing disk. */
async function writeDynamicLayout(handle: import("node:fs/promises").FileHandle, path: string, footer: VhdFooter, blockSizeBytes: number, parent?: VhdImage): Promise<void> {
  const entries = Math.ceil(footer.currentSizeBytes / blockSizeBytes);
  const tableBytes = alignUp(entries * 4, 512);
  let cursor = TABLE_OFFSET_BYTES + tableBytes;
  const locators: VhdLocatorEntry[] = [];
  const locatorWrites: { offset: number; data: Uint8Array }[] = [];
  let parentName = "";
  let parentUniqueId: Uint8Array = new Uint8Array(16);
  let parentTimestamp = 0;
  if (parent) {
    const parentPath = resolve(parent.path);
    parentUniqueId = parent.footer.uniqueId;
    parentTimestamp = vhdTimestamp((await stat(parentPath)).mtimeMs);
    parentName = parentPath.length <= 255 ? parentPath : basename(parentPath);
    for (const { code, data } of locatorData(path, parentPath)) {
      const spaceBytes = alignUp(Math.max(data.length, 1), 512);
      locators.push({ platformCode: code, dataSpace: spaceBytes / 512, dataLengthBytes: data.length, dataOffsetBytes: cursor });
      locatorWrites.push({ offset: cursor, data });
      cursor += spaceBytes;
    }
  }
  const header = buildHeader({
    tableOffsetBytes: TABLE_OFFSET_BYTES,
    headerVersion: 0x00010000,
    maxTableEntries: entries,
    blockSizeBytes,
    checksum: 0,
    parentUniqueId,
    parentTimestamp,
    parentName,
    locators,
    bitmapBytes: bitmapBytesFor(blockSizeBytes),
  });
  const footerBytes = buildFooter(footer);
  await writeExactly(handle, footerBytes, 0, path);
  await writeExactly(handle, header, 512, path);
  await writeExactly(handle, new Uint8Array(tableBytes).fill(0xff), TABLE_OFFSET_BYTES, path);
  for (const write of locatorWrites) await writeExactly(handle, write.data, write.offset, path);
  await writeExactly(handle, footerBytes, cursor, path);
}
