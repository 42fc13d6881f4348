// Sector bitmaps of VHD blocks (VHD spec 1.0: one bit per 512-byte sector, most significant
// bit first) operated on by the WASM kernels: each image owns one workspace in WASM memory
// the size of a bitmap, and bitmaps are copied through it.

import { allocWasm, type WasmInstance } from "../../wasm/driver.js";

/** A run of sectors whose bits are all set (`set`) or all clear. */
export interface BitRun {
  set: boolean;
  firstBit: number;
  bits: number;
}

/** Bitmap operations over one WASM workspace of `bitmapBytes`. Call release() when done. */
export class BitmapOps {
  private address: number;
  /** The instance the workspace belongs to. */
  private readonly wasm: WasmInstance;

  constructor(readonly bitmapBytes: number) {
    ({ wasm: this.wasm, address: this.address } = allocWasm(bitmapBytes));
  }

  private load(bitmap: Uint8Array): void {
    this.wasm.view(this.address, this.bitmapBytes).set(bitmap.subarray(0, this.bitmapBytes));
  }

  /** Runs of equal bits covering [firstBit, endBit). */
  runs(bitmap: Uint8Array, firstBit: number, endBit: number): BitRun[] {
    this.load(bitmap);
    const wasm = this.wasm;
    const runs: BitRun[] = [];
    for (let bit = firstBit; bit < endBit; ) {
      const bits = wasm.exports.vhdBitmapRun(this.address, bit, endBit) >>> 0;
      runs.push({ set: wasm.exports.vhdBitmapGet(this.address, bit) === 1, firstBit: bit, bits });
      bit += bits;
    }
    return runs;
  }

  /** Sets bits [firstBit, firstBit + count) in `bitmap`; returns how many were clear before. */
  setRange(bitmap: Uint8Array, firstBit: number, count: number): number {
    this.load(bitmap);
    const changed = this.wasm.exports.vhdBitmapSetRange(this.address, firstBit, count);
    if (changed > 0) bitmap.set(this.wasm.view(this.address, this.bitmapBytes));
    return changed;
  }

  /** Number of set bits among the first `bits`. */
  count(bitmap: Uint8Array, bits: number): number {
    this.load(bitmap);
    return this.wasm.exports.vhdBitmapCount(this.address, bits) >>> 0;
  }

  release(): void {
    if (this.address) this.wasm.release(this.address);
    this.address = 0;
  }
}
