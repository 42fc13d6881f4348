// The resync command group: `checksum`, `diff`, `resync`, `copy`, `verify` (docs/resync.md,
// docs/digest-file.md). Thin shells over src/sync: parse options, wire progress and Ctrl-C,
// print a human summary or the JSON report.

import type { Argv, CommandModule } from "yargs";
import { checksum } from "../../sync/checksum.js";
import { copy } from "../../sync/copy.js";
import { diff } from "../../sync/diff.js";
import { resync } from "../../sync/resync.js";
import { verify } from "../../sync/verify.js";
import type { DiffReport } from "../../sync/diff-report.js";
import type { BlockHashAlgorithm } from "../../sync/block-hasher.js";
import { VhdsyncError } from "../../errors.js";
import { checkBlockSize } from "../../sync/digest-format.js";
import { checkWorkers, workersFromEnv } from "../../sync/scan-workers.js";
import { EXIT, parseSize, printReport, runCommand, usageError, type GlobalOptions } from "../run.js";
import { formatBytes } from "../progress.js";
import { withProgress } from "../interrupt.js";
import { writeOut } from "../output.js";

interface SyncArgs extends GlobalOptions {
  blockSize?: string;
  hash?: BlockHashAlgorithm;
  workers?: number;
}

const HASHES = ["xxh3-128", "xxh3-64", "xxh64", "sha256"] as const;

function commonOptions<T>(yargs: Argv<T>): Argv<T & SyncArgs> {
  return yargs
    .option("block-size", { type: "string", describe: "block size: power of two, 4K..64M (default 4K)" })
    .option("progress", { type: "boolean", describe: "progress bar (terminal) / JSON progress lines with --json" })
    .option("workers", { type: "number", describe: "scanning threads incl. the main one (default: cores available)" }) as Argv<T & SyncArgs>;
}

/** --block-size, checked here: a bad value is a usage error (exit 2) before anything is opened. */
function blockSizeOf(argv: SyncArgs): number | undefined {
  if (argv.blockSize === undefined) return undefined;
  const size = parseSize(argv.blockSize, "--block-size");
  asUsage("--block-size", () => checkBlockSize(size));
  return size;
}

/** --workers, checked here as --block-size is; else VHDSYNC_WORKERS, part of the invocation too. */
function workersOf(argv: SyncArgs): number | undefined {
  return argv.workers === undefined ? asUsage("environment", workersFromEnv) : asUsage("--workers", () => checkWorkers(argv.workers));
}

/** Runs a library argument check, its VHDSYNC_INVALID_ARGUMENT becoming a usage error. */
function asUsage<T>(option: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof VhdsyncError && error.code === "VHDSYNC_INVALID_ARGUMENT") throw usageError(`${option}: ${error.message}`);
    throw error;
  }
}

function printDiff(argv: SyncArgs, report: DiffReport): number {
  if (argv.json) printReport(report);
  else if (report.equal) writeOut(`identical (${report.blocksTotal} blocks of ${formatBytes(report.blockSizeBytes)})\n`);
  else {
    writeOut(`${report.blocksDiffering} of ${report.blocksTotal} blocks differ (${formatBytes(report.bytesDiffering)}):\n`);
    for (const extent of report.extents) writeOut(`  ${extent.offset}+${extent.length}\n`);
    if (report.extentsTruncated) writeOut("  ... (list truncated)\n");
  }
  return report.equal ? EXIT.OK : EXIT.DIFFERENT;
}

interface ChecksumArgs extends SyncArgs {
  image: string;
  output: string;
}

export const checksumCommand: CommandModule<GlobalOptions, ChecksumArgs> = {
  command: "checksum <image>",
  describe: "Write the digest file of an image (per-block digests; zero/unallocated blocks marked)",
  builder: (yargs) =>
    commonOptions(yargs)
      .positional("image", { type: "string", demandOption: true })
      .option("output", { alias: "o", type: "string", demandOption: true, describe: "digest file to write" })
      .option("hash", { choices: HASHES, describe: "digest algorithm (default xxh3-128)" }) as Argv<ChecksumArgs>,
  handler: (argv) =>
    runCommand(argv, async () => {
      const report = await withProgress(argv, "checksum", (extra) => checksum(argv.image, argv.output, { blockSizeBytes: blockSizeOf(argv), algo: argv.hash, workers: workersOf(argv), ...extra }));
      if (argv.json) printReport(report);
      else writeOut(`${argv.output}: ${report.blocksTotal} blocks (${report.blocksData} data, ${report.blocksZero} zero/unallocated), ${report.algo}, ${report.seconds.toFixed(2)} s\n`);
      return EXIT.OK;
    }),
};

interface PairArgs extends SyncArgs {
  a: string;
  b: string;
}

export const diffCommand: CommandModule<GlobalOptions, PairArgs> = {
  command: "diff <a> <b>",
  describe: "Differing extents of two images or digest files (exit 1 when they differ)",
  builder: (yargs) => commonOptions(yargs).positional("a", { type: "string", demandOption: true }).positional("b", { type: "string", demandOption: true }) as Argv<PairArgs>,
  handler: (argv) =>
    runCommand(argv, async () => printDiff(argv, await withProgress(argv, "diff", (extra) => diff(argv.a, argv.b, { blockSizeBytes: blockSizeOf(argv), workers: workersOf(argv), ...extra })))),
};

