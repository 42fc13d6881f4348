// Progress reporting for long work: a bar on a terminal (bytes, rate, ETA, extra fields),
// JSON lines with --json --progress, nothing otherwise.

import type { ProgressEvent } from "../progress.js";
import { fstatSync } from "node:fs";
import { writeOut } from "./output.js";

const BAR_WIDTH = 28;

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

/** Returns a progress listener suited to the output (terminal bar, JSON lines, or silent). */
export function progressReporter(options: { json?: boolean; progress?: boolean; label: string }): {
  update: (event: ProgressEvent) => void;
  done: () => void;
} {
  if (options.json) {
    if (!options.progress) return { update: () => {}, done: () => {} };
    return {
      update: (event) => writeOut(JSON.stringify({ type: "progress", ...event }) + "\n"),
      done: () => {},
    };
  }
  if (options.progress === false || !stderrIsTerminal()) return { update: () => {}, done: () => {} };
  const started = Date.now();
  let lastDraw = 0;
  const draw = (event: ProgressEvent, force = false) => {
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    const fraction = event.totalBytes > 0 ? Math.min(1, event.doneBytes / event.totalBytes) : 1;
    const filled = Math.round(fraction * BAR_WIDTH);
    const rate = event.doneBytes / Math.max(0.001, (now - started) / 1000);
    const eta = rate > 0 ? (event.totalBytes - event.doneBytes) / rate : Infinity;
    const extra = event.detail ? `  ${event.detail}` : "";
    process.stderr.write(
      `\r${options.label} [${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}] ` +
        `${(fraction * 100).toFixed(1)}% ${formatBytes(event.doneBytes)}/${formatBytes(event.totalBytes)} ` +
        `${formatBytes(rate)}/s ETA ${formatSeconds(eta)}${extra}\x1b[K`,
    );
  };
  let last: ProgressEvent | undefined;
  return {
    update: (event) => {
      last = event;
      draw(event);
    },
    done: () => {
      if (last) draw(last, true);
      process.stderr.write("\n");
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
