// The CLI's command groups, loaded lazily: a run imports only the module of the command it
// names (start-up cost matters when the CLI is timed against xxhsum or rsync); --help and
// unknown commands load them all. One entry per module under src/cli/commands/.

import { statSync } from "node:fs";
import type { CommandModule } from "yargs";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = CommandModule<any, any>;

interface CommandGroup {
  /** Top-level command names the module defines. */
  names: string[];
  load: () => Promise<AnyCommand[]>;
  /** Started before anything else is loaded, with the words after the command name. */
  prewarm?: (words: string[]) => Promise<void>;
}

const groups: CommandGroup[] = [
  { names: ["check"], load: async () => [(await import("./check.js")).checkCommand] },
  { names: ["compare"], load: async () => [(await import("./compare.js")).compareCommand] },
  { names: ["convert"], load: async () => [(await import("./convert.js")).convertCommand] },
  { names: ["create"], load: async () => [(await import("./create.js")).createCommand] },
  { names: ["doctor"], load: async () => [(await import("./doctor.js")).doctorCommand] },
  { names: ["hash"], load: async () => [(await import("./hash.js")).hashCommand] },
  { names: ["info"], load: async () => [(await import("./info.js")).infoCommand] },
  { names: ["log"], load: async () => [(await import("./log.js")).logCommand] },
  { names: ["snapshot"], load: async () => [(await import("./snapshot.js")).snapshotCommand] },
  {
    names: ["checksum", "diff", "resync", "copy", "verify"],
    load: async () => (await import("./sync.js")).syncCommands,
    // Boot the scan workers while the CLI itself loads (the first word naming a file is the source).
    prewarm: async (words) =>
      (await import("../../sync/scan-workers.js")).prewarmScanWorkers(
        words.find((word) => !word.startsWith("-") && isFile(word)),
        workersOption(words),
      ),
  },
];

/** Every top-level command name (for tests and completion). */
export const COMMAND_NAMES: string[] = groups.flatMap((group) => group.names);

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

function groupOf(args: string[]): { group: CommandGroup | undefined; rest: string[] } {
  const index = args.findIndex((arg) => !arg.startsWith("-"));
  const group = index < 0 ? undefined : groups.find((candidate) => candidate.names.includes(args[index]));
  return { group, rest: args.slice(index + 1) };
}

/** Starts what the named command can usefully start before the CLI has loaded (best effort). */
export async function prewarmFor(args: string[]): Promise<void> {
  if (args.includes("--help")) return;
  const { group, rest } = groupOf(args);
  await group?.prewarm?.(rest).catch(() => undefined);
}

/**
 * The command modules needed to run `args`: only the named command's group when the first
 * positional argument names one, every group otherwise (help, unknown or missing command).
 */
export async function loadCommands(args: string[]): Promise<AnyCommand[]> {
  const { group } = groupOf(args);
  if (group) return group.load();
  return (await Promise.all(groups.map((candidate) => candidate.load()))).flat();
}
