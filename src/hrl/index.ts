// Hyper-V Replica logs ([MS-HRL]): reader, writer, tracked disk, apply with undo and resume,
// compaction and salvage. See docs/hrl.md.

export { openLog, HrlLog, DEFAULT_READ_CHUNK_BYTES } from "./hrl-log.js";
export type { HrlEntry, HrlDataPiece, OpenLogOptions } from "./hrl-log.js";
export { parseHeader, buildHeader } from "./header.js";
export type { HrlHeader } from "./header.js";
export { HrlWriter } from "./hrl-writer.js";
export type { HrlWriterOptions, HrlLogSummary } from "./hrl-writer.js";
export { TrackedDisk } from "./tracked-disk.js";
export type { TrackedDiskOptions, ClosedLog } from "./tracked-disk.js";
export { applyLog } from "./apply-log.js";
export type { ApplyLogOptions, ApplyLogResult } from "./apply-log.js";
export { readApplyState, defaultStatePath } from "./apply-state.js";
export type { ApplyState, ApplyInProgress } from "./apply-state.js";
export { writeUndoLog } from "./undo-log.js";
export { compactLog } from "./compact-log.js";
export type { CompactLogResult } from "./compact-log.js";
export { recoverLog } from "./recover-log.js";
export type { RecoverLogResult } from "./recover-log.js";
export { NIL_GUID, HRL_HEADER_BYTES, DEFAULT_METADATA_BYTES, guidToString, guidFromString, hrlTimestamp, hrlTimestampToIso } from "./layout.js";
