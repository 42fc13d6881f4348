// qemu-img / qemu-io as oracles for the VHDX tests: create images, write patterns, and get
// qemu's view of the content as a raw file; plus vhdsync's view of the same content.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../dist/index.js";

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
