// Snapshots as differencing-VHD chains: the public surface of src/snapshot (docs/snapshots.md).

export { createSnapshot, revertSnapshot, deleteSnapshot, mergeSnapshots, resumeSnapshotOperation } from "./snapshot-operations.js";
export type { SnapshotOperationResult } from "./snapshot-operations.js";
export { listSnapshots } from "./snapshot-list.js";
export type { SnapshotListing, SnapshotListEntry } from "./snapshot-list.js";
export type { SnapshotEntry, SnapshotCatalogue } from "./snapshot-catalogue.js";
export type { OperationState } from "./operation-state.js";
export type { CopyTuning } from "./copy-ranges.js";
export { snapshotPaths, layerFileName } from "./snapshot-paths.js";
export { setFaultHook } from "./fault-injection.js";
export type { FaultHook } from "./fault-injection.js";
