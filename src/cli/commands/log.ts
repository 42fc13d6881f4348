// `vhdsync log ...`: Hyper-V Replica logs ([MS-HRL]) — info, verify, apply (with undo log),
// extents, compact, recover. A thin shell over src/hrl (docs/hrl.md).

import type { Argv, CommandModule } from "yargs";
import { openImage } from "../../formats/open-image.js";
import { applyLog } from "../../hrl/apply-log.js";
import { withProgress } from "../interrupt.js";
import { compactLog } from "../../hrl/compact-log.js";
import { openLog, type HrlLog, type OpenLogOptions } from "../../hrl/hrl-log.js";
import { hrlTimestampToIso, normalizeGuid } from "../../hrl/layout.js";
import { recoverLog } from "../../hrl/recover-log.js";
import { formatBytes } from "../progress.js";
import { EXIT, printJson, printReport, runCommand, usageError, type GlobalOptions } from "../run.js";
import { stopWhenReaderGoes, writeOut, writeOutPaced } from "../output.js";

interface LogArgs extends GlobalOptions {
  log: string;
  image?: string;
  out?: string;
  undo?: string;
  state?: string;
  expectPrevious?: string;
  sequenceCheck?: boolean;
}

const positionalLog = (yargs: Argv<GlobalOptions>) => yargs.positional("log", { type: "string", demandOption: true, describe: "log file (.hrl)" });

/** Opens a log, runs `body`, closes the log. */
async function withLog(path: string, options: OpenLogOptions, body: (log: HrlLog) => Promise<number>): Promise<number> {
  const log = await openLog(path, options);
  try {
    return await body(log);
  } finally {
    await log.close();
  }
}

/** Header, totals and extents of an open log, as `log info` reports them. */
function describeLog(log: HrlLog) {
  const { extents, bytesTouched } = log.extentTotals();
  const h = log.header;
  return {
    path: log.path,
    version: `${h.version >>> 16}.${h.version & 0xffff}`,
    clean: log.clean,
    eolLocation: h.eolLocation,
    errorCode: h.errorCode,
    uniqueId: h.uniqueId,
    previousUniqueId: h.previousUniqueId,
    vhd2DataWriteGuid: h.vhd2DataWriteGuid,
    creatorApplication: h.creatorApplication,
    created: hrlTimestampToIso(h.timestamp),
    lastModified: hrlTimestampToIso(h.lastModifiedTimestamp),
    metadataSizeBytes: h.metadataSizeBytes,
    metadataBlocks: log.metadataLocations.length,
    totalMetadataEntries: h.totalMetadataEntries,
    entries: log.entryCount,
    dataBytes: log.dataBytes,
    fileSizeBytes: log.fileSizeBytes,
    extents,
    bytesTouched,
  };
}

const infoCommand: CommandModule<GlobalOptions, LogArgs> = {
  command: "info <log>",
  describe: "Show a log's header, chain ids, cleanliness, entries and extents touched",
  builder: (yargs) => positionalLog(yargs) as Argv<LogArgs>,
  handler: (argv) =>
    runCommand(argv, () =>
      withLog(argv.log, { allowUnclean: true }, async (log) => {
        const info = describeLog(log);
        if (argv.json) printJson({ ok: true, ...info });
        else {
          const lines = [
            `Log:              ${info.path}`,
            `Format version:   ${info.version}`,
            `Closed cleanly:   ${info.clean ? "yes" : "NO (EOLLocation is 0: resynchronization required; `vhdsync log recover` salvages entries)"}`,
            `UniqueId:         ${info.uniqueId}`,
            `PreviousUniqueId: ${info.previousUniqueId}`,
            `Vhd2DataWriteGuid:${" " + info.vhd2DataWriteGuid}`,
            `Created:          ${info.created} by "${info.creatorApplication}"`,
            `Metadata:         ${info.metadataBlocks} blocks of ${info.metadataSizeBytes} bytes`,
            `Entries:          ${info.entries}${info.clean ? "" : " (recoverable)"}`,
            `Data:             ${info.dataBytes} bytes (${formatBytes(info.dataBytes)})`,
            `Extents touched:  ${info.extents} (${info.bytesTouched} bytes)`,
            ...(info.errorCode !== 0 ? [`ErrorCode:        ${info.errorCode} (change tracking failed: resynchronization required)`] : []),
          ];
          writeOut(lines.join("\n") + "\n");
        }
        return EXIT.OK;
      }),
    ),
};

const verifyCommand: CommandModule<GlobalOptions, LogArgs> = {
  command: "verify <log>",
  describe: "Check a log completely: header, metadata and entry checksums, data checksums (exit 3 if bad)",
  builder: (yargs) => positionalLog(yargs) as Argv<LogArgs>,
  handler: (argv) =>
    runCommand(argv, () =>
      withLog(argv.log, {}, async (log) => {
        await log.verifyData();
        if (argv.json) printJson({ ok: true, path: log.path, entries: log.entryCount, dataBytes: log.dataBytes });
        else writeOut(`${log.path}: OK (${log.entryCount} entries, ${log.dataBytes} bytes of data)\n`);
        return EXIT.OK;
      }),
    ),
};

