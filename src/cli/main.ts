#!/usr/bin/env node
// The vhdsync command line: a thin shell over the library (src/index.ts).

import type { Argv } from "yargs";
import { COMMAND_NAMES, GROUP_COMMAND_NAMES, loadCommands } from "./commands/index.js";
import { scanCommandOf } from "./scan-commands.js";
import { EXIT, printJson, reportError } from "./run.js";
import { VhdsyncError } from "../errors.js";
import { outputWritten, quietOnClosedStderr, quietOnClosedStdout, writeOut } from "./output.js";

async function main(args: string[]): Promise<void> {
  const json = args.includes("--json");
  if (args.includes("--version") && !args.includes("--help")) {
    const { packageVersion, versionReport } = await import("./version.js");
    try {
      if (json) printJson(versionReport());
      else writeOut(`vhdsync ${packageVersion()}\n`);
    } catch (error) {
      process.exitCode = reportError(error, false); // stdout is what failed
    }
    return;
  }
  // yargs prints help (--help, the help command) with console.log, which drops a failed write
  // (a full disk) and exits 0: through writeOut instead, whose errors reach the catch below like
  // any command's. Nothing else in the CLI uses console.log.
  console.log = (...parts: unknown[]) => writeOut(`${parts.join(" ")}\n`);
  // bin/vhdsync.cjs has usually prewarmed the scan workers already; this covers other entries.
  if (scanCommandOf(args)) (await import("./prewarm.js")).prewarmFor(args);
  // yargs' CommonJS build (see yargs-factory.cts), loaded while the prewarmed worker boots.
  const { default: yargs } = await import("./yargs-factory.cjs");
  const commands = await loadCommands(args);
  const parser: Argv = yargs(args)
    .scriptName("vhdsync")
    .usage("$0 <command> [options]\n\nBlock replication and disaster recovery for virtual disk images.")
    .option("json", { type: "boolean", description: "Machine-readable JSON output", global: true })
    .version(false)
    .option("version", { type: "boolean", description: "Show the version (with --json: features)" })
    .command(commands)
    .command(
      "$0",
      false,
      () => {},
      (argv) => {
        const [first] = argv._;
        throw new VhdsyncError("VHDSYNC_USAGE", first === undefined ? "a command is required" : `unknown command: ${first}`);
      },
    )
    .middleware((argv): void => {
      refuseRepeatedOptions(argv, parser);
      refuseEmptyValues(argv, args);
      refuseFlagValues(args, parser);
    }, true)
    .strict()
    .strictCommands()
    // Wrapping measures every help string (~20 ms of string-width): only when help is shown.
    .wrap(args.includes("--help") ? Math.min(110, process.stdout.columns ?? 100) : null)
    .fail((message, error) => {
      if (error) throw error;
      throw new VhdsyncError("VHDSYNC_USAGE", usageMessage(message, args));
    })
    .help();
  skipHelpCache(parser);
  try {
    refuseDoubleDash(args);
    await parser.parseAsync();
  } catch (error) {
    if (error instanceof VhdsyncError && error.code === "VHDSYNC_USAGE") {
      // A message that already names the help to see (a command's) is not followed by another.
      const hint = /\(see vhdsync [^)]*--help\)$/.test(error.message) ? "" : "(see vhdsync --help)\n";
      process.stderr.write(`vhdsync: ${error.code}: ${error.message}\n${hint}`);
      if (json) printJson({ ok: false, error: error.toJSON() });
      process.exitCode = EXIT.USAGE;
      return;
    }
    process.exitCode = reportError(error, json);
  }
}

/**
 * yargs (strictCommands) reports every word past a command's positional arguments as an unknown
 * command ("Unknown command: extra" for `resync a b extra`): after a command, or a group's
 * subcommand, such words are unexpected arguments; after a group's name, an unknown subcommand.
 * A first word that is no command at all it reports as an unknown argument.
 */
export function usageMessage(message: string, args: string[]): string {
  const unknown = /^Unknown (commands?|arguments?): (.+)$/.exec(message);
  if (!unknown) return message;
  const words = unknown[2].split(", ");
  const first = args.find((arg) => !arg.startsWith("-"));
  // A first word that names no command (yargs: "Unknown argument: nosuch").
  if (words[0] === first && !COMMAND_NAMES.includes(first)) return `unknown command: ${first}`;
  if (unknown[1].startsWith("argument")) {
    // yargs names an unknown option without its dashes ("Unknown argument: nosuch" for --nosuch).
    // yargs' boolean negation names --no-such as "such".
    const given = (word: string) => (arg: string) => [`--${word}`, `--no-${word}`].some((option) => arg === option || arg.startsWith(`${option}=`)) || arg === `-${word}`;
    const options = words.map((word) => args.find(given(word))?.replace(/=.*$/s, ""));
    if (options.every((option) => option !== undefined)) return `unknown option${options.length > 1 ? "s" : ""}: ${options.join(" ")}`;
    return message;
  }
  // Where the words start: the latest place they follow each other in args (in order).
  let start = -1;
  for (let i = args.length - 1, j = words.length - 1; i >= 0 && j >= 0; i--) {
    if (args[i] === words[j] && --j < 0) start = i;
  }
  const before = args.slice(0, Math.max(0, start)).filter((arg) => !arg.startsWith("-"));
  const command = before[0];
  if (start < 0 || command === undefined || !COMMAND_NAMES.includes(command)) return message;
  if (before.length === 1 && GROUP_COMMAND_NAMES.includes(command)) return `unknown ${command} command: ${words[0]} (see vhdsync ${command} --help)`;
  const named = GROUP_COMMAND_NAMES.includes(command) ? before.slice(0, 2).join(" ") : command;
  return `unexpected argument${words.length > 1 ? "s" : ""}: ${words.join(" ")} (see vhdsync ${named} --help)`;
}

