// `snapshot delete` as a step machine: for each child of the deleted layer (snapshot layers
// and/or the active disk), the child's own view over the ranges the deleted layer holds is
// written into the child (sectors the child has win, the rest comes from the deleted layer
// or below), then the child is re-pointed at the deleted layer's parent (or, for a base
// layer, becomes a dynamic disk). Only the child being processed is written and its view
// never changes, so every snapshot and the active disk read the same at every instant. Then
// the entry leaves the catalogue and the layer file is removed.

import { utimes } from "node:fs/promises";
import { basename } from "node:path";
import { toVhdsyncError } from "../errors.js";
import { copyRanges, type CopyTuning, type RangeSource } from "./copy-ranges.js";
import { faultPoint } from "./fault-injection.js";
import { openVhdLayer } from "./layer-files.js";
import type { DeleteState } from "./operation-state.js";
import { checkReparent, reparentLayer } from "./reparent-layer.js";
import { readCatalogue, writeCatalogue } from "./snapshot-catalogue.js";
import type { SnapshotPaths } from "./snapshot-paths.js";
import { assertNoUnmanagedChildren, type LayerNode, type SnapshotSet } from "./snapshot-set.js";
import { enterStep, finishOperation, newState } from "./step-machine.js";
import { removeDurably } from "../io/atomic-file.js";

/** Plans the deletion of `snapshot` (checks every child can be re-pointed; writes nothing). @throws VHDSYNC_UNSUPPORTED when an unmanaged differencing disk depends on it */
export async function planDelete(set: SnapshotSet, snapshot: LayerNode): Promise<DeleteState> {
  assertNoUnmanagedChildren(set, snapshot, `delete snapshot ${snapshot.snapshot!.id}`);
  const children = [...snapshot.childPaths].sort();
  for (const child of children) await checkReparent(child, snapshot.facts.parentPath);
  const childMtimesMs = children.map((child) => set.nodes.get(child)?.facts.mtimeMs ?? Date.now());
  return newState<DeleteState>(set.paths, {
    op: "delete",
    step: children.length > 0 ? "copy" : "catalogue",
    snapshotId: snapshot.snapshot!.id,
    snapshotName: snapshot.snapshot!.name,
    layerPath: snapshot.facts.path,
    parentPath: snapshot.facts.parentPath,
    children,
    childMtimesMs,
    childIndex: 0,
    cursorBytes: 0,
  });
}

/** Writes the current child's view over the deleted layer's ranges into the child. */
async function copyIntoChild(paths: SnapshotPaths, state: DeleteState, tuning: CopyTuning): Promise<void> {
  const childPath = state.children[state.childIndex];
  const layer = await openVhdLayer(state.layerPath);
  try {
    const ranges: RangeSource = { sizeBytes: layer.virtualSize, rangesIn: (offset, length) => layer.allocationMap(offset, length, "layer") };
    const child = await openVhdLayer(childPath, false);
    try {
      let current = state;
      await copyRanges(child, child, ranges, {
        ...tuning,
        operation: "delete",
        startBytes: state.cursorBytes,
        onCheckpoint: async (cursorBytes) => {
          current = await enterStep(paths, current, "copy", { cursorBytes });
        },
      });
    } finally {
      await child.close();
    }
  } finally {
    await layer.close();
  }
}

/** Re-points the current child and restores its mtime (its own children record it as their parent's time stamp). */
async function reparentChild(state: DeleteState): Promise<void> {
  const childPath = state.children[state.childIndex];
  await reparentLayer(childPath, state.parentPath);
  const mtime = new Date(state.childMtimesMs[state.childIndex]);
  await utimes(childPath, mtime, mtime).catch((error) => Promise.reject(toVhdsyncError(error, { path: childPath })));
}

/** Runs (or resumes) a delete from its recorded step. */
export async function continueDelete(paths: SnapshotPaths, initial: DeleteState, tuning: CopyTuning = {}): Promise<void> {
  let state = initial;
  for (;;) {
    switch (state.step) {
      case "copy":
        await copyIntoChild(paths, state, tuning);
        faultPoint("delete:copied");
        state = await enterStep(paths, state, "reparent");
        break;
      case "reparent": {
        await reparentChild(state);
        faultPoint("delete:reparented");
        const more = state.childIndex + 1 < state.children.length;
        state = more ? await enterStep(paths, state, "copy", { childIndex: state.childIndex + 1, cursorBytes: 0 }) : await enterStep(paths, state, "catalogue");
        break;
      }
      case "catalogue": {
        const catalogue = await readCatalogue(paths.catalogue, basename(paths.disk));
        catalogue.snapshots = catalogue.snapshots.filter((entry) => entry.id !== state.snapshotId);
        await writeCatalogue(paths.catalogue, catalogue);
        faultPoint("delete:catalogued");
        state = await enterStep(paths, state, "remove");
        break;
      }
      case "remove":
        await removeDurably(state.layerPath);
        faultPoint("delete:removed");
        await finishOperation(paths, state);
        return;
    }
  }
}
