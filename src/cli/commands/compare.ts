// `vhdsync compare A B`: content equality of two images of any formats (like qemu-img
// compare). Exit 0 identical, 1 different (with the first differing offset).

import type { CommandModule } from "yargs";
import { compareImages } from "../../formats/compare-images.js";
import { openImage } from "../../formats/open-image.js";
import { EXIT, printReport, runCommand, type GlobalOptions } from "../run.js";
import { withProgress } from "../interrupt.js";
import { writeOut } from "../output.js";

interface CompareArgs extends GlobalOptions {
  a: string;
  b: string;
  strict?: boolean;
}

export const compareCommand: CommandModule<GlobalOptions, CompareArgs> = {
  command: "compare <a> <b>",
  describe: "Compare the virtual content of two images (exit 0 same, 1 different)",
  builder: (yargs) =>
    yargs
      .positional("a", { type: "string", demandOption: true, describe: "first image" })
      .positional("b", { type: "string", demandOption: true, describe: "second image" })
      .option("strict", { type: "boolean", describe: "images of different sizes are different" })
      .option("progress", { type: "boolean", describe: "progress bar / JSON progress lines" }),
  handler: (argv) =>
    runCommand(argv, async () => {
      const a = await openImage(argv.a, { readOnly: true });
      try {
        const b = await openImage(argv.b, { readOnly: true });
        try {
          const result = await withProgress(argv, "compare", (controls) => compareImages(a, b, { strict: argv.strict, ...controls }));
          if (argv.json) printReport({ a: argv.a, b: argv.b, ...result });
          else if (result.identical) writeOut("Images are identical.\n");
          else if (result.reason === "size" && argv.strict) writeOut(`Image size mismatch: ${result.sizeA} vs ${result.sizeB} bytes\n`);
          else writeOut(`Content mismatch at offset ${result.firstDifferenceOffset}!\n`);
          return result.identical ? EXIT.OK : EXIT.DIFFERENT;
        } finally {
          await b.close();
        }
      } finally {
        await a.close();
      }
    }),
};
