// VHD kernels (VHD spec 1.0): footer, dynamic header, BAT scan, sector bitmaps, geometry.

export { vhdFooterParse, vhdFooterBuild, vhdChecksum } from "./footer";
export { vhdHeaderParse, vhdHeaderBuild, vhdBitmapBytes } from "./header";
export { vhdBatScan } from "./bat";
export { vhdBitmapGet, vhdBitmapSetRange, vhdBitmapRun, vhdBitmapCount, vhdBitmapZeroCheck } from "./bitmap";
export { vhdGeometryForSize } from "./geometry";
