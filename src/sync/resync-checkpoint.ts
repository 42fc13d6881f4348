// The resync checkpoint: a small versioned JSON state file recording how far a resync has
// got (every block before `nextBlock` is equal and durable in the target). Written atomically
// after the target is flushed, so after a crash or kill -9 a resume never skips a block that
// was not written. It also records the target file's state at that moment, so that a resume
// can tell a target replaced or written by someone else since (resync.ts, resumePoint). A
// SHA-256 of its contents guards against damage no JSON parser sees (a changed digit of
// nextBlock would skip blocks).

import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { constants as fsConstants, promises as fsp } from "node:fs";
import { dirname } from "node:path";
import { readJsonState, removeDurably, removeStaleTempFiles, writeFileAtomic } from "../io/atomic-file.js";
import { identityDifferences, type FileState, type ImageIdentity } from "./image-identity.js";
import { sealIntact, sealJson } from "../hash/sealed-json.js";
import { blockCountFor } from "./segment-plan.js";
import { emptyCounters, type SegmentCounters } from "./segment-task.js";

export const CHECKPOINT_KIND = "vhdsync-resync-checkpoint";
/** 3: the `checksum` field. Checkpoints of other versions are not resumed from. */
export const CHECKPOINT_VERSION = 3;

/** Contents of a checkpoint file. */
export interface ResyncCheckpoint {
  kind: typeof CHECKPOINT_KIND;
  version: number;
  source: ImageIdentity;
  targetPath: string;
  /** The files of the source's and the target's differencing chains below them (parents first to last). */
  sourceParents: FileState[];
  targetParents: FileState[];
  virtualSizeBytes: number;
  blockSizeBytes: number;
  mode: "compare" | "target-digest";
  algo: string | null;
  /** Header checksum of the target digest in use (target-digest mode). */
  digestChecksum: string | null;
  /** Blocks [0, nextBlock) are done and flushed. */
  nextBlock: number;
  /** The target file when this checkpoint was saved (after flushing). */
  target: FileState;
  /**
   * Saved when the run stopped (interrupted, or failed): it wrote nothing after, so the target
   * must still be in exactly `target`'s state. False for the periodic checkpoints of a running
   * resync, which keeps writing blocks from `nextBlock` on after saving one.
   */
  final: boolean;
  /** The work of every run before nextBlock: this run's and the stopped runs' it resumed. */
  counters: SegmentCounters;
  /**
   * False once a run in the job was killed, or stopped by an error: what it did after its
   * last checkpoint (killed), or in the segments it dropped (an error), is counted by no run
   * (the next one finds those blocks equal), so `counters` are a lower bound.
   * Absent in checkpoints written before the thirteenth session: taken as true.
   */
  countersComplete?: boolean;
  updatedAt: string;
  /** The seal of the other fields (src/hash/sealed-json.ts), written last by saveCheckpoint. */
  checksum?: string;
}

/** What a run's checkpoints share from its start: everything but its progress and the target's state. */
export type CheckpointBase = Omit<ResyncCheckpoint, "nextBlock" | "counters" | "countersComplete" | "updatedAt" | "target" | "final" | "checksum">;

/** Default checkpoint path for a target. */
export function defaultCheckpointPath(targetPath: string): string {
  return `${targetPath}.vhdsync-checkpoint`;
}

/** A checkpoint is a few hundred bytes; anything much larger is some other file. */
const MAX_CHECKPOINT_BYTES = 1 << 20;

/**
 * Refuses (VHDSYNC_INVALID_ARGUMENT) a checkpoint path that names an existing file other than
 * a vhdsync checkpoint (of any version): a run replaces its checkpoint and removes it when done,
 * which must never happen to someone else's file. A run that will write checkpoints (`written`)
 * also needs a directory it can write them in (each replaces the last by a rename).
 * @throws VHDSYNC_INVALID_ARGUMENT, I/O codes
 */
