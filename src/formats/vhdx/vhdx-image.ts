// VhdxImage: a read-only DiskImage over a fixed, dynamic or differencing VHDX ([MS-VHDX]).
// Open order follows section 2.3.3: headers, then (if the log is dirty) an in-memory replay,
// then region table, metadata and BAT through the replayed view. Reads map each payload block
// by its BAT state and coalesce contiguous file runs straight into the caller's buffer.

import { realpath } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../../errors.js";
import { checkRange, openFile } from "../../io/file.js";
import { allocWasm } from "../../wasm/driver.js";
import type { AllocationScope, ChainLayer, DiskImage, Extent, ImageInfo } from "../disk-image.js";
import { appendParentPieces, appendPiece, filePiecesOf, type DataLocator, type DataPiece, type FilePiece, type GatherableImage, type LocatableImage, type PieceSource } from "../data-location.js";
import { replayLog, type LogReplay } from "./log-replay.js";
import { BlockState, VhdxBat } from "./vhdx-bat.js";
import type { FileExtentSource } from "./file-overlaps.js";
import { VhdxFileReader } from "./vhdx-file-reader.js";
import { openVhdxParent } from "./vhdx-parent.js";
import { allocatedBytesOf, unionExtents } from "../extents.js";
import { SectorBitmaps, planRange, type Segment } from "./vhdx-plan.js";
import {
  HEADER_AREA_BYTES, MIB, parseHeaders, parseMetadata, parseParentLocator, parseRegions,
  type VhdxHeader, type VhdxMetadata, type VhdxParentLocator, type VhdxRegions,
} from "./vhdx-structures.js";

/** Largest metadata region loaded. */
const MAX_METADATA_BYTES = 32 * 1024 * 1024;

/** Everything parsed from a VHDX at open (exposed for `check` and tests). */
export interface VhdxStructure {
  header: VhdxHeader;
  regions: VhdxRegions;
  metadata: VhdxMetadata;
  locator?: VhdxParentLocator;
  replay?: LogReplay;
  fileSizeBytes: number;
}

/** A VHDX opened read-only (writes throw VHDSYNC_UNSUPPORTED in this release). */
export class VhdxImage implements DiskImage, LocatableImage, GatherableImage {
  readonly format = "vhdx" as const;
  readonly readOnly = true;
  private closed = false;
  private readonly bitmaps: SectorBitmaps;

  private constructor(
    readonly path: string,
    private readonly reader: VhdxFileReader,
    readonly structure: VhdxStructure,
    private readonly bat: VhdxBat,
    private readonly parent?: DiskImage,
  ) {
    this.bitmaps = new SectorBitmaps(reader, bat);
  }

  /**
   * Opens a VHDX read-only (a dirty log is replayed in memory; the file is never modified).
   * @throws VHDSYNC_CORRUPT, VHDSYNC_BAD_CHECKSUM, VHDSYNC_TRUNCATED, VHDSYNC_UNSUPPORTED,
   * VHDSYNC_CHAIN_BROKEN, VHDSYNC_NOT_FOUND and other I/O codes.
   */
  static async open(path: string, { regionOverlaps = false }: { regionOverlaps?: boolean } = {}): Promise<VhdxImage> {
    return VhdxImage.openInChain(path, new Set(), regionOverlaps);
  }

  /**
   * Opens `path` as a member of a chain whose members' real paths are in `visited`.
   * `regionOverlaps`: let blocks over the BAT, metadata or log regions through (for `check`,
   * which lists every overlap itself); reads must never see them.
   */
  static async openInChain(path: string, visited: Set<string>, regionOverlaps = false): Promise<VhdxImage> {
    const handle = await openFile(path, "r");
    try {
      const { reader, structure } = await readStructure(handle, path);
      const bat = await VhdxBat.load(reader, structure.regions, structure.metadata, regionOverlaps ? undefined : structure.header);
      let parent: DiskImage | undefined;
      if (structure.metadata.hasParent && structure.locator) {
        const chain = new Set(visited).add(await realpath(path));
        parent = await openVhdxParent(path, structure.locator, structure.metadata.logicalSectorSize, chain, (p, v) => VhdxImage.openInChain(p, v));
      }
      return new VhdxImage(path, reader, structure, bat, parent);
    } catch (error) {
      await handle.close();
      throw toVhdsyncError(error, { path });
    }
  }

  get virtualSize(): number {
    return this.structure.metadata.virtualSizeBytes;
  }

  get logicalSectorSize(): number {
    return this.structure.metadata.logicalSectorSize;
  }

  /** The header's DataWriteGuid (what a child's parent_linkage must name). */
  get dataWriteGuid(): string {
    return this.structure.header.dataWriteGuid;
  }

  /** "fixed", "dynamic" or "differencing". */
  get type(): string {
    const metadata = this.structure.metadata;
    return metadata.hasParent ? "differencing" : metadata.leaveBlockAllocated ? "fixed" : "dynamic";
  }

