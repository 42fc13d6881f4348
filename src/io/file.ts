// Positional file I/O that loops over short reads/writes and turns OS errors into
// VhdsyncErrors carrying the path and offset.

import { promises as fsp, readSync, writeSync, type Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { VhdsyncError, toVhdsyncError } from "../errors.js";

/**
 * Refuses a FIFO or a socket (a named pipe, `<(…)`'s /dev/fd/N) where an image or a digest file
 * is read: vhdsync reads those at any offset, which a pipe cannot do (ESPIPE, once reported as
 * an I/O failure, exit 4), and opening a FIFO whose writer has gone waits forever. Paths that
 * cannot be looked at are left to the open that follows, which reports why.
 * @throws VHDSYNC_UNSUPPORTED
 */
export async function refusePipe(path: string, what = "an image or digest file"): Promise<void> {
  const stats = await fsp.stat(path).catch(() => undefined);
  if (stats && (stats.isFIFO() || stats.isSocket())) {
    throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path} is ${kindOf(stats)}: vhdsync reads ${what} at any offset, which needs a file or a block device (save the stream to a file first)`, { path });
  }
}

/** What a file that is not a regular one is, for messages. */
function kindOf(stats: Stats): string {
  return stats.isFIFO() ? "a pipe (FIFO)" : stats.isDirectory() ? "a directory" : stats.isSocket() ? "a socket" : "a device";
}

/**
 * Refuses an output path that exists and is not a regular file (a FIFO, a device, a socket, a
 * directory): outputs are written to a temp file beside the path and renamed over it, which
 * would replace the special file with a regular one (a FIFO's reader would never get the data).
 * @param what e.g. "the digest file"
 * @throws VHDSYNC_INVALID_ARGUMENT
 */
export async function refuseSpecialOutput(path: string, what: string): Promise<void> {
  const stats = await fsp.stat(path).catch(() => undefined);
  if (!stats) return refuseDanglingLink(path, what);
  if (stats.isFile()) return;
  throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${what} ${path} is ${kindOf(stats)}: it is written to a temp file beside it and renamed into place; name a regular file`, { path });
}

/**
 * Refuses a path that is a symbolic link to nothing. Such an output would be created as a new
 * file, and the commit that moves it into place without replacing anything (a hard link)
 * fails on the link's name, after all the work: refused first, as `cp` refuses to write
 * through a dangling link.
 * @throws VHDSYNC_INVALID_ARGUMENT
 */
