// Shared plumbing of the snapshot step machines (after Xen Orchestra's vhd-lib merge): the
// state file names the step about to run; every step is idempotent, so after a crash the
// machine re-enters the recorded step and goes on. Fault points sit after every durable
// write so the crash tests can stop the process at each of them.

import { promises as fsp } from "node:fs";
import { toVhdsyncError } from "../errors.js";
import { faultPoint } from "./fault-injection.js";
import { clearOperationState, writeOperationState, type OperationState } from "./operation-state.js";
import type { SnapshotPaths } from "./snapshot-paths.js";

/** Records that `state` now runs `step` (with `patch` applied) and returns the new state. */
export async function enterStep<S extends OperationState>(paths: SnapshotPaths, state: S, step: S["step"], patch: Partial<S> = {}): Promise<S> {
  const next = { ...state, ...patch, step } as S;
  await writeOperationState(paths.state, next);
  faultPoint(`${next.op}:${String(step)}`);
  return next;
}

/** Marks the operation complete (removes the state file). */
export async function finishOperation(paths: SnapshotPaths, state: OperationState): Promise<void> {
  await clearOperationState(paths.state);
  faultPoint(`${state.op}:done`);
}

/** Whether a path exists (without following a missing file into an error). */
export async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw toVhdsyncError(error, { path });
  }
}

/** A fresh state for operation `body` on the disk of `paths`. */
export function newState<B extends OperationState>(paths: SnapshotPaths, body: Omit<B, "version" | "disk" | "startedAt">): B {
  return { version: 1, disk: paths.disk, startedAt: new Date().toISOString(), ...body } as B;
}
