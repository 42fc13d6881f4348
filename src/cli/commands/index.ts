// The list of CLI command groups. Each module exports a yargs CommandModule (one file per
// command group under src/cli/commands/); add an import and one array entry per group.

import type { CommandModule } from "yargs";
import { checkCommand } from "./check.js";
import { compareCommand } from "./compare.js";
import { convertCommand } from "./convert.js";
import { createCommand } from "./create.js";
import { doctorCommand } from "./doctor.js";
import { hashCommand } from "./hash.js";
import { infoCommand } from "./info.js";
import { logCommand } from "./log.js";
import { syncCommands } from "./sync.js";
import { snapshotCommand } from "./snapshot.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  checkCommand,
  compareCommand,
  convertCommand,
  createCommand,
  doctorCommand,
  hashCommand,
  infoCommand,
  logCommand,
  snapshotCommand,
  { names: ["info"], load: async () => [(await import("./info.js")).infoCommand] },
  { names: ["create"], load: async () => [(await import("./create.js")).createCommand] },
  { names: ["check"], load: async () => [(await import("./check.js")).checkCommand] },
  ...syncCommands,
];
