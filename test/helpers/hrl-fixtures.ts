// Shared fixtures for the HRL tests: random write streams, raw images, and a log made by
// tracking a random write stream on a copy of a base image.

import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { RawImage } from "../../dist/formats/raw.js";
import { TrackedDisk } from "../../dist/hrl/tracked-disk.js";
import { applyLog } from "../../dist/hrl/apply-log.js";
import { Prng, testSeed } from "./prng.js";
import { tempDir } from "./tmp.js";

export interface Write {
  offset: number;
  data: Uint8Array;
}

/** `count` random writes inside a disk of `diskBytes`, lengths 1..maxBytes, often overlapping. */
export function randomWrites(prng: Prng, diskBytes: number, count: number, maxBytes = 70000): Write[] {
  const writes: Write[] = [];
  for (let i = 0; i < count; i++) {
    const length = 1 + prng.int(Math.min(maxBytes, diskBytes));
    const offset = prng.int(diskBytes - length + 1);
    writes.push({ offset, data: prng.bytes(length) });
  }
  return writes;
}

/** Writes a raw image of random content (or zeros). */
export function makeImage(path: string, prng: Prng | undefined, sizeBytes: number): void {
  writeFileSync(path, prng ? prng.bytes(sizeBytes) : new Uint8Array(sizeBytes));
}

/** SHA-256 of a file, hex. */
export function fileHash(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * Copies `base` to `<dir>/<name>.raw`, applies `writes` through a TrackedDisk and closes it.
 * Returns the written image's path and the log path (first log of the chain).
 */
export async function trackWrites(dir: string, name: string, base: string, writes: Write[], options: { previousUniqueId?: string; batchBytes?: number; metadataSizeBytes?: number } = {}): Promise<{ image: string; log: string; uniqueId: string }> {
  const image = join(dir, `${name}.raw`);
  copyFileSync(base, image);
  const log = join(dir, `${name}.hrl`);
  const tracked = await TrackedDisk.open(await RawImage.open(image, false), {
    logPath: () => log,
    previousUniqueId: options.previousUniqueId,
    writer: { batchBytes: options.batchBytes ?? 256 * 1024, metadataSizeBytes: options.metadataSizeBytes },
  });
  const uniqueId = tracked.currentLog.uniqueId;
  for (const write of writes) await tracked.write(write.data, write.offset);
  await tracked.close();
  return { image, log, uniqueId };
}

/** A seeded test start: the seed (print it in messages), its PRNG, a temp dir, and a random base image there. */
export function setup(t: { teardown: (fn: () => void) => void }, diskBytes: number): { seed: number; prng: Prng; dir: string; base: string } {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const base = join(dir, "base.raw");
  makeImage(base, prng, diskBytes);
  return { seed, prng, dir, base };
}

/** applyLog on a raw image file, opened and closed around the call. */
export async function applyToFile(imagePath: string, logPath: string, options: Parameters<typeof applyLog>[2] = {}) {
  const image = await RawImage.open(imagePath, false);
  try {
    return await applyLog(image, logPath, options);
  } finally {
    await image.close();
  }
}
