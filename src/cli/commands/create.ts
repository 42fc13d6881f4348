// `vhdsync create --type fixed|dynamic|differencing --size N [--block-size N] [--parent P] OUT`:
// creates a VHD of exactly the requested size (docs/vhd.md explains the size rule).

import type { CommandModule } from "yargs";
import { createVhd } from "../../index.js";
import { DEFAULT_BLOCK_SIZE_BYTES, vhdBlockSizeProblem, vhdSizeProblem, vhdTableProblem } from "../../formats/vhd/create-vhd.js";
import { EXIT, parseSize, printJson, runCommand, usageError, type GlobalOptions } from "../run.js";
import { writeOut } from "../output.js";

interface CreateArgs extends GlobalOptions {
  out: string;
  format: string;
  type: "fixed" | "dynamic" | "differencing";
  size?: string;
  blockSize?: string;
  parent?: string;
}

export const createCommand: CommandModule<GlobalOptions, CreateArgs> = {
  command: "create <out>",
  describe: "Create a VHD image (fixed, dynamic or differencing)",
  builder: (yargs) =>
    yargs
      .positional("out", { type: "string", demandOption: true, describe: "file to create (must not exist)" })
      .option("format", { type: "string", choices: ["vhd"], default: "vhd", describe: "image format" })
      .option("type", { type: "string", choices: ["fixed", "dynamic", "differencing"] as const, demandOption: true, describe: "disk type" })
      .option("size", { type: "string", describe: "virtual size in bytes (K/M/G/T suffixes, binary); differencing: defaults to the parent's" })
      .option("block-size", { type: "string", describe: "block size of dynamic/differencing disks (default 2M)" })
      .option("parent", { type: "string", describe: "parent image of a differencing disk" }),
  handler: (argv) =>
    runCommand(argv, async () => {
      if (argv.type === "differencing" && !argv.parent) throw usageError("--type differencing needs --parent");
      if (argv.type !== "differencing" && argv.parent) throw usageError("--parent is only for --type differencing");
      if (argv.type !== "differencing" && argv.size === undefined) throw usageError("--size is required");
      if (argv.type === "fixed" && argv.blockSize !== undefined) throw usageError("--block-size is only for dynamic and differencing disks");
      // Every option value is checked here, before anything is created: a bad one is a usage error.
      const sizeBytes = argv.size === undefined ? undefined : parseSize(argv.size, "--size");
      const blockSizeBytes = argv.blockSize === undefined ? undefined : parseSize(argv.blockSize, "--block-size");
      const sizeProblem = sizeBytes === undefined ? undefined : vhdSizeProblem(argv.type, sizeBytes);
      if (sizeProblem) throw usageError(`--size: ${sizeProblem}`);
      const blockProblem = blockSizeBytes === undefined ? undefined : vhdBlockSizeProblem(blockSizeBytes);
      if (blockProblem) throw usageError(`--block-size: ${blockProblem}`);
      const tableProblem = sizeBytes === undefined ? undefined : vhdTableProblem(argv.type, sizeBytes, blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES);
      if (tableProblem) throw usageError(`--size, --block-size: ${tableProblem}`);
      const image = await createVhd(argv.out, { type: argv.type, sizeBytes, blockSizeBytes, parentPath: argv.parent });
      try {
        const info = await image.info();
        if (argv.json) printJson({ ok: true, ...info });
        else writeOut(`created ${argv.out}: ${info.format} ${info.type}, ${info.virtualSize} bytes\n`);
        return EXIT.OK;
      } finally {
        await image.close();
      }
    }),
};