export const verifyCommand: CommandModule<GlobalOptions, PairArgs> = {
  command: "verify <a> <b>",
  describe: "Online verify: read both images and report differing blocks, writing nothing (exit 1 when they differ)",
  builder: (yargs) => commonOptions(yargs).positional("a", { type: "string", demandOption: true }).positional("b", { type: "string", demandOption: true }) as Argv<PairArgs>,
  handler: (argv) =>
    runCommand(argv, async () => printDiff(argv, await withProgress(argv, "verify", (extra) => verify(argv.a, argv.b, { blockSizeBytes: blockSizeOf(argv), workers: workersOf(argv), ...extra })))),
};

interface ResyncArgs extends SyncArgs {
  source: string;
  target: string;
  targetDigest?: string;
  updateDigest?: boolean;
  dryRun?: boolean;
  resize?: boolean;
  resume?: boolean;
  checkpoint?: string;
}

export const resyncCommand: CommandModule<GlobalOptions, ResyncArgs> = {
  command: "resync <source> <target>",
  describe: "Make TARGET's content equal to SOURCE's, writing only the blocks that differ",
  builder: (yargs) =>
    commonOptions(yargs)
      .positional("source", { type: "string", demandOption: true })
      .positional("target", { type: "string", demandOption: true })
      .option("hash", { choices: HASHES, describe: "digest algorithm with --target-digest" })
      .option("target-digest", { type: "string", describe: "trust this digest file of the target instead of reading it" })
      .option("update-digest", { type: "boolean", describe: "after success, rewrite --target-digest for the new target" })
      .option("dry-run", { type: "boolean", describe: "report what would change; write nothing" })
      .option("resize", { type: "boolean", describe: "resize the target when sizes differ" })
      .option("resume", { type: "boolean", describe: "continue from the checkpoint of an interrupted run" })
      .option("checkpoint", { type: "string", describe: "checkpoint file (default TARGET.vhdsync-checkpoint)" }) as Argv<ResyncArgs>,
  handler: (argv) =>
    runCommand(argv, async () => {
      if (argv.updateDigest && !argv.targetDigest) throw usageError("--update-digest needs --target-digest");
      // A resync without a digest compares the bytes themselves: no algorithm to choose.
      if (argv.hash && !argv.targetDigest) throw usageError("--hash needs --target-digest (a resync without one compares the blocks' bytes)");
      const report = await withProgress(argv, "resync", (extra) =>
        resync(argv.source, argv.target, {
          blockSizeBytes: blockSizeOf(argv),
          algo: argv.hash,
          targetDigestPath: argv.targetDigest,
          updateTargetDigest: argv.updateDigest,
          dryRun: argv.dryRun,
          resize: argv.resize,
          resume: argv.resume,
          checkpointPath: argv.checkpoint,
          workers: workersOf(argv),
          ...extra,
        }),
      );
      if (report.digestNotUpdated) process.stderr.write(`vhdsync: note: --update-digest: ${report.digestNotUpdated}\n`);
      if (report.checkpointIgnored) process.stderr.write(`vhdsync: note: --resume: the checkpoint was not used (${report.checkpointIgnored}); the run started at block 0\n`);
      if (argv.json) printReport(report);
      else {
        // A dry run counts no bytes (it writes none); it used to print "would write 0 B".
        const written = report.dryRun ? "nothing written (dry run)" : `wrote ${formatBytes(report.bytesWritten)} (+${formatBytes(report.bytesZeroed)} zeroed)`;
        if (report.resized) writeOut(`resized the target to ${report.virtualSizeBytes} bytes (the source's size)\n`);
        writeOut(
          `${report.blocksChanged} of ${report.blocksTotal} blocks differed; ${written}; ` +
            `read ${formatBytes(report.bytesRead)} in ${report.seconds.toFixed(2)} s (${formatBytes(report.throughputBytesPerSecond)}/s)\n`,
        );
        const job = report.jobTotals;
        if (job) {
          writeOut(
            `resumed at block ${report.resumedFromBlock}; the whole job${report.jobTotalsComplete ? "" : " (at least: a run before was killed or failed, and some of what it wrote is counted by no run)"}: ${job.blocksChanged} blocks differed, wrote ${formatBytes(job.bytesWritten)} (+${formatBytes(job.bytesZeroed)} zeroed), read ${formatBytes(job.bytesRead)}\n`,
          );
        }
      }
      return EXIT.OK;
    }),
};

export const copyCommand: CommandModule<GlobalOptions, ResyncArgs> = {
  command: "copy <source> <target>",
  describe: "Full copy of SOURCE's allocated data to TARGET (created as sparse raw if missing); zero ranges stay holes",
  builder: (yargs) => commonOptions(yargs).positional("source", { type: "string", demandOption: true }).positional("target", { type: "string", demandOption: true }) as Argv<ResyncArgs>,
  handler: (argv) =>
    runCommand(argv, async () => {
      const report = await withProgress(argv, "copy", (extra) => copy(argv.source, argv.target, { blockSizeBytes: blockSizeOf(argv), workers: workersOf(argv), ...extra }));
      if (argv.json) printReport(report);
      else writeOut(`copied ${formatBytes(report.bytesWritten)} of data (${formatBytes(report.virtualSizeBytes)} virtual) in ${report.seconds.toFixed(2)} s\n`);
      return EXIT.OK;
    }),
};

/** Every command of the group, for src/cli/commands/index.ts. */
export const syncCommands = [checksumCommand, diffCommand, resyncCommand, copyCommand, verifyCommand];
