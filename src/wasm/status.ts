// WASM status code → VhdsyncError. Mirrors assembly/status.ts; each format adds its range
// here (100-199 VHD, 200-299 VHDX, 300-399 HRL, 400-499 digest files).

import { VhdsyncError, type ErrorCode, type ErrorDetails } from "../errors.js";

export const STATUS_OK = 0;

/** Each status code: its error code and a human description. */
export const STATUS_TABLE: Record<number, { code: ErrorCode; message: string }> = {
  1: { code: "VHDSYNC_INTERNAL", message: "bad argument passed to a WASM kernel" },
  2: { code: "VHDSYNC_INTERNAL", message: "WASM output area too small" },
  3: { code: "VHDSYNC_INVALID_ARGUMENT", message: "unknown hash algorithm" },
  4: { code: "VHDSYNC_INVALID_ARGUMENT", message: "block size must be a power of two within range" },
  // 100-199 VHD (assembly/status.ts, assembly/vhd/)
  100: { code: "VHDSYNC_CORRUPT", message: "VHD footer cookie is not \"conectix\"" },
  101: { code: "VHDSYNC_BAD_CHECKSUM", message: "VHD footer checksum does not match" },
  102: { code: "VHDSYNC_UNSUPPORTED", message: "VHD file format version is not 1.x" },
  103: { code: "VHDSYNC_UNSUPPORTED", message: "VHD disk type is not fixed, dynamic or differencing" },
  104: { code: "VHDSYNC_CORRUPT", message: "VHD current size is not a multiple of 512 or exceeds 64 TiB" },
  105: { code: "VHDSYNC_TRUNCATED", message: "VHD dynamic header offset lies past the end of the file" },
  106: { code: "VHDSYNC_TRUNCATED", message: "fixed VHD file is shorter than its virtual size plus footer" },
  110: { code: "VHDSYNC_CORRUPT", message: "VHD dynamic header cookie is not \"cxsparse\"" },
  111: { code: "VHDSYNC_BAD_CHECKSUM", message: "VHD dynamic header checksum does not match" },
  112: { code: "VHDSYNC_UNSUPPORTED", message: "VHD dynamic header version is not 1.x" },
  113: { code: "VHDSYNC_CORRUPT", message: "VHD block size is not a power of two from 512 B to 256 MiB" },
  114: { code: "VHDSYNC_CORRUPT", message: "VHD BAT overlaps the footer copy or the dynamic header" },
  115: { code: "VHDSYNC_TRUNCATED", message: "VHD BAT extends past the end of the file" },
  116: { code: "VHDSYNC_CORRUPT", message: "VHD BAT has fewer entries than the virtual size needs" },
  117: { code: "VHDSYNC_UNSUPPORTED", message: "VHD BAT has more than 2^22 entries" },
  118: { code: "VHDSYNC_CORRUPT", message: "VHD parent locator data lies outside the file or is too long" },
  120: { code: "VHDSYNC_TRUNCATED", message: "VHD BAT entry points at a block past the end of the data area" },
  121: { code: "VHDSYNC_CORRUPT", message: "VHD BAT entries point at overlapping blocks" },
  122: { code: "VHDSYNC_CORRUPT", message: "VHD BAT entry points at a block overlapping metadata" },
  123: { code: "VHDSYNC_CORRUPT", message: "VHD sector with a clear bitmap bit holds non-zero data" },
};

/** Builds the VhdsyncError for a non-zero status (`what` says which operation failed). */
export function statusError(status: number, what: string, details: ErrorDetails = {}): VhdsyncError {
  const entry = STATUS_TABLE[status];
  if (!entry) return new VhdsyncError("VHDSYNC_INTERNAL", `${what}: unknown WASM status ${status}`, { status, ...details });
  return new VhdsyncError(entry.code, `${what}: ${entry.message}`, { status, ...details });
}

/** Throws the mapped VhdsyncError unless `status` is STATUS_OK. */
export function checkStatus(status: number, what: string, details?: ErrorDetails): void {
  if (status !== STATUS_OK) throw statusError(status, what, details);
}
