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
