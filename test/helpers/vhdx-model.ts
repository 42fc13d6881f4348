// The model of a differencing VHDX (what each sector reads as, given the parent's content),
// random child blocks in every payload state for the test builder, and a qemu-made parent.
// Shared by the VHDX reading tests and the native scanners' tests.

import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { STATE, dataWriteGuidOf, type BuildBlock } from "./vhdx-builder.js";
import type { Prng } from "./prng.js";
import { qemuImg, qemuIo, qemuRaw } from "./vhdx-qemu.js";

export interface Layer {
  blocks: Map<number, BuildBlock>;
}

/** Random child blocks covering every payload state. */
export function randomBlocks(prng: Prng, blockCount: number, blockSize: number, sectorSize: number): Map<number, BuildBlock> {
  const states = [STATE.FULLY_PRESENT, STATE.PARTIALLY_PRESENT, STATE.ZERO, STATE.UNMAPPED, STATE.UNDEFINED, STATE.NOT_PRESENT, STATE.PARTIALLY_PRESENT];
  const blocks = new Map<number, BuildBlock>();
  for (let block = 0; block < blockCount; block++) {
    const state = states[(block + prng.int(3)) % states.length];
    if (state === STATE.NOT_PRESENT) continue;
    const data = prng.bytes(blockSize);
    const bits = new Uint8Array(blockSize / sectorSize).map(() => (prng.int(3) === 0 ? 1 : 0));
    for (let run = 0; run < 3; run++) bits.fill(1, prng.int(bits.length), prng.int(bits.length)); // some long runs
    blocks.set(block, { state, data, present: (s) => bits[s] === 1 });
  }
  return blocks;
}

/** What the child must read as, given the parent's content (the model). */
export function model(layer: Layer, parent: Uint8Array, size: number, blockSize: number, sectorSize: number): { content: Uint8Array; layerBytes: boolean[] } {
  const content = new Uint8Array(size);
  const inLayer: boolean[] = new Array(size / sectorSize).fill(false);
  for (let sector = 0; sector < size / sectorSize; sector++) {
    const offset = sector * sectorSize;
    const block = Math.floor(offset / blockSize);
    const b = layer.blocks.get(block);
    const inBlock = offset - block * blockSize;
    const fromParent = () => content.set(parent.subarray(offset, offset + sectorSize).subarray(0, Math.max(0, Math.min(sectorSize, parent.length - offset))), offset);
    if (!b) fromParent();
    else if (b.state === STATE.FULLY_PRESENT || (b.state === STATE.PARTIALLY_PRESENT && b.present!(inBlock / sectorSize))) {
      content.set(b.data!.subarray(inBlock, inBlock + sectorSize), offset);
      inLayer[sector] = true;
    } else if (b.state === STATE.PARTIALLY_PRESENT) fromParent();
  }
  return { content, layerBytes: inLayer };
}

/** A dynamic VHDX parent made by qemu-img with 10 patterned writes (in dir/base), its content as qemu reads it, and its DataWriteGuid. */
export function qemuParent(dir: string, prng: Prng, size: number): { path: string; content: Uint8Array; guid: string } {
  mkdirSync(join(dir, "base"), { recursive: true });
  const path = join(dir, "base", "parent.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", path, String(size));
  const commands = Array.from({ length: 10 }, () => `write -P 0x${(1 + prng.int(254)).toString(16)} ${prng.int(size / 512 - 2048) * 512} ${(1 + prng.int(2048)) * 512}`);
  qemuIo(path, commands);
  return { path, content: qemuRaw(path, dir), guid: dataWriteGuidOf(new Uint8Array(readFileSync(path))) };
}

