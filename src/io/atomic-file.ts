// Crash-safe files: write a temp file beside the destination, fsync it, rename it over the
// destination, fsync the directory. A crash leaves the old file or the new one, never a mix.
// Used for every state file (resync checkpoints, log-apply state, snapshot catalogue and
// operations) and for outputs that appear only when complete (digest files, convert).

import { lstatSync, promises as fsp, realpathSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";

/** This host's part of temp file names (a directory may be shared between hosts). */
const HOST = hostname().replace(/[^A-Za-z0-9.-]/g, "_");

/** Temp files this process has named so far. */
let tempFilesNamed = 0;

/**
 * A temp path for writing `path`: hidden, beside it, `.NAME.HOST-PID.N.tmp`, unique per call
 * (two writes of one path in one process, such as concurrent library calls, never share one).
 * What follows `HOST-` holds digits and a dot only, so no other host's name can be read into it
 * (host `vm` and host `vm-31337` must not take each other's files for their own).
 */
export function tempPathFor(path: string): string {
  const file = replacedFile(path);
  return join(dirname(file), `.${basename(file)}.${HOST}-${process.pid}.${++tempFilesNamed}.tmp`);
}

/**
 * The file that writing `path` replaces: the one a symbolic link names, else `path`. Outputs
 * are written through a link, as cp and qemu-img write, and the link is kept (renaming over it
 * replaced the link with a regular file and left the file it named as it was). The temp file
 * goes beside that file, so the rename stays inside one filesystem. A link to nothing is `path`
 * (outputs refuse one first: refuseSpecialOutput).
 */
export function replacedFile(path: string): string {
  try {
    return lstatSync(path).isSymbolicLink() ? realpathSync(path) : path;
  } catch {
    return path;
  }
}

/** PID.N (or PID alone: an older vhdsync's name) after a temp file's `.NAME.HOST-`. */
const TEMP_SUFFIX = /^(\d+)(?:\.\d+)?\.tmp$/;

/** Paths whose stale temp files this process has already looked for. */
const swept = new Set<string>();

/**
 * Removes the temp files of `path` that processes of this host which no longer run left
 * behind (killed while writing it), once per path per process. Best effort: a file that
 * cannot be listed or removed is left.
 */
export async function removeStaleTempFiles(written: string): Promise<void> {
  const path = replacedFile(written);
  if (swept.has(path)) return;
  swept.add(path);
  const prefix = `.${basename(path)}.${HOST}-`;
  let names: string[];
  try {
    names = await fsp.readdir(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    const suffix = name.startsWith(prefix) ? TEMP_SUFFIX.exec(name.slice(prefix.length)) : null;
    if (!suffix) continue;
    const pid = Number(suffix[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processRuns(pid)) continue;
    await fsp.rm(join(dirname(path), name), { force: true }).catch(() => undefined);
  }
}

/** Whether a process `pid` runs on this host (EPERM: it does, as another user). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
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

/** Moves a completed, fsynced temp file into place: over `path`, or the file a link at `path` names (see tempPathFor, replacedFile). @throws I/O codes */
export async function commitTempFile(tempPath: string, path: string): Promise<void> {
  await renameDurably(tempPath, replacedFile(path));
}

/**
 * Moves a completed, fsynced temp file into place at a `path` that did not exist when the run
 * began, never over a file that appeared since (another run writing the same new output, or
 * anyone): a hard link, which fails if `path` exists, then the temp name removed. Where the
 * filesystem has no hard links, an existence check and a rename (a window of a few
 * microseconds instead of the whole run).
 * @throws VHDSYNC_BUSY (`path` appeared meanwhile; the temp file is removed), I/O codes
 */
export async function commitNewFile(tempPath: string, path: string): Promise<void> {
  const appeared = () =>
    new VhdsyncError("VHDSYNC_BUSY", `${path} appeared while this run was writing it (another run writing the same output?); it was left as it is: rerun to write it again`, { path });
  try {
    await fsp.link(tempPath, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      await fsp.rm(tempPath, { force: true }).catch(() => undefined);
      throw appeared();
    }
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EMLINK") throw toVhdsyncError(error, { path });
    if (await fsp.lstat(path).then(() => true, () => false)) {
      await fsp.rm(tempPath, { force: true }).catch(() => undefined);
      throw appeared();
    }
    await renameDurably(tempPath, path);
    return;
  }
  try {
    await fsp.unlink(tempPath);
  } catch (error) {
    throw toVhdsyncError(error, { path: tempPath });
  }
  await syncDirectory(dirname(path));
}

/** Writes `data` to `path` atomically. @throws I/O codes */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await removeStaleTempFiles(path);
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
