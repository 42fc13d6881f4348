// Common base of the three VHD disk types (VHD spec 1.0): the open file, its footer, the
// open/closed/writable checks and the parts of `info()` every type shares. Fixed, dynamic
// and differencing disks extend it (vhd-fixed-image.ts, vhd-dynamic-image.ts,
// vhd-differencing-image.ts); openVhd() picks the class.

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError } from "../../errors.js";
import type { AllocationScope, ChainLayer, DiskImage, Extent, ImageInfo } from "../disk-image.js";
import { datasyncHandle } from "../flat-file.js";
import { DISK_TYPE_NAMES, VHD_EPOCH_SECONDS, formatUuid, numberToFourCc, type VhdFooter } from "./vhd-structures.js";

/** Where the footer that was used came from. */
export type FooterSource = "end" | "copy";

/** State shared by every VHD layer when it is opened. */
export interface VhdOpenState {
  path: string;
  handle: FileHandle;
  readOnly: boolean;
  footer: VhdFooter;
  footerSource: FooterSource;
  fileSizeBytes: number;
}

/** A VHD file opened as a DiskImage. */
export abstract class VhdImage implements DiskImage {
  readonly format = "vhd" as const;
  readonly logicalSectorSize = 512;
  readonly path: string;
  readonly readOnly: boolean;
  readonly footer: VhdFooter;
  /** "end" normally; "copy" when the footer at the end was damaged and the copy at offset 0 was used. */
  readonly footerSource: FooterSource;
  protected readonly handle: FileHandle;
  protected fileSizeBytes: number;
  private closed = false;

  protected constructor(state: VhdOpenState) {
    this.path = state.path;
    this.handle = state.handle;
    this.readOnly = state.readOnly;
    this.footer = state.footer;
    this.footerSource = state.footerSource;
    this.fileSizeBytes = state.fileSizeBytes;
  }

  get virtualSize(): number {
    return this.footer.virtualSizeBytes;
  }

  /** "fixed", "dynamic" or "differencing". */
  get type(): string {
    return DISK_TYPE_NAMES[this.footer.diskType];
  }

  abstract read(buffer: Uint8Array, offset: number): Promise<void>;
  abstract write(buffer: Uint8Array, offset: number): Promise<void>;
  abstract writeZeros(offset: number, length: number): Promise<void>;
  abstract allocationMap(offset?: number, length?: number, scope?: AllocationScope): Promise<Extent[]>;

  /** Bytes of data held by this layer. */
  protected abstract allocatedBytes(): Promise<number>;

  /** This layer and its parents, top first. */
  chain(): ChainLayer[] {
    return [{ path: this.path, format: "vhd", type: this.type, uniqueId: formatUuid(this.footer.uniqueId) }];
  }

  /** Format-specific fields added to info(). */
  protected extraInfo(): Record<string, unknown> {
    return {};
  }

  async info(): Promise<ImageInfo> {
    this.checkOpen();
    const footer = this.footer;
    return {
      path: this.path,
      format: "vhd",
      type: this.type,
      virtualSize: this.virtualSize,
      logicalSectorSize: 512,
      physicalSectorSize: 512,
      allocatedBytes: await this.allocatedBytes(),
      fileSize: this.fileSizeBytes,
      geometry: { ...footer.geometry },
      creator: `${footer.creatorApplication.replace(/\0/g, "\\0")} ${footer.creatorVersion >>> 16}.${footer.creatorVersion & 0xffff} (${numberToFourCc(footer.creatorHostOs).replace(/\0/g, "")})`,
      creatorApplication: footer.creatorApplication,
      uniqueId: formatUuid(footer.uniqueId),
      createdAt: new Date((footer.timestamp + VHD_EPOCH_SECONDS) * 1000).toISOString(),
      currentSize: footer.currentSizeBytes,
      originalSize: footer.originalSizeBytes,
      savedState: footer.savedState !== 0,
      footerSource: this.footerSource,
      ...this.extraInfo(),
      chain: this.chain(),
    };
  }

  async flush(): Promise<void> {
    this.checkOpen();
    if (!this.readOnly) await datasyncHandle(this.handle, this.path);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.readOnly) await this.flush();
    } finally {
      this.closed = true;
      await this.handle.close();
      await this.closeParents();
    }
  }

  /** Releases resources held beyond the file handle (parents, WASM scratch). */
  protected async closeParents(): Promise<void> {}

  protected checkOpen(): void {
    if (this.closed) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${this.path}: image is closed`, { path: this.path });
  }

  protected checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new VhdsyncError("VHDSYNC_READ_ONLY", `${this.path}: image is open read-only`, { path: this.path });
  }
}
