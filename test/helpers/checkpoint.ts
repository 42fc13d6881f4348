// Resync checkpoints edited by hand in tests: the checksum docs/resync.md describes, computed
// independently of src/ (SHA-256, hex, of the JSON of every other field, in their order).
import { createHash } from "node:crypto";

/** `fields` with `checksum` made again over the others (a checkpoint that passes its own check). */
export function sealedCheckpoint(fields: Record<string, unknown>): Record<string, unknown> {
  const { checksum: _old, ...rest } = fields;
  return { ...rest, checksum: createHash("sha256").update(JSON.stringify(rest)).digest("hex") };
}
