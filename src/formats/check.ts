// checkImage(): structural validation of an image file, dispatched to the checker its format
// registered (VHD: src/formats/vhd/vhd-check.ts; VHDX plugs in the same way). A file no
// checker claims is opened with openImage(), whose own validation is then the whole check
// (raw images: nothing to validate beyond being readable). A check lists at most
// MAX_CHECK_PROBLEMS problems and counts the rest, so a badly damaged image of any size
// cannot fill memory with them.

import type { ImageFormat } from "./disk-image.js";
import { loadFormatsFor, openImage, sniff } from "./open-image.js";
import { refusePipe } from "../io/file.js";

/** One structural problem: a stable code (a VhdsyncError code), a message, where it is. */
export interface CheckProblem {
  code: string;
  message: string;
  /** File offset of the faulty structure, when known. */
  offset?: number;
  /** The file it is in, when it is not the checked file (a parent in a chain). */
  path?: string;
}

/** Most problems one check lists (the VHD BAT scan stops listing at the same number). */
export const MAX_CHECK_PROBLEMS = 1000;

/** What a format's checker found. */
export interface CheckReport {
  /** The first MAX_CHECK_PROBLEMS problems found. */
  problems: CheckProblem[];
  /** Problems found beyond those listed (0 when the list is complete). */
  problemsOmitted: number;
}

/** What checkImage() reports. */
export interface CheckResult extends CheckReport {
  path: string;
  format: ImageFormat;
  /** No problem found (`problems` empty and `problemsOmitted` 0). */
  ok: boolean;
}

/** Collects a check's problems: lists the first `limit`, counts the rest. */
export class ProblemList {
  private readonly listed: CheckProblem[] = [];
  private omitted = 0;

  constructor(readonly limit = MAX_CHECK_PROBLEMS) {}

  /** Whether the list is full (callers may then `omit()` instead of building a problem). */
  get full(): boolean {
    return this.listed.length >= this.limit;
  }

  /** Problems found so far, listed or not. */
  get count(): number {
    return this.listed.length + this.omitted;
  }

  /** Lists `problem`, or counts it when the list is full. */
  add(problem: CheckProblem): void {
    if (this.full) this.omitted++;
    else this.listed.push(problem);
  }

  /** Counts `count` problems found but not listed. */
  omit(count: number): void {
    this.omitted += count;
  }

  /** Adds another check's report (a parent's), each problem passed through `map`. */
  addReport(report: CheckReport, map: (problem: CheckProblem) => CheckProblem): void {
    for (const problem of report.problems) this.add(map(problem));
    this.omit(report.problemsOmitted);
  }

  report(): CheckReport {
    return { problems: this.listed, problemsOmitted: this.omitted };
  }
}

/** A format's structural checker. */
export interface FormatChecker {
  format: ImageFormat;
  /** Same contract as FormatHandler.detect: first 64 KiB and last 512 bytes. */
  detect(head: Uint8Array, tail: Uint8Array): boolean;
  /** Every problem found, listed up to MAX_CHECK_PROBLEMS (empty when clean). Throws only for I/O errors. */
  check(path: string): Promise<CheckReport>;
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
  // A FIFO would block the open until a writer came.
  await refusePipe(path, "images");
  const { head, tail, isBlockDevice } = await sniff(path);
  await loadFormatsFor(head, tail);
  // A block device is read as raw whatever it holds (openImage): no structure to check.
  const checker = isBlockDevice ? undefined : checkers.find((candidate) => candidate.detect(head, tail));
  if (checker) {
    const { problems, problemsOmitted } = await checker.check(path);
    return { path, format: checker.format, ok: problems.length === 0 && problemsOmitted === 0, problems, problemsOmitted };
  }
  const image = await openImage(path, { readOnly: true });
  const format = image.format;
  await image.close();
  return { path, format, ok: true, problems: [], problemsOmitted: 0 };
}
