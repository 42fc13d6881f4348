// Small JSON state files written atomically (temp file, fsync, rename, fsync the directory),
// so a crash leaves either the old or the new content, never a torn file.

import { promises as fsp } from "node:fs";
import { dirname } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";

/** Writes `value` as JSON to `path` atomically. @throws I/O codes */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    const handle = await fsp.open(temp, "w");
    try {
      await handle.writeFile(JSON.stringify(value, null, 2) + "\n");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, path);
    await syncDirectory(dirname(path));
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw toVhdsyncError(error, { path });
  }
}

/** Renames `from` to `to` and fsyncs the directory. @throws I/O codes */
export async function renameDurably(from: string, to: string): Promise<void> {
  try {
    await fsp.rename(from, to);
    await syncDirectory(dirname(to));
  } catch (error) {
    throw toVhdsyncError(error, { path: to });
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await fsp.open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads a JSON state file; undefined if it does not exist.
 * @throws VHDSYNC_BAD_STATE if it is not JSON, I/O codes
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

/** Deletes a file durably if it exists. */
export async function removeDurably(path: string): Promise<void> {
  try {
    await fsp.rm(path, { force: true });
    await syncDirectory(dirname(path));
  } catch (error) {
    throw toVhdsyncError(error, { path });
  }
}
