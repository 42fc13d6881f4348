// VHDX kernels ([MS-VHDX]): re-exported by assembly/index.ts.

export { vhdxCrc32c, crc32cUpdate as vhdxCrc32cUpdate } from "./crc32c";
export { vhdxParseHeaders } from "./header";
export { vhdxParseRegionTable } from "./region-table";
export { vhdxParseMetadata } from "./metadata";
export { vhdxParseParentLocator } from "./parent-locator";
export { vhdxValidateBat } from "./bat";
export { vhdxLogEntryCheck } from "./log";
export { vhdxLogFindActive, vhdxLogDescriptor } from "./log-sequence";
