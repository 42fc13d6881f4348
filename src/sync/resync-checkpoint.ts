// The resync checkpoint: a small versioned JSON state file recording how far a resync has
// got (every block before `nextBlock` is equal and durable in the target). Written atomically
// after the target is flushed, so after a crash or kill -9 a resume never skips a block that
// was not written.

import { VhdsyncError } from "../errors.js";
import { readJsonState, removeDurably, writeFileAtomic } from "../io/atomic-file.js";
import { identityDifferences, type ImageIdentity } from "./image-identity.js";
import type { SegmentCounters } from "./segment-task.js";

export const CHECKPOINT_KIND = "vhdsync-resync-checkpoint";
export const CHECKPOINT_VERSION = 1;

/** Contents of a checkpoint file. */
export interface ResyncCheckpoint {
  kind: typeof CHECKPOINT_KIND;
  version: number;
  source: ImageIdentity;
  targetPath: string;
  virtualSizeBytes: number;
  blockSizeBytes: number;
  mode: "compare" | "target-digest";
  algo: string | null;
  /** Header checksum of the target digest in use (target-digest mode). */
  digestChecksum: string | null;
  /** Blocks [0, nextBlock) are done and flushed. */
  nextBlock: number;
  counters: SegmentCounters;
  updatedAt: string;
}

/** Default checkpoint path for a target. */
export function defaultCheckpointPath(targetPath: string): string {
  return `${targetPath}.vhdsync-checkpoint`;
}

/** Writes a checkpoint atomically. @throws I/O codes */
export async function saveCheckpoint(path: string, checkpoint: ResyncCheckpoint): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(checkpoint, null, 1) + "\n");
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
  return parsed;
}

/** Removes a checkpoint (after success), durably. @throws I/O codes */
export async function removeCheckpoint(path: string): Promise<void> {
  await removeDurably(path);
}

/**
 * Why `checkpoint` cannot be used to resume the run described by `expected`, or undefined
 * when it can.
 */
export function checkpointMismatch(checkpoint: ResyncCheckpoint, expected: Omit<ResyncCheckpoint, "nextBlock" | "counters" | "updatedAt" | "kind" | "version">): string | undefined {
  const differences = identityDifferences(checkpoint.source, expected.source);
  if (differences.length > 0) return `source changed since the checkpoint (${differences.join(", ")})`;
  for (const field of ["targetPath", "virtualSizeBytes", "blockSizeBytes", "mode", "algo", "digestChecksum"] as const) {
    if (checkpoint[field] !== expected[field]) return `${field} differs from the checkpoint`;
  }
  return undefined;
}
