// checkImage(): structural validation of an image file, dispatched to the checker its format
// registered (VHD: src/formats/vhd/vhd-check.ts; VHDX plugs in the same way). A file no
// checker claims is opened with openImage(), whose own validation is then the whole check
// (raw images: nothing to validate beyond being readable).

import type { ImageFormat } from "./disk-image.js";
import { loadFormatsFor, openImage, sniff } from "./open-image.js";

/** One structural problem: a stable code (a VhdsyncError code), a message, where it is. */
export interface CheckProblem {
  code: string;
  message: string;
  /** File offset of the faulty structure, when known. */
  offset?: number;
  /** The file it is in, when it is not the checked file (a parent in a chain). */
  path?: string;
}

/** What checkImage() reports. */
export interface CheckResult {
  path: string;
  format: ImageFormat;
  ok: boolean;
  problems: CheckProblem[];
}

/** A format's structural checker. */
export interface FormatChecker {
  format: ImageFormat;
  /** Same contract as FormatHandler.detect: first 64 KiB and last 512 bytes. */
  detect(head: Uint8Array, tail: Uint8Array): boolean;
  /** Lists every problem found (empty when clean). Throws only for I/O errors. */
  check(path: string): Promise<CheckProblem[]>;
}

const checkers: FormatChecker[] = [];

/** Registers a format's checker (called once by each format module at import time). */
export function registerChecker(checker: FormatChecker): void {
  if (!checkers.some((existing) => existing.format === checker.format)) checkers.push(checker);
}

/**
 * Validates the structure of an image file without modifying it.
 * @throws VHDSYNC_NOT_FOUND, VHDSYNC_ACCESS_DENIED and other I/O codes; for formats without a
 *   checker, whatever openImage() throws (structural problems of checked formats are returned)
 */
export async function checkImage(path: string): Promise<CheckResult> {
  const { head, tail } = await sniff(path);
  await loadFormatsFor(head, tail);
  const checker = checkers.find((candidate) => candidate.detect(head, tail));
  if (checker) {
    const problems = await checker.check(path);
    return { path, format: checker.format, ok: problems.length === 0, problems };
  }
  const image = await openImage(path, { readOnly: true });
  const format = image.format;
  await image.close();
  return { path, format, ok: true, problems: [] };
}
