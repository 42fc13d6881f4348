// `snapshot merge` as a step machine: the active disk's view over every range held by the
// active disk and the layers above the target is written into the target layer (an
// ancestor snapshot), the target is renamed over the disk's path and the layers in between
// are removed. The target's and the intermediates' snapshots are consumed (dropped from the
// catalogue first); the active disk reads the same at every instant because the copy only
// writes, into a layer below it, what it already reads. Refused when another snapshot
// depends on a consumed layer.

import { basename } from "node:path";
import { VhdsyncError } from "../errors.js";
import type { DiskImage, Extent } from "../formats/disk-image.js";
import { unionExtents } from "../formats/extents.js";
import { copyRanges, type CopyTuning, type RangeSource } from "./copy-ranges.js";
import { faultPoint } from "./fault-injection.js";
import { inspectLayer, openVhdLayer } from "./layer-files.js";
import type { MergeState } from "./operation-state.js";
import { readCatalogue, writeCatalogue } from "./snapshot-catalogue.js";
import type { SnapshotPaths } from "./snapshot-paths.js";
import { assertNoUnmanagedChildren, type LayerNode, type SnapshotSet } from "./snapshot-set.js";
import { enterStep, exists, finishOperation, newState } from "./step-machine.js";
import { removeDurably, renameDurably } from "../io/atomic-file.js";

/** Layers from the active disk's parent down to `target` (inclusive). @throws VHDSYNC_USAGE */
function layersDownTo(set: SnapshotSet, target: LayerNode | undefined): LayerNode[] {
  const layers: LayerNode[] = [];
  let node = set.active.facts.parentPath ? set.nodes.get(set.active.facts.parentPath) : undefined;
  if (!node) throw new VhdsyncError("VHDSYNC_USAGE", `${set.paths.disk} has no parent layer: nothing to merge`, { disk: set.paths.disk });
  for (; node; node = node.facts.parentPath ? set.nodes.get(node.facts.parentPath) : undefined) {
    layers.push(node);
    if (!target || node === target) return layers;
  }
  throw new VhdsyncError("VHDSYNC_USAGE", `snapshot ${target!.snapshot?.id} is not an ancestor of ${set.paths.disk}'s active disk`, { disk: set.paths.disk });
}

/**
 * Plans merging the active disk into `target` (default: its parent). Writes nothing.
 * @throws VHDSYNC_USAGE (no parent, not an ancestor), VHDSYNC_UNSUPPORTED (an external
 *   layer, or a consumed layer other snapshots depend on — details.dependents)
 */
export function planMerge(set: SnapshotSet, target?: LayerNode): MergeState {
  const layers = layersDownTo(set, target);
  assertNoUnmanagedChildren(set, set.active, "merge the active disk");
  let above = set.active;
  for (const layer of layers) {
    if (layer.kind !== "snapshot") {
      throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${layer.facts.path} is not a snapshot layer of ${set.paths.disk}; vhdsync does not merge into layers it does not own (other disks may use it)`, { disk: set.paths.disk, path: layer.facts.path });
    }
    const dependents = [...layer.childPaths.filter((child) => child !== above.facts.path), ...layer.unmanagedChildPaths];
    if (dependents.length > 0) {
      throw new VhdsyncError(
        "VHDSYNC_UNSUPPORTED",
        `snapshot ${layer.snapshot!.id} (${layer.facts.path}) is also the parent of ${dependents.join(", ")}; merging into it would change what they read. Delete those snapshots first, or use snapshot delete`,
        { disk: set.paths.disk, snapshot: layer.snapshot!.id, dependents },
      );
    }
    above = layer;
  }
  const targetLayer = layers[layers.length - 1];
  return newState<MergeState>(set.paths, {
    op: "merge",
    step: "catalogue",
    targetPath: targetLayer.facts.path,
    targetUniqueId: targetLayer.facts.uniqueId,
    intermediatePaths: layers.slice(0, -1).map((layer) => layer.facts.path),
    droppedIds: layers.map((layer) => layer.snapshot!.id),
    cursorBytes: 0,
  });
}

/** Writes the active view over the ranges above the target (held by the active disk or an intermediate layer) into the target. */
async function copyIntoTarget(paths: SnapshotPaths, state: MergeState, tuning: CopyTuning): Promise<void> {
  const layers: DiskImage[] = [];
  try {
    for (const path of [paths.disk, ...state.intermediatePaths]) layers.push(await openVhdLayer(path));
    const ranges: RangeSource = {
      sizeBytes: layers[0].virtualSize,
      rangesIn: async (offset, length) => {
        let extents: Extent[] = [];
        for (const layer of layers) {
          // A layer smaller than the active disk (a chain another tool made) holds nothing past its end.
          const inLayer = Math.min(length, layer.virtualSize - offset);
          if (inLayer > 0) extents = unionExtents(extents, await layer.allocationMap(offset, inLayer, "layer"));
        }
        return extents;
      },
    };
    const target = await openVhdLayer(state.targetPath, false);
    try {
      let current = state;
      await copyRanges(layers[0], target, ranges, {
        ...tuning,
        operation: "merge",
        startBytes: state.cursorBytes,
        onCheckpoint: async (cursorBytes) => {
          current = await enterStep(paths, current, "copy", { cursorBytes });
        },
      });
    } finally {
      await target.close();
    }
  } finally {
    for (const layer of layers) await layer.close();
  }
}

/** Renames the target over the disk's path (skipped when already done). */
async function swapTarget(paths: SnapshotPaths, state: MergeState): Promise<void> {
  if (await exists(state.targetPath)) {
    await renameDurably(state.targetPath, paths.disk);
    return;
  }
  if ((await inspectLayer(paths.disk)).uniqueId !== state.targetUniqueId) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${state.targetPath} is gone and ${paths.disk} is not the merged layer`, { path: paths.disk });
  }
}

/** Runs (or resumes) a merge from its recorded step. */
export async function continueMerge(paths: SnapshotPaths, initial: MergeState, tuning: CopyTuning = {}): Promise<void> {
  let state = initial;
  for (;;) {
    switch (state.step) {
      case "catalogue": {
        const catalogue = await readCatalogue(paths.catalogue, basename(paths.disk));
        catalogue.snapshots = catalogue.snapshots.filter((entry) => !state.droppedIds.includes(entry.id));
        await writeCatalogue(paths.catalogue, catalogue);
        faultPoint("merge:catalogued");
        state = await enterStep(paths, state, "copy");
        break;
      }
      case "copy":
        await copyIntoTarget(paths, state, tuning);
        faultPoint("merge:copied");
        state = await enterStep(paths, state, "swap");
        break;
      case "swap":
        await swapTarget(paths, state);
        faultPoint("merge:swapped");
        state = await enterStep(paths, state, "cleanup");
        break;
      case "cleanup":
        for (const path of state.intermediatePaths) await removeDurably(path);
        faultPoint("merge:cleaned");
        await finishOperation(paths, state);
        return;
    }
  }
}
