// Crash-safe files: write a temp file beside the destination, fsync it, rename it over the
// destination, fsync the directory. A crash leaves the old file or the new one, never a mix.
// Used for every state file (resync checkpoints, log-apply state, snapshot catalogue and
// operations) and for outputs that appear only when complete (digest files, convert).

import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";

/** Temp path used while writing `path` (hidden, beside it, unique per process). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

/** fsyncs a directory so a rename or unlink inside it is durable. @throws I/O codes */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(directory, "r");
    await handle.sync();
  } catch (error) {
    // Some filesystems refuse fsync on directories; the rename itself already happened.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "EISDIR") throw toVhdsyncError(error, { path: directory });
  } finally {
    await handle?.close();
  }
}

/** Renames `from` over `to` and fsyncs the directory. @throws I/O codes */
export async function renameDurably(from: string, to: string): Promise<void> {
  try {
    await fsp.rename(from, to);
  } catch (error) {
    throw toVhdsyncError(error, { path: to });
  }
  await syncDirectory(dirname(to));
}

/** Moves a completed, fsynced temp file into place (see tempPathFor). @throws I/O codes */
export async function commitTempFile(tempPath: string, path: string): Promise<void> {
  await renameDurably(tempPath, path);
}

/** Writes `data` to `path` atomically. @throws I/O codes */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tempPath = tempPathFor(path);
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(tempPath, "w");
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle?.close();
    handle = undefined;
    await fsp.rm(tempPath, { force: true });
    throw toVhdsyncError(error, { path });
  } finally {
    await handle?.close();
  }
  await commitTempFile(tempPath, path);
}

/** Writes `value` as indented JSON to `path` atomically. @throws I/O codes */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/**
 * Reads a JSON state file; undefined when it does not exist.
 * @throws VHDSYNC_BAD_STATE when it is not JSON; I/O codes
 */
export async function readJsonState(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw toVhdsyncError(error, { path });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: state file is not valid JSON`, { path }, { cause: error });
  }
}

/** Deletes a file (if present) durably. @throws I/O codes */
export async function removeDurably(path: string): Promise<void> {
  try {
    await fsp.rm(path, { force: true });
  } catch (error) {
    throw toVhdsyncError(error, { path });
  }
  await syncDirectory(dirname(path));
}
