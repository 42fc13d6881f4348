// `snapshot list`: the layers of a snapshotted disk from the base to the active disk, then
// any snapshots off that chain (branches left by reverts), with names, ids, creation times,
// sizes and the bytes each layer holds. Read-only; reports a pending operation.

import { readOperationState } from "./operation-state.js";
import { activeChain, loadSnapshotSet, type LayerNode } from "./snapshot-set.js";
import { checkPath } from "../arguments.js";

/** One row of `snapshot list`. */
export interface SnapshotListEntry {
  kind: "active" | "snapshot" | "external";
  /** Snapshot id (snapshots only). */
  id?: string;
  name?: string;
  /** ISO time the snapshot was taken (snapshots only). */
  createdAt?: string;
  path: string;
  type: string;
  uniqueId: string;
  /** Parent layer path (null for a base). */
  parentPath: string | null;
  /** Snapshot id of the parent layer, when it is a snapshot. */
  parentId: string | null;
  /** Whether the layer is on the active disk's chain (false: a branch kept after a revert). */
  onActiveChain: boolean;
  virtualSizeBytes: number;
  fileSizeBytes: number;
  /** Bytes of data this layer itself holds. */
  allocatedBytes: number;
}

/** The listing of a disk. */
export interface SnapshotListing {
  disk: string;
  /** Base first, active disk last; then branches (layers off the active chain). */
  layers: SnapshotListEntry[];
  /** Operation left pending by a crash (create, revert, delete, merge or `snapshot resume` finish it; list does not). */
  pending: { op: string; step: string } | null;
}

function entryOf(node: LayerNode, nodes: Map<string, LayerNode>, onActiveChain: boolean): SnapshotListEntry {
  const parent = node.facts.parentPath ? nodes.get(node.facts.parentPath) : undefined;
  return {
    kind: node.kind,
    id: node.snapshot?.id,
    name: node.snapshot?.name,
    createdAt: node.snapshot?.createdAt,
    path: node.facts.path,
    type: node.facts.type,
    uniqueId: node.facts.uniqueId,
    parentPath: node.facts.parentPath,
    parentId: parent?.snapshot?.id ?? null,
    onActiveChain,
    virtualSizeBytes: node.facts.virtualSizeBytes,
    fileSizeBytes: node.facts.fileSizeBytes,
    allocatedBytes: node.facts.allocatedBytes,
  };
}

/**
 * Lists the snapshot chain of `diskPath`.
 * @throws VHDSYNC_CHAIN_BROKEN, VHDSYNC_UNSUPPORTED (not a VHD), VHDSYNC_BAD_STATE, I/O codes
 */
export async function listSnapshots(diskPath: string): Promise<SnapshotListing> {
  checkPath(diskPath, "diskPath");
  const set = await loadSnapshotSet(diskPath);
  const chain = activeChain(set);
  const onChain = new Set(chain);
  const branches = [...set.nodes.values()]
    .filter((node) => !onChain.has(node))
    .sort((a, b) => (a.snapshot?.createdAt ?? "").localeCompare(b.snapshot?.createdAt ?? ""));
  const pending = await readOperationState(set.paths.state);
  return {
    disk: set.paths.disk,
    layers: [...chain.map((node) => entryOf(node, set.nodes, true)), ...branches.map((node) => entryOf(node, set.nodes, false))],
    pending: pending ? { op: pending.op, step: pending.step } : null,
  };
}
