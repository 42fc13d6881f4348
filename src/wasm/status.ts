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
  // 200-299 VHDX (assembly/status.ts)
  200: { code: "VHDSYNC_CORRUPT", message: "not a VHDX file (file type identifier is not \"vhdxfile\")" },
  201: { code: "VHDSYNC_CORRUPT", message: "VHDX has no valid header (bad \"head\" signatures)" },
  202: { code: "VHDSYNC_BAD_CHECKSUM", message: "VHDX headers fail their CRC-32C check" },
  203: { code: "VHDSYNC_UNSUPPORTED", message: "unsupported VHDX version or log version" },
  204: { code: "VHDSYNC_CORRUPT", message: "VHDX log offset/length invalid" },
  205: { code: "VHDSYNC_BAD_CHECKSUM", message: "VHDX region tables fail their CRC-32C check" },
  206: { code: "VHDSYNC_CORRUPT", message: "VHDX region table is corrupt" },
  207: { code: "VHDSYNC_UNSUPPORTED", message: "VHDX has an unknown required region" },
  208: { code: "VHDSYNC_CORRUPT", message: "VHDX BAT or metadata region missing" },
  209: { code: "VHDSYNC_CORRUPT", message: "VHDX metadata table is corrupt" },
  210: { code: "VHDSYNC_UNSUPPORTED", message: "VHDX has an unknown required metadata item" },
  211: { code: "VHDSYNC_CORRUPT", message: "VHDX required metadata item missing" },
  212: { code: "VHDSYNC_CORRUPT", message: "VHDX block size must be a power of two from 1 MiB to 256 MiB" },
  213: { code: "VHDSYNC_CORRUPT", message: "VHDX sector size must be 512 or 4096" },
  214: { code: "VHDSYNC_CORRUPT", message: "VHDX virtual disk size invalid (not a sector multiple or above 64 TiB)" },
  215: { code: "VHDSYNC_CORRUPT", message: "VHDX BAT region too small for the disk size" },
  216: { code: "VHDSYNC_CORRUPT", message: "VHDX BAT entry has an invalid state" },
  217: { code: "VHDSYNC_CORRUPT", message: "VHDX BAT entry points into the header section" },
  218: { code: "VHDSYNC_TRUNCATED", message: "VHDX BAT entry points past the end of the file" },
  219: { code: "VHDSYNC_CORRUPT", message: "VHDX parent locator is corrupt" },
  220: { code: "VHDSYNC_UNSUPPORTED", message: "VHDX parent locator type is not supported" },
  221: { code: "VHDSYNC_CORRUPT", message: "VHDX log is not empty but has no valid sequence to replay" },
  222: { code: "VHDSYNC_TRUNCATED", message: "VHDX file is shorter than its log says it must be" },
  223: { code: "VHDSYNC_CORRUPT", message: "VHDX log entry is malformed" },
  224: { code: "VHDSYNC_BAD_CHECKSUM", message: "VHDX log entry fails its CRC-32C check" },
  225: { code: "VHDSYNC_CORRUPT", message: "VHDX BAT entry points into the BAT, metadata or log region" },
  // 300-399 HRL ([MS-HRL], assembly/hrl/)
  300: { code: "VHDSYNC_TRUNCATED", message: "Hyper-V Replica log is truncated" },
  301: { code: "VHDSYNC_CORRUPT", message: "not a Hyper-V Replica log (cookie is not \"msctlog\")" },
  302: { code: "VHDSYNC_BAD_CHECKSUM", message: "HRL header checksum does not match" },
  303: { code: "VHDSYNC_UNSUPPORTED", message: "unsupported HRL LogFormatVersion (1.x and 2.x are read)" },
  304: { code: "VHDSYNC_UNSUPPORTED", message: "HRL FileType is not 0 (not a replica log)" },
  305: { code: "VHDSYNC_CORRUPT", message: "HRL MetadataSize must be a multiple of 32 from 64 bytes to 1 MiB" },
  306: { code: "VHDSYNC_CORRUPT", message: "HRL EOLLocation cannot end a metadata block" },
  307: { code: "VHDSYNC_HRL_UNCLEAN", message: "log was not closed cleanly (EOLLocation is 0); resynchronization required" },
  308: { code: "VHDSYNC_HRL_UNCLEAN", message: "log records a change-tracking error (ErrorCode is not 0); resynchronization required" },
  310: { code: "VHDSYNC_BAD_CHECKSUM", message: "HRL metadata header checksum does not match" },
  311: { code: "VHDSYNC_CORRUPT", message: "HRL PreviousMetadataLocation points outside the log" },
  312: { code: "VHDSYNC_CORRUPT", message: "HRL ValidMetadataEntries exceeds the metadata block" },
  313: { code: "VHDSYNC_BAD_CHECKSUM", message: "HRL metadata entry checksum does not match" },
  314: { code: "VHDSYNC_CORRUPT", message: "HRL metadata entry MetaOperation is not 1 (write)" },
  315: { code: "VHDSYNC_SIZE_MISMATCH", message: "HRL entry writes past the end of the disk" },
  316: { code: "VHDSYNC_CORRUPT", message: "HRL entry data lengths do not fill the space before their metadata block" },
  317: { code: "VHDSYNC_BAD_CHECKSUM", message: "HRL entry data does not match its DataChecksum" },
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
