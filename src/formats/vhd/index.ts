// The VHD format module: registers VHD detection with openImage() (a "conectix" footer at
// the end of the file, or its copy at offset 0) and exports the classes and createVhd().
// Importing this module (src/index.ts does) is what makes openImage() understand VHD.

import { registerFormat } from "../open-image.js";
import { registerChecker } from "../check.js";
import { checkVhd } from "./vhd-check.js";
import { openVhd } from "./open-vhd.js";
import { detectVhd } from "../signatures.js";

export { detectVhd };

registerFormat({
  format: "vhd",
  detect: detectVhd,
  open: (path, options) => openVhd(path, { readOnly: options.readOnly }),
});

export { openVhd } from "./open-vhd.js";
export type { OpenVhdOptions } from "./open-vhd.js";
export { createVhd, createVhdInPlace, DEFAULT_BLOCK_SIZE_BYTES, VHD_MIN_NEW_BLOCK_BYTES } from "./create-vhd.js";
export type { CreateVhdOptions } from "./create-vhd.js";
export { VhdImage } from "./vhd-image.js";
export { VhdFixedImage } from "./vhd-fixed-image.js";
export { VhdDynamicImage } from "./vhd-dynamic-image.js";
export { VhdDifferencingImage } from "./vhd-differencing-image.js";
export { geometryForSize, parseFooter, buildFooter, parseHeader, buildHeader } from "./vhd-structures.js";
export type { VhdFooter, VhdHeader, VhdGeometry, VhdLocatorEntry } from "./vhd-structures.js";
export { checkVhd };

registerChecker({ format: "vhd", detect: detectVhd, check: checkVhd });
