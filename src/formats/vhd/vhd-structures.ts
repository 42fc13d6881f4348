// VHD on-disk structures as TypeScript values (VHD spec 1.0: hard disk footer, dynamic disk
// header, parent locator entries), parsed and built by the WASM kernels in assembly/vhd/.
// The kernels work on little-endian "field blocks" (layouts in assembly/vhd/footer.ts and
// header.ts); this file moves bytes in and out of WASM memory and names the fields.

import { VhdsyncError } from "../../errors.js";
import { wasmFor, type WasmInstance } from "../../wasm/driver.js";
import { checkStatus } from "../../wasm/status.js";

export const VHD_SECTOR_BYTES = 512;
export const VHD_FOOTER_BYTES = 512;
export const VHD_HEADER_BYTES = 1024;
const FOOTER_FIELDS_BYTES = 96;
const HEADER_FIELDS_BYTES = 768;
/** Largest dynamic/differencing disk the spec allows (2040 GiB). */
export const VHD_MAX_DYNAMIC_BYTES = 2040 * 1024 ** 3;
/** Largest fixed disk vhdsync creates or resizes to (64 TiB). */
export const VHD_MAX_FIXED_BYTES = 2 ** 46;
/** Most BAT entries a header may declare (the WASM header parse refuses more: assembly/vhd/header.ts). */
export const VHD_MAX_TABLE_ENTRIES = 1 << 22;
/** Data offset written in fixed-disk footers and in the dynamic header's unused field. */
export const VHD_NO_OFFSET = 0xffffffffffffffffn;
/** Seconds between the Unix epoch and the VHD epoch (2000-01-01T00:00:00Z). */
export const VHD_EPOCH_SECONDS = 946684800;

export const DISK_TYPE_NAMES = { 2: "fixed", 3: "dynamic", 4: "differencing" } as const;
export type VhdDiskType = keyof typeof DISK_TYPE_NAMES;

/** CHS geometry as stored in the footer. */
export interface VhdGeometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

/** The hard disk footer (and its copy at offset 0 of dynamic disks). */
export interface VhdFooter {
  features: number;
  formatVersion: number;
  /** Offset of the dynamic header; VHD_NO_OFFSET for fixed disks. */
  dataOffset: bigint;
  /** Creation time, seconds since 2000-01-01 UTC. */
  timestamp: number;
  /** Four ASCII characters, e.g. "win ", "qemu", "qem2". */
  creatorApplication: string;
  creatorVersion: number;
  creatorHostOs: number;
  originalSizeBytes: number;
  currentSizeBytes: number;
  geometry: VhdGeometry;
  diskType: VhdDiskType;
  checksum: number;
  uniqueId: Uint8Array;
  savedState: number;
  /** Size the guest sees, by the size rule (docs/vhd.md); set by parseFooter. */
  virtualSizeBytes: number;
}

/** One parent locator entry of the dynamic header. */
export interface VhdLocatorEntry {
  /** Platform code as 4 ASCII characters ("W2ru", "W2ku", "MacX", ...); "" when unused. */
  platformCode: string;
  /** Platform data space as stored (sectors per the spec; Windows writes bytes). */
  dataSpace: number;
  dataLengthBytes: number;
  dataOffsetBytes: number;
}

/** The dynamic disk header ("cxsparse"). */
export interface VhdHeader {
  tableOffsetBytes: number;
  headerVersion: number;
  maxTableEntries: number;
  blockSizeBytes: number;
  checksum: number;
  parentUniqueId: Uint8Array;
  /** Parent modification time, seconds since 2000-01-01 UTC. */
  parentTimestamp: number;
  /** Parent Unicode name (stored UTF-16BE). */
  parentName: string;
  locators: VhdLocatorEntry[];
  /** Bytes of the sector bitmap in front of each block (computed). */
  bitmapBytes: number;
}

/** Four ASCII characters ↔ big-endian u32. */
export function fourCcToNumber(text: string): number {
  const bytes = Buffer.from(text.padEnd(4, "\0").slice(0, 4), "latin1");
  return bytes.readUInt32BE(0);
}

export function numberToFourCc(value: number): string {
  if (value === 0) return "";
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes.toString("latin1");
}

