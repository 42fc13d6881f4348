// qemu-img / qemu-io as oracles for the VHDX tests: create images, write patterns, and get
// qemu's view of the content as a raw file; plus vhdsync's view of the same content.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../dist/index.js";
import { regionOffsets } from "./vhdx-builder.js";

/** Runs qemu-img with `args` (throws with stderr on failure). */
export function qemuImg(...args: string[]): string {
  return execFileSync("qemu-img", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs one qemu-io process applying every command in `commands` to a VHDX image. */
export function qemuIo(path: string, commands: string[]): void {
  if (commands.length === 0) return;
  execFileSync("qemu-io", ["-f", "vhdx", ...commands.flatMap((command) => ["-c", command]), path], { stdio: ["ignore", "pipe", "pipe"] });
}

/** The image's content as qemu reads it (qemu-img convert -O raw). */
export function qemuRaw(path: string, dir: string, format = "vhdx"): Buffer {
  const out = join(dir, `oracle-${Math.random().toString(36).slice(2)}.raw`);
  qemuImg("convert", "-f", format, "-O", "raw", path, out);
  return readFileSync(out);
}

/** Hex sha256 of bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The whole virtual disk as vhdsync reads it (openImage, one read). */
export async function readWholeImage(path: string): Promise<Uint8Array> {
  const image = await openImage(path);
  try {
    const buffer = new Uint8Array(image.virtualSize);
    await image.read(buffer, 0);
    return buffer;
  } finally {
    await image.close();
  }
}

/**
 * A sparse VHDX of `sizeBytes` in 1 MiB blocks whose every payload block is FULLY_PRESENT
 * (created by qemu-img, then the BAT patched: block b at the b-th MiB after qemu's end of
 * file, which is extended without writing data). Cheap at any size: only the BAT is written.
 */
export function fullyAllocatedVhdx(path: string, sizeBytes: number): void {
  const mib = 1024 * 1024;
  qemuImg("create", "-q", "-f", "vhdx", "-o", "block_size=1M", path, String(sizeBytes));
  const head = Buffer.alloc(320 * 1024);
  const fd = openSync(path, "r+");
  try {
    readSync(fd, head, 0, head.length, 0);
    const { bat } = regionOffsets(head);
    const blocks = Math.ceil(sizeBytes / mib);
    const chunkRatio = (2 ** 23 * 512) / mib; // 512-byte sectors (qemu's default)
    const firstDataMib = Math.ceil(fstatSync(fd).size / mib);
    const entries = blocks + Math.floor((blocks - 1) / chunkRatio);
    const batchEntries = 128 * 1024;
    for (let first = 0; first < entries; first += batchEntries) {
      const batch = Buffer.alloc(Math.min(batchEntries, entries - first) * 8);
      for (let i = 0; i < batch.length / 8; i++) {
        const index = first + i;
        if (index % (chunkRatio + 1) === chunkRatio) continue; // sector bitmap entry: absent
        const block = index - Math.floor(index / (chunkRatio + 1));
        batch.writeBigUInt64LE(6n | (BigInt(firstDataMib + block) << 20n), i * 8);
      }
      writeSync(fd, batch, 0, batch.length, bat + first * 8);
    }
    ftruncateSync(fd, (firstDataMib + blocks) * mib);
  } finally {
    closeSync(fd);
  }
}
