// Test-only VHDX writer, independent of src/: builds whole images (fixed/dynamic/differencing,
// sector bitmaps, parent locators, 4 KiB sectors) straight from [MS-VHDX], and appends log
// entries to existing images to make them dirty. Layout: header section, log at 1 MiB
// (1 MiB), metadata at 2 MiB (1 MiB), BAT at 3 MiB, then payload and sector bitmap blocks.

const MIB = 1024 * 1024;
const KIB = 1024;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (plain JS, table-driven). */
export function crc32cJs(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** Writes the CRC-32C of `bytes` (checksum field at `field` zeroed first) into that field. */
export function setChecksum(bytes: Uint8Array, field = 4): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(field, 0, true);
  view.setUint32(field, crc32cJs(bytes), true);
}

/** GUID text "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" → 16 bytes in VHDX binary form. */
export function guidBytes(text: string): Uint8Array {
  const hex = text.replace(/[{}-]/g, "");
  const b = Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  return Uint8Array.from([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8)]);
}

/** 16 bytes in VHDX binary form → lowercase GUID text. */
export function guidText(b: Uint8Array): string {
  const h = (i: number) => b[i].toString(16).padStart(2, "0");
  const part = (idx: number[]) => idx.map(h).join("");
  return `${part([3, 2, 1, 0])}-${part([5, 4])}-${part([7, 6])}-${part([8, 9])}-${part([10, 11, 12, 13, 14, 15])}`;
}

export const STATE = { NOT_PRESENT: 0, UNDEFINED: 1, ZERO: 2, UNMAPPED: 3, FULLY_PRESENT: 6, PARTIALLY_PRESENT: 7 } as const;

export interface BuildBlock {
  state: number;
  /** blockSize bytes of payload (FULLY/PARTIALLY_PRESENT). */
  data?: Uint8Array;
  /** PARTIALLY_PRESENT: is sector `index` (within the block) present in this file? */
  present?: (sectorInBlock: number) => boolean;
}

export interface BuildOptions {
  virtualSize: number;
  blockSize: number;
  logicalSectorSize?: number;
  hasParent?: boolean;
  leaveBlockAllocated?: boolean;
  /** Parent locator key → value (UTF-16LE on disk). */
  locator?: Record<string, string>;
  blocks?: Map<number, BuildBlock>;
  dataWriteGuid?: string;
}

const REGION_BAT = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const REGION_METADATA = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const ITEMS = {
  fileParameters: "CAA16737-FA36-4D43-B3B6-33F0AA44E76B",
  size: "2FA54224-CD1B-4876-B211-5DBED83BF4B8",
  id: "BECA12AB-B2E6-4523-93EF-C309E000C746",
  logical: "8141BF1D-A96F-4709-BA47-F233A8FAAB5F",
  physical: "CDA348C7-445D-4471-9CC9-E9885251C556",
  locator: "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C",
};
const LOCATOR_TYPE_VHDX = "B04AEFB7-D19E-4A81-B789-25B8E9445913";

function ascii(file: Uint8Array, offset: number, text: string): void {
  for (let i = 0; i < text.length; i++) file[offset + i] = text.charCodeAt(i);
}

function locatorItem(entries: Record<string, string>): Uint8Array {
  const keys = Object.keys(entries);
  const item = new Uint8Array(4096);
  const view = new DataView(item.buffer);
  item.set(guidBytes(LOCATOR_TYPE_VHDX), 0);
  view.setUint16(18, keys.length, true);
  let cursor = 20 + keys.length * 12;
  keys.forEach((key, i) => {
    const k = Buffer.from(key, "utf16le");
    const v = Buffer.from(entries[key], "utf16le");
    view.setUint32(20 + i * 12, cursor, true);
    item.set(k, cursor);
    cursor += k.length;
    view.setUint32(20 + i * 12 + 4, cursor, true);
    item.set(v, cursor);
    cursor += v.length;
    view.setUint16(20 + i * 12 + 8, k.length, true);
    view.setUint16(20 + i * 12 + 10, v.length, true);
  });
  return item.subarray(0, cursor);
}

