// The CLI's command groups, loaded lazily: a run imports only the module of the command it
// names (start-up cost matters when the CLI is timed against xxhsum or rsync); --help and
// unknown commands load them all. One entry per module under src/cli/commands/.

import type { CommandModule } from "yargs";
import { SCAN_COMMANDS } from "../scan-commands.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = CommandModule<any, any>;

interface CommandGroup {
  /** Top-level command names the module defines. */
  names: string[];
  /** Whether its command's first argument names a subcommand (log, snapshot). */
  hasSubcommands?: boolean;
  load: () => Promise<AnyCommand[]>;
}

const groups: CommandGroup[] = [
  { names: ["check"], load: async () => [(await import("./check.js")).checkCommand] },
  { names: ["compare"], load: async () => [(await import("./compare.js")).compareCommand] },
  { names: ["convert"], load: async () => [(await import("./convert.js")).convertCommand] },
  { names: ["create"], load: async () => [(await import("./create.js")).createCommand] },
  { names: ["doctor"], load: async () => [(await import("./doctor.js")).doctorCommand] },
  { names: ["hash"], load: async () => [(await import("./hash.js")).hashCommand] },
  { names: ["info"], load: async () => [(await import("./info.js")).infoCommand] },
  { names: ["log"], hasSubcommands: true, load: async () => [(await import("./log.js")).logCommand] },
  { names: ["resize"], load: async () => [(await import("./resize.js")).resizeCommand] },
  { names: ["snapshot"], hasSubcommands: true, load: async () => [(await import("./snapshot.js")).snapshotCommand] },
  { names: SCAN_COMMANDS, load: async () => (await import("./sync.js")).syncCommands },
];

/** Every top-level command name (for tests and completion). */
export const COMMAND_NAMES: string[] = groups.flatMap((group) => group.names);

/** Top-level commands whose first argument names a subcommand. */
export const GROUP_COMMAND_NAMES: string[] = groups.filter((group) => group.hasSubcommands).flatMap((group) => group.names);

function groupOf(args: string[]): CommandGroup | undefined {
  const index = args.findIndex((arg) => !arg.startsWith("-"));
  return index < 0 ? undefined : groups.find((candidate) => candidate.names.includes(args[index]));
}

/**
 * The command modules needed to run `args`: only the named command's group when the first
 * positional argument names one, every group otherwise (help, unknown or missing command).
 */
export async function loadCommands(args: string[]): Promise<AnyCommand[]> {
  const group = groupOf(args);
  if (group) return group.load();
  return (await Promise.all(groups.map((candidate) => candidate.load()))).flat();
}
