// WebAssembly entry point: re-exports every kernel. One module, one instance per thread,
// memory imported from the driver (fixed size, never grown). See docs/architecture.md.

export { heapBase } from "./memory";
export { isZero, bytesEqual, zeroBlocks, compareBlocks, flagsToRanges, diffDigests } from "./blocks";
