// The snapshot library API: create, revert, delete, merge and resume. Every call takes the
// disk's lock, finishes an operation a crash left pending on the same disk (its state file), then
// validates the whole snapshot set (a broken chain is VHDSYNC_CHAIN_BROKEN before anything
// is written), then runs its step machine. Semantics: docs/snapshots.md.

import { promises as fsp } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { continueCreate, planCreate } from "./create-steps.js";
import { continueDelete, planDelete } from "./delete-steps.js";
import { continueMerge, planMerge } from "./merge-steps.js";
import { readOperationState, writeOperationState, type OperationState } from "./operation-state.js";
import { continueRevert, planRevert } from "./revert-steps.js";
import type { SnapshotEntry } from "./snapshot-catalogue.js";
import { snapshotPaths, type SnapshotPaths } from "./snapshot-paths.js";
import { assertSameSizes, findSnapshot, loadSnapshotSet } from "./snapshot-set.js";
import type { CopyTuning } from "./copy-ranges.js";
import { faultPoint } from "./fault-injection.js";
import { withDiskLock } from "./disk-lock.js";
import { checkDate, checkOptions, checkPath, checkText } from "../arguments.js";

/** What a snapshot operation reports. */
export interface SnapshotOperationResult {
  disk: string;
  /** The pending operation that was finished first (after a crash), if any. */
  resumed?: { op: string; step: string };
}

/**
 * Finishes the operation a crash left pending on `diskPath`, if any.
 * @returns the state that was resumed, or null
 * @throws VHDSYNC_NOT_FOUND (no such disk and nothing pending: a create stopped between its
 *   rename and its swap may leave the disk's path missing, and is finished), VHDSYNC_BAD_STATE
 *   (unusable state file), VHDSYNC_CHAIN_BROKEN, I/O codes
 */
export async function resumeSnapshotOperation(diskPath: string, tuning: CopyTuning = {}): Promise<OperationState | null> {
  checkPath(diskPath, "diskPath");
  checkOptions(tuning);
  return withDiskLock(snapshotPaths(diskPath), async () => {
    const resumed = await namingInterruption(diskPath, resumePending(diskPath, tuning));
    if (!resumed) await fsp.stat(diskPath).catch((error: unknown) => Promise.reject(toVhdsyncError(error, { path: diskPath })));
    return resumed;
  });
}

/** resumeSnapshotOperation() for a caller that holds the lock. */
async function resumePending(diskPath: string, tuning: CopyTuning): Promise<OperationState | null> {
  const paths = snapshotPaths(diskPath);
  const state = await readOperationState(paths.state);
  if (!state) return null;
  await refuseStateOfAnotherDisk(paths, state);
  switch (state.op) {
    case "create":
      await continueCreate(paths, state);
      break;
    case "revert":
      await continueRevert(paths, state);
      break;
    case "delete":
      await continueDelete(paths, state, tuning);
      break;
    case "merge":
      await continueMerge(paths, state, tuning);
      break;
  }
  return state;
}

/**
 * Refuses a state file made for a disk in another directory: a copy of the disk's directory
 * (or the directory moved since). The state names its files by absolute path, and resuming a
 * copy finished the original's operation on the original's files (renaming one of them into the
 * copy), which broke the original's chain. Same directory means the same directory's identity
 * (device and inode), so another path to it (a symbolic link) is fine.
 * @throws VHDSYNC_BAD_STATE
 */
async function refuseStateOfAnotherDisk(paths: SnapshotPaths, state: OperationState): Promise<void> {
  const identity = (path: string) => fsp.stat(path).then((stats) => `${stats.dev}:${stats.ino}`, () => undefined);
  const recorded = typeof state.disk === "string" ? resolve(state.disk) : "";
  if (basename(recorded) === basename(paths.disk) && (await identity(dirname(recorded))) === (await identity(paths.directory))) return;
  throw new VhdsyncError(
    "VHDSYNC_BAD_STATE",
    `${paths.state}: the unfinished ${state.op} it records is of ${recorded}, not of ${paths.disk} (a copied or moved directory?); finish it where it was made, then copy the directory again (or move it back)`,
    { statePath: paths.state, recordedDisk: recorded, disk: paths.disk },
  );
}

/** Persists the first state of a new operation. */
async function begin<S extends OperationState>(state: S): Promise<S> {
  await writeOperationState(snapshotPaths(state.disk).state, state);
  faultPoint(`${state.op}:begin`);
  return state;
}

/** An interruption (tuning.signal) of `diskPath`'s operation, told how it is finished. */
async function namingInterruption<T>(diskPath: string, run: Promise<T>): Promise<T> {
  try {
    return await run;
  } catch (error) {
    if (!(error instanceof VhdsyncError) || error.code !== "VHDSYNC_INTERRUPTED") throw error;
    throw new VhdsyncError(error.code, `${diskPath}: ${error.message}; \`vhdsync snapshot resume\` or the same command finishes it`, { ...error.details, disk: diskPath }, { cause: error });
  }
}

function resumedField(state: OperationState | null): SnapshotOperationResult["resumed"] {
  return state ? { op: state.op, step: state.step } : undefined;
}

/**
 * Makes the current content of `diskPath` a read-only snapshot layer; the disk's path becomes
 * a new empty differencing child of it. O(1) in the disk size.
 * @throws VHDSYNC_UNSUPPORTED (raw image: convert it to VHD first), VHDSYNC_CHAIN_BROKEN,
 *   VHDSYNC_USAGE (name already used), I/O codes
 */
