// VhdsyncError: the one error type the library throws. Every error has a stable `code`
// (part of the public contract: CLI output, JSON, retry policy) and a `recoverable` flag
// (network, space, memory, transient I/O: retry later; corrupt input, broken chain, size
// mismatch, auth: an administrator must act).

/** Stable error codes and whether each is recoverable by retrying later. */
export const ERROR_CODES = {
  /** Bad command-line usage or invalid argument from the caller. */
  VHDSYNC_USAGE: false,
  /** Invalid argument passed to a library function (a caller bug). */
  VHDSYNC_INVALID_ARGUMENT: false,
  /** A file or device does not exist. */
  VHDSYNC_NOT_FOUND: false,
  /** Permission denied. */
  VHDSYNC_ACCESS_DENIED: false,
  /** Transient I/O failure (EIO, EAGAIN, EINTR, ...). */
  VHDSYNC_IO: true,
  /** No space left on the device (ENOSPC, EDQUOT). */
  VHDSYNC_NO_SPACE: true,
  /** Out of memory (ENOMEM). */
  VHDSYNC_NO_MEMORY: true,
  /** Network failure (ECONNRESET, ETIMEDOUT, ...). */
  VHDSYNC_NETWORK: true,
  /** The operation or filesystem does not support what was asked (ENOTSUP, EXDEV, ENOTTY). */
  VHDSYNC_UNSUPPORTED: false,
  /** Input is corrupt or not in the expected format. */
  VHDSYNC_CORRUPT: false,
  /** Input is truncated (ends before a structure it declares). */
  VHDSYNC_TRUNCATED: false,
  /** A checksum stored in the input does not match its content. */
  VHDSYNC_BAD_CHECKSUM: false,
  /** A differencing chain is broken: missing parent, ID mismatch or loop. */
  VHDSYNC_CHAIN_BROKEN: false,
  /** Two images (or an image and a digest) differ in size. */
  VHDSYNC_SIZE_MISMATCH: false,
  /** A digest file describes a different image than the one given. */
  VHDSYNC_IDENTITY_MISMATCH: false,
  /** A Hyper-V Replica log was not closed cleanly (EOLLocation = 0). */
  VHDSYNC_HRL_UNCLEAN: false,
  /** A log does not follow the last applied log in its chain. */
  VHDSYNC_HRL_OUT_OF_SEQUENCE: false,
  /** The image is open read-only or otherwise not writable. */
  VHDSYNC_READ_ONLY: false,
  /** The operation was interrupted (Ctrl-C, abort signal); it can be resumed. */
  VHDSYNC_INTERRUPTED: true,
  /** Another run is writing the target (or a block device is mounted or claimed); retry later. */
  VHDSYNC_BUSY: true,
  /** A state or checkpoint file is unusable for resuming. */
  VHDSYNC_BAD_STATE: false,
  /** An internal invariant failed (a bug in vhdsync). */
  VHDSYNC_INTERNAL: false,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Extra structured fields attached to an error (paths, offsets, expected/actual values). */
export type ErrorDetails = Record<string, unknown>;

/** The error type of vhdsync: a stable `code`, a `recoverable` flag and structured details. */
export class VhdsyncError extends Error {
  override readonly name = "VhdsyncError";
  readonly code: ErrorCode;
  readonly recoverable: boolean;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.recoverable = ERROR_CODES[code];
    this.details = details;
  }

  /** JSON form used by `--json` output. */
  toJSON(): { code: ErrorCode; message: string; recoverable: boolean; details: ErrorDetails } {
    return { code: this.code, message: this.message, recoverable: this.recoverable, details: this.details };
  }
}

/** errno name → error code. Anything not listed maps to VHDSYNC_IO (recoverable). */
const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOENT: "VHDSYNC_NOT_FOUND",
  ENOTDIR: "VHDSYNC_NOT_FOUND",
  EACCES: "VHDSYNC_ACCESS_DENIED",
  EPERM: "VHDSYNC_ACCESS_DENIED",
  EROFS: "VHDSYNC_READ_ONLY",
  ENOSPC: "VHDSYNC_NO_SPACE",
  EDQUOT: "VHDSYNC_NO_SPACE",
  EFBIG: "VHDSYNC_NO_SPACE",
  ENOMEM: "VHDSYNC_NO_MEMORY",
  EINVAL: "VHDSYNC_INVALID_ARGUMENT",
  EBADF: "VHDSYNC_INVALID_ARGUMENT",
  EISDIR: "VHDSYNC_INVALID_ARGUMENT",
  ENOTTY: "VHDSYNC_UNSUPPORTED",
  ENOTSUP: "VHDSYNC_UNSUPPORTED",
  EOPNOTSUPP: "VHDSYNC_UNSUPPORTED",
  EXDEV: "VHDSYNC_UNSUPPORTED",
  ENOSYS: "VHDSYNC_UNSUPPORTED",
  ECONNRESET: "VHDSYNC_NETWORK",
  ECONNREFUSED: "VHDSYNC_NETWORK",
  ETIMEDOUT: "VHDSYNC_NETWORK",
  EPIPE: "VHDSYNC_NETWORK",
  EHOSTUNREACH: "VHDSYNC_NETWORK",
  ENETUNREACH: "VHDSYNC_NETWORK",
};

/** Maps an errno name (e.g. "ENOSPC") to a vhdsync error code. */
export function codeForErrno(errno: string): ErrorCode {
  return ERRNO_CODES[errno] ?? "VHDSYNC_IO";
}

/**
 * Wraps anything thrown by Node's fs/net APIs (or native code) into a VhdsyncError.
 * VhdsyncErrors pass through unchanged.
 */
export function toVhdsyncError(error: unknown, context: ErrorDetails = {}): VhdsyncError {
  if (error instanceof VhdsyncError) return error;
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  // Node's own check of an argument passed on to it (a path that is not a string, or holds a NUL).
  if (errno === "ERR_INVALID_ARG_TYPE" || errno === "ERR_INVALID_ARG_VALUE") return new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", message, context, { cause: error });
  if (typeof errno === "string" && /^E[A-Z0-9]+$/.test(errno)) {
    return new VhdsyncError(codeForErrno(errno), message, { errno, ...context }, { cause: error });
  }
  return new VhdsyncError("VHDSYNC_INTERNAL", message, context, { cause: error });
}

/** CLI exit code for an error: 2 usage, 4 recoverable environment failure, 3 otherwise. */
export function exitCodeFor(error: VhdsyncError): number {
  if (error.code === "VHDSYNC_USAGE") return 2;
  return error.recoverable ? 4 : 3;
}

/** Throws VHDSYNC_INTERRUPTED ("<what> interrupted") once `signal` is aborted: a clean stop between two pieces of work. */
export function stopIfAborted(signal: AbortSignal | undefined, what: string, details: ErrorDetails = {}): void {
  if (signal?.aborted) throw new VhdsyncError("VHDSYNC_INTERRUPTED", `${what} interrupted`, details);
}