function writeMetadata(file: Uint8Array, at: number, o: BuildOptions): void {
  const view = new DataView(file.buffer);
  ascii(file, at, "metadata");
  const items: [string, number, Uint8Array][] = [];
  const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
  const u64 = (v: number) => new Uint8Array(new BigUint64Array([BigInt(v)]).buffer);
  const params = new Uint8Array(8);
  new DataView(params.buffer).setUint32(0, o.blockSize, true);
  params[4] = (o.leaveBlockAllocated ? 1 : 0) | (o.hasParent ? 2 : 0);
  items.push([ITEMS.fileParameters, 4, params], [ITEMS.size, 6, u64(o.virtualSize)], [ITEMS.id, 6, guidBytes("11111111-2222-3333-4444-555555555555")]);
  items.push([ITEMS.logical, 6, u32(o.logicalSectorSize ?? 512)], [ITEMS.physical, 6, u32(4096)]);
  if (o.locator) items.push([ITEMS.locator, 4, locatorItem(o.locator)]);
  view.setUint16(at + 10, items.length, true);
  let cursor = 64 * KIB;
  items.forEach(([guid, flags, data], i) => {
    const entry = at + 32 + i * 32;
    file.set(guidBytes(guid), entry);
    view.setUint32(entry + 16, cursor, true);
    view.setUint32(entry + 20, data.length, true);
    view.setUint32(entry + 24, flags, true);
    file.set(data, at + cursor);
    cursor += Math.ceil(data.length / 8) * 8;
  });
}

function writeHeadersAndRegions(file: Uint8Array, batBytes: number, dataWriteGuid: string): void {
  const view = new DataView(file.buffer);
  ascii(file, 0, "vhdxfile");
  for (const [index, at] of [64 * KIB, 128 * KIB].entries()) {
    ascii(file, at, "head");
    view.setBigUint64(at + 8, BigInt(index + 1), true);
    file.set(guidBytes("aaaaaaaa-0000-0000-0000-000000000001"), at + 16);
    file.set(guidBytes(dataWriteGuid), at + 32);
    view.setUint16(at + 66, 1, true);
    view.setUint32(at + 68, MIB, true);
    view.setBigUint64(at + 72, BigInt(MIB), true);
    setChecksum(file.subarray(at, at + 4 * KIB));
  }
  for (const at of [192 * KIB, 256 * KIB]) {
    ascii(file, at, "regi");
    view.setUint32(at + 8, 2, true);
    const regions: [string, number, number][] = [[REGION_BAT, 3 * MIB, batBytes], [REGION_METADATA, 2 * MIB, MIB]];
    regions.forEach(([guid, offset, length], i) => {
      const entry = at + 16 + i * 32;
      file.set(guidBytes(guid), entry);
      view.setBigUint64(entry + 16, BigInt(offset), true);
      view.setUint32(entry + 24, length, true);
      view.setUint32(entry + 28, 1, true);
    });
    setChecksum(file.subarray(at, at + 64 * KIB));
  }
}

