// Checksums of small JSON state files (resync checkpoints, the HRL apply sidecar, snapshot
// operation states). A state file is written atomically, so a crash never leaves half of one;
// but a change that stays valid JSON (a bit flip on disk, a careless edit) would pass every
// type check, and in a resume position (nextBlock, nextEntry, cursorBytes) it skips work
// silently. The seal is the SHA-256, in lowercase hex, of JSON.stringify of the object's other
// fields in their order, stored as its last field `checksum`: whitespace is not part of it.

import { VhdsyncError } from "../errors.js";
import { toHex } from "./algorithm.js";
import { sha256 } from "./sha256.js";

/** The field that holds the seal. */
const SEAL_FIELD = "checksum";

/** The seal of `value`'s fields other than `checksum`. */
function sealOf(value: object): string {
  const { [SEAL_FIELD]: _seal, ...fields } = value as Record<string, unknown>;
  return toHex(sha256(new TextEncoder().encode(JSON.stringify(fields))));
}

/** `value` without its old seal, with a new one as the last field. */
export function sealJson<T extends object>(value: T): T & { checksum: string } {
  const { [SEAL_FIELD]: _seal, ...fields } = value as Record<string, unknown>;
  return { ...fields, [SEAL_FIELD]: sealOf(fields) } as T & { checksum: string };
}

/** Whether `value` carries a seal that matches its other fields. */
export function sealIntact(value: object): boolean {
  const seal = (value as Record<string, unknown>)[SEAL_FIELD];
  return typeof seal === "string" && seal === sealOf(value);
}

/**
 * A state file's fields without the seal, marked `version`: a file of `version` must carry an
 * intact seal; one of an older version, written before the seal (the caller has checked which
 * versions it reads), has none to check.
 * @throws VHDSYNC_BAD_STATE (`what` at `path` is damaged)
 */
export function unsealState<T extends { version?: unknown }>(value: T, version: number, path: string, what: string): T {
  if (value.version === version && !sealIntact(value)) {
    throw new VhdsyncError("VHDSYNC_BAD_STATE", `${path}: ${what} is damaged (its checksum does not match its contents)`, { path });
  }
  const { [SEAL_FIELD]: _seal, ...fields } = value as Record<string, unknown>;
  return { ...fields, version } as T;
}
