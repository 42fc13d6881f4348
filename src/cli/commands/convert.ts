// `vhdsync convert IN OUT --to raw|vhd-fixed|vhd-dynamic`: streaming, sparse-aware format
// conversion (unallocated and zero blocks stay unallocated in dynamic output).

import type { CommandModule } from "yargs";
import { CONVERT_TARGETS, convertImage, type ConvertTarget } from "../../sync/convert.js";
import { VhdsyncError } from "../../errors.js";
import { vhdBlockSizeProblem } from "../../formats/vhd/create-vhd.js";
import { EXIT, parseSize, printReport, runCommand, usageError, type GlobalOptions } from "../run.js";
import { formatBytes } from "../progress.js";
import { withProgress } from "../interrupt.js";
import { writeOut } from "../output.js";

interface ConvertArgs extends GlobalOptions {
  input: string;
  output: string;
  to: ConvertTarget;
  blockSize?: string;
  force?: boolean;
}

export const convertCommand: CommandModule<GlobalOptions, ConvertArgs> = {
  command: "convert <input> <output>",
  describe: "Convert an image to raw, fixed VHD or dynamic VHD (sparse-aware)",
  builder: (yargs) =>
    yargs
      .positional("input", { type: "string", demandOption: true, describe: "source image (any format)" })
      .positional("output", { type: "string", demandOption: true, describe: "image to create" })
      .option("to", { choices: CONVERT_TARGETS, demandOption: true, describe: "output format" })
      .option("block-size", { type: "string", describe: "block size of a dynamic VHD (default 2M)" })
      .option("force", { type: "boolean", describe: "replace OUTPUT if it exists" })
      .option("progress", { type: "boolean", describe: "progress bar / JSON progress lines" }),
  handler: (argv) =>
    runCommand(argv, async () => {
      if (argv.blockSize !== undefined && argv.to !== "vhd-dynamic") throw usageError("--block-size is only for --to vhd-dynamic");
      const blockSizeBytes = argv.blockSize === undefined ? undefined : parseSize(argv.blockSize, "--block-size");
      const blockProblem = blockSizeBytes === undefined ? undefined : vhdBlockSizeProblem(blockSizeBytes);
      if (blockProblem) throw usageError(`--block-size: ${blockProblem}`);
      const report = await withProgress(argv, "convert", (controls) =>
        convertImage(argv.input, argv.output, { to: argv.to, blockSizeBytes, overwrite: argv.force, ...controls }),
      ).catch((error) => {
        // The library's refusal names its option; the CLI's is --force.
        if (error instanceof VhdsyncError && error.details.outputExists) throw new VhdsyncError(error.code, `${argv.output} exists (use --force to replace it)`, error.details);
        throw error;
      });
      if (argv.json) printReport(report);
      else {
        writeOut(
          `${argv.output}: ${argv.to}, ${formatBytes(report.outputVirtualSizeBytes)} ` +
            `(${formatBytes(report.bytesWritten)} written in ${report.seconds.toFixed(2)} s)\n`,
        );
      }
      return EXIT.OK;
    }),
};