  /**
   * Every structure's file range, for `vhdsync check`'s overlap test: header section (id 0),
   * log (1), BAT and metadata regions (2, 3), then present payload blocks (4 + 2 x block) and
   * sector bitmap blocks (5 + 2 x the chunk's first block), streamed from the BAT.
   */
  fileExtents(): FileExtentSource {
    const { header, regions, metadata } = this.structure;
    const fixed: [string, number, number][] = [
      ["header section", 0, MIB],
      ["log", header.logOffsetBytes, header.logLengthBytes],
      ["BAT region", regions.batOffsetBytes, regions.batLengthBytes],
      ["metadata region", regions.metadataOffsetBytes, regions.metadataLengthBytes],
    ];
    const blockBytes = (block: number) => Math.min(metadata.blockSizeBytes, metadata.virtualSizeBytes - block * metadata.blockSizeBytes);
    return {
      forEach: (visit) => {
        fixed.forEach(([, offset, length], id) => {
          if (length > 0) visit(id, offset, length);
        });
        this.bat.forEachPresent(metadata.payloadBlocks, (block, bitmap, offset) => {
          const length = bitmap ? MIB : blockBytes(block);
          if (length > 0) visit(fixed.length + 2 * block + (bitmap ? 1 : 0), offset, length);
        });
      },
      describe: (id) => {
        if (id < fixed.length) return { name: fixed[id][0], offsetBytes: fixed[id][1], lengthBytes: fixed[id][2] };
        const block = Math.floor((id - fixed.length) / 2);
        if ((id - fixed.length) % 2 === 0) return { name: `payload block ${block}`, offsetBytes: this.bat.payload(block).fileOffsetBytes, lengthBytes: blockBytes(block) };
        return { name: `sector bitmap block ${block / metadata.chunkRatio}`, offsetBytes: this.bat.sectorBitmapOffset(block), lengthBytes: MIB };
      },
    };
  }

  /**
   * Where the data lies in the file, for a VHDX whose content is its payload blocks alone: no
   * parent, no log replayed in memory, no partially present block. A fully present block is
   * one run of the file; every other state reads as zeros (as read() plans it).
   */
  dataLocator(): DataLocator | undefined {
    const { metadata } = this.structure;
    if (this.parent || metadata.hasParent || this.reader.overlay) return undefined;
    for (let block = 0; block < metadata.payloadBlocks; block++) {
      if (this.bat.payload(block).state === BlockState.PARTIALLY_PRESENT) return undefined;
    }
    const blockBytes = metadata.blockSizeBytes;
    return {
      fd: this.reader.handle.fd,
      granuleBytes: blockBytes,
      locate: (offset, length) => {
        this.checkOpen();
        checkRange(offset, length, this.virtualSize, this.path);
        const pieces: DataPiece[] = [];
        for (let at = offset; at < offset + length; ) {
          const block = Math.floor(at / blockBytes);
          const end = Math.min(offset + length, (block + 1) * blockBytes);
          const { state, fileOffsetBytes } = this.bat.payload(block);
          pieces.push({ offset: at, length: end - at, fileOffset: state === BlockState.FULLY_PRESENT ? fileOffsetBytes + (at - block * blockBytes) : null });
          at = end;
        }
        return pieces;
      },
    };
  }

  /**
   * Where the disk's bytes lie when they all lie in files: this file's runs as read() plans
   * them (fully present blocks, and the present sectors of partially present ones), the parent
   * chain's pieces where the parent shows through (zeros past its end), zeros elsewhere.
   * Undefined when the log is replayed in memory (its sectors lie in no file) or the parent
   * cannot say where its bytes lie.
   */
  pieceSource(): PieceSource | undefined {
    if (this.reader.overlay) return undefined;
    const parentPieces = this.parent ? filePiecesOf(this.parent) : undefined;
    if (this.parent && !parentPieces) return undefined;
    const fd = this.reader.handle.fd;
    return async (offset, length) => {
      this.checkOpen();
      checkRange(offset, length, this.virtualSize, this.path);
      const pieces: FilePiece[] = [];
      for (const { kind, virtualOffset, length: bytes, fileOffset } of await this.plan(offset, length)) {
        if (kind === "file") appendPiece(pieces, { offset: virtualOffset, length: bytes, fd, fileOffset });
        else if (kind === "parent" && this.parent && parentPieces) await appendParentPieces(pieces, parentPieces, this.parent.virtualSize, virtualOffset, bytes);
        else appendPiece(pieces, { offset: virtualOffset, length: bytes, fd: -1, fileOffset: null });
      }
      return pieces;
    };
  }

  private plan(offset: number, length: number): Promise<Segment[]> {
    return planRange(this.bitmaps, this.bat, this.structure.metadata, offset, length, this.parent?.virtualSize ?? 0);
  }

  async read(buffer: Uint8Array, offset: number): Promise<void> {
    this.checkOpen();
    checkRange(offset, buffer.length, this.virtualSize, this.path);
    for (const segment of await this.plan(offset, buffer.length)) {
      const target = buffer.subarray(segment.virtualOffset - offset, segment.virtualOffset - offset + segment.length);
      if (segment.kind === "file") await this.reader.read(target, segment.fileOffset);
      else if (segment.kind === "parent" && this.parent) await this.parent.read(target, segment.virtualOffset);
      else target.fill(0);
    }
  }

