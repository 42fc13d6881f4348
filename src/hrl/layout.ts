// [MS-HRL] constants shared by the log reader and writer, the field-block and entry-record
// layouts the WASM kernels exchange with TS (declared in assembly/hrl/header.ts and
// metadata.ts), and the value conversions: GUIDs (Windows byte order) and timestamps
// (seconds since 2000-01-01 00:00:00 UTC).

import { nodeCrypto } from "../io/node-crypto.js";

/** Size of the log file header ([MS-HRL] 2.2). */
export const HRL_HEADER_BYTES = 4096;
/** Default MetadataSize ([MS-HRL] 2.2). */
export const DEFAULT_METADATA_BYTES = 4096;
/** Size of a metadata header and of a metadata entry ([MS-HRL] 2.3, 2.4). */
export const HRL_ENTRY_BYTES = 32;
/** LogFormatVersion written (2.0); 1.x is read too. */
export const HRL_VERSION_2 = 0x00020000;

/** The HRL status codes the driver acts on (mirrors assembly/status.ts, range 300-399). */
export const HRL_STATUS = { unclean: 307, errorRecorded: 308, dataChecksum: 317 } as const;

/** Field block of hrlHeaderParse/hrlHeaderBuild (assembly/hrl/header.ts). */
export const HEADER_FIELDS = {
  bytes: 128,
  version: 0,
  timestamp: 4,
  creatorApplication: 8,
  creatorVersion: 12,
  originalSize: 16,
  currentSize: 24,
  eolLocation: 32,
  errorCode: 40,
  metadataSize: 44,
  uniqueId: 48,
  previousUniqueId: 64,
  vhd2DataWriteGuid: 80,
  totalMetadataEntries: 96,
  lastModifiedTimestamp: 104,
  fileType: 108,
  flags: 112,
  checksum: 116,
} as const;

/** Entry record and block info written by hrlMetadataParse (assembly/hrl/metadata.ts). */
export const ENTRY_RECORD = { bytes: 32, byteOffset: 0, logPosition: 8, dataLength: 16, dataChecksum: 20, timestamp: 24 } as const;
export const BLOCK_INFO = { bytes: 32, previousLocation: 0, dataStart: 8, dataBytes: 16, entryCount: 24 } as const;
/** Block table row written by hrlTraverse (assembly/hrl/traverse.ts): location f64, firstEntry u32, entryCount u32. */
export const BLOCK_TABLE_BYTES = 16;

/** Entries a metadata block of `metadataSizeBytes` holds. */
export function entryCapacity(metadataSizeBytes: number): number {
  return (metadataSizeBytes - HRL_ENTRY_BYTES) / HRL_ENTRY_BYTES;
}

/** The all-zero GUID (no previous log). */
export const NIL_GUID = "00000000-0000-0000-0000-000000000000";

/**
 * Formats 16 GUID bytes in Windows order (Data1 u32, Data2 u16, Data3 u16 little-endian, then
 * 8 bytes as stored) as "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
 */
export function guidToString(bytes: Uint8Array): string {
  const hex = (from: number, to: number, reverse: boolean): string => {
    const part = Array.from(bytes.subarray(from, to), (b) => b.toString(16).padStart(2, "0"));
    return (reverse ? part.reverse() : part).join("");
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

/** Inverse of guidToString (braces optional); undefined if `text` is not a GUID. */
export function guidFromString(text: string): Uint8Array | undefined {
  const match = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i.exec(text.trim());
  if (!match) return undefined;
  const bytesOf = (hex: string, reverse: boolean): number[] => {
    const out = hex.match(/../g)!.map((pair) => parseInt(pair, 16));
    return reverse ? out.reverse() : out;
  };
  return Uint8Array.from([
    ...bytesOf(match[1], true),
    ...bytesOf(match[2], true),
    ...bytesOf(match[3], true),
    ...bytesOf(match[4], false),
    ...bytesOf(match[5], false),
  ]);
}

/** A new random GUID string. */
export function randomGuid(): string {
  return nodeCrypto().randomUUID();
}

/** Normalizes a GUID string (lower case, no braces). */
export function normalizeGuid(text: string): string | undefined {
  const bytes = guidFromString(text);
  return bytes ? guidToString(bytes) : undefined;
}

/** Milliseconds of 2000-01-01T00:00:00Z since the Unix epoch. */
const EPOCH_2000_MS = Date.UTC(2000, 0, 1);

/** Seconds since 2000-01-01 UTC for a JS time in milliseconds (clamped to u32). */
export function hrlTimestamp(timeMs: number = Date.now()): number {
  return Math.min(0xffffffff, Math.max(0, Math.floor((timeMs - EPOCH_2000_MS) / 1000)));
}

/** ISO date string of an HRL timestamp. */
export function hrlTimestampToIso(seconds: number): string {
  return new Date(EPOCH_2000_MS + seconds * 1000).toISOString();
}
