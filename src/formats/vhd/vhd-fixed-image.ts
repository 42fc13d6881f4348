// Fixed VHD (VHD spec 1.0, "Fixed Hard Disk Image"): the virtual disk is the first
// virtualSize bytes of the file, followed by the footer. Holes in the file read as zeros;
// writeZeros punches holes where the filesystem allows.

import { checkRange, readExactly, writeExactly, writeZeroBytes } from "../../io/file.js";
import { fileExtents, punchHole } from "../../io/native.js";
import type { AllocationScope, Extent } from "../disk-image.js";
import { VhdImage, type VhdOpenState } from "./vhd-image.js";

/** A fixed VHD opened as a DiskImage. */
export class VhdFixedImage extends VhdImage {
  constructor(state: VhdOpenState) {
    super(state);
  }

  async read(buffer: Uint8Array, offset: number): Promise<void> {
    this.checkOpen();
    checkRange(offset, buffer.length, this.virtualSize, this.path);
    await readExactly(this.handle, buffer, offset, this.path);
  }

  async write(buffer: Uint8Array, offset: number): Promise<void> {
    this.checkWritable();
    checkRange(offset, buffer.length, this.virtualSize, this.path);
    await writeExactly(this.handle, buffer, offset, this.path);
  }

  async writeZeros(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(offset, length, this.virtualSize, this.path);
    if (length === 0) return;
    if (await punchHole(this.handle.fd, offset, length)) return;
    await writeZeroBytes(this.handle, offset, length, this.path);
  }

  async allocationMap(offset = 0, length = this.virtualSize - offset, _scope: AllocationScope = "chain"): Promise<Extent[]> {
    this.checkOpen();
    checkRange(offset, length, this.virtualSize, this.path);
    if (length === 0) return [];
    return (await fileExtents(this.handle.fd, offset, length)) ?? [{ offset, length }];
  }

  protected async allocatedBytes(): Promise<number> {
    return this.virtualSize;
  }
}
