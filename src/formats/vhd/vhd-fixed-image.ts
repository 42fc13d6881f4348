// Fixed VHD (VHD spec 1.0, "Fixed Hard Disk Image"): the virtual disk is the first
// virtualSize bytes of the file, followed by the footer. Holes in the file read as zeros;
// writeZeros punches holes where the filesystem allows.

import { toVhdsyncError } from "../../errors.js";
import { writeExactly } from "../../io/file.js";
import type { AllocationScope, Extent } from "../disk-image.js";
import { allocationMapFlat, datasyncHandle, readFlat, writeFlat, writeZerosFlat, zeroFileBytes, type FlatFile } from "../flat-file.js";
import { VhdImage, type VhdOpenState } from "./vhd-image.js";
import { VHD_FOOTER_BYTES, VHD_MAX_FIXED_BYTES, buildFooter, type VhdFooter } from "./vhd-structures.js";

/** A fixed VHD opened as a DiskImage. */
export class VhdFixedImage extends VhdImage {
  constructor(state: VhdOpenState) {
    super(state);
  }

  /** The virtual disk: the first virtualSize bytes of the file, before the footer. */
  private get flat(): FlatFile {
    return { handle: this.handle, path: this.path, sizeBytes: this.virtualSize, sparse: true };
  }

  /** The file behind the virtual disk (FlatDataImage: hot paths use it directly). */
  get flatData(): FlatFile {
    return this.flat;
  }

  async read(buffer: Uint8Array, offset: number): Promise<void> {
    this.checkOpen();
    await readFlat(this.flat, buffer, offset);
  }

  async write(buffer: Uint8Array, offset: number): Promise<void> {
    this.checkWritable();
    await writeFlat(this.flat, buffer, offset);
  }

  async writeZeros(offset: number, length: number): Promise<void> {
    this.checkWritable();
    await writeZerosFlat(this.flat, offset, length);
  }

  async allocationMap(offset = 0, length = this.virtualSize - offset, _scope: AllocationScope = "chain"): Promise<Extent[]> {
    this.checkOpen();
    return allocationMapFlat(this.flat, offset, length);
  }

  /**
   * Changes the virtual size: the footer (current size, geometry) is written at the new end
   * first, then what a grown disk's file held past the old size is zeroed (the old footer, and
   * a tail a CHS-sized disk kept hidden: disk data now; the rest of the grown range is a hole,
   * zeros) and the file cut after the new footer, or a shrunk file is cut; then
   * fdatasync. A crash in between leaves a disk that opens: at the new size with the old
   * footer's 512 bytes (and a CHS-sized disk's hidden tail) in it, or at the old size with 512
   * bytes past the new end overwritten. Both only hold bytes the resize gives up, and a resync
   * compares them; a resize to the size the disk then has does nothing, so they stay.
   * @throws VHDSYNC_UNSUPPORTED (a size the footer cannot hold: see footerForSize), I/O codes
   */
  async resize(sizeBytes: number): Promise<void> {
    this.checkWritable();
    const oldSize = this.virtualSize;
    if (sizeBytes === oldSize) return;
    const footer = this.checkResize(sizeBytes);
    const oldFileBytes = this.fileSizeBytes;
    await writeExactly(this.handle, buildFooter(footer), sizeBytes, this.path);
    if (sizeBytes > oldSize) {
      // What the file held past the old size now lies inside the disk: the old footer, and
      // before it the tail a creator that takes the size from the CHS geometry (VirtualBox,
      // Virtual PC) keeps hidden when its footer's size is larger. Both must read as zeros.
      const staleEnd = Math.min(sizeBytes, oldFileBytes);
      await zeroFileBytes(this.handle, oldSize, staleEnd - oldSize, this.path);
      if (oldFileBytes > sizeBytes + VHD_FOOTER_BYTES) await this.truncateTo(sizeBytes + VHD_FOOTER_BYTES);
    } else {
      await this.truncateTo(sizeBytes + VHD_FOOTER_BYTES);
    }
    await datasyncHandle(this.handle, this.path);
    this.setFooter(footer);
    this.fileSizeBytes = sizeBytes + VHD_FOOTER_BYTES;
  }

  private async truncateTo(fileBytes: number): Promise<void> {
    try {
      await this.handle.truncate(fileBytes);
    } catch (error) {
      throw toVhdsyncError(error, { path: this.path });
    }
  }

  /**
   * Whether this disk can take `sizeBytes`, without writing anything; the footer for it.
   * @throws VHDSYNC_UNSUPPORTED (details.sizeProblem)
   */
  checkResize(sizeBytes: number): VhdFooter {
    return this.footerForSize(sizeBytes, VHD_MAX_FIXED_BYTES);
  }

  protected async allocatedBytes(): Promise<number> {
    return this.virtualSize;
  }
}
