// VHDX format module: registers the VHDX detector ("vhdxfile" at offset 0, [MS-VHDX] 2.2.1)
// with openImage() on import, and re-exports the public pieces.

import { registerChecker } from "../check.js";
import { registerFormat } from "../open-image.js";
import { checkVhdx } from "./vhdx-check.js";
import { VhdxImage } from "./vhdx-image.js";

const IDENTIFIER = [0x76, 0x68, 0x64, 0x78, 0x66, 0x69, 0x6c, 0x65]; // "vhdxfile"

/** True if `head` (the file's first bytes) starts with the VHDX file type identifier. */
export function isVhdx(head: Uint8Array): boolean {
  return head.length >= IDENTIFIER.length && IDENTIFIER.every((byte, i) => head[i] === byte);
}

registerFormat({
  format: "vhdx",
  detect: (head) => isVhdx(head),
  open: (path) => VhdxImage.open(path),
});

registerChecker({ format: "vhdx", detect: (head) => isVhdx(head), check: checkVhdx });

export { checkVhdx } from "./vhdx-check.js";
export { VhdxImage } from "./vhdx-image.js";
export type { VhdxStructure } from "./vhdx-image.js";