/** Builds a complete VHDX file in memory. */
export function buildVhdx(o: BuildOptions): Uint8Array {
  const sector = o.logicalSectorSize ?? 512;
  const chunkRatio = (2 ** 23 * sector) / o.blockSize;
  const payloadBlocks = Math.ceil(o.virtualSize / o.blockSize);
  const bitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  const batEntries = o.hasParent ? bitmapBlocks * (chunkRatio + 1) : payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  const batBytes = Math.max(MIB, Math.ceil((batEntries * 8) / MIB) * MIB);
  const blocks = o.blocks ?? new Map();
  const present = [...blocks.entries()].filter(([, b]) => b.state === STATE.FULLY_PRESENT || b.state === STATE.PARTIALLY_PRESENT);
  const partialChunks = new Set([...blocks.entries()].filter(([, b]) => b.state === STATE.PARTIALLY_PRESENT).map(([i]) => Math.floor(i / chunkRatio)));
  const dataStart = 3 * MIB + batBytes;
  const fileSize = dataStart + present.length * o.blockSize + partialChunks.size * MIB;
  const file = new Uint8Array(fileSize);
  const view = new DataView(file.buffer);
  writeHeadersAndRegions(file, batBytes, o.dataWriteGuid ?? "dddddddd-0000-0000-0000-000000000001");
  writeMetadata(file, 2 * MIB, o);
  const setEntry = (index: number, state: number, offset: number) => view.setBigUint64(3 * MIB + index * 8, BigInt(state) | (BigInt(offset / MIB) << 20n), true);
  let cursor = dataStart;
  for (const [block, b] of present) {
    if (b.data) file.set(b.data.subarray(0, o.blockSize), cursor);
    setEntry(block + Math.floor(block / chunkRatio), b.state, cursor);
    cursor += o.blockSize;
  }
  for (const [block, b] of blocks) if (b.state !== STATE.FULLY_PRESENT && b.state !== STATE.PARTIALLY_PRESENT) setEntry(block + Math.floor(block / chunkRatio), b.state, 0);
  for (const chunk of partialChunks) {
    setEntry(chunk * (chunkRatio + 1) + chunkRatio, STATE.FULLY_PRESENT, cursor);
    for (const [block, b] of blocks) {
      if (b.state !== STATE.PARTIALLY_PRESENT || Math.floor(block / chunkRatio) !== chunk) continue;
      const sectorsPerBlock = o.blockSize / sector;
      const first = (block % chunkRatio) * sectorsPerBlock;
      for (let s = 0; s < sectorsPerBlock; s++) if (b.present?.(s)) file[cursor + ((first + s) >> 3)] |= 1 << ((first + s) & 7);
    }
    cursor += MIB;
  }
  return file;
}

/** The current header's offset (64 or 128 KiB) of a VHDX held in memory. */
export function currentHeaderOffset(file: Uint8Array): number {
  const view = new DataView(file.buffer, file.byteOffset);
  const valid = (at: number) => {
    const copy = file.slice(at, at + 4 * KIB);
    const stored = new DataView(copy.buffer).getUint32(4, true);
    setChecksum(copy);
    return ascii4(file, at) === "head" && new DataView(copy.buffer).getUint32(4, true) === stored;
  };
  const a = valid(64 * KIB), b = valid(128 * KIB);
  if (a && b) return view.getBigUint64(128 * KIB + 8, true) > view.getBigUint64(64 * KIB + 8, true) ? 128 * KIB : 64 * KIB;
  return a ? 64 * KIB : 128 * KIB;
}

function ascii4(file: Uint8Array, at: number): string {
  return String.fromCharCode(...file.subarray(at, at + 4));
}

/** DataWriteGuid of the current header. */
export function dataWriteGuidOf(file: Uint8Array): string {
  const at = currentHeaderOffset(file);
  return guidText(file.subarray(at + 32, at + 48));
}

/** File offsets of the BAT and metadata regions (from the first region table copy). */
export function regionOffsets(file: Uint8Array): { bat: number; metadata: number } {
  const view = new DataView(file.buffer, file.byteOffset);
  const at = 192 * KIB;
  const result = { bat: 0, metadata: 0 };
  for (let i = 0; i < view.getUint32(at + 8, true); i++) {
    const entry = at + 16 + i * 32;
    const guid = guidText(file.subarray(entry, entry + 16)).toUpperCase();
    const offset = Number(view.getBigUint64(entry + 16, true));
    if (guid === REGION_BAT) result.bat = offset;
    if (guid === REGION_METADATA) result.metadata = offset;
  }
  return result;
}
