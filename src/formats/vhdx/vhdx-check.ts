// `vhdsync check` for VHDX files ([MS-VHDX]): both headers and both region table copies
// (checksums, agreement), everything a read-only open validates (log replay, metadata, BAT
// states and bounds, parent chain), then no two structures overlapping in the file
// (header section, log, regions, payload and sector bitmap blocks: 2.1, 2.2.3, 2.5.1).
// Lists every problem it can instead of stopping at the first; never writes.

import type { FileHandle } from "node:fs/promises";
import { toVhdsyncError } from "../../errors.js";
import { openFile } from "../../io/file.js";
import { allocWasm } from "../../wasm/driver.js";
import { checkImage, ProblemList, type CheckProblem, type CheckReport } from "../check.js";
import { findOverlaps } from "./file-overlaps.js";
import { VhdxFileReader } from "./vhdx-file-reader.js";
import { VhdxImage } from "./vhdx-image.js";
import { HEADER_AREA_BYTES, parseHeaders, parseRegions } from "./vhdx-structures.js";

function problem(error: unknown, offset?: number): CheckProblem {
  const coded = toVhdsyncError(error);
  return { code: coded.code, message: coded.message, ...(offset === undefined ? {} : { offset }) };
}

/** Reports a damaged header or region table copy even when the other copy makes the file usable. */
async function checkCopies(handle: FileHandle, path: string, problems: ProblemList): Promise<void> {
  const size = (await handle.stat()).size;
  if (size < HEADER_AREA_BYTES) return; // the open below reports the truncation
  const { wasm, address } = allocWasm(HEADER_AREA_BYTES, 4096);
  try {
    const area = wasm.view(address, HEADER_AREA_BYTES);
    await new VhdxFileReader(handle, path, size, size).read(area, 0);
    let header;
    try {
      header = parseHeaders(wasm, address, path);
    } catch {
      return; // reported by the open
    }
    for (const [bit, offset] of [[1, 64 * 1024], [2, 128 * 1024]]) {
      if (!(header.validMask & bit)) problems.add({ code: "VHDSYNC_BAD_CHECKSUM", message: `header at ${offset} is invalid (bad signature or CRC-32C); the other header is in use`, offset });
    }
    if (header.logGuid.some((byte) => byte !== 0)) return; // region tables are only final after log replay
    try {
      const regions = parseRegions(wasm, address, header, path);
      for (const [bit, offset] of [[1, 192 * 1024], [2, 256 * 1024]]) {
        if (!(regions.validMask & bit)) problems.add({ code: "VHDSYNC_BAD_CHECKSUM", message: `region table copy at ${offset} is invalid; the other copy is in use`, offset });
      }
      const first = area.subarray(192 * 1024, 256 * 1024);
      const second = area.subarray(256 * 1024, 320 * 1024);
      if (regions.validMask === 3 && Buffer.compare(first, second) !== 0) {
        problems.add({ code: "VHDSYNC_CORRUPT", message: "the two region table copies differ", offset: 256 * 1024 });
      }
    } catch {
      // reported by the open
    }
  } finally {
    wasm.release(address);
  }
}

/** Reports structures that share file bytes. */
function checkOverlaps(image: VhdxImage, problems: ProblemList): void {
  const { overlaps, overlapsOmitted } = findOverlaps(image.fileExtents(), problems.limit - problems.count);
  for (const { message, offsetBytes } of overlaps) problems.add({ code: "VHDSYNC_CORRUPT", message, offset: offsetBytes });
  problems.omit(overlapsOmitted);
}

/**
 * Structurally validates a VHDX (and its parents). Returns every problem found (up to
 * MAX_CHECK_PROBLEMS; `problemsOmitted` counts the rest); empty when clean.
 * @throws only I/O errors opening the file (VHDSYNC_NOT_FOUND, ...)
 */
export async function checkVhdx(path: string): Promise<CheckReport> {
  const problems = new ProblemList();
  const handle = await openFile(path, "r");
  try {
    await checkCopies(handle, path, problems);
  } finally {
    await handle.close();
  }
  let image: VhdxImage;
  try {
    // Blocks over the file's regions are let through here so that every overlap is listed below.
    image = await VhdxImage.open(path, { regionOverlaps: true });
  } catch (error) {
    problems.add(problem(error));
    return problems.report();
  }
  try {
    checkOverlaps(image, problems);
    const parent = image.chain()[1];
    if (parent) {
      problems.addReport(await checkImage(parent.path), (found) => ({ ...found, path: found.path ?? parent.path }));
    }
  } finally {
    await image.close();
  }
  return problems.report();
}
