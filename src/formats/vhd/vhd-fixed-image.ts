// Fixed VHD (VHD spec 1.0, "Fixed Hard Disk Image"): the virtual disk is the first
// virtualSize bytes of the file, followed by the footer. Holes in the file read as zeros;
// writeZeros punches holes where the filesystem allows.

import type { AllocationScope, Extent } from "../disk-image.js";
import { allocationMapFlat, readFlat, writeFlat, writeZerosFlat, type FlatFile } from "../flat-file.js";
import { VhdImage, type VhdOpenState } from "./vhd-image.js";

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

  protected async allocatedBytes(): Promise<number> {
    return this.virtualSize;
  }
}
