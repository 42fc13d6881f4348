// The per-image HRL state sidecar (`<image>.hrl-state.json`, docs/hrl.md): which log was
// applied last (the chain position checked by the next apply) and, while an apply runs, how
// far it got (resume point). One atomic file, so "log applied" and "chain advanced" become
// true in the same rename.

import { VhdsyncError } from "../errors.js";
import { readJsonState, writeJsonAtomic } from "../io/atomic-file.js";
import { sealJson, unsealState } from "../hash/sealed-json.js";

export const APPLY_STATE_FORMAT = "vhdsync-hrl-state";
/**
 * 2: sealed with a `checksum` (src/hash/sealed-json.ts): a changed digit of `nextEntry` would
 * skip entries. Version 1 files (unsealed) are still read; every write is version 2.
 */
export const APPLY_STATE_VERSION = 2;
const UNSEALED_VERSION = 1;

/** An apply in progress. */
export interface ApplyInProgress {
  logPath: string;
  logUniqueId: string;
  logPreviousUniqueId: string;
  /** Identity checks: the same log must be resumed. */
  eolLocation: number;
  headerChecksum: number;
  entryCount: number;
  undoPath: string | null;
  /** "apply": undo log (if any) is complete; entries before nextEntry are on the image and flushed. */
  step: "apply";
  nextEntry: number;
  startedAt: string;
}

/** Contents of the sidecar. */
export interface ApplyState {
  format: typeof APPLY_STATE_FORMAT;
  version: typeof APPLY_STATE_VERSION;
  /** UniqueId of the last log applied to the image (null: none yet). */
  lastAppliedUniqueId: string | null;
  appliedCount: number;
  updatedAt: string;
  applying: ApplyInProgress | null;
}

/** Default sidecar path for an image. */
export function defaultStatePath(imagePath: string): string {
  return `${imagePath}.hrl-state.json`;
}

/** An empty state (no log applied). */
export function emptyApplyState(): ApplyState {
  return { format: APPLY_STATE_FORMAT, version: APPLY_STATE_VERSION, lastAppliedUniqueId: null, appliedCount: 0, updatedAt: new Date().toISOString(), applying: null };
}

/**
 * Reads the sidecar (an empty state if missing).
 * @throws VHDSYNC_BAD_STATE for an unreadable or foreign file
 */
export async function readApplyState(path: string): Promise<ApplyState> {
  const value = (await readJsonState(path)) as Partial<ApplyState> | undefined;
  if (value === undefined) return emptyApplyState();
  if (value.format !== APPLY_STATE_FORMAT || (value.version !== APPLY_STATE_VERSION && value.version !== UNSEALED_VERSION) || typeof value.appliedCount !== "number") {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: not a vhdsync HRL state file (version ${UNSEALED_VERSION} or ${APPLY_STATE_VERSION})`, { path });
  }
  const fields = unsealState(value, APPLY_STATE_VERSION, path, "HRL state file");
  const applying = value.applying;
  if (applying && (typeof applying.nextEntry !== "number" || typeof applying.logUniqueId !== "string" || applying.step !== "apply")) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: apply progress record is malformed`, { path });
  }
  return { ...emptyApplyState(), ...fields } as ApplyState;
}

/** Writes the sidecar atomically. */
export async function writeApplyState(path: string, state: ApplyState): Promise<void> {
  await writeJsonAtomic(path, sealJson({ ...state, version: APPLY_STATE_VERSION, updatedAt: new Date().toISOString() }));
}
