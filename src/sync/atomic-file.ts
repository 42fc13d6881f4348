// Crash-safe replacement of small state files and streamed outputs: write a temp file beside
// the destination, fsync it, rename over the destination, fsync the directory. A crash leaves
// either the old file or the new one, never a mix.

import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { toVhdsyncError } from "../errors.js";

/** Temp path used while writing `path`. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

/** fsyncs a directory so a rename inside it is durable. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(directory, "r");
    await handle.sync();
  } catch (error) {
    // Some filesystems refuse fsync on directories; the rename itself already happened.
    if ((error as NodeJS.ErrnoException).code !== "EINVAL" && (error as NodeJS.ErrnoException).code !== "EISDIR") throw toVhdsyncError(error, { path: directory });
  } finally {
    await handle?.close();
  }
}

/** Moves a fully written and fsynced temp file into place durably. */
export async function commitTempFile(tempPath: string, path: string): Promise<void> {
  try {
    await fsp.rename(tempPath, path);
  } catch (error) {
    throw toVhdsyncError(error, { path });
  }
  await syncDirectory(dirname(path));
}

/** Writes `data` to `path` atomically (temp, fsync, rename, fsync dir). @throws I/O codes */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tempPath = tempPathFor(path);
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(tempPath, "w");
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await fsp.rm(tempPath, { force: true });
    throw toVhdsyncError(error, { path });
  } finally {
    await handle?.close();
  }
  await commitTempFile(tempPath, path);
}
