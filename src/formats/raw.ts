// Raw disk images and Linux block devices: the virtual disk is the file's bytes. Holes are
// found with the native addon (SEEK_DATA/SEEK_HOLE) when present; zero ranges become holes
// (FALLOC_FL_PUNCH_HOLE) on files, zero writes elsewhere.

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { openFile } from "../io/file.js";
import { blockDeviceInfo } from "../io/native.js";
import type { AllocationScope, ChainLayer, DiskImage, Extent, ImageInfo } from "./disk-image.js";
import { allocatedBytesOf } from "./extents.js";
import { allocationMapFlat, datasyncHandle, readFlat, writeFlat, writeFlatSync, writeZerosFlat, type FlatFile } from "./flat-file.js";

/** A raw image file or block device opened as a DiskImage. */
export class RawImage implements DiskImage {
  readonly format: "raw" | "block-device";
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly readOnly: boolean,
    public virtualSize: number,
    readonly logicalSectorSize: number,
    private readonly physicalSectorSize: number,
    isBlockDevice: boolean,
  ) {
    this.format = isBlockDevice ? "block-device" : "raw";
  }

  /** Opens a raw file or block device. @throws VHDSYNC_NOT_FOUND, VHDSYNC_ACCESS_DENIED, ... */
  static async open(path: string, readOnly = true): Promise<RawImage> {
    const handle = await openFile(path, readOnly ? "r" : "r+");
    try {
      const stat = await handle.stat();
      if (stat.isBlockDevice()) {
        const device = blockDeviceInfo(handle.fd, path);
        if (!device) throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path}: cannot determine the size of this block device`, { path });
        return new RawImage(path, handle, readOnly, device.sizeBytes, device.logicalSectorSize, device.physicalSectorSize, true);
      }
      if (!stat.isFile()) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path}: not a regular file or block device`, { path });
      return new RawImage(path, handle, readOnly, stat.size, 512, 4096, false);
    } catch (error) {
      await handle.close();
      throw toVhdsyncError(error, { path });
    }
  }

  /** Creates (or truncates) a sparse raw file of `sizeBytes`. */
  static async create(path: string, sizeBytes: number): Promise<RawImage> {
    const handle = await openFile(path, "w+");
    try {
      await handle.truncate(sizeBytes);
    } catch (error) {
      await handle.close();
      throw toVhdsyncError(error, { path });
    }
    return new RawImage(path, handle, false, sizeBytes, 512, 4096, false);
  }

  /** The file descriptor (for native calls). */
  get fd(): number {
    return this.handle.fd;
  }

  /** The data range this image addresses (the whole file or device). */
  private get flat(): FlatFile {
    return { handle: this.handle, path: this.path, sizeBytes: this.virtualSize, sparse: this.format === "raw", blockDevice: this.format === "block-device" };
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

  /** write() on the calling thread: for hot loops of writes that land in the page cache. */
  writeSync(buffer: Uint8Array, offset: number): void {
    this.checkWritable();
    writeFlatSync(this.flat, buffer, offset);
  }

  async writeZeros(offset: number, length: number): Promise<void> {
    this.checkWritable();
    await writeZerosFlat(this.flat, offset, length);
  }

  async allocationMap(offset = 0, length = this.virtualSize - offset, _scope: AllocationScope = "chain"): Promise<Extent[]> {
    this.checkOpen();
    return allocationMapFlat(this.flat, offset, length);
  }

  /** Changes the size of a raw file (grown ranges read as zeros); a block device only keeps its own. */
  async resize(sizeBytes: number): Promise<void> {
    this.checkWritable();
    if (sizeBytes === this.virtualSize) return;
    if (this.format !== "raw") throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${this.path}: cannot resize a block device`, { path: this.path });
    try {
      await this.handle.truncate(sizeBytes);
    } catch (error) {
      throw toVhdsyncError(error, { path: this.path });
    }
    this.virtualSize = sizeBytes;
  }

  async info(): Promise<ImageInfo> {
    this.checkOpen();
    const stat = await this.handle.stat();
    const allocatedBytes = await allocatedBytesOf((offset, length) => this.allocationMap(offset, length), this.virtualSize);
    return {
      path: this.path,
      format: this.format,
      type: this.format,
      virtualSize: this.virtualSize,
      logicalSectorSize: this.logicalSectorSize,
      physicalSectorSize: this.physicalSectorSize,
      allocatedBytes,
      fileSize: this.format === "raw" ? stat.size : undefined,
      diskUsageBytes: this.format === "raw" ? stat.blocks * 512 : undefined,
      chain: this.chain(),
    };
  }

  chain(): ChainLayer[] {
    return [{ path: this.path, format: this.format, type: this.format }];
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
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${this.path}: image is closed`, { path: this.path });
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new VhdsyncError("VHDSYNC_READ_ONLY", `${this.path}: image is open read-only`, { path: this.path });
  }
}
