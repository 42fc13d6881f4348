// Test-only: writes VHDX log entries ([MS-VHDX] 2.3.1) into an image held in memory and sets
// the headers' LogGuid, making the image "dirty" the way a crash between log write and
// metadata update would leave it. Entries may wrap around the end of the log ring.

import { currentHeaderOffset, guidBytes, setChecksum } from "./vhdx-builder.js";

const SECTOR = 4096;
const KIB = 1024;

export type LogDescriptorSpec =
  | { kind: "data"; fileOffset: number; data: Uint8Array }
  | { kind: "zero"; fileOffset: number; length: number };

export interface LogEntrySpec {
  sequence: bigint;
  descriptors: LogDescriptorSpec[];
  /** Log offset of the sequence's tail entry (default: the first entry written in this call). */
  tail?: number;
  flushedFileOffset?: number;
  lastFileOffset?: number;
  /** Store a wrong checksum. */
  badChecksum?: boolean;
  /** Write a different LogGuid into the entry than into the header. */
  foreignGuid?: boolean;
}

/** Builds one entry's sectors. */
function buildEntry(spec: LogEntrySpec, logGuid: Uint8Array, tail: number, fileSize: number): Uint8Array {
  const count = spec.descriptors.length;
  const descriptorSectors = count <= 126 ? 1 : 1 + Math.ceil((count - 126) / 128);
  const dataDescriptors = spec.descriptors.filter((d) => d.kind === "data") as { kind: "data"; fileOffset: number; data: Uint8Array }[];
  const entry = new Uint8Array((descriptorSectors + dataDescriptors.length) * SECTOR);
  const view = new DataView(entry.buffer);
  entry.set([0x6c, 0x6f, 0x67, 0x65], 0); // "loge"
  view.setUint32(8, entry.length, true);
  view.setUint32(12, tail, true);
  view.setBigUint64(16, spec.sequence, true);
  view.setUint32(24, count, true);
  const guid = spec.foreignGuid ? guidBytes("99999999-9999-9999-9999-999999999999") : logGuid;
  entry.set(guid, 32);
  view.setBigUint64(48, BigInt(spec.flushedFileOffset ?? fileSize), true);
  view.setBigUint64(56, BigInt(spec.lastFileOffset ?? fileSize), true);
  let dataIndex = 0;
  spec.descriptors.forEach((d, i) => {
    const at = i < 126 ? 64 + i * 32 : SECTOR * (1 + Math.floor((i - 126) / 128)) + ((i - 126) % 128) * 32;
    view.setBigUint64(at + 16, BigInt(d.fileOffset), true);
    view.setBigUint64(at + 24, spec.sequence, true);
    if (d.kind === "zero") {
      entry.set([0x7a, 0x65, 0x72, 0x6f], at); // "zero"
      view.setBigUint64(at + 8, BigInt(d.length), true);
      return;
    }
    entry.set([0x64, 0x65, 0x73, 0x63], at); // "desc"
    const source = new DataView(d.data.buffer, d.data.byteOffset, SECTOR);
    view.setUint32(at + 4, source.getUint32(4092, true), true);
    view.setBigUint64(at + 8, source.getBigUint64(0, true), true);
    const sector = (descriptorSectors + dataIndex++) * SECTOR;
    entry.set([0x64, 0x61, 0x74, 0x61], sector); // "data"
    view.setUint32(sector + 4, Number(spec.sequence >> 32n), true);
    entry.set(d.data.subarray(8, 4092), sector + 8);
    view.setUint32(sector + 4092, Number(spec.sequence & 0xffffffffn), true);
  });
  setChecksum(entry);
  if (spec.badChecksum) view.setUint32(4, view.getUint32(4, true) ^ 0x5a5a, true);
  return entry;
}

/**
 * Writes `entries` consecutively from log offset `startOffset` (wrapping) into `file` and puts
 * `logGuid` into both headers. Returns the log offset after the last entry.
 */
export function writeLogEntries(file: Uint8Array, entries: LogEntrySpec[], startOffset: number, logGuid = "12345678-9abc-def0-1234-56789abcdef0"): number {
  const view = new DataView(file.buffer, file.byteOffset);
  const header = currentHeaderOffset(file);
  const logLength = view.getUint32(header + 68, true);
  const logOffset = Number(view.getBigUint64(header + 72, true));
  const guid = guidBytes(logGuid);
  for (const at of [64 * KIB, 128 * KIB]) {
    file.set(guid, at + 48);
    setChecksum(file.subarray(at, at + 4 * KIB));
  }
  let position = startOffset;
  for (const spec of entries) {
    const entry = buildEntry(spec, guid, spec.tail ?? startOffset, file.length);
    for (let s = 0; s < entry.length; s += SECTOR) {
      const target = logOffset + ((position + s) % logLength);
      file.set(entry.subarray(s, s + SECTOR), target);
    }
    position = (position + entry.length) % logLength;
  }
  return position;
}
