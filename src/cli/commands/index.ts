// The list of CLI command groups. Each module exports a yargs CommandModule (one file per
// command group under src/cli/commands/); add new groups to the array.

import type { CommandModule } from "yargs";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [];
