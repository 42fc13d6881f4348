// Starts the scan workers a command will use before the rest of the CLI has loaded, so that
// their boot (~0.05 s for an empty Node worker, more while both cores are busy) overlaps ours.
// bin/vhdsync.cjs runs this first, as its own small bundle (dist/bin/prewarm.cjs), before it
// compiles the CLI bundle; main.ts calls it too (a no-op once workers are prewarmed). It may
// import only scan-workers and Node built-ins.

import { statSync } from "node:fs";
import { hasPrewarmedWorkers, prewarmScanWorkers } from "../sync/scan-workers.js";
import { scanCommandOf } from "./scan-commands.js";

/** Prewarms the workers for `args` (the CLI's arguments) when they name a scan command and an image big enough. Best effort. */
export function prewarmFor(args: string[]): void {
  const command = scanCommandOf(args);
  // The CLI bundle calls this again after the bin's prewarm: nothing to look up then.
  if (command === undefined || hasPrewarmedWorkers()) return;
  const words = args.slice(args.indexOf(command) + 1);
  // The first word naming a file is the source.
  prewarmScanWorkers(words.find((word) => !word.startsWith("-") && isFile(word)), workersOption(words));
}

function isFile(path: string): boolean {
  try {
    return !statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The value of a `--workers N` / `--workers=N` option, when it is a whole number. */
export function workersOption(words: string[]): number | undefined {
  const index = words.findIndex((word) => word === "--workers" || word.startsWith("--workers="));
  if (index < 0) return undefined;
  const value = Number(words[index].includes("=") ? words[index].slice("--workers=".length) : words[index + 1]);
  return Number.isInteger(value) && value >= 0 ? value : undefined;
}