/** Formats 16 bytes as a UUID string (byte order as stored). */
export function formatUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Runs a WASM parse/build kernel over `input` bytes with a field block of `fieldsBytes`. */
function withKernel<T>(input: Uint8Array, outputBytes: number, fn: (wasm: WasmInstance, inputAddress: number, outputAddress: number, output: DataView) => T): T {
  const wasm = wasmFor(input.length + outputBytes + 128);
  return wasm.withCopy(input, (inputAddress) =>
    wasm.withScratch(outputBytes, (outputAddress) => fn(wasm, inputAddress, outputAddress, wasm.dataView(outputAddress, outputBytes))),
  );
}

/**
 * Parses and validates a footer read from a file of `fileSizeBytes`.
 * @throws VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_TRUNCATED, VHDSYNC_UNSUPPORTED
 */
export function parseFooter(bytes: Uint8Array, fileSizeBytes: number, details: Record<string, unknown> = {}): VhdFooter {
  if (bytes.length !== VHD_FOOTER_BYTES) throw new VhdsyncError("VHDSYNC_TRUNCATED", "VHD footer is shorter than 512 bytes", details);
  return withKernel(bytes, FOOTER_FIELDS_BYTES, (wasm, input, output, view) => {
    checkStatus(wasm.exports.vhdFooterParse(input, fileSizeBytes, output), String(details.path ?? "vhd"), details);
    return {
      features: view.getUint32(0, true),
      formatVersion: view.getUint32(4, true),
      dataOffset: view.getBigUint64(8, true),
      timestamp: view.getUint32(16, true),
      creatorApplication: numberToFourCc(view.getUint32(20, true)),
      creatorVersion: view.getUint32(24, true),
      creatorHostOs: view.getUint32(28, true),
      originalSizeBytes: Number(view.getBigUint64(32, true)),
      currentSizeBytes: Number(view.getBigUint64(40, true)),
      geometry: { cylinders: view.getUint32(48, true), heads: view.getUint32(52, true), sectorsPerTrack: view.getUint32(56, true) },
      diskType: view.getUint32(60, true) as VhdDiskType,
      checksum: view.getUint32(64, true),
      savedState: view.getUint32(68, true),
      uniqueId: new Uint8Array(view.buffer.slice(view.byteOffset + 72, view.byteOffset + 88)),
      virtualSizeBytes: Number(view.getBigUint64(88, true)),
    };
  });
}

/** Builds the 512 bytes of a footer (checksum computed; virtualSizeBytes and checksum ignored). */
export function buildFooter(footer: VhdFooter): Uint8Array {
  const wasm = wasmFor(FOOTER_FIELDS_BYTES + VHD_FOOTER_BYTES);
  return wasm.withScratch(FOOTER_FIELDS_BYTES + VHD_FOOTER_BYTES, (address, bytes) => {
    const view = wasm.dataView(address, FOOTER_FIELDS_BYTES);
    bytes.fill(0);
    view.setUint32(0, footer.features, true);
    view.setUint32(4, footer.formatVersion, true);
    view.setBigUint64(8, footer.dataOffset, true);
    view.setUint32(16, footer.timestamp, true);
    view.setUint32(20, fourCcToNumber(footer.creatorApplication), true);
    view.setUint32(24, footer.creatorVersion, true);
    view.setUint32(28, footer.creatorHostOs, true);
    view.setBigUint64(32, BigInt(footer.originalSizeBytes), true);
    view.setBigUint64(40, BigInt(footer.currentSizeBytes), true);
    view.setUint32(48, footer.geometry.cylinders, true);
    view.setUint32(52, footer.geometry.heads, true);
    view.setUint32(56, footer.geometry.sectorsPerTrack, true);
    view.setUint32(60, footer.diskType, true);
    view.setUint32(68, footer.savedState, true);
    bytes.set(footer.uniqueId.subarray(0, 16), 72);
    checkStatus(wasm.exports.vhdFooterBuild(address, address + FOOTER_FIELDS_BYTES), "VHD footer build");
    return bytes.slice(FOOTER_FIELDS_BYTES);
  });
}

/**
 * Parses and validates a dynamic header found at `headerOffsetBytes`.
 * @throws VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_TRUNCATED, VHDSYNC_UNSUPPORTED
 */
