// DiskImage: the one abstraction every layer above reads and writes disks through — raw
// files, block devices, VHD (fixed/dynamic/differencing chains) and VHDX. Offsets and sizes
// are in bytes (JS numbers: exact up to 2^53, i.e. 8 PiB).

/** A byte range. */
export interface Extent {
  offset: number;
  length: number;
}

/** On-disk formats openImage() recognises. */
export type ImageFormat = "raw" | "block-device" | "vhd" | "vhdx";

/** Which layers an allocation map covers. */
export type AllocationScope = "chain" | "layer";

/** One layer of a differencing chain, top (the opened file) first. */
export interface ChainLayer {
  path: string;
  format: ImageFormat;
  /** e.g. "fixed", "dynamic", "differencing", "raw". */
  type: string;
  uniqueId?: string;
}

/** What `vhdsync info` reports (format-specific fields may be added). */
export interface ImageInfo {
  path: string;
  format: ImageFormat;
  type: string;
  virtualSize: number;
  logicalSectorSize: number;
  physicalSectorSize?: number;
  /** Allocation granularity of the format (VHD/VHDX block size), if any. */
  blockSize?: number;
  /** Bytes of data this layer holds (allocated blocks / non-hole extents). */
  allocatedBytes: number;
  /** File size on the host, for image files. */
  fileSize?: number;
  geometry?: { cylinders: number; heads: number; sectorsPerTrack: number };
  creator?: string;
  uniqueId?: string;
  chain: ChainLayer[];
  [field: string]: unknown;
}

/** Options for openImage(). */
export interface OpenOptions {
  /** Open without write access (default true). A read-only open never modifies the file. */
  readOnly?: boolean;
  /** Force a format instead of detecting it. */
  format?: ImageFormat;
}

/**
 * A virtual disk. All methods may throw VhdsyncError: VHDSYNC_INVALID_ARGUMENT for ranges
 * outside the disk, VHDSYNC_READ_ONLY for writes to a read-only image, I/O codes from the OS.
 */
export interface DiskImage {
  readonly path: string;
  readonly format: ImageFormat;
  /** Size of the virtual disk as a guest sees it, in bytes. */
  readonly virtualSize: number;
  /** Logical sector size in bytes (512 or 4096). */
  readonly logicalSectorSize: number;
  readonly readOnly: boolean;

  /**
   * Reads `buffer.length` bytes of virtual disk content at `offset` into `buffer` (which may
   * be a view of WASM memory). Unallocated ranges read as zeros or from the parent.
   * The range must lie inside the disk.
   */
  read(buffer: Uint8Array, offset: number): Promise<void>;

  /** Writes `buffer` at `offset` (allocating blocks as needed). The range must lie inside the disk. */
  write(buffer: Uint8Array, offset: number): Promise<void>;

  /**
   * Makes a range read as zeros, deallocating it where the format allows (holes in raw
   * files, unallocated blocks in dynamic VHD); otherwise writes zeros.
   */
  writeZeros(offset: number, length: number): Promise<void>;

  /**
   * Ranges that hold data, sorted and coalesced, clipped to [offset, offset+length).
   * scope "chain" (default) includes parents; "layer" only this file.
   * Ranges not listed read as zeros (scope "chain").
   */
  allocationMap(offset?: number, length?: number, scope?: AllocationScope): Promise<Extent[]>;

  /** Structural description for `vhdsync info`. */
  info(): Promise<ImageInfo>;

  /**
   * This image and its parents, top first (info().chain): from the headers already read, so
   * cheap for any image size, where info() may walk the whole allocation map.
   */
  chain(): ChainLayer[];

  /**
   * Changes the virtual size, where the format can (raw files; fixed and dynamic VHDs:
   * docs/vhd.md "Resizing"). Data below the smaller of the two sizes is kept; a grown range
   * reads as zeros. Durable when it returns. It does not look for disks that depend on this
   * one (resizeImage() and resync --resize do).
   * @throws VHDSYNC_UNSUPPORTED for a size the format cannot hold, or a differencing VHD;
   *   nothing written
   */
  resize?(sizeBytes: number): Promise<void>;

  /**
   * Whether resize(sizeBytes) would be refused for the size or the kind of image, without
   * writing anything (VHDs).
   * @throws VHDSYNC_UNSUPPORTED (details.sizeProblem for a size the format cannot hold)
   */
  checkResize?(sizeBytes: number): unknown;

  /** Makes all writes durable (metadata, then fdatasync). */
  flush(): Promise<void>;

  /** Flushes (when writable) and closes; further calls throw. */
  close(): Promise<void>;
}
