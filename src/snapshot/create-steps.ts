// `snapshot create` as a step machine. The active file gets a second name (a hard link: the
// disk's path never disappears), a new empty differencing child of that layer is built at a
// temp path and renamed over the disk's path, then the catalogue gains the entry. O(1) in
// the disk size. Where hard links are refused the active file is renamed instead (the disk's
// path is then missing until the swap step; a rerun finishes it).

import { promises as fsp } from "node:fs";
import { basename, join } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { removeDurably, renameDurably, syncDirectory } from "../io/atomic-file.js";
import { faultPoint } from "./fault-injection.js";
import { createChildLayer, inspectLayer } from "./layer-files.js";
import type { CreateState } from "./operation-state.js";
import { readCatalogue, writeCatalogue, type SnapshotEntry } from "./snapshot-catalogue.js";
import { layerFileName, newChildTempPath, newSnapshotId, type SnapshotPaths } from "./snapshot-paths.js";
import { assertNoUnmanagedChildren, type SnapshotSet } from "./snapshot-set.js";
import { enterStep, exists, finishOperation, newState } from "./step-machine.js";

/** Errors of link(2) that mean "this filesystem has no hard links here". */
const NO_LINK_ERRNOS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV", "EMLINK"]);

/**
 * Plans a snapshot of the active disk of a validated set.
 * @throws VHDSYNC_USAGE when `name` is already used; VHDSYNC_UNSUPPORTED when an unmanaged differencing disk depends on the active file
 */
export async function planCreate(set: SnapshotSet, name: string, now: Date): Promise<CreateState> {
  assertNoUnmanagedChildren(set, set.active, "snapshot the disk");
  if (name && set.catalogue.snapshots.some((entry) => entry.name === name)) {
    throw new VhdsyncError("VHDSYNC_USAGE", `${set.paths.disk} already has a snapshot named ${name}`, { disk: set.paths.disk, name });
  }
  let id = newSnapshotId();
  while (set.catalogue.snapshots.some((entry) => entry.id === id) || (await exists(join(set.paths.directory, layerFileName(set.paths.disk, id))))) {
    id = newSnapshotId();
  }
  return newState<CreateState>(set.paths, {
    op: "create",
    step: "link",
    id,
    name,
    createdAt: now.toISOString(),
    layerPath: join(set.paths.directory, layerFileName(set.paths.disk, id)),
    tempPath: newChildTempPath(set.paths, id),
    layerUniqueId: set.active.facts.uniqueId,
  });
}

/** Gives the active file the layer's name: a hard link, or a rename where links are refused. */
async function linkLayer(paths: SnapshotPaths, state: CreateState): Promise<void> {
  if (await exists(state.layerPath)) {
    const facts = await inspectLayer(state.layerPath);
    if (facts.uniqueId !== state.layerUniqueId) {
      throw new VhdsyncError("VHDSYNC_BAD_STATE", `${state.layerPath} exists but is not the layer this snapshot was creating`, { path: state.layerPath });
    }
    return;
  }
  try {
    await fsp.link(paths.disk, state.layerPath);
  } catch (error) {
    const errno = (error as NodeJS.ErrnoException).code ?? "";
    if (!NO_LINK_ERRNOS.has(errno)) throw toVhdsyncError(error, { path: paths.disk, destination: state.layerPath });
    await fsp.rename(paths.disk, state.layerPath).catch((renameError) => Promise.reject(toVhdsyncError(renameError, { path: paths.disk })));
  }
  await syncDirectory(paths.directory);
}

/** Swaps the new child in over the disk's path (skipped when already done). */
async function swapChild(paths: SnapshotPaths, state: CreateState): Promise<void> {
  if (await exists(state.tempPath)) {
    await renameDurably(state.tempPath, paths.disk);
    return;
  }
  const facts = await inspectLayer(paths.disk);
  if (facts.parentPath !== state.layerPath) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${paths.disk}: the new active child is missing and the disk is not a child of ${state.layerPath}`, { path: paths.disk });
  }
}

/** Adds the snapshot to the catalogue (once). */
async function catalogueEntry(paths: SnapshotPaths, state: CreateState): Promise<SnapshotEntry> {
  const catalogue = await readCatalogue(paths.catalogue, basename(paths.disk));
  const existing = catalogue.snapshots.find((entry) => entry.id === state.id);
  if (existing) return existing;
  const entry: SnapshotEntry = { id: state.id, name: state.name, createdAt: state.createdAt, layer: basename(state.layerPath), uniqueId: state.layerUniqueId };
  catalogue.snapshots.push(entry);
  await writeCatalogue(paths.catalogue, catalogue);
  return entry;
}

/** Runs (or resumes) a create from its recorded step. */
export async function continueCreate(paths: SnapshotPaths, initial: CreateState): Promise<SnapshotEntry> {
  let state = initial;
  for (;;) {
    switch (state.step) {
      case "link":
        await linkLayer(paths, state);
        faultPoint("create:linked");
        state = await enterStep(paths, state, "create-child");
        break;
      case "create-child":
        await removeDurably(state.tempPath);
        await createChildLayer(state.tempPath, await inspectLayer(state.layerPath));
        faultPoint("create:child-created");
        state = await enterStep(paths, state, "swap");
        break;
      case "swap":
        await swapChild(paths, state);
        faultPoint("create:swapped");
        state = await enterStep(paths, state, "catalogue");
        break;
      case "catalogue": {
        const entry = await catalogueEntry(paths, state);
        faultPoint("create:catalogued");
        await finishOperation(paths, state);
        return entry;
      }
    }
  }
}
