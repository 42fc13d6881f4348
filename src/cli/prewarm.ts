// Starts the scan workers a command will use before the rest of the CLI has loaded, so that
// their boot (~0.05 s for an empty Node worker, more while both cores are busy) overlaps ours.
// bin/vhdsync.cjs runs this first, as its own small bundle (dist/bin/prewarm.cjs), before it
// compiles the CLI bundle; main.ts calls it too (a no-op once workers are prewarmed). It
// imports only what that decision needs (scan-workers, the format sniff and signatures, the
// addon probe) and Node built-ins.

import { existsSync, statSync } from "node:fs";
import { sniffSync } from "../formats/open-image.js";
import { imageLayout, type ImageLayout } from "../formats/signatures.js";
import { hashScanAlgorithmId, nativeCompareAvailable, nativeHashScanAvailable } from "../io/native-compare.js";
import { hasPrewarmedWorkers, prewarmScanWorkers } from "../sync/scan-workers.js";

export { scanThreadPoolSize } from "../sync/scan-workers.js";
import { scanCommandOf } from "./scan-commands.js";

/** Prewarms the workers for `args` (the CLI's arguments) when they name a scan command and an image big enough. Best effort. */
export function prewarmFor(args: string[]): void {
  const command = scanCommandOf(args);
  // The CLI bundle calls this again after the bin's prewarm: nothing to look up then.
  if (command === undefined || hasPrewarmedWorkers()) return;
  const words = args.slice(args.indexOf(command) + 1);
  // The first word naming a file is the source.
  const files = words.filter((word) => !word.startsWith("-") && isFile(word));
  if (scansNatively(command, words, files)) return;
  try {
    prewarmScanWorkers(files[0], workersOption(words));
  } catch {
    // A bad --workers: the command refuses it with a usage error.
  }
}

/**
 * Whether the command will scan with a native scanner (which needs no worker), with the addon:
 * - resync without a target digest, verify or diff of a raw image, VHD or VHDX (a
 *   differencing VHD or VHDX is gathered from its chain's files, a VHDX with a dirty log read
 *   into memory) and a target that is one too (when resync writes to it, not a VHDX: that is
 *   read-only);
 * - checksum of such an image with a hash the addon computes (all four; an older addon: XXH3),
 *   and resync --target-digest from one (into any target resync writes: raw, or a VHD written
 *   through its format; the digest's hash is assumed to be one the addon computes);
 * - copy of such an image into a new target (created as raw). The block size is assumed to
 *   be the default (not larger than a dynamic image's blocks).
 * A wrong guess costs only time.
 */
function scansNatively(command: string, words: string[], files: string[]): boolean {
  const [source, target] = files.slice(0, 2).map(layoutOf);
  if (source === undefined || source === "other") return false;
  const writes = command === "resync" && optionIndex(words, "--dry-run") < 0;
  // copy into a new target (created as a sparse raw file, which reads as zeros).
  if (command === "copy") return !existsAfter(words, files[0]) && nativeCompareAvailable();
  if (command === "checksum") return hashScanAlgorithmId(requestedHash(words)) !== undefined;
  if (!["resync", "verify", "diff"].includes(command) || target === undefined) return false;
  const targetFits = target !== "other" && !(writes && target === "vhdx");
  if (optionIndex(words, "--target-digest") >= 0) return command === "resync" && targetFits && nativeHashScanAvailable();
  return targetFits && nativeCompareAvailable();
}

/** The digest `--hash` names (xxh3-128, the default, when absent). */
function requestedHash(words: string[]): string {
  const index = optionIndex(words, "--hash");
  if (index < 0) return "xxh3-128";
  return (words[index].includes("=") ? words[index].slice("--hash=".length) : words[index + 1]) ?? "";
}

/** Whether the operand after `source` in `words` (the copy target) names an existing file. */
function existsAfter(words: string[], source: string | undefined): boolean {
  const operands = words.filter((word) => !word.startsWith("-"));
  const target = source === undefined ? undefined : operands[operands.indexOf(source) + 1];
  return target === undefined || existsSync(target);
}

/** What the file's signatures say about its layout ("other" when unreadable). */
function layoutOf(path: string): ImageLayout {
  try {
    const { head, tail } = sniffSync(path);
    return imageLayout(head, tail);
  } catch {
    return "other";
  }
}

/** A regular file or a block device: never a FIFO, whose synchronous open would wait for a writer. */
function isFile(path: string): boolean {
  try {
    const stats = statSync(path);
    return stats.isFile() || stats.isBlockDevice();
  } catch {
    return false;
  }
}

/** The index of option `name` (`--name V` or `--name=V`) in `words`, or -1. */
function optionIndex(words: string[], name: string): number {
  return words.findIndex((word) => word === name || word.startsWith(`${name}=`));
}

/** The value of a `--workers N` / `--workers=N` option, when it is a whole number. */
export function workersOption(words: string[]): number | undefined {
  const index = optionIndex(words, "--workers");
  if (index < 0) return undefined;
  const value = Number(words[index].includes("=") ? words[index].slice("--workers=".length) : words[index + 1]);
  return Number.isInteger(value) && value >= 0 ? value : undefined;
}
