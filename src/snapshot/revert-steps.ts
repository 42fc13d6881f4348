// `snapshot revert` as a step machine: a fresh empty differencing child of the snapshot's
// layer is built at a temp path and renamed over the disk's path, which discards what was
// written since (the old active file). No other layer is touched: snapshots taken after
// the one reverted to stay in the catalogue and keep reading as before (the chain becomes
// a tree; docs/snapshots.md).

import { VhdsyncError } from "../errors.js";
import { faultPoint } from "./fault-injection.js";
import { createChildLayer, inspectLayer } from "./layer-files.js";
import type { RevertState } from "./operation-state.js";
import { newChildTempPath, newSnapshotId, type SnapshotPaths } from "./snapshot-paths.js";
import { assertNoUnmanagedChildren, type LayerNode, type SnapshotSet } from "./snapshot-set.js";
import { enterStep, exists, finishOperation, newState } from "./step-machine.js";
import { removeDurably, renameDurably } from "../io/atomic-file.js";

/** Plans a revert of the active disk to `snapshot`. @throws VHDSYNC_UNSUPPORTED when an unmanaged differencing disk depends on the active file */
export function planRevert(set: SnapshotSet, snapshot: LayerNode): RevertState {
  assertNoUnmanagedChildren(set, set.active, "replace the active disk");
  return newState<RevertState>(set.paths, {
    op: "revert",
    step: "create-child",
    snapshotId: snapshot.snapshot!.id,
    layerPath: snapshot.facts.path,
    tempPath: newChildTempPath(set.paths, newSnapshotId()),
  });
}

/** Runs (or resumes) a revert from its recorded step. */
export async function continueRevert(paths: SnapshotPaths, initial: RevertState): Promise<void> {
  let state = initial;
  for (;;) {
    switch (state.step) {
      case "create-child":
        await removeDurably(state.tempPath);
        await createChildLayer(state.tempPath, await inspectLayer(state.layerPath));
        faultPoint("revert:child-created");
        state = await enterStep(paths, state, "swap");
        break;
      case "swap":
        if (await exists(state.tempPath)) await renameDurably(state.tempPath, paths.disk);
        else if ((await inspectLayer(paths.disk)).parentPath !== state.layerPath) {
          throw new VhdsyncError("VHDSYNC_BAD_STATE", `${paths.disk}: the new active child is missing and the disk is not a child of ${state.layerPath}`, { path: paths.disk });
        }
        faultPoint("revert:swapped");
        await finishOperation(paths, state);
        return;
    }
  }
}
