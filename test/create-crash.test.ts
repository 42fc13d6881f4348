// `vhdsync create` killed at each of its writes (strace injects SIGKILL at the N-th pwrite64,
// and at the link that moves the disk into place): the disk's name holds nothing or the whole
// disk, never a partial one (a disk with no footer opened as a raw file, and the rerun was
// refused with "already exists"); the rerun creates it and sweeps the killed run's temp file.
import t from "tap";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { CLI_PATH, runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const strace = spawnSync("strace", ["-V"], { encoding: "utf8" }).status === 0;

/**
 * Runs the CLI under strace, killed (SIGKILL) at the `when`-th call of `syscall`. strace counts
 * calls per thread: one libuv pool thread makes every write its `when`-th on that thread.
 */
function killedAt(args: string[], syscall: string, when: number, cwd: string) {
  return spawnSync("strace", ["-f", "-qq", "-o", "/dev/null", "-e", `inject=${syscall}:signal=SIGKILL:when=${when}`, process.execPath, CLI_PATH, ...args], {
    cwd,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, UV_THREADPOOL_SIZE: "1" },
  });
}

t.test("create killed at every write and at the commit: nothing or the whole disk under its name; the rerun creates it", { skip: strace ? false : "strace is not installed" }, async (t) => {
  const cases = [
    { type: "fixed", args: ["--size", "64M"], writes: 1 },
    { type: "dynamic", args: ["--size", "1G"], writes: 4 },
  ];
  for (const { type, args, writes } of cases) {
    const points = [...Array.from({ length: writes }, (_, index) => ["pwrite64", index + 1] as const), ["link", 1] as const];
    for (const [syscall, when] of points) {
      const dir = tempDir(t);
      const what = `${type}, killed at ${syscall} #${when}`;
      const killed = killedAt(["create", "--type", type, ...args, "disk.vhd"], syscall, when, dir);
      t.equal(killed.signal, "SIGKILL", `${what}: the kill landed ${killed.stderr}`);
      t.notOk(existsSync(join(dir, "disk.vhd")), `${what}: no disk under its name`);
      const rerun = runCli(["create", "--type", type, ...args, "disk.vhd", "--json"], { cwd: dir });
      t.equal(rerun.status, 0, `${what}: the rerun creates it ${rerun.stderr}`);
      const check = runCli(["check", join(dir, "disk.vhd"), "--json"]);
      t.equal(check.status, 0, `${what}: vhdsync check clean ${check.stdout}`);
      t.same(readdirSync(dir), ["disk.vhd"], `${what}: the killed run's temp file is swept`);
    }
  }
});