export function parseHeader(
  bytes: Uint8Array,
  where: { headerOffsetBytes: number; fileSizeBytes: number; virtualSizeBytes: number; isDifferencing: boolean },
  details: Record<string, unknown> = {},
): VhdHeader {
  if (bytes.length !== VHD_HEADER_BYTES) throw new VhdsyncError("VHDSYNC_TRUNCATED", "VHD dynamic header is shorter than 1024 bytes", details);
  return withKernel(bytes, HEADER_FIELDS_BYTES, (wasm, input, output, view) => {
    const status = wasm.exports.vhdHeaderParse(input, where.headerOffsetBytes, where.fileSizeBytes, where.virtualSizeBytes, where.isDifferencing ? 1 : 0, output);
    checkStatus(status, String(details.path ?? "vhd"), details);
    const locators: VhdLocatorEntry[] = [];
    for (let i = 0; i < 8; i++) {
      const base = 56 + i * 24;
      locators.push({
        platformCode: numberToFourCc(view.getUint32(base, true)),
        dataSpace: view.getUint32(base + 4, true),
        dataLengthBytes: view.getUint32(base + 8, true),
        dataOffsetBytes: Number(view.getBigUint64(base + 16, true)),
      });
    }
    const nameUnits = view.getUint32(36, true);
    const nameBytes = Buffer.from(view.buffer.slice(view.byteOffset + 256, view.byteOffset + 256 + nameUnits * 2));
    return {
      tableOffsetBytes: Number(view.getBigUint64(8, true)),
      headerVersion: view.getUint32(16, true),
      maxTableEntries: view.getUint32(20, true),
      blockSizeBytes: view.getUint32(24, true),
      checksum: view.getUint32(28, true),
      parentTimestamp: view.getUint32(32, true),
      parentUniqueId: new Uint8Array(view.buffer.slice(view.byteOffset + 40, view.byteOffset + 56)),
      parentName: nameBytes.swap16().toString("utf16le"),
      locators,
      bitmapBytes: view.getUint32(248, true),
    };
  });
}

/** Builds the 1024 bytes of a dynamic header (checksum computed). @throws VHDSYNC_INVALID_ARGUMENT for a parent name over 255 UTF-16 units */
export function buildHeader(header: VhdHeader): Uint8Array {
  const name = Buffer.from(header.parentName, "utf16le").swap16();
  if (name.length > 510) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", "VHD parent name longer than 255 UTF-16 units", { parentName: header.parentName });
  const wasm = wasmFor(HEADER_FIELDS_BYTES + VHD_HEADER_BYTES);
  return wasm.withScratch(HEADER_FIELDS_BYTES + VHD_HEADER_BYTES, (address, bytes) => {
    const view = wasm.dataView(address, HEADER_FIELDS_BYTES);
    bytes.fill(0);
    view.setBigUint64(0, VHD_NO_OFFSET, true);
    view.setBigUint64(8, BigInt(header.tableOffsetBytes), true);
    view.setUint32(16, header.headerVersion, true);
    view.setUint32(20, header.maxTableEntries, true);
    view.setUint32(24, header.blockSizeBytes, true);
    view.setUint32(32, header.parentTimestamp, true);
    bytes.set(header.parentUniqueId.subarray(0, 16), 40);
    header.locators.slice(0, 8).forEach((locator, i) => {
      const base = 56 + i * 24;
      view.setUint32(base, locator.platformCode ? fourCcToNumber(locator.platformCode) : 0, true);
      view.setUint32(base + 4, locator.dataSpace, true);
      view.setUint32(base + 8, locator.dataLengthBytes, true);
      view.setBigUint64(base + 16, BigInt(locator.dataOffsetBytes), true);
    });
    bytes.set(name, 256);
    checkStatus(wasm.exports.vhdHeaderBuild(address, address + HEADER_FIELDS_BYTES), "VHD header build");
    return bytes.slice(HEADER_FIELDS_BYTES);
  });
}

/** CHS geometry for a disk of `sizeBytes` by the spec's algorithm (rounds down). */
export function geometryForSize(sizeBytes: number): VhdGeometry {
  const packed = wasmFor(0).exports.vhdGeometryForSize(sizeBytes) >>> 0;
  return { cylinders: packed >>> 16, heads: (packed >>> 8) & 0xff, sectorsPerTrack: packed & 0xff };
}

/** Bytes of the sector bitmap in front of each block of `blockSizeBytes`. */
export function bitmapBytesFor(blockSizeBytes: number): number {
  return wasmFor(0).exports.vhdBitmapBytes(blockSizeBytes) >>> 0;
}