const applyCommand: CommandModule<GlobalOptions, LogArgs> = {
  command: "apply <log> <image>",
  describe: "Apply a log to an image (validated first; resumable; optional undo log)",
  builder: (yargs) =>
    (positionalLog(yargs) as Argv<LogArgs>)
      .positional("image", { type: "string", demandOption: true, describe: "image to apply the log to" })
      .option("undo", { type: "string", describe: "write an undo log here (applying it restores the image)" })
      .option("state", { type: "string", describe: "state sidecar (default IMAGE.hrl-state.json)" })
      .option("expect-previous", { type: "string", describe: "PreviousUniqueId the log must have (overrides the sidecar)" })
      .option("sequence-check", { type: "boolean", default: true, describe: "check the log follows the last applied one" })
      .option("progress", { type: "boolean", describe: "progress bar / JSON progress lines" }),
  handler: (argv) =>
    runCommand(argv, async () => {
      // A malformed option value is a usage error (exit 2), found before the image is opened.
      if (argv.expectPrevious !== undefined && !normalizeGuid(argv.expectPrevious)) throw usageError(`--expect-previous: not a GUID: ${argv.expectPrevious}`);
      const image = await openImage(argv.image!, { readOnly: false });
      try {
        // Ctrl-C: the entry being written is finished, the image flushed and the resume point
        // recorded; the same command resumes (VHDSYNC_INTERRUPTED, exit 4).
        const result = await withProgress(argv, "apply", (controls) =>
          applyLog(image, argv.log, {
            undoPath: argv.undo,
            statePath: argv.state,
            expectedPreviousUniqueId: argv.expectPrevious,
            checkSequence: argv.sequenceCheck,
            ...controls,
          }),
        );
        if (argv.json) printReport(result);
        else {
          const resumed = result.resumedFromEntry > 0 ? ` (resumed at entry ${result.resumedFromEntry})` : "";
          const undo = result.undoPath ? `; undo log ${result.undoPath}` : "";
          writeOut(`Applied ${result.entryCount} entries, ${result.dataBytes} bytes${resumed}${undo}.\n`);
        }
        return EXIT.OK;
      } finally {
        await image.close();
      }
    }),
};

/** Characters of output gathered before a write to stdout. */
const OUTPUT_CHUNK_CHARS = 64 * 1024;

/**
 * Writes a log's extents as they are made: text lines `<offset> <length>` or, with `json`,
 * JSON lines `{"type":"extent","offset":…,"length":…}`. Returns their number and total length.
 */
async function streamExtents(log: HrlLog, json: boolean): Promise<{ extents: number; bytesTouched: number }> {
  let extents = 0;
  let bytesTouched = 0;
  let text = "";
  for (const { offset, length } of log.extents()) {
    text += json ? `{"type":"extent","offset":${offset},"length":${length}}\n` : `${offset} ${length}\n`;
    if (text.length >= OUTPUT_CHUNK_CHARS) {
      await writeOutPaced(text);
      text = "";
    }
    extents++;
    bytesTouched += length;
  }
  if (text) await writeOutPaced(text);
  return { extents, bytesTouched };
}

const extentsCommand: CommandModule<GlobalOptions, LogArgs> = {
  command: "extents <log>",
  describe: "List the disk ranges a log writes (sorted, coalesced); --json: a line per extent, then the totals",
  builder: (yargs) => positionalLog(yargs) as Argv<LogArgs>,
  handler: (argv) =>
    runCommand(argv, () =>
      withLog(argv.log, {}, async (log) => {
        stopWhenReaderGoes();
        const totals = await streamExtents(log, Boolean(argv.json));
        if (argv.json) printReport({ path: log.path, ...totals });
        return EXIT.OK;
      }),
    ),
};

const compactCommand: CommandModule<GlobalOptions, LogArgs> = {
  command: "compact <log> <out>",
  describe: "Rewrite a log keeping only the final content of each written range",
  builder: (yargs) => (positionalLog(yargs) as Argv<LogArgs>).positional("out", { type: "string", demandOption: true }),
  handler: (argv) =>
    runCommand(argv, async () => {
      const result = await compactLog(argv.log, argv.out!);
      if (argv.json) printJson({ ok: true, ...result });
      else {
        writeOut(
          `Compacted ${result.input.entryCount} entries (${result.input.dataBytes} bytes) into ` +
            `${result.output.entryCount} entries (${result.output.dataBytes} bytes): ${result.output.path}\n`,
        );
      }
      return EXIT.OK;
    }),
};

const recoverCommand: CommandModule<GlobalOptions, LogArgs> = {
  command: "recover <log> <out>",
  describe: "Salvage the entries of an unclean or damaged log up to its last valid metadata block",
  builder: (yargs) => (positionalLog(yargs) as Argv<LogArgs>).positional("out", { type: "string", demandOption: true }),
  handler: (argv) =>
    runCommand(argv, async () => {
      const result = await recoverLog(argv.log, argv.out!);
      if (argv.json) printJson({ ok: true, ...result });
      else {
        writeOut(
          `Recovered ${result.output.entryCount} entries (${result.output.dataBytes} bytes) from ${result.blocksKept} metadata blocks; ` +
            `dropped ${result.entriesDropped} entries and ${result.bytesDropped} trailing bytes: ${result.output.path}\n`,
        );
      }
      return EXIT.OK;
    }),
};

export const logCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  command: "log",
  describe: "Hyper-V Replica logs (.hrl): info, verify, apply, extents, compact, recover",
  builder: (yargs) =>
    yargs
      .command(infoCommand)
      .command(verifyCommand)
      .command(applyCommand)
      .command(extentsCommand)
      .command(compactCommand)
      .command(recoverCommand)
      .demandCommand(1, "name a log command: info, verify, apply, extents, compact or recover"),
  handler: () => undefined,
};
