// `vhdsync check IMAGE`: structural validation (checksums, BAT entries, overlaps, bitmaps,
// footer copy, chain). Exit 0 when clean, 3 with every problem listed (at most
// MAX_CHECK_PROBLEMS; the text says how many more were found, --json gives problemsOmitted).

import type { CommandModule } from "yargs";
import { checkImage, MAX_CHECK_PROBLEMS } from "../../index.js";
import { EXIT, printJson, runCommand, type GlobalOptions } from "../run.js";
import { writeOut } from "../output.js";

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
        writeOut(`${result.path}: ${result.format}, no problems found\n`);
      } else {
        const listed = result.problems.length;
        const found = listed + result.problemsOmitted;
        writeOut(`${result.path}: ${result.format}, ${found} problem(s)${result.problemsOmitted > 0 ? `, the first ${listed} listed` : ""}:\n`);
        for (const problem of result.problems) {
          writeOut(`  ${problem.code}: ${problem.message}${problem.offset === undefined ? "" : ` (offset ${problem.offset})`}\n`);
        }
        if (result.problemsOmitted > 0) {
          writeOut(`  ... and ${result.problemsOmitted} more not listed (check lists at most ${MAX_CHECK_PROBLEMS})\n`);
        }
      }
      return result.ok ? EXIT.OK : EXIT.INVALID;
    }),
};
