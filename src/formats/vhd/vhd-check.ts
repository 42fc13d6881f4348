// `vhdsync check` for VHD files (VHD spec 1.0): footer and its copy (checksums, agreement),
// dynamic header, every BAT entry (inside the file, no overlap with other blocks or with
// metadata), bitmap/data consistency (sectors with a clear bit must hold zeros), and the
// differencing chain (parent found, unique ID, time stamp, no loop; parents checked too).
// Lists every problem instead of stopping at the first (up to MAX_CHECK_PROBLEMS, the rest
// counted: a disk of a million bad blocks would otherwise hold a million messages); never writes.

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../../errors.js";
import { openFile, readExactly } from "../../io/file.js";
import { getWasm } from "../../wasm/driver.js";
import { statusError } from "../../wasm/status.js";
import { MAX_CHECK_PROBLEMS, ProblemList, type CheckProblem, type CheckReport } from "../check.js";
import { scanBat, UNALLOCATED } from "./vhd-bat.js";
import { VhdDifferencingImage } from "./vhd-differencing-image.js";
import { batLayout, openVhd, parseEndFooter } from "./open-vhd.js";
import { VHD_FOOTER_BYTES, VHD_HEADER_BYTES, parseFooter, parseHeader, type VhdFooter, type VhdHeader } from "./vhd-structures.js";

/** The most of a block's data checked at once (a multiple of 4 KiB: whole bitmap bytes). */
const CHECK_PIECE_BYTES = 4 * 1024 * 1024;

function problem(error: unknown, offset?: number): CheckProblem {
  const coded = toVhdsyncError(error);
  const at = offset ?? (typeof coded.details.offset === "number" ? coded.details.offset : undefined);
  return { code: coded.code, message: coded.message, ...(at === undefined ? {} : { offset: at }) };
}

/** Records a footer problem with where it is. */
function footerProblem(error: unknown, offset: number, label: string, problems: ProblemList): void {
  const coded = toVhdsyncError(error);
  problems.add({ code: coded.code, message: `${label}: ${coded.message}`, offset });
}

/** Checks both footers; returns the one to use (the end one, else the copy) and where the footer starts. */
async function checkFooters(handle: FileHandle, path: string, fileSizeBytes: number, problems: ProblemList): Promise<{ footer?: VhdFooter; footerOffsetBytes: number }> {
  const footerOffsetBytes = fileSizeBytes - VHD_FOOTER_BYTES;
  if (fileSizeBytes < VHD_FOOTER_BYTES) {
    problems.add({ code: "VHDSYNC_TRUNCATED", message: `file is shorter than a VHD footer (${fileSizeBytes} bytes)` });
    return { footerOffsetBytes };
  }
  const tail = new Uint8Array(VHD_FOOTER_BYTES);
  const head = new Uint8Array(VHD_FOOTER_BYTES);
  await readExactly(handle, tail, footerOffsetBytes, path);
  await readExactly(handle, head, 0, path);
  let end: { footer: VhdFooter; footerOffsetBytes: number } | undefined;
  try {
    end = parseEndFooter(tail, fileSizeBytes, path);
  } catch (error) {
    footerProblem(error, footerOffsetBytes, "footer at end of file", problems);
  }
  if (end?.footer.diskType === 2) return end;
  let copy: VhdFooter | undefined;
  try {
    copy = parseFooter(head, fileSizeBytes, { offset: 0 });
  } catch (error) {
    footerProblem(error, 0, "footer copy at offset 0", problems);
  }
  const endBytes = end && end.footerOffsetBytes !== footerOffsetBytes ? tail.subarray(1) : tail;
  if (end && copy && Buffer.compare(head.subarray(0, endBytes.length), endBytes) !== 0) {
    problems.add({ code: "VHDSYNC_CORRUPT", message: "footer copy at offset 0 differs from the footer at the end", offset: 0 });
  }
  return end ?? { footer: copy, footerOffsetBytes };
}

/**
 * Checks every BAT entry and each valid block's bitmap against its data. Past the list's
 * limit, bad bitmaps are only counted (no error built). Entries the scan found bad are
 * skipped: the listed ones by index, the others (past its 1000) when the read would pass
 * the footer.
 */
