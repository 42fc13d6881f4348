// The list of CLI command groups. Each module exports a yargs CommandModule (one file per
// command group under src/cli/commands/); add an import and one array entry per group.

import type { CommandModule } from "yargs";
import { compareCommand } from "./compare.js";
import { doctorCommand } from "./doctor.js";
import { hashCommand } from "./hash.js";
import { logCommand } from "./log.js";
import { checkCommand } from "./check.js";
import { createCommand } from "./create.js";
import { infoCommand } from "./info.js";
import { syncCommands } from "./sync.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  compareCommand,
  doctorCommand,
  hashCommand,
  logCommand,
  checkCommand,
  createCommand,
  infoCommand,
  ...syncCommands,
];
