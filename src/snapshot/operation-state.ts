// The pending-operation state file (`<disk>.snapshot-op.json`) of the snapshot step
// machines: which operation runs, which step it reached, and everything needed to finish
// it after a crash. Each step is idempotent; the file is rewritten atomically (temp, fsync,
// rename, fsync dir) before the step it names starts. Format: docs/snapshots.md.

import { VhdsyncError } from "../errors.js";
import { readJsonState, removeDurably, writeJsonAtomic } from "../io/atomic-file.js";
import { sealJson, unsealState } from "../hash/sealed-json.js";

/**
 * 2: sealed with a `checksum` (src/hash/sealed-json.ts): a changed digit of `cursorBytes`
 * would skip data a delete or merge still had to copy. Version 1 files (unsealed) are still
 * read; every write is version 2.
 */
export const OPERATION_STATE_VERSION = 2;
const UNSEALED_VERSION = 1;

/** Fields every state has. */
export interface CommonState {
  version: number;
  /** Absolute path of the active disk. */
  disk: string;
  startedAt: string;
}

/** `snapshot create`: hard-link the active file to the layer name, create the new child, swap it in. */
export interface CreateState extends CommonState {
  op: "create";
  step: "link" | "create-child" | "swap" | "catalogue";
  id: string;
  name: string;
  createdAt: string;
  /** Absolute path of the new layer (the old active file's new name). */
  layerPath: string;
  /** Where the new active child is built before it is renamed over the disk. */
  tempPath: string;
  /** Unique id of the active disk before the operation (becomes the layer's). */
  layerUniqueId: string;
}

/** `snapshot revert`: build a fresh child of the snapshot's layer, rename it over the disk. */
export interface RevertState extends CommonState {
  op: "revert";
  step: "create-child" | "swap";
  snapshotId: string;
  layerPath: string;
  tempPath: string;
}

/** `snapshot delete`: copy the layer into each child, re-point each child, forget the layer. */
export interface DeleteState extends CommonState {
  op: "delete";
  step: "copy" | "reparent" | "catalogue" | "remove";
  snapshotId: string;
  snapshotName: string;
  layerPath: string;
  /** The deleted layer's parent (what its children are re-pointed at); null for a base layer. */
  parentPath: string | null;
  /** Children of the deleted layer (snapshot layers and/or the active disk). */
  children: string[];
  /** Modification times of the children before the operation (restored after each copy). */
  childMtimesMs: number[];
  /** Index in `children` of the child being processed. */
  childIndex: number;
  /** Copy cursor in the current child: virtual offset below which everything is copied. */
  cursorBytes: number;
}

/** `snapshot merge`: copy the active view into an ancestor layer, rename it over the disk. */
export interface MergeState extends CommonState {
  op: "merge";
  step: "catalogue" | "copy" | "swap" | "cleanup";
  /** Layer receiving the data (becomes the active disk). */
  targetPath: string;
  targetUniqueId: string;
  /** Layers strictly between the active disk and the target (removed at the end). */
  intermediatePaths: string[];
  /** Snapshot ids dropped from the catalogue (the target's and the intermediates'). */
  droppedIds: string[];
  cursorBytes: number;
}

/** The state file's content. */
export type OperationState = CreateState | RevertState | DeleteState | MergeState;

const STEPS: Record<OperationState["op"], readonly string[]> = {
  create: ["link", "create-child", "swap", "catalogue"],
  revert: ["create-child", "swap"],
  delete: ["copy", "reparent", "catalogue", "remove"],
  merge: ["catalogue", "copy", "swap", "cleanup"],
};

/**
 * Reads the pending operation of a disk, or null when there is none.
 * @throws VHDSYNC_BAD_STATE when the file is unusable; I/O codes
 */
export async function readOperationState(path: string): Promise<OperationState | null> {
  const value = (await readJsonState(path)) as OperationState | undefined;
  if (value === undefined) return null;
  const steps = STEPS[value?.op as OperationState["op"]];
  if ((value?.version !== OPERATION_STATE_VERSION && value?.version !== UNSEALED_VERSION) || !steps || !steps.includes(value.step)) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: not a version ${UNSEALED_VERSION} or ${OPERATION_STATE_VERSION} snapshot operation state`, { path });
  }
  return unsealState(value, OPERATION_STATE_VERSION, path, "snapshot operation state");
}

/** Persists the state atomically (before the step it names starts). */
export async function writeOperationState(path: string, state: OperationState): Promise<void> {
  await writeJsonAtomic(path, sealJson({ ...state, version: OPERATION_STATE_VERSION }));
}

/** Removes the state file durably (the operation is complete). */
export async function clearOperationState(path: string): Promise<void> {
  await removeDurably(path);
}