async function checkBlocks(handle: FileHandle, path: string, footer: VhdFooter, header: VhdHeader, footerOffset: number, problems: ProblemList): Promise<void> {
  const raw = new Uint8Array(Math.ceil((header.maxTableEntries * 4) / 512) * 512);
  await readExactly(handle, raw, header.tableOffsetBytes, path);
  const scan = scanBat(raw, batLayout(header, footer, Number(footer.dataOffset), footerOffset), { path });
  const bad = new Set<number>();
  for (const { index, error } of scan.problems) {
    bad.add(index);
    problems.add(problem(error, header.tableOffsetBytes + index * 4));
  }
  problems.omit(scan.problemsFound - scan.problems.length);
  const view = new DataView(raw.buffer);
  const wasm = getWasm();
  // The bitmap, then the block's data a piece at a time: blocks may be up to 256 MiB, more
  // than the WASM arena holds. A piece is whole bitmap bytes (8 sectors each).
  const pieceBytes = Math.min(header.blockSizeBytes, CHECK_PIECE_BYTES);
  const dataAt = header.bitmapBytes;
  const resultAt = dataAt + pieceBytes;
  const address = wasm.alloc(resultAt + 8);
  try {
    for (let block = 0; block < header.maxTableEntries; block++) {
      const sector = view.getUint32(block * 4, false);
      if (sector === UNALLOCATED || bad.has(block)) continue;
      const dataBytes = Math.min(header.blockSizeBytes, Math.max(0, footer.virtualSizeBytes - block * header.blockSizeBytes));
      if (dataBytes === 0) continue;
      const sectors = Math.ceil(dataBytes / 512);
      if (sector * 512 + header.bitmapBytes + sectors * 512 > footerOffset) continue; // counted by the scan
      await readExactly(handle, wasm.view(address, header.bitmapBytes), sector * 512, path);
      for (let first = 0; first < sectors; first += pieceBytes / 512) {
        const count = Math.min(pieceBytes / 512, sectors - first);
        await readExactly(handle, wasm.view(address + dataAt, count * 512), sector * 512 + header.bitmapBytes + first * 512, path);
        const status = wasm.exports.vhdBitmapZeroCheck(address + first / 8, address + dataAt, count, address + resultAt);
        if (status === 0) continue;
        if (problems.full) {
          problems.omit(1);
        } else {
          const badSector = first + wasm.dataView(address + resultAt, 4).getInt32(0, true);
          const offset = sector * 512 + header.bitmapBytes + badSector * 512;
          problems.add(problem(statusError(status, `VHD block ${block}, sector ${badSector}`, { path }), offset));
        }
        break; // one problem per block, as for a whole block
      }
    }
  } finally {
    wasm.release(address);
  }
}

/** Structural problems of one VHD file (not following its parent). */
async function checkLayer(path: string, limit: number): Promise<{ problems: ProblemList; footer?: VhdFooter }> {
  const problems = new ProblemList(limit);
  const handle = await openFile(path, "r");
  try {
    const fileSizeBytes = (await handle.stat()).size;
    const { footer, footerOffsetBytes } = await checkFooters(handle, path, fileSizeBytes, problems);
    if (!footer || footer.diskType === 2) return { problems, footer };
    const headerOffset = Number(footer.dataOffset);
    const headerBytes = new Uint8Array(VHD_HEADER_BYTES);
    await readExactly(handle, headerBytes, headerOffset, path);
    let header: VhdHeader;
    try {
      header = parseHeader(headerBytes, { headerOffsetBytes: headerOffset, fileSizeBytes, virtualSizeBytes: footer.virtualSizeBytes, isDifferencing: footer.diskType === 4 }, { offset: headerOffset });
    } catch (error) {
      problems.add(problem(error, headerOffset));
      return { problems, footer };
    }
    await checkBlocks(handle, path, footer, header, footerOffsetBytes, problems);
    return { problems, footer };
  } catch (error) {
    if (error instanceof VhdsyncError && error.code === "VHDSYNC_TRUNCATED") {
      problems.add(problem(error));
      return { problems };
    }
    throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Lists every structural problem of a VHD and, for differencing disks, of its chain (up to
 * MAX_CHECK_PROBLEMS; `problemsOmitted` counts the rest).
 * @throws OS error codes only (VHDSYNC_NOT_FOUND, VHDSYNC_IO, ...)
 */
export async function checkVhd(path: string): Promise<CheckReport> {
  const { problems, footer } = await checkLayer(path, MAX_CHECK_PROBLEMS);
  if (footer?.diskType !== 4 || problems.count > 0) return problems.report();
  let image;
  try {
    image = await openVhd(path, { readOnly: true });
  } catch (error) {
    problems.add(problem(error));
    return problems.report();
  }
  try {
    for (let layer = image; layer instanceof VhdDifferencingImage; layer = layer.parent as typeof image) {
      if (!layer.parentTimestampMatches) {
        problems.add({ code: "VHDSYNC_CHAIN_BROKEN", message: `${layer.path}: parent ${layer.parent.path} was modified after the differencing disk was created (time stamp mismatch)` });
      }
      const parentPath = layer.parent.path;
      const parent = await checkLayer(parentPath, MAX_CHECK_PROBLEMS);
      problems.addReport(parent.problems.report(), (found) => ({ ...found, path: parentPath, message: `${parentPath}: ${found.message}` }));
    }
  } finally {
    await image.close();
  }
  return problems.report();
}