/**
 * `--` (end of options) is refused with a message that says what to do instead: yargs keeps the
 * words after it out of a command's positional arguments, so `resync -- -a.img b.img` said "Not
 * enough non-option arguments" and `resync a b -- x` "---- was given more than once".
 */
function refuseDoubleDash(args: string[]): void {
  if (args.includes("--")) throw new VhdsyncError("VHDSYNC_USAGE", "-- (end of options) is not supported: name a path that starts with - as ./-name");
}

/**
 * An option given twice reaches the commands as an array (yargs collects repeated values), which
 * they would take for a string or a number: a usage error instead, unless the option takes
 * several values. Repeated flags are fine (yargs keeps one boolean).
 */
function refuseRepeatedOptions(argv: Record<string, unknown>, parser: Argv): void {
  // (getOptions is yargs' own, missing from its type declarations.)
  const lists = new Set((parser as unknown as { getOptions(): { array: string[] } }).getOptions().array);
  for (const [key, value] of Object.entries(argv)) {
    if (key === "_" || lists.has(key) || !Array.isArray(value)) continue;
    // yargs also sets the camel-case spelling and aliases; name the option as typed.
    const name = key.length === 1 ? `-${key}` : `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
    throw new VhdsyncError("VHDSYNC_USAGE", `${name} was given more than once`);
  }
}

/**
 * A flag given a value (`--dry-run=yes`) takes only true or false: yargs reads any other value
 * as false, so `resync --dry-run=yes` wrote the target.
 */
function refuseFlagValues(args: string[], parser: Argv): void {
  const flags = new Set((parser as unknown as { getOptions(): { boolean: string[] } }).getOptions().boolean);
  for (const arg of args) {
    const match = /^--(?:no-)?([^=]+)=(.*)$/s.exec(arg);
    if (!match || !flags.has(match[1])) continue;
    if (match[2] !== "true" && match[2] !== "false") throw new VhdsyncError("VHDSYNC_USAGE", `${arg.slice(0, arg.indexOf("="))} takes no value, or true or false: got ${JSON.stringify(match[2])}`);
  }
}

/**
 * An empty path, name or size (`-o ""`, `--target-digest ""`, `resync "" t`) is a usage error.
 * The library would take an empty option for one not given: `resync --target-digest ""` would
 * read the target, the mode the user did not ask for.
 */
function refuseEmptyValues(argv: Record<string, unknown>, args: string[]): void {
  for (const [key, value] of Object.entries(argv)) {
    if (key === "_" || key === "$0" || !(value === "" || (Array.isArray(value) && value.includes("")))) continue;
    const kebab = key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
    const option = key.length === 1 ? `-${key}` : `--${kebab}`;
    const given = args.some((arg) => arg === option || arg.startsWith(`${option}=`));
    throw new VhdsyncError("VHDSYNC_USAGE", given ? `${option} is empty` : `the ${kebab.toUpperCase()} argument is empty`);
  }
}

/**
 * yargs renders the running command's whole help text right after starting its handler, in
 * case the handler fails later and help is shown (~10 ms of measuring strings, on the thread
 * that hands segments to the scan workers). Our fail handler never shows help, so it is only
 * rendered when --help asks for it.
 */
function skipHelpCache(parser: Argv): void {
  const internal = (parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.();
  const usage = internal?.getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === "function") usage.cacheHelpMessage = () => {};
}

quietOnClosedStdout();
quietOnClosedStderr();
// A write past the file size limit (ulimit -f) must fail with EFBIG, reported as
// VHDSYNC_NO_SPACE (exit 4) after the run saves its checkpoint and releases its lock, as a full
// filesystem's ENOSPC is: by default the kernel's SIGXFSZ would kill the process mid-write.
process.on("SIGXFSZ", () => {});
// (yargs/helpers' hideBin would cost ~0.1 s of module loading before anything else runs.)
// Exit as soon as the command is done and its output written (at once, unless a full pipe
// made it queue: outputWritten), rather than when the event loop drains: while Node tears down
// a draining process it closes its signal handles, and the default action of a Ctrl-C landing
// then killed a run that had finished, reported success and removed its checkpoint (status 130
// instead of the command's own; the interrupt handler's dispose() meant to ignore it).
// process.exit() keeps the handlers to the end.
void main(process.argv.slice(2))
  .then(outputWritten)
  .then(() => process.exit());
