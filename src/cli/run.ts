// Shared plumbing for CLI commands: the error/exit-code contract (`vhdsync: CODE: message`
// on stderr; 0 ok, 1 differences, 2 usage, 3 invalid input, 4 recoverable environment
// failure) and JSON output.

import { VhdsyncError, exitCodeFor, toVhdsyncError } from "../errors.js";
import { writeOut } from "./output.js";

/** Options every command accepts. */
export interface GlobalOptions {
  json?: boolean;
  progress?: boolean;
}

/** Exit codes of the CLI. */
export const EXIT = { OK: 0, DIFFERENT: 1, USAGE: 2, INVALID: 3, RECOVERABLE: 4 } as const;

/** Prints a value as one line of JSON on stdout. */
export function printJson(value: unknown): void {
  writeOut(JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
}

/**
 * Prints a command's final result: `{"ok":true,"type":"report",…}`. Used by every command
 * that may stream lines before it (`"type":"progress"` with --progress, hash's
 * `"type":"block"`), so a reader of the stream can tell the result by its type.
 */
export function printReport(report: object): void {
  printJson({ ok: true, type: "report", ...report });
}

/** Reports an error in the CLI's format and returns the exit code to use. */
export function reportError(error: unknown, json: boolean): number {
  const vhdsyncError = toVhdsyncError(error);
  process.stderr.write(`vhdsync: ${vhdsyncError.code}: ${vhdsyncError.message}\n`);
  try {
    if (json) printJson({ ok: false, error: vhdsyncError.toJSON() });
  } catch {
    // stdout itself failed (the error above may be that failure): stderr has said it.
  }
  if (vhdsyncError.code === "VHDSYNC_INTERNAL" && process.env.VHDSYNC_DEBUG) {
    process.stderr.write(`${(error as Error)?.stack ?? ""}\n`);
  }
  return exitCodeFor(vhdsyncError);
}

/**
 * Runs a command body and sets the process exit code from its result or error.
 * The body returns the exit code (EXIT.OK or EXIT.DIFFERENT).
 */
export async function runCommand(argv: GlobalOptions, body: () => Promise<number> | number): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (error) {
    process.exitCode = reportError(error, Boolean(argv.json));
  }
}

/** A usage error (exit 2). */
export function usageError(message: string): VhdsyncError {
  return new VhdsyncError("VHDSYNC_USAGE", message);
}

/**
 * Parses a byte size such as 4096, 64K, 64KiB, 2M, 1G (binary multiples).
 * @throws VHDSYNC_USAGE on anything else
 */
export function parseSize(text: string | number, what = "size"): number {
  if (typeof text === "number") {
    if (Number.isSafeInteger(text) && text >= 0) return text;
    throw usageError(`${what}: not a byte count: ${text}`);
  }
  const match = /^(\d+)\s*([KMGTP]?)(i?B)?$/i.exec(text.trim());
  if (!match) throw usageError(`${what}: not a byte count: ${text}`);
  const exponent = " KMGTP".indexOf(match[2].toUpperCase() || " ");
  const value = Number(match[1]) * 1024 ** exponent;
  if (!Number.isSafeInteger(value)) throw usageError(`${what}: too large: ${text}`);
  return value;
}
