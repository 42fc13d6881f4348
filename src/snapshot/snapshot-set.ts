// Loads everything known about a snapshotted disk — the catalogue, the facts of every layer
// (from the VHD headers, which are the truth) and the tree they form — and validates it:
// every catalogued layer exists and has the catalogued unique id, every chain is intact.
// Read-only: a broken chain raises VHDSYNC_CHAIN_BROKEN before anything is modified.

import { basename, join } from "node:path";
import { VhdsyncError } from "../errors.js";
import { childrenInDirectory } from "../formats/vhd/vhd-children.js";
import { factsOf, openVhdLayer, type LayerFacts } from "./layer-files.js";
import { readCatalogue, type SnapshotCatalogue, type SnapshotEntry } from "./snapshot-catalogue.js";
import { snapshotPaths, type SnapshotPaths } from "./snapshot-paths.js";

/** One layer of the tree: the active disk, a catalogued snapshot or an external parent. */
export interface LayerNode {
  kind: "active" | "snapshot" | "external";
  facts: LayerFacts;
  snapshot?: SnapshotEntry;
  /** Paths of the layers whose parent this layer is (snapshot layers and/or the active disk). */
  childPaths: string[];
  /** Differencing VHDs in the disk's directory, not managed by vhdsync, whose parent this layer is. */
  unmanagedChildPaths: string[];
}

/** A disk, its catalogue and its layer tree. */
export interface SnapshotSet {
  paths: SnapshotPaths;
  catalogue: SnapshotCatalogue;
  active: LayerNode;
  /** Every layer by absolute path. */
  nodes: Map<string, LayerNode>;
}

/** Opens a layer with its chain and records every layer of that chain. */
async function addChain(path: string, nodes: Map<string, LayerNode>, kind: LayerNode["kind"]): Promise<LayerNode> {
  const image = await openVhdLayer(path);
  try {
    const facts = await factsOf(image);
    const node = nodes.get(facts.path) ?? { kind, facts, childPaths: [], unmanagedChildPaths: [] };
    node.kind = kind === "external" ? node.kind : kind;
    nodes.set(facts.path, node);
    return node;
  } finally {
    await image.close();
  }
}

/** Fills in facts of the ancestors of `node` not seen yet (externals get kind "external"). */
async function addAncestors(node: LayerNode, nodes: Map<string, LayerNode>): Promise<void> {
  let parentPath = node.facts.parentPath;
  while (parentPath && !nodes.has(parentPath)) {
    const parent = await addChain(parentPath, nodes, "external");
    parentPath = parent.facts.parentPath;
  }
}

function chainBroken(message: string, details: Record<string, unknown>): VhdsyncError {
  return new VhdsyncError("VHDSYNC_CHAIN_BROKEN", message, details);
}

/**
 * Opens a catalogued layer; a missing file is a broken chain. An entry naming the active disk,
 * or a layer another entry names, is refused: deleting that "snapshot" removed the active
 * disk's file.
 */
