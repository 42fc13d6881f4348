// `vhdsync check IMAGE`: structural validation (checksums, BAT entries, overlaps, bitmaps,
// footer copy, chain). Exit 0 when clean, 3 with every problem listed.

import type { CommandModule } from "yargs";
import { checkImage } from "../../index.js";
import { EXIT, printJson, runCommand, type GlobalOptions } from "../run.js";

interface CheckArgs extends GlobalOptions {
  image: string;
}

export const checkCommand: CommandModule<GlobalOptions, CheckArgs> = {
  command: "check <image>",
  describe: "Validate an image's structure (exit 0 clean, 3 with every problem listed)",
  builder: (yargs) => yargs.positional("image", { type: "string", demandOption: true, describe: "image file" }),
  handler: (argv) =>
    runCommand(argv, async () => {
      const result = await checkImage(argv.image);
      if (argv.json) {
        printJson(result);
      } else if (result.ok) {
        process.stdout.write(`${result.path}: ${result.format}, no problems found\n`);
      } else {
        process.stdout.write(`${result.path}: ${result.format}, ${result.problems.length} problem(s):\n`);
        for (const found of result.problems) {
          process.stdout.write(`  ${found.code}: ${found.message}${found.offset === undefined ? "" : ` (offset ${found.offset})`}\n`);
        }
      }
      return result.ok ? EXIT.OK : EXIT.INVALID;
    }),
};
