// `vhdsync info IMAGE`: what an image is (any format, through openImage().info()): format,
// type, virtual size, sector size, block size, allocated bytes, geometry, creator, unique ID
// and the differencing chain.

import type { CommandModule } from "yargs";
import { openImage, type ImageInfo } from "../../index.js";
import { EXIT, printJson, runCommand, type GlobalOptions } from "../run.js";
import { writeOut } from "../output.js";

interface InfoArgs extends GlobalOptions {
  image: string;
}

/** Human-readable lines for an ImageInfo. */
export function formatInfo(info: ImageInfo): string {
  const lines = [
    `image:            ${info.path}`,
    `format:           ${info.format}`,
    `type:             ${info.type}`,
    `virtual size:     ${info.virtualSize} bytes`,
    `sector size:      ${info.logicalSectorSize}${info.physicalSectorSize ? ` logical, ${info.physicalSectorSize} physical` : ""}`,
  ];
  if (info.blockSize) lines.push(`block size:       ${info.blockSize} bytes`);
  lines.push(`allocated:        ${info.allocatedBytes} bytes`);
  if (info.fileSize !== undefined) lines.push(`file size:        ${info.fileSize} bytes`);
  if (info.geometry) lines.push(`geometry (CHS):   ${info.geometry.cylinders}/${info.geometry.heads}/${info.geometry.sectorsPerTrack}`);
  if (info.creator) lines.push(`creator:          ${info.creator}`);
  if (info.uniqueId) lines.push(`unique id:        ${info.uniqueId}`);
  if (info.chain.length > 1) {
    lines.push("chain:");
    info.chain.forEach((layer, depth) => lines.push(`  ${depth}: ${layer.path} (${layer.format} ${layer.type}${layer.uniqueId ? `, ${layer.uniqueId}` : ""})`));
  }
  return lines.join("\n") + "\n";
}

export const infoCommand: CommandModule<GlobalOptions, InfoArgs> = {
  command: "info <image>",
  describe: "Show an image's format, type, sizes, geometry, creator, unique ID and chain",
  builder: (yargs) => yargs.positional("image", { type: "string", demandOption: true, describe: "image file or block device" }),
  handler: (argv) =>
    runCommand(argv, async () => {
      const image = await openImage(argv.image, { readOnly: true });
      try {
        const info = await image.info();
        if (argv.json) printJson({ ok: true, ...info });
        else writeOut(formatInfo(info));
        return EXIT.OK;
      } finally {
        await image.close();
      }
    }),
};
