// Typed wrappers over the VHDX parsing kernels (assembly/vhdx/): each copies its input into
// (or is handed) WASM memory, runs the kernel, checks the status and decodes the output
// layout documented at the top of the matching assembly file. [MS-VHDX] 2.2, 2.6.

import { wasmFor, type WasmInstance } from "../../wasm/driver.js";
import { checkStatus } from "../../wasm/status.js";

/** Bytes of the file start the header/region parsers read: identifier, 2 headers, 2 region tables. */
export const HEADER_AREA_BYTES = 320 * 1024;
export const MIB = 1024 * 1024;

/** The current VHDX header ([MS-VHDX] 2.2.2). */
export interface VhdxHeader {
  sequenceNumber: bigint;
  fileWriteGuid: string;
  dataWriteGuid: string;
  /** Raw 16 bytes of LogGuid (all zero = log empty). */
  logGuid: Uint8Array;
  logLengthBytes: number;
  logOffsetBytes: number;
  /** 0 = header at 64 KiB, 1 = header at 128 KiB. */
  currentIndex: number;
  /** Which headers are valid: bit 0 first, bit 1 second. */
  validMask: number;
}

/** Where the BAT and metadata regions are ([MS-VHDX] 2.2.3). */
export interface VhdxRegions {
  batOffsetBytes: number;
  batLengthBytes: number;
  metadataOffsetBytes: number;
  metadataLengthBytes: number;
  /** Which region table copies are valid: bit 0 first, bit 1 second. */
  validMask: number;
}

/** Known metadata items and the BAT geometry they imply ([MS-VHDX] 2.4-2.6). */
export interface VhdxMetadata {
  blockSizeBytes: number;
  leaveBlockAllocated: boolean;
  hasParent: boolean;
  virtualSizeBytes: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  virtualDiskId?: string;
  /** Parent locator position within the metadata region, if present. */
  parentLocator?: { offsetBytes: number; lengthBytes: number };
  chunkRatio: number;
  payloadBlocks: number;
  sectorBitmapBlocks: number;
  /** BAT entries the disk needs (spec formula for its type). */
  batEntries: number;
}

/** VHDX parent locator key/values ([MS-VHDX] 2.6.2.6.3); absent keys are undefined. */
export interface VhdxParentLocator {
  parentLinkage: string;
  parentLinkage2?: string;
  relativePath?: string;
  volumePath?: string;
  absoluteWin32Path?: string;
}

/** Formats 16 bytes of a binary (mixed-endian) GUID as lowercase text without braces. */
export function guidToString(bytes: Uint8Array): string {
  const hex = (start: number, end: number, reverse: boolean) => {
    const part = Array.from(bytes.subarray(start, end), (b) => b.toString(16).padStart(2, "0"));
    return (reverse ? part.reverse() : part).join("");
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

/** Normalises GUID text for comparison: no braces, lowercase, trimmed. */
export function normalizeGuid(text: string): string {
  return text.trim().replace(/^\{/, "").replace(/\}$/, "").toLowerCase();
}

/**
 * Parses the identifier and headers from the first HEADER_AREA_BYTES of the file, given at
 * WASM address `address`. @throws VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_UNSUPPORTED
 */
export function parseHeaders(wasm: WasmInstance, address: number, path: string): VhdxHeader {
  return wasm.withScratch(80, (out) => {
    checkStatus(wasm.exports.vhdxParseHeaders(address, HEADER_AREA_BYTES, out), `${path}: VHDX header`, { path });
    const view = wasm.dataView(out, 80);
    const bytes = wasm.view(out, 80);
    return {
      sequenceNumber: view.getBigUint64(0, true),
      fileWriteGuid: guidToString(bytes.subarray(8, 24)),
      dataWriteGuid: guidToString(bytes.subarray(24, 40)),
      logGuid: bytes.slice(40, 56),
      logLengthBytes: view.getUint32(56, true),
      currentIndex: view.getUint32(60, true),
      logOffsetBytes: Number(view.getBigUint64(64, true)),
      validMask: view.getUint32(72, true),
    };
  });
}

/** Parses the region table (header area at `address`, after log replay). @throws VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_UNSUPPORTED */
export function parseRegions(wasm: WasmInstance, address: number, header: VhdxHeader, path: string): VhdxRegions {
  return wasm.withScratch(32, (out) => {
    const status = wasm.exports.vhdxParseRegionTable(address, HEADER_AREA_BYTES, BigInt(header.logOffsetBytes), BigInt(header.logLengthBytes), out);
    checkStatus(status, `${path}: VHDX region table`, { path });
    const view = wasm.dataView(out, 32);
    return {
      batOffsetBytes: Number(view.getBigUint64(0, true)),
      batLengthBytes: view.getUint32(8, true),
      metadataLengthBytes: view.getUint32(12, true),
      metadataOffsetBytes: Number(view.getBigUint64(16, true)),
      validMask: view.getUint32(28, true),
    };
  });
}

/** Parses the metadata region (`lengthBytes` at WASM `address`). @throws VHDSYNC_CORRUPT, VHDSYNC_UNSUPPORTED */
export function parseMetadata(wasm: WasmInstance, address: number, lengthBytes: number, path: string): VhdxMetadata {
  return wasm.withScratch(80, (out) => {
    checkStatus(wasm.exports.vhdxParseMetadata(address, lengthBytes, out), `${path}: VHDX metadata`, { path });
    const view = wasm.dataView(out, 80);
    const present = view.getUint32(40, true);
    const flags = view.getUint32(4, true);
    return {
      blockSizeBytes: view.getUint32(0, true),
      leaveBlockAllocated: (flags & 1) !== 0,
      hasParent: (flags & 2) !== 0,
      virtualSizeBytes: Number(view.getBigUint64(8, true)),
      logicalSectorSize: view.getUint32(16, true),
      physicalSectorSize: view.getUint32(20, true),
      virtualDiskId: present & 4 ? guidToString(wasm.view(out + 24, 16)) : undefined,
      parentLocator: present & 32 ? { offsetBytes: view.getUint32(44, true), lengthBytes: view.getUint32(48, true) } : undefined,
      chunkRatio: view.getUint32(52, true),
      payloadBlocks: Number(view.getBigUint64(56, true)),
      sectorBitmapBlocks: Number(view.getBigUint64(64, true)),
      batEntries: Number(view.getBigUint64(72, true)),
    };
  });
}

/** Parses a parent locator item at WASM `address`. @throws VHDSYNC_CORRUPT, VHDSYNC_UNSUPPORTED */
export function parseParentLocator(wasm: WasmInstance, address: number, lengthBytes: number, path: string): VhdxParentLocator {
  return wasm.withScratch(40, (out) => {
    checkStatus(wasm.exports.vhdxParseParentLocator(address, lengthBytes, out), `${path}: VHDX parent locator`, { path });
    const view = wasm.dataView(out, 40);
    const value = (slot: number): string | undefined => {
      const length = view.getUint32(slot * 8 + 4, true);
      if (length === 0) return undefined;
      return Buffer.from(wasm.view(address + view.getUint32(slot * 8, true), length)).toString("utf16le");
    };
    return {
      parentLinkage: value(0) ?? "",
      parentLinkage2: value(1),
      relativePath: value(2),
      volumePath: value(3),
      absoluteWin32Path: value(4),
    };
  });
}

/** CRC-32C of `data` (through the WASM kernel). */
export function crc32c(data: Uint8Array): number {
  const wasm = wasmFor(data.length + 64);
  return wasm.withCopy(data, (address, length) => wasm.exports.vhdxCrc32c(address, length) >>> 0);
}
