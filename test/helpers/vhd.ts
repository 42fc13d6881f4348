// Helpers for the VHD tests: run the oracles (qemu-img, qemu-io, vhdiinfo), read a whole
// image through vhdsync, hash bytes.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DiskImage } from "../../dist/formats/disk-image.js";
import type { Prng } from "./prng.js";

/** Runs a command; throws with its stderr when it fails. Returns stdout. */
export function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}

/** The guest-visible content of an image according to qemu-img (`convert -O raw`). */
export function qemuContent(path: string, dir: string, format = "vpc"): Buffer {
  const out = join(dir, `qemu-raw-${Math.random().toString(36).slice(2)}.raw`);
  run("qemu-img", ["convert", "-f", format, "-O", "raw", path, out]);
  return readFileSync(out);
}

/** The virtual size qemu-img reports. */
export function qemuVirtualSize(path: string, format = "vpc"): number {
  return JSON.parse(run("qemu-img", ["info", "--output=json", "-f", format, path]))["virtual-size"];
}

/** Reads a whole image through vhdsync in chunks of `chunkBytes`. */
export async function readImage(image: DiskImage, chunkBytes = 1 << 20): Promise<Buffer> {
  const out = Buffer.alloc(image.virtualSize);
  for (let offset = 0; offset < image.virtualSize; offset += chunkBytes) {
    await image.read(out.subarray(offset, Math.min(image.virtualSize, offset + chunkBytes)), offset);
  }
  return out;
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** First offset where two buffers differ, or -1 (also -1 ... when equal). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const ZEROS = Buffer.alloc(1 << 20);

/** Whether every byte is zero. */
export function isZeroBuffer(bytes: Uint8Array): boolean {
  for (let offset = 0; offset < bytes.length; offset += ZEROS.length) {
    const part = bytes.subarray(offset, Math.min(bytes.length, offset + ZEROS.length));
    if (Buffer.compare(part, ZEROS.subarray(0, part.length)) !== 0) return false;
  }
  return true;
}

/** Applies `steps` random writes/zeroings to an image and to a model buffer. */
export async function randomWrites(image: { write(b: Uint8Array, o: number): Promise<void>; writeZeros(o: number, l: number): Promise<void> }, model: Buffer, prng: Prng, steps: number, blockSizeBytes: number): Promise<void> {
  for (let step = 0; step < steps; step++) {
    const kind = prng.int(5);
    let length = kind === 0 ? blockSizeBytes : kind === 1 ? 1 + prng.int(5000) : (1 + prng.int(64)) * 512;
    length = Math.min(length, model.length);
    let offset = prng.int(model.length - length + 1);
    if (kind === 0) offset = Math.floor(offset / blockSizeBytes) * blockSizeBytes;
    else if (kind !== 1) offset = Math.floor(offset / 512) * 512;
    length = Math.min(length, model.length - offset);
    if (kind === 4) {
      await image.writeZeros(offset, length);
      model.fill(0, offset, offset + length);
    } else {
      const data = prng.bytes(length);
      await image.write(data, offset);
      model.set(data, offset);
    }
  }
}


/** Reference one's-complement checksum (independent of the WASM kernel). */
export function onesComplement(bytes: Uint8Array, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) if (i < checksumOffset || i >= checksumOffset + 4) sum = (sum + bytes[i]) >>> 0;
  return ~sum >>> 0;
}

/** Recomputes the checksums of the footer at `footerOffset` and the header at `headerOffset` (if any). */
export function fixChecksums(file: Buffer, footerOffsets: number[], headerOffset?: number): void {
  for (const offset of footerOffsets) {
    const footer = file.subarray(offset, offset + 512);
    footer.writeUInt32BE(onesComplement(footer, 64), 64);
  }
  if (headerOffset !== undefined) {
    const header = file.subarray(headerOffset, headerOffset + 1024);
    header.writeUInt32BE(onesComplement(header, 36), 36);
  }
}

/**
 * Rewrites an empty dynamic VHD made by vhdsync (4 KiB or larger blocks, none allocated) into
 * one of `blockBytes` blocks with the same BAT: header block size, both footers' sizes (entries
 * x blockBytes), checksums. vhdsync does not create blocks under 4 KiB (qemu and libvhdi
 * misread them) but reads them: tests of those start here. Returns the new virtual size.
 */
export function setVhdBlockSize(path: string, blockBytes: number): number {
  const file = readFileSync(path);
  const header = 512;
  const entries = file.readUInt32BE(header + 28);
  const size = BigInt(entries) * BigInt(blockBytes);
  file.writeUInt32BE(blockBytes, header + 32);
  for (const footer of [0, file.length - 512]) {
    file.writeBigUInt64BE(size, footer + 40);
    file.writeBigUInt64BE(size, footer + 48);
  }
  fixChecksums(file, [0, file.length - 512], header);
  writeFileSync(path, file);
  return Number(size);
}
