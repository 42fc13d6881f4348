// Common base of the three VHD disk types (VHD spec 1.0): the open file, its footer, the
// open/closed/writable checks and the parts of `info()` every type shares. Fixed, dynamic
// and differencing disks extend it (vhd-fixed-image.ts, vhd-dynamic-image.ts,
// vhd-differencing-image.ts); openVhd() picks the class.

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError } from "../../errors.js";
import type { AllocationScope, ChainLayer, DiskImage, Extent, ImageInfo } from "../disk-image.js";
import { datasyncHandle } from "../flat-file.js";
import { DISK_TYPE_NAMES, VHD_EPOCH_SECONDS, buildFooter, formatUuid, geometryForSize, numberToFourCc, parseFooter, type VhdFooter } from "./vhd-structures.js";

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
  /** "end" normally; "copy" when the footer at the end was damaged and the copy at offset 0 was used. */
  readonly footerSource: FooterSource;
  protected readonly handle: FileHandle;
  protected fileSizeBytes: number;
  private currentFooter: VhdFooter;
  private closed = false;

  protected constructor(state: VhdOpenState) {
    this.path = state.path;
    this.handle = state.handle;
    this.readOnly = state.readOnly;
    this.currentFooter = state.footer;
    this.footerSource = state.footerSource;
    this.fileSizeBytes = state.fileSizeBytes;
  }

  /** The footer in use (a resize replaces it). */
  get footer(): VhdFooter {
    return this.currentFooter;
  }

  protected setFooter(footer: VhdFooter): void {
    this.currentFooter = footer;
  }

  /**
   * This disk's footer at `sizeBytes`: the original and current sizes and the CHS geometry for
   * it, every other field kept. The spec has the original size record the size at creation,
   * but libvhdi reports it as the disk's size: both are set so that every reader sees one size
   * (docs/vhd.md "Resizing"). Parsed
   * back, so a size the footer cannot describe is refused before anything is written: a
   * creator whose size rule takes the CHS geometry (docs/vhd.md "Size rule") describes only
   * the sizes that geometry does.
   * @throws VHDSYNC_UNSUPPORTED (details.sizeProblem)
   */
  protected footerForSize(sizeBytes: number, maxBytes: number): VhdFooter {
    const refuse = (why: string) =>
      new VhdsyncError("VHDSYNC_UNSUPPORTED", `${this.path}: cannot resize this ${this.type} VHD to ${sizeBytes} bytes: ${why}`, { path: this.path, sizeBytes, virtualSizeBytes: this.virtualSize, sizeProblem: true });
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % 512 !== 0) throw refuse("a VHD's size is a positive multiple of 512 bytes");
    if (sizeBytes > maxBytes) throw refuse(`a ${this.type} VHD holds at most ${maxBytes} bytes`);
    const footer = parseFooter(buildFooter({ ...this.footer, originalSizeBytes: sizeBytes, currentSizeBytes: sizeBytes, geometry: geometryForSize(sizeBytes) }), Number.MAX_SAFE_INTEGER, { path: this.path });
    if (footer.virtualSizeBytes !== sizeBytes) {
      const creator = JSON.stringify(this.footer.creatorApplication);
      throw refuse(`its creator application ${creator} makes readers take the size from the CHS geometry, which describes ${footer.virtualSizeBytes} bytes`);
    }
    return footer;
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
