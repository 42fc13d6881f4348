// VHDX format module: registers the VHDX detector ("vhdxfile" at offset 0, [MS-VHDX] 2.2.1)
// with openImage() on import, and re-exports the public pieces.

import { registerChecker } from "../check.js";
import { registerFormat } from "../open-image.js";
import { checkVhdx } from "./vhdx-check.js";
import { VhdxImage } from "./vhdx-image.js";
import { isVhdx } from "../signatures.js";

export { isVhdx };

registerFormat({
  format: "vhdx",
  detect: (head) => isVhdx(head),
  open: (path) => VhdxImage.open(path),
});

registerChecker({ format: "vhdx", detect: (head) => isVhdx(head), check: checkVhdx });

export { checkVhdx } from "./vhdx-check.js";
export { VhdxImage } from "./vhdx-image.js";
export type { VhdxStructure } from "./vhdx-image.js";
