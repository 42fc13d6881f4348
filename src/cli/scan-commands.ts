// The commands that scan images with worker threads (their scan workers are prewarmed).

export const SCAN_COMMANDS = ["checksum", "diff", "resync", "copy", "verify"];

/** The command `args` name (the first word that is not an option), when it is a scan command and help was not asked for. */
export function scanCommandOf(args: string[]): string | undefined {
  if (args.includes("--help")) return undefined;
  const command = args.find((arg) => !arg.startsWith("-"));
  return command !== undefined && SCAN_COMMANDS.includes(command) ? command : undefined;
}
