// Status codes returned by every WASM export that can fail. The core never throws on bad
// data: it returns one of these and the TS driver (src/wasm/status.ts) maps it to a
// VhdsyncError. Ranges: 0-99 generic, 100-199 VHD, 200-299 VHDX, 300-399 HRL, 400-499 digest.
// Keep this table in sync with src/wasm/status.ts (a test checks both).

export const STATUS_OK: i32 = 0;
/** Pointer/length/size argument outside what the kernel accepts (a caller bug). */
export const STATUS_BAD_ARGUMENT: i32 = 1;
/** Output area too small for the result. */
export const STATUS_OUTPUT_TOO_SMALL: i32 = 2;
/** Unknown algorithm identifier. */
export const STATUS_BAD_ALGORITHM: i32 = 3;
/** Block size is zero, not a power of two, or out of the supported range. */
export const STATUS_BAD_BLOCK_SIZE: i32 = 4;
