// Runs the CLI as installed (bin/vhdsync.cjs: the bundle in dist/bin with its code cache) as a child process and captures its output.

import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI_PATH = fileURLToPath(new URL("../../bin/vhdsync.cjs", import.meta.url));

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `vhdsync ...args` synchronously. */
export function runCli(args: string[], options: SpawnSyncOptions = {}): CliResult {
  const result = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, ...options });
  return { status: result.status ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}
