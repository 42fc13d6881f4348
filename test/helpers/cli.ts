// Runs the CLI as installed (bin/vhdsync.cjs: the bundle in dist/bin with its code cache) as a child process and captures its output.

import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

/**
 * Runs `node ...nodeArgs` without tap's loaders, which tap puts back into a child's
 * NODE_OPTIONS (they load built-ins of their own, and write tap's files at exit, which another
 * user may not be allowed to).
 */
export function runNodeWithoutTap(nodeArgs: string[], options: SpawnSyncOptions = {}): CliResult {
  const result = spawnSync("/bin/sh", ["-c", 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, ...nodeArgs], { encoding: "utf8", ...options });
  return { status: result.status ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/**
 * Runs `vhdsync ...args` and returns the Node built-ins it loaded (process.moduleLoadList at
 * exit, written by a preload into `dir`), without tap's loaders.
 */
export function runCliListingModules(args: string[], dir: string): CliResult & { loaded: Set<string> } {
  const list = join(dir, "modules.txt");
  const preload = join(dir, "list-modules.cjs");
  writeFileSync(preload, `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join("\\n")));\n`);
  rmSync(list, { force: true });
  const result = runNodeWithoutTap(["--require", preload, CLI_PATH, ...args]);
  const loaded = new Set(existsSync(list) ? readFileSync(list, "utf8").split("\n") : []);
  return { ...result, loaded };
}

/**
 * Runs `vhdsync ...args` with its stdout (or, with `redirect` "2>&1 >/dev/null", its stderr)
 * piped into `true`, which reads nothing and is gone long before Node starts: every write there
 * meets EPIPE. Returns the CLI's own exit status and stderr.
 */
export function runCliIntoClosedPipe(args: string[], redirect = ""): { status: number; stderr: string } {
  const quoted = args.map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ");
  const command = `'${process.execPath}' '${CLI_PATH}' ${quoted} ${redirect} | true; exit "\${PIPESTATUS[0]}"`;
  const result = spawnSync("bash", ["-c", command], { encoding: "utf8" });
  return { status: result.status ?? -1, stderr: String(result.stderr) };
}
