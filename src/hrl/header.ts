// The [MS-HRL] 2.2 log file header as a TS value: parse (validation in WASM,
// assembly/hrl/header.ts) and build (checksum computed in WASM).

import { getWasm } from "../wasm/driver.js";
import { checkStatus } from "../wasm/status.js";
import { HEADER_FIELDS as F, HRL_HEADER_BYTES, HRL_STATUS, guidFromString, guidToString, NIL_GUID } from "./layout.js";
import { VhdsyncError } from "../errors.js";

/** The fields of a log file header ([MS-HRL] 2.2). Sizes and locations are in bytes. */
export interface HrlHeader {
  /** LogFormatVersion: 0x00020000 for 2.0 (written), 0x00010000 for 1.0 (read). */
  version: number;
  /** Creation time, seconds since 2000-01-01 UTC. */
  timestamp: number;
  /** Up to 4 single-byte characters ("ct" for Hyper-V, "vhds" for vhdsync). */
  creatorApplication: string;
  creatorVersion: number;
  originalSizeBytes: number;
  currentSizeBytes: number;
  /** End of the last metadata block; 0 = not closed cleanly. */
  eolLocation: number;
  errorCode: number;
  metadataSizeBytes: number;
  uniqueId: string;
  previousUniqueId: string;
  /** Data Write GUID of the VHDX (NIL_GUID in version 1 logs). */
  vhd2DataWriteGuid: string;
  totalMetadataEntries: number;
  /** Last modification time, seconds since 2000-01-01 UTC. */
  lastModifiedTimestamp: number;
  fileType: number;
  flags: number;
  /** Stored header checksum (set by parse; ignored by build). */
  checksum: number;
}

function u64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 2 ** 32;
}

function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % 2 ** 32, true);
  view.setUint32(offset + 4, Math.floor(value / 2 ** 32), true);
}

function guidAt(bytes: Uint8Array, offset: number): string {
  return guidToString(bytes.subarray(offset, offset + 16));
}

/**
 * Parses and validates a 4096-byte header.
 * @param requireClean reject EOLLocation 0 / non-zero ErrorCode with VHDSYNC_HRL_UNCLEAN
 * @throws VHDSYNC_TRUNCATED, VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_UNSUPPORTED, VHDSYNC_HRL_UNCLEAN
 */
export function parseHeader(bytes: Uint8Array, requireClean: boolean, path = ""): HrlHeader {
  const wasm = getWasm();
  return wasm.withScratch(HRL_HEADER_BYTES + F.bytes, (address, scratch) => {
    const length = Math.min(bytes.length, HRL_HEADER_BYTES);
    scratch.set(bytes.subarray(0, length));
    const fieldsAddress = address + HRL_HEADER_BYTES;
    const status = wasm.exports.hrlHeaderParse(address, length, fieldsAddress, requireClean ? 1 : 0);
    if (status !== 0 && status !== HRL_STATUS.unclean && status !== HRL_STATUS.errorRecorded) checkStatus(status, `${path}: log header`, { path });
    const header = readFields(wasm.view(fieldsAddress, F.bytes));
    checkStatus(status, `${path}: log header`, { path, eolLocation: header.eolLocation, errorCode: header.errorCode });
    return header;
  });
}

function readFields(fields: Uint8Array): HrlHeader {
  const view = new DataView(fields.buffer, fields.byteOffset, fields.byteLength);
  const creator = fields.subarray(F.creatorApplication, F.creatorApplication + 4);
  const zero = creator.indexOf(0);
  return {
    version: view.getUint32(F.version, true),
    timestamp: view.getUint32(F.timestamp, true),
    creatorApplication: Buffer.from(creator.subarray(0, zero < 0 ? 4 : zero)).toString("latin1"),
    creatorVersion: view.getUint32(F.creatorVersion, true),
    originalSizeBytes: u64(view, F.originalSize),
    currentSizeBytes: u64(view, F.currentSize),
    eolLocation: u64(view, F.eolLocation),
    errorCode: view.getInt32(F.errorCode, true),
    metadataSizeBytes: view.getUint32(F.metadataSize, true),
    uniqueId: guidAt(fields, F.uniqueId),
    previousUniqueId: guidAt(fields, F.previousUniqueId),
    vhd2DataWriteGuid: guidAt(fields, F.vhd2DataWriteGuid),
    totalMetadataEntries: u64(view, F.totalMetadataEntries),
    lastModifiedTimestamp: view.getUint32(F.lastModifiedTimestamp, true),
    fileType: view.getUint32(F.fileType, true),
    flags: view.getUint32(F.flags, true),
    checksum: view.getUint32(F.checksum, true),
  };
}

function guidBytes(text: string, what: string): Uint8Array {
  const bytes = guidFromString(text);
  if (!bytes) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${what}: not a GUID: ${text}`);
  return bytes;
}

/**
 * Builds the 4096-byte header for `header` (checksum computed; `checksum` ignored).
 * @throws VHDSYNC_INVALID_ARGUMENT for malformed GUIDs; VHDSYNC_INTERNAL for out-of-range fields
 */
export function buildHeader(header: HrlHeader): Uint8Array {
  const wasm = getWasm();
  return wasm.withScratch(HRL_HEADER_BYTES + F.bytes, (address, scratch) => {
    const fields = scratch.subarray(HRL_HEADER_BYTES);
    fields.fill(0);
    const view = new DataView(fields.buffer, fields.byteOffset, F.bytes);
    view.setUint32(F.version, header.version, true);
    view.setUint32(F.timestamp, header.timestamp >>> 0, true);
    fields.set(Buffer.from(header.creatorApplication.slice(0, 4), "latin1"), F.creatorApplication);
    view.setUint32(F.creatorVersion, header.creatorVersion >>> 0, true);
    setU64(view, F.originalSize, header.originalSizeBytes);
    setU64(view, F.currentSize, header.currentSizeBytes);
    setU64(view, F.eolLocation, header.eolLocation);
    view.setInt32(F.errorCode, header.errorCode, true);
    view.setUint32(F.metadataSize, header.metadataSizeBytes, true);
    fields.set(guidBytes(header.uniqueId, "UniqueId"), F.uniqueId);
    fields.set(guidBytes(header.previousUniqueId || NIL_GUID, "PreviousUniqueId"), F.previousUniqueId);
    fields.set(guidBytes(header.vhd2DataWriteGuid || NIL_GUID, "Vhd2DataWriteGuid"), F.vhd2DataWriteGuid);
    setU64(view, F.totalMetadataEntries, header.totalMetadataEntries);
    view.setUint32(F.lastModifiedTimestamp, header.lastModifiedTimestamp >>> 0, true);
    view.setUint32(F.fileType, header.fileType >>> 0, true);
    view.setUint32(F.flags, header.flags & 0xffff, true);
    checkStatus(wasm.exports.hrlHeaderBuild(address + HRL_HEADER_BYTES, address), "build log header");
    return scratch.slice(0, HRL_HEADER_BYTES);
  });
}