export async function checkCheckpointPath(path: string, { written = true } = {}): Promise<void> {
  let stat;
  try {
    stat = await fsp.stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw toVhdsyncError(error, { path });
  }
  if (stat) {
    let kind: unknown;
    if (stat.isFile() && stat.size <= MAX_CHECKPOINT_BYTES) {
      try {
        kind = ((await readJsonState(path)) as { kind?: unknown } | undefined)?.kind;
      } catch (error) {
        if (!(error instanceof VhdsyncError && error.code === "VHDSYNC_BAD_STATE")) throw error;
      }
    }
    if (kind !== CHECKPOINT_KIND) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path} exists and is not a vhdsync resync checkpoint; name another checkpoint file (or, if it is a damaged checkpoint, remove it)`, { path });
    }
  }
  // An existing checkpoint is replaced by a rename there too.
  if (written) await checkCheckpointDirectory(path);
}

/**
 * Refuses a checkpoint's directory that cannot take a new one (missing, not writable, on a
 * read-only filesystem), before the run writes anything: its first checkpoint comes after 2 s
 * of writes, and a run that then failed would leave the target half-written without a way to
 * resume. (The temp file and the rename need write and search permission there.)
 * @throws I/O codes (VHDSYNC_NOT_FOUND, VHDSYNC_ACCESS_DENIED, ...)
 */
async function checkCheckpointDirectory(path: string): Promise<void> {
  const directory = dirname(path);
  try {
    await fsp.access(directory, fsConstants.W_OK | fsConstants.X_OK);
  } catch (error) {
    const errno = (error as NodeJS.ErrnoException).code ?? "EIO";
    const reason = toVhdsyncError(error, { path: directory });
    throw new VhdsyncError(reason.code, `cannot write the checkpoint ${path} in ${directory} (${errno}); name another place with --checkpoint FILE`, { path, errno }, { cause: error });
  }
}

/**
 * Why the target's `now` state rules out resuming from `checkpoint` without looking at its
 * content, or undefined. A replaced or resized file never resumes; after a final checkpoint
 * any write since does not either. After a periodic one the run itself wrote on (from
 * nextBlock), so the times cannot tell: the caller samples the done part instead.
 */
export function targetStateMismatch(checkpoint: ResyncCheckpoint, now: FileState): string | undefined {
  const saved = checkpoint.target;
  if (!saved || saved.device !== now.device || saved.inode !== now.inode) return "the target file was replaced since the checkpoint";
  // A killed run may have grown a dynamic VHD past its last checkpoint; only a resize shrinks
  // one (and a resized target is not resumed into: resumePoint in resync.ts).
  const sizeChanged = checkpoint.final ? saved.fileSizeBytes !== now.fileSizeBytes : BigInt(now.fileSizeBytes) < BigInt(saved.fileSizeBytes);
  if (sizeChanged) return "the target file changed size since the checkpoint";
  if (checkpoint.final && (saved.mtimeNs !== now.mtimeNs || saved.ctimeNs !== now.ctimeNs)) return "the target was written after the interrupted run stopped";
  return undefined;
}

/** Writes a checkpoint atomically, with its checksum (sealed-json.ts). @throws I/O codes */
export async function saveCheckpoint(path: string, checkpoint: ResyncCheckpoint): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(sealJson(checkpoint), null, 1) + "\n");
}

/**
 * Reads a checkpoint; undefined when the file does not exist or is not a readable checkpoint.
 * @throws I/O codes
 */
export async function loadCheckpoint(path: string): Promise<ResyncCheckpoint | undefined> {
  let parsed: ResyncCheckpoint | undefined;
  try {
    parsed = (await readJsonState(path)) as ResyncCheckpoint | undefined;
  } catch (error) {
    if (error instanceof VhdsyncError && error.code === "VHDSYNC_BAD_STATE") return undefined;
    throw error;
  }
  if (!parsed || parsed.kind !== CHECKPOINT_KIND || parsed.version !== CHECKPOINT_VERSION || !Number.isSafeInteger(parsed.nextBlock) || parsed.nextBlock < 0) return undefined;
  return wellFormed(parsed) ? parsed : undefined;
}

/**
 * Whether a checkpoint of this version has every field a resume reads, of its type. vhdsync
 * writes only whole ones (atomically); a file edited or made by hand may not be, and is then
 * not resumed from, as one of another version.
 */
function wellFormed(checkpoint: ResyncCheckpoint): boolean {
  const record = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
  const fileState = (value: unknown): value is Record<string, unknown> => record(value) && FILE_STATE_FIELDS.every((field) => typeof value[field] === "string");
  const count = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
  const { source, counters } = checkpoint as unknown as Record<string, unknown>;
  return (
    fileState(source) &&
    typeof source.format === "string" &&
    typeof checkpoint.targetPath === "string" &&
    count(checkpoint.virtualSizeBytes) &&
    count(checkpoint.blockSizeBytes) &&
    (checkpoint.mode === "compare" || checkpoint.mode === "target-digest") &&
    [checkpoint.algo, checkpoint.digestChecksum].every((value) => value === null || typeof value === "string") &&
    [checkpoint.sourceParents, checkpoint.targetParents].every((parents) => parents === undefined || (Array.isArray(parents) && parents.every(fileState))) &&
    (checkpoint.target === undefined || fileState(checkpoint.target)) &&
    typeof checkpoint.final === "boolean" &&
    record(counters) &&
    Object.keys(emptyCounters()).every((field) => count(counters[field]))
  );
}

const FILE_STATE_FIELDS: (keyof FileState)[] = ["fileSizeBytes", "mtimeNs", "ctimeNs", "inode", "device"];

/** Removes a checkpoint (after success), durably. @throws I/O codes */
export async function removeCheckpoint(path: string): Promise<void> {
  await removeStaleTempFiles(path); // a killed run's, even when this run saved no checkpoint
  await removeDurably(path);
}

/**
 * Why `checkpoint` cannot be used to resume the run described by `expected`, or undefined
 * when it can.
 */
export function checkpointMismatch(checkpoint: ResyncCheckpoint, expected: Omit<CheckpointBase, "kind" | "version">): string | undefined {
  if (!sealIntact(checkpoint)) return "the checkpoint is damaged: its checksum does not match its contents";
  const differences = identityDifferences(checkpoint.source, expected.source);
  if (differences.length > 0) return `source changed since the checkpoint (${differences.join(", ")})`;
  for (const field of ["targetPath", "virtualSizeBytes", "blockSizeBytes", "mode", "algo", "digestChecksum"] as const) {
    if (checkpoint[field] !== expected[field]) return `${field} differs from the checkpoint`;
  }
  const blockCount = blockCountFor(checkpoint.virtualSizeBytes, checkpoint.blockSizeBytes);
  if (checkpoint.nextBlock > blockCount) return `the checkpoint marks block ${checkpoint.nextBlock} done, past the image's ${blockCount} blocks`;
  // Parents are only read, by this run and the one before: any change is someone else's.
  for (const side of ["sourceParents", "targetParents"] as const) {
    if (JSON.stringify(checkpoint[side] ?? []) !== JSON.stringify(expected[side])) return `a parent of the ${side === "sourceParents" ? "source" : "target"} changed since the checkpoint`;
  }
  return undefined;
}