export async function createSnapshot(diskPath: string, options: { name?: string; now?: Date } = {}): Promise<SnapshotOperationResult & { snapshot: SnapshotEntry }> {
  checkPath(diskPath, "diskPath");
  checkOptions(options);
  // The catalogue holds the name as a string: anything else would make it unreadable.
  if (options?.name !== undefined && options.name !== "") checkText(options.name, "name");
  checkDate(options?.now, "now");
  return withDiskLock(snapshotPaths(diskPath), async () => {
    const resumed = await resumePending(diskPath, {});
    if (resumed?.op === "create" && resumed.name === (options.name ?? "")) {
      const snapshot = { id: resumed.id, name: resumed.name, createdAt: resumed.createdAt, layer: basename(resumed.layerPath), uniqueId: resumed.layerUniqueId };
      return { disk: resumed.disk, resumed: resumedField(resumed), snapshot };
    }
    const set = await loadSnapshotSet(diskPath);
    const state = await begin(await planCreate(set, options.name ?? "", options.now ?? new Date()));
    const snapshot = await continueCreate(set.paths, state);
    return { disk: set.paths.disk, resumed: resumedField(resumed), snapshot };
  });
}

/**
 * Discards what was written to the active disk since `snapshot` (id or name): the disk's path
 * becomes a fresh empty child of the snapshot's layer. Other snapshots are kept.
 * @throws VHDSYNC_USAGE (unknown snapshot), VHDSYNC_CHAIN_BROKEN, I/O codes
 */
export async function revertSnapshot(diskPath: string, snapshot: string): Promise<SnapshotOperationResult & { snapshot: SnapshotEntry }> {
  checkPath(diskPath, "diskPath");
  checkText(snapshot, "snapshot");
  return withDiskLock(snapshotPaths(diskPath), async () => {
    const resumed = await resumePending(diskPath, {});
    const set = await loadSnapshotSet(diskPath);
    const node = findSnapshot(set, snapshot);
    if (resumed?.op === "revert" && resumed.snapshotId === node.snapshot!.id) return { disk: set.paths.disk, resumed: resumedField(resumed), snapshot: node.snapshot! };
    await continueRevert(set.paths, await begin(planRevert(set, node)));
    return { disk: set.paths.disk, resumed: resumedField(resumed), snapshot: node.snapshot! };
  });
}

/**
 * Removes snapshot `snapshot` (id or name) without changing what any other snapshot or the
 * active disk reads: its data is merged into each child, which is re-pointed at its parent.
 * Resumable. A rerun after a crash finishes the pending delete (and then reports success).
 * @throws VHDSYNC_USAGE (unknown snapshot), VHDSYNC_CHAIN_BROKEN, VHDSYNC_INTERRUPTED
 *   (tuning.signal: stopped after a checkpoint; resumable), I/O codes
 */
export async function deleteSnapshot(diskPath: string, snapshot: string, tuning: CopyTuning = {}): Promise<SnapshotOperationResult & { deleted: string }> {
  checkPath(diskPath, "diskPath");
  checkText(snapshot, "snapshot");
  checkOptions(tuning);
  return withDiskLock(snapshotPaths(diskPath), async () => {
    const resumed = await namingInterruption(diskPath, resumePending(diskPath, tuning));
    if (resumed?.op === "delete" && (resumed.snapshotId === snapshot || resumed.snapshotName === snapshot)) {
      return { disk: resumed.disk, resumed: resumedField(resumed), deleted: resumed.snapshotId };
    }
    const set = await loadSnapshotSet(diskPath);
    const node = findSnapshot(set, snapshot);
    assertSameSizes(set, `delete snapshot ${snapshot}`);
    await namingInterruption(diskPath, continueDelete(set.paths, await begin(await planDelete(set, node)), tuning));
    return { disk: set.paths.disk, resumed: resumedField(resumed), deleted: node.snapshot!.id };
  });
}

/**
 * Coalesces the active disk (and the layers above `into`) into snapshot `into` (default: the
 * active disk's parent). The consumed snapshots disappear; the active disk reads the same.
 * Resumable; a rerun after a crash finishes the pending merge (and then reports success).
 * @throws VHDSYNC_USAGE (nothing to merge, not an ancestor), VHDSYNC_UNSUPPORTED (other
 *   snapshots depend on a consumed layer, or it is not a snapshot layer), VHDSYNC_CHAIN_BROKEN,
 *   VHDSYNC_INTERRUPTED (options.signal: stopped after a checkpoint; resumable)
 */
export async function mergeSnapshots(diskPath: string, options: { into?: string } & CopyTuning = {}): Promise<SnapshotOperationResult & { merged: string[] }> {
  checkPath(diskPath, "diskPath");
  checkOptions(options);
  if (options?.into !== undefined) checkText(options.into, "into");
  return withDiskLock(snapshotPaths(diskPath), async () => {
    const resumed = await namingInterruption(diskPath, resumePending(diskPath, options));
    if (resumed?.op === "merge") return { disk: resumed.disk, resumed: resumedField(resumed), merged: resumed.droppedIds };
    const set = await loadSnapshotSet(diskPath);
    const target = options.into ? findSnapshot(set, options.into) : undefined;
    assertSameSizes(set, "merge");
    const state = await begin(planMerge(set, target));
    await namingInterruption(diskPath, continueMerge(set.paths, state, options));
    return { disk: set.paths.disk, resumed: resumedField(resumed), merged: state.droppedIds };
  });
}