async function loadSnapshotLayer(paths: SnapshotPaths, entry: SnapshotEntry, nodes: Map<string, LayerNode>, active: LayerNode): Promise<LayerNode> {
  const layerPath = join(paths.directory, entry.layer);
  let node: LayerNode;
  try {
    node = await addChain(layerPath, nodes, "snapshot");
  } catch (error) {
    if ((error as VhdsyncError).code !== "VHDSYNC_NOT_FOUND") throw error;
    throw chainBroken(`snapshot ${entry.id} of ${paths.disk}: layer file ${layerPath} is missing`, { disk: paths.disk, snapshot: entry.id, path: layerPath });
  }
  if (node === active || node.snapshot) {
    const what = node === active ? "the active disk itself" : `the layer of snapshot ${node.snapshot!.id} too`;
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${paths.catalogue}: snapshot ${entry.id} names ${what} (${layerPath}): the catalogue is damaged; nothing was changed`, {
      catalogue: paths.catalogue,
      snapshot: entry.id,
      path: layerPath,
    });
  }
  if (node.facts.uniqueId !== entry.uniqueId) {
    throw chainBroken(`snapshot ${entry.id} of ${paths.disk}: ${layerPath} has unique id ${node.facts.uniqueId}, the catalogue says ${entry.uniqueId}`, {
      disk: paths.disk,
      snapshot: entry.id,
      path: layerPath,
      expected: entry.uniqueId,
      actual: node.facts.uniqueId,
    });
  }
  node.snapshot = entry;
  return node;
}

/**
 * Loads and validates the snapshot set of `diskPath`.
 * @throws VHDSYNC_CHAIN_BROKEN (missing/mismatched layer or parent, with the paths),
 *   VHDSYNC_UNSUPPORTED (not a VHD), VHDSYNC_BAD_STATE (unreadable catalogue, or an entry
 *   naming the active disk or another entry's layer), I/O codes
 */
export async function loadSnapshotSet(diskPath: string): Promise<SnapshotSet> {
  const paths = snapshotPaths(diskPath);
  const catalogue = await readCatalogue(paths.catalogue, basename(paths.disk));
  const nodes = new Map<string, LayerNode>();
  const active = await addChain(paths.disk, nodes, "active");
  for (const entry of catalogue.snapshots) await loadSnapshotLayer(paths, entry, nodes, active);
  for (const node of [...nodes.values()]) await addAncestors(node, nodes);
  for (const node of nodes.values()) {
    if (node.facts.parentPath) nodes.get(node.facts.parentPath)?.childPaths.push(node.facts.path);
  }
  const byParent = await childrenInDirectory(paths.directory);
  for (const node of nodes.values()) node.unmanagedChildPaths = (byParent.get(node.facts.uniqueId) ?? []).filter((path) => !nodes.has(path));
  return { paths, catalogue, active, nodes };
}

/**
 * Refuses to `action` a layer that a differencing disk vhdsync does not manage depends on.
 * @throws VHDSYNC_UNSUPPORTED with details.dependents
 */
export function assertNoUnmanagedChildren(set: SnapshotSet, node: LayerNode, action: string): void {
  if (node.unmanagedChildPaths.length === 0) return;
  throw new VhdsyncError(
    "VHDSYNC_UNSUPPORTED",
    `cannot ${action}: ${node.facts.path} is the parent of ${node.unmanagedChildPaths.join(", ")}, which vhdsync does not manage; they would stop reading correctly`,
    { disk: set.paths.disk, path: node.facts.path, dependents: node.unmanagedChildPaths },
  );
}

/**
 * Refuses to `action` when a layer is not the active disk's size. vhdsync makes every layer the
 * size of the disk it snapshots and does not resize disks with snapshots (nor differencing
 * disks), but another tool may have: delete and merge copy ranges of one layer into another,
 * and would stop halfway, reading past a layer's end. Nothing is written.
 * @throws VHDSYNC_UNSUPPORTED with details.layers
 */
export function assertSameSizes(set: SnapshotSet, action: string): void {
  const size = set.active.facts.virtualSizeBytes;
  const others = [...set.nodes.values()].filter((node) => node.facts.virtualSizeBytes !== size);
  if (others.length === 0) return;
  throw new VhdsyncError(
    "VHDSYNC_UNSUPPORTED",
    `cannot ${action}: ${others.map((node) => `${node.facts.path} is ${node.facts.virtualSizeBytes} bytes`).join(", ")}, and ${set.paths.disk} ${size}: vhdsync's snapshot operations need every layer the disk's size`,
    { disk: set.paths.disk, layers: others.map((node) => ({ path: node.facts.path, virtualSizeBytes: node.facts.virtualSizeBytes })), virtualSizeBytes: size },
  );
}

/**
 * Finds a snapshot by id or by name.
 * @throws VHDSYNC_USAGE when nothing or more than one snapshot matches
 */
export function findSnapshot(set: SnapshotSet, idOrName: string): LayerNode {
  const matches = [...set.nodes.values()].filter((node) => node.snapshot && (node.snapshot.id === idOrName || node.snapshot.name === idOrName));
  const byId = matches.filter((node) => node.snapshot?.id === idOrName);
  if (byId.length === 1) return byId[0];
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) throw new VhdsyncError("VHDSYNC_USAGE", `${set.paths.disk} has no snapshot ${idOrName}`, { disk: set.paths.disk, snapshot: idOrName });
  throw new VhdsyncError("VHDSYNC_USAGE", `${idOrName} names ${matches.length} snapshots of ${set.paths.disk}; use the id`, { disk: set.paths.disk, snapshot: idOrName });
}

/** Layers from the base up to the active disk (following parents from the active disk). */
export function activeChain(set: SnapshotSet): LayerNode[] {
  const chain: LayerNode[] = [];
  for (let node: LayerNode | undefined = set.active; node; node = node.facts.parentPath ? set.nodes.get(node.facts.parentPath) : undefined) chain.unshift(node);
  return chain;
}