export async function refuseDanglingLink(path: string, what: string): Promise<void> {
  const link = await fsp.lstat(path).catch(() => undefined);
  if (!link?.isSymbolicLink() || (await fsp.stat(path).then(() => true, () => false))) return;
  const points = await fsp.readlink(path).catch(() => "?");
  throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${what} ${path} is a symbolic link to a missing file (${points}): name the file itself`, { path });
}

/** Opens a file; errors become VhdsyncErrors with the path. */
export async function openFile(path: string, flags: string): Promise<FileHandle> {
  try {
    return await fsp.open(path, flags);
  } catch (error) {
    throw toVhdsyncError(error, { path });
  }
}

/**
 * Reads exactly `buffer.length` bytes at `position`.
 * @throws VHDSYNC_TRUNCATED if the file ends first; I/O codes from the OS.
 */
export async function readExactly(handle: FileHandle, buffer: Uint8Array, position: number, path = ""): Promise<void> {
  const bytesRead = await readUpTo(handle, buffer, position, path);
  if (bytesRead < buffer.length) throw truncated(path, position + bytesRead);
}

function truncated(path: string, offset: number): VhdsyncError {
  return new VhdsyncError("VHDSYNC_TRUNCATED", `${path || "file"}: unexpected end of file at byte ${offset}`, { path, offset });
}

/** Reads up to `buffer.length` bytes at `position`; returns how many (fewer only at end of file). */
export async function readUpTo(handle: FileHandle, buffer: Uint8Array, position: number, path = ""): Promise<number> {
  let done = 0;
  while (done < buffer.length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done));
    } catch (error) {
      throw toVhdsyncError(error, { path, offset: position + done });
    }
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Writes all of `buffer` at `position`. */
export async function writeExactly(handle: FileHandle, buffer: Uint8Array, position: number, path = ""): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    try {
      const { bytesWritten } = await handle.write(buffer, done, buffer.length - done, position + done);
      done += bytesWritten;
    } catch (error) {
      throw toVhdsyncError(error, { path, offset: position + done });
    }
  }
}

/**
 * writeExactly() on the calling thread, by fd: for hot loops of small writes into the page
 * cache, where a thread-pool hop per write costs more than the write.
 */
export function writeExactlySync(fd: number, buffer: Uint8Array, position: number, path = ""): void {
  try {
    for (let done = 0; done < buffer.length; ) done += writeSync(fd, buffer, done, buffer.length - done, position + done);
  } catch (error) {
    throw toVhdsyncError(error, { path, offset: position });
  }
}

/** readUpTo() on the calling thread, by fd. @throws I/O codes */
export function readUpToSync(fd: number, buffer: Uint8Array, position: number, path = ""): number {
  let done = 0;
  try {
    while (done < buffer.length) {
      const n = readSync(fd, buffer, done, buffer.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
  } catch (error) {
    throw toVhdsyncError(error, { path, offset: position + done });
  }
  return done;
}

/** readExactly() on the calling thread, by fd. @throws VHDSYNC_TRUNCATED at end of file, I/O codes */
export function readExactlySync(fd: number, buffer: Uint8Array, position: number, path = ""): void {
  const done = readUpToSync(fd, buffer, position, path);
  if (done < buffer.length) throw truncated(path, position + done);
}

/** A shared all-zero buffer for writing zeros (never written to). */
export const ZERO_CHUNK = new Uint8Array(1024 * 1024);

/** True when every byte of `bytes` is zero (memcmp against ZERO_CHUNK, no WASM needed). */
export function isZeroBytes(bytes: Uint8Array): boolean {
  for (let at = 0; at < bytes.length; at += ZERO_CHUNK.length) {
    const piece = bytes.subarray(at, at + ZERO_CHUNK.length);
    if (Buffer.compare(piece, ZERO_CHUNK.subarray(0, piece.length)) !== 0) return false;
  }
  return true;
}

/** Writes `length` zero bytes at `position`. */
export async function writeZeroBytes(handle: FileHandle, position: number, length: number, path = ""): Promise<void> {
  for (let done = 0; done < length; done += ZERO_CHUNK.length) {
    const n = Math.min(ZERO_CHUNK.length, length - done);
    await writeSmallHere(handle, ZERO_CHUNK.subarray(0, n), position + done, path);
  }
}

/**
 * Writes of at most this many bytes are made on the calling thread by writeSmallHere: a
 * page-cache copy of microseconds. An async call puts the thread to sleep until a libuv pool
 * thread has made it, and while native scan jobs keep both cores busy, waking up again takes
 * ~50-100 us: through the format, a resync into a dynamic VHD spent 0.5 s of 0.65 s applying
 * 4,693 changed blocks that way (docs/vhd.md "Speed").
 */
export const SMALL_IO_BYTES = 256 * 1024;

/** writeExactly(), on the calling thread when `buffer` is small (SMALL_IO_BYTES). */
export async function writeSmallHere(handle: FileHandle, buffer: Uint8Array, position: number, path = ""): Promise<void> {
  if (buffer.length <= SMALL_IO_BYTES) writeExactlySync(handle.fd, buffer, position, path);
  else await writeExactly(handle, buffer, position, path);
}

/** readExactly(), on the calling thread when `buffer` is small (SMALL_IO_BYTES). */
export async function readSmallHere(handle: FileHandle, buffer: Uint8Array, position: number, path = ""): Promise<void> {
  if (buffer.length <= SMALL_IO_BYTES) readExactlySync(handle.fd, buffer, position, path);
  else await readExactly(handle, buffer, position, path);
}

/**
 * Awaits every one of `reads` and then throws the first failure, if any: reads into parts of
 * one buffer must all have stopped before a caller that sees the error reuses the buffer.
 */
export async function settleAll(reads: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(reads)).find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
  if (failed) throw failed.reason;
}

/** Throws VHDSYNC_INVALID_ARGUMENT unless [offset, offset+length) lies inside [0, size). */
export function checkRange(offset: number, length: number, size: number, path = ""): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path}: range ${offset}+${length} outside the disk (${size} bytes)`, {
      path,
      offset,
      length,
      virtualSize: size,
    });
  }
}

/** Device and inode of the file at `path` ("dev:ino"), or undefined when there is none. @throws other I/O codes */
export async function fileKey(path: string): Promise<string | undefined> {
  try {
    const stat = await fsp.stat(path, { bigint: true });
    return `${stat.dev}:${stat.ino}`;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT" || (error as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw toVhdsyncError(error, { path });
  }
}

/**
 * Refuses (VHDSYNC_INVALID_ARGUMENT) an output or state file `path` that is the same file as
 * one of `inputs` (device and inode: links and other spellings count): writing it would
 * destroy that input. A `path` that does not exist yet is nobody's.
 * @param what e.g. "the digest file"
 */
export async function refuseSameFile(path: string, inputs: Array<string | undefined>, what: string, inputRole = ""): Promise<void> {
  const key = await fileKey(path);
  if (key === undefined) return;
  for (const input of inputs) {
    if (input !== undefined && (await fileKey(input)) === key) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${what} ${path} is the same file as ${inputRole}${input}; it would be overwritten`, { path, input });
    }
  }
}