  async write(_buffer: Uint8Array, _offset: number): Promise<void> {
    throw this.unsupported();
  }

  async writeZeros(_offset: number, _length: number): Promise<void> {
    throw this.unsupported();
  }

  async allocationMap(offset = 0, length = this.virtualSize - offset, scope: AllocationScope = "chain"): Promise<Extent[]> {
    this.checkOpen();
    checkRange(offset, length, this.virtualSize, this.path);
    const extents: Extent[] = [];
    for (const segment of await this.plan(offset, length)) {
      if (segment.kind === "file") extents.push({ offset: segment.virtualOffset, length: segment.length });
      else if (segment.kind === "parent" && scope === "chain" && this.parent) {
        for (const extent of await this.parent.allocationMap(segment.virtualOffset, segment.length, "chain")) extents.push(extent); // not as spread arguments: there may be more than a call takes
      }
    }
    return unionExtents(extents, []);
  }

  async info(): Promise<ImageInfo> {
    this.checkOpen();
    const { metadata, header, replay, fileSizeBytes } = this.structure;
    const allocatedBytes = await allocatedBytesOf((offset, length) => this.allocationMap(offset, length, "layer"), this.virtualSize);
    return {
      path: this.path,
      format: "vhdx",
      type: this.type,
      virtualSize: this.virtualSize,
      logicalSectorSize: metadata.logicalSectorSize,
      physicalSectorSize: metadata.physicalSectorSize,
      blockSize: metadata.blockSizeBytes,
      allocatedBytes,
      fileSize: fileSizeBytes,
      uniqueId: metadata.virtualDiskId,
      dataWriteGuid: header.dataWriteGuid,
      fileWriteGuid: header.fileWriteGuid,
      logReplayed: replay ? { entries: replay.entries, headSequenceNumber: replay.headSequenceNumber.toString() } : undefined,
      parentLocator: this.structure.locator,
      chain: this.chain(),
    };
  }

  chain(): ChainLayer[] {
    return [{ path: this.path, format: "vhdx", type: this.type, uniqueId: this.structure.metadata.virtualDiskId }, ...(this.parent?.chain() ?? [])];
  }

  async flush(): Promise<void> {
    this.checkOpen();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.parent?.close();
    } finally {
      await this.reader.handle.close();
    }
  }

  private unsupported(): VhdsyncError {
    return new VhdsyncError("VHDSYNC_UNSUPPORTED", `${this.path}: VHDX images are read-only in this release`, { path: this.path });
  }

  private checkOpen(): void {
    if (this.closed) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${this.path}: image is closed`, { path: this.path });
  }
}

/**
 * Parses headers, replays the log in memory if it is dirty, then the region table, metadata
 * and parent locator. @throws the codes of VhdxImage.open
 */
export async function readStructure(handle: FileHandle, path: string): Promise<{ reader: VhdxFileReader; structure: VhdxStructure }> {
  const fileSizeBytes = (await handle.stat()).size;
  if (fileSizeBytes < HEADER_AREA_BYTES) {
    throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: ${fileSizeBytes} bytes is too short for a VHDX header section`, { path, fileSize: fileSizeBytes });
  }
  const { wasm, address } = allocWasm(HEADER_AREA_BYTES, 4096);
  try {
    const area = wasm.view(address, HEADER_AREA_BYTES);
    const raw = new VhdxFileReader(handle, path, fileSizeBytes, fileSizeBytes);
    await raw.read(area, 0);
    const header = parseHeaders(wasm, address, path);
    const logDirty = header.logGuid.some((byte) => byte !== 0);
    const replay = logDirty ? await replayLog(handle, path, header, fileSizeBytes) : undefined;
    const reader = replay ? new VhdxFileReader(handle, path, fileSizeBytes, replay.effectiveFileSize, replay.overlay) : raw;
    replay?.overlay.apply(area, 0);
    const regions = parseRegions(wasm, address, header, path);
    const { metadata, locator } = await readMetadata(reader, regions, path);
    return { reader, structure: { header, regions, metadata, locator, replay, fileSizeBytes } };
  } finally {
    wasm.release(address);
  }
}

async function readMetadata(reader: VhdxFileReader, regions: VhdxRegions, path: string): Promise<{ metadata: VhdxMetadata; locator?: VhdxParentLocator }> {
  const length = regions.metadataLengthBytes;
  if (length > MAX_METADATA_BYTES) throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path}: VHDX metadata region of ${length} bytes is too large`, { path });
  const { wasm, address } = allocWasm(length, 8);
  try {
    await reader.read(wasm.view(address, length), regions.metadataOffsetBytes);
    const metadata = parseMetadata(wasm, address, length, path);
    const item = metadata.parentLocator;
    const locator = metadata.hasParent && item ? parseParentLocator(wasm, address + item.offsetBytes, item.lengthBytes, path) : undefined;
    return { metadata, locator };
  } finally {
    wasm.release(address);
  }
}
