// `vhdsync resize IMAGE SIZE [--shrink]`: changes a raw file's or a VHD's virtual size on its
// own (qemu-img cannot resize VHDs). Shrinking discards data: refused without --shrink.

import type { CommandModule } from "yargs";
import { resizeImage } from "../../sync/resize.js";
import { VhdsyncError } from "../../errors.js";
import { EXIT, parseSize, printJson, runCommand, usageError, type GlobalOptions } from "../run.js";
import { writeOut } from "../output.js";

interface ResizeArgs extends GlobalOptions {
  image: string;
  size: string;
  shrink?: boolean;
}

export const resizeCommand: CommandModule<GlobalOptions, ResizeArgs> = {
  command: "resize <image> <size>",
  describe: "Change the virtual size of a raw image or a fixed or dynamic VHD",
  builder: (yargs) =>
    yargs
      .positional("image", { type: "string", demandOption: true, describe: "raw file or VHD" })
      .positional("size", { type: "string", demandOption: true, describe: "new virtual size in bytes (K/M/G/T suffixes, binary)" })
      .option("shrink", { type: "boolean", describe: "allow a smaller size (the data past it is discarded)" }),
  handler: (argv) =>
    runCommand(argv, async () => {
      const sizeBytes = parseSize(argv.size, "SIZE");
      if (sizeBytes === 0) throw usageError("SIZE: must be more than 0 bytes");
      const report = await resizeImage(argv.image, sizeBytes, { allowShrink: Boolean(argv.shrink) }).catch((error: unknown) => {
        // The library's refusal names its option; the CLI's names the flag.
        if (error instanceof VhdsyncError && error.details.shrink) {
          throw usageError(`${argv.image} is ${error.details.oldSizeBytes} bytes: shrinking it to ${sizeBytes} discards the data past ${sizeBytes}; add --shrink to do it`);
        }
        // A size the image's format cannot take is this command's argument: a usage error (exit 2).
        if (error instanceof VhdsyncError && error.details.sizeProblem) throw usageError(`SIZE: ${error.message}`);
        throw error;
      });
      if (argv.json) printJson({ ok: true, ...report });
      else if (report.resized) writeOut(`resized ${argv.image} (${report.type === report.format ? report.format : `${report.format} ${report.type}`}) from ${report.oldSizeBytes} to ${report.sizeBytes} bytes\n`);
      else writeOut(`${argv.image} is already ${report.sizeBytes} bytes\n`);
      return EXIT.OK;
    }),
};
