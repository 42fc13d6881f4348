// Random raw images and change patterns for the resync tests (test/resync*.test.ts,
// test/sync*.test.ts), plus plain-JS oracles: file hashes and differing-block counts.

import { closeSync, openSync, readFileSync, readSync, writeSync, ftruncateSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Prng, testSeed } from "./prng.js";
import { tempDir } from "./tmp.js";

/** Change patterns the property tests cycle through. */
export const PATTERNS = ["edge-bytes", "whole-blocks", "zeroed-blocks", "last-partial", "all", "none", "mixed"] as const;
export type Pattern = (typeof PATTERNS)[number];

/**
 * Writes a raw image of `sizeBytes`: random data with runs of zero blocks and holes (regions
 * never written), so the file is sparse where the filesystem allows.
 */
export function writeRandomImage(path: string, sizeBytes: number, prng: Prng, chunkBytes = 64 * 1024): void {
  const fd = openSync(path, "w");
  try {
    ftruncateSync(fd, sizeBytes);
    for (let offset = 0; offset < sizeBytes; offset += chunkBytes) {
      const length = Math.min(chunkBytes, sizeBytes - offset);
      const kind = prng.int(10);
      if (kind === 0) continue; // hole
      if (kind === 1) writeSync(fd, new Uint8Array(length), 0, length, offset); // allocated zeros
      else writeSync(fd, prng.bytes(length), 0, length, offset);
    }
  } finally {
    closeSync(fd);
  }
}

/** Applies a change pattern to the image at `path` (in place). */
export function applyPattern(path: string, sizeBytes: number, blockSizeBytes: number, pattern: Pattern, prng: Prng): void {
  const fd = openSync(path, "r+");
  const blocks = Math.ceil(sizeBytes / blockSizeBytes);
  // An offset drawn inside the last, partial block can lie past the end: clamp it to the last byte.
  const writeAt = (offset: number, bytes: Uint8Array) => {
    const at = Math.min(offset, sizeBytes - 1);
    writeSync(fd, bytes, 0, Math.min(bytes.length, sizeBytes - at), at);
  };
  try {
    const count = 1 + prng.int(Math.max(1, Math.floor(blocks / 8)));
    for (let i = 0; i < (pattern === "none" ? 0 : pattern === "all" || pattern === "last-partial" ? 1 : count); i++) {
      const block = prng.int(blocks);
      const start = block * blockSizeBytes;
      switch (pattern) {
        case "edge-bytes": {
          // XOR with a non-zero value: the byte always changes (a random byte could equal the old one).
          const at = Math.min(prng.int(2) === 0 ? start : Math.min(sizeBytes, start + blockSizeBytes) - 1, sizeBytes - 1);
          const old = new Uint8Array(1);
          readSync(fd, old, 0, 1, at);
          writeAt(at, Uint8Array.of(old[0] ^ (1 + prng.int(255))));
          break;
        }
        case "whole-blocks":
          writeAt(start, prng.bytes(blockSizeBytes));
          break;
        case "zeroed-blocks":
          writeAt(start, new Uint8Array(blockSizeBytes));
          break;
        case "last-partial":
          writeAt(sizeBytes - 1 - prng.int(Math.min(100, sizeBytes)), Uint8Array.of(0x5a ^ prng.int(256)));
          break;
        case "all":
          for (let offset = 0; offset < sizeBytes; offset += blockSizeBytes) writeAt(offset, Uint8Array.of(prng.u32() | 1, 7));
          break;
        case "mixed":
          if (i % 3 === 0) writeAt(start, new Uint8Array(blockSizeBytes));
          else writeAt(start + prng.int(blockSizeBytes), prng.bytes(1 + prng.int(64)));
          break;
        default:
          break;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** sha256 of a file's bytes (hex). */
export function fileSha(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Number of `blockSizeBytes` blocks in which two equal-size files differ (plain JS oracle). */
export function differingBlocks(a: string, b: string, blockSizeBytes: number): number {
  const bytesA = readFileSync(a);
  const bytesB = readFileSync(b);
  let count = 0;
  for (let offset = 0; offset < bytesA.length; offset += blockSizeBytes) {
    const end = Math.min(bytesA.length, offset + blockSizeBytes);
    if (Buffer.compare(bytesA.subarray(offset, end), bytesB.subarray(offset, end)) !== 0) count++;
  }
  return count;
}

/** Common test setup: a seed, its PRNG, a temp dir and the paths of a source/target pair in it. */
export function pairSetup(t: { teardown: (fn: () => void) => void }): { seed: number; prng: Prng; dir: string; source: string; target: string } {
  const seed = testSeed();
  const dir = tempDir(t);
  return { seed, prng: new Prng(seed), dir, source: join(dir, "s.img"), target: join(dir, "t.img") };
}

/**
 * pairSetup() with random 1 MiB images at `source` and `target`, opened read-only for the
 * test (closed at its end): for calling the addon's segment scans directly.
 */
export function openRandomPair(t: { teardown: (fn: () => void) => void }): ReturnType<typeof pairSetup> & { sourceFd: number; targetFd: number } {
  const setup = pairSetup(t);
  writeRandomImage(setup.source, 1024 * 1024, setup.prng, 65536);
  writeRandomImage(setup.target, 1024 * 1024, setup.prng, 65536);
  const sourceFd = openSync(setup.source, "r");
  const targetFd = openSync(setup.target, "r");
  t.teardown(() => {
    closeSync(sourceFd);
    closeSync(targetFd);
  });
  return { ...setup, sourceFd, targetFd };
}

/** Blocks of the image at `path` that are all zero bytes (plain-JS oracle; the last block may be partial). */
export function zeroBlocks(path: string, blockSizeBytes: number): number {
  const bytes = readFileSync(path);
  let zero = 0;
  for (let start = 0; start < bytes.length; start += blockSizeBytes) {
    if (bytes.subarray(start, Math.min(bytes.length, start + blockSizeBytes)).every((byte) => byte === 0)) zero++;
  }
  return zero;
}

/** The counts of a resync report that must not depend on the scanner that ran. */
export function resyncOutcome(report: { blocksTotal: number; blocksCompared: number; blocksChanged: number; blocksZero: number; blocksUnallocated: number; bytesRead: number; bytesWritten: number; bytesZeroed: number }) {
  const { blocksTotal, blocksCompared, blocksChanged, blocksZero, blocksUnallocated, bytesRead, bytesWritten, bytesZeroed } = report;
  return { blocksTotal, blocksCompared, blocksChanged, blocksZero, blocksUnallocated, bytesRead, bytesWritten, bytesZeroed };
}
