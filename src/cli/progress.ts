// Progress reporting for long work: a bar on a terminal (bytes, rate, ETA, extra fields),
// JSON lines with --json --progress, nothing otherwise.

import type { ProgressEvent } from "../progress.js";
import { fstatSync } from "node:fs";
import { writeOut } from "./output.js";

const BAR_WIDTH = 28;
/** The narrowest bar drawn before the line is cut to the terminal's width. */
const MIN_BAR_WIDTH = 8;

/** Formats a byte count with binary units ("1.5 GiB"). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/**
 * One line of the bar, at most `columns - 1` characters (a line as wide as the terminal wraps
 * on some terminals, and `\r` then redraws only its last row): the detail goes first, then the
 * bar narrows, then the line is cut.
 */
export function barLine(label: string, fraction: number, doneBytes: number, totalBytes: number, rate: number, eta: number, detail: string | undefined, columns: number | undefined): string {
  const numbers = `${(fraction * 100).toFixed(1)}% ${formatBytes(doneBytes)}/${formatBytes(totalBytes)} ${formatBytes(rate)}/s ETA ${formatSeconds(eta)}`;
  const line = (width: number, extra: string) => {
    const filled = Math.round(fraction * width);
    return `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${numbers}${extra}`;
  };
  const room = columns !== undefined && columns > 1 ? columns - 1 : Infinity;
  const full = line(BAR_WIDTH, detail ? `  ${detail}` : "");
  if (full.length <= room) return full;
  const plain = line(BAR_WIDTH, "");
  if (plain.length <= room) return plain;
  const narrower = Math.max(MIN_BAR_WIDTH, BAR_WIDTH - (plain.length - room));
  return line(narrower, "").slice(0, room);
}

/** A progress listener suited to the output (terminal bar, JSON lines, or silent). */
export interface ProgressReporter {
  update: (event: ProgressEvent) => void;
  /** Clears the bar before other output to the terminal (it is drawn again by the next update). */
  clear: () => void;
  done: () => void;
}

/** Returns a progress listener suited to the output (terminal bar, JSON lines, or silent). */
export function progressReporter(options: { json?: boolean; progress?: boolean; label: string }): ProgressReporter {
  const silent = { update: () => {}, clear: () => {}, done: () => {} };
  if (options.json) {
    if (!options.progress) return silent;
    return {
      ...silent,
      update: (event) => writeOut(JSON.stringify({ type: "progress", ...event }) + "\n"),
    };
  }
  if (options.progress === false || !stderrIsTerminal()) return silent;
  // The rate is measured from the first event on: a resumed run's first event already counts
  // the bytes the stopped run did, which counted from the start made the rate (and the ETA)
  // too high.
  let baseline: { bytes: number; ms: number } | undefined;
  let lastDraw = 0;
  let drawn = false;
  const draw = (event: ProgressEvent, force = false) => {
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    baseline ??= { bytes: event.doneBytes, ms: now };
    const fraction = event.totalBytes > 0 ? Math.min(1, event.doneBytes / event.totalBytes) : 1;
    const rate = now > baseline.ms ? Math.max(0, event.doneBytes - baseline.bytes) / ((now - baseline.ms) / 1000) : 0;
    const eta = rate > 0 ? (event.totalBytes - event.doneBytes) / rate : Infinity;
    process.stderr.write(`\r${barLine(options.label, fraction, event.doneBytes, event.totalBytes, rate, eta, event.detail, process.stderr.columns)}\x1b[K`);
    drawn = true;
  };
  let last: ProgressEvent | undefined;
  return {
    update: (event) => {
      last = event;
      draw(event);
    },
    clear: () => {
      if (!drawn) return;
      process.stderr.write("\r\x1b[K");
      drawn = false;
      lastDraw = 0;
    },
    done: () => {
      if (last) draw(last, true);
      if (drawn) process.stderr.write("\n");
    },
  };
}

/**
 * Whether stderr is a terminal. Asking process.stderr makes the stream (and loads Node's tty,
 * net and stream modules, ~2.5 ms): only for a character device, which a pipe or a file is not.
 */
function stderrIsTerminal(): boolean {
  try {
    if (!fstatSync(2).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  return Boolean(process.stderr.isTTY);
}
