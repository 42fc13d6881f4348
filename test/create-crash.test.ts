// `vhdsync create` killed at each of its writes (strace injects SIGKILL at the N-th pwrite64,
// and at the link that moves the disk into place): the disk's name holds nothing or the whole
// disk, never a partial one (a disk with no footer opened as a raw file, and the rerun was
// refused with "already exists"); the rerun creates it and sweeps the killed run's temp file.
import t from "tap";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
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
    // Killed between the link and the unlink of the temp name: the disk is whole, and the
    // rerun (refused: the disk exists) removes the second name the killed run left.
    {
      const dir = tempDir(t);
      const killed = killedAt(["create", "--type", type, ...args, "disk.vhd"], "unlink", 1, dir);
      t.equal(killed.signal, "SIGKILL", `${type}, killed at unlink: the kill landed ${killed.stderr}`);
      t.equal(runCli(["check", join(dir, "disk.vhd")]).status, 0, `${type}, killed at unlink: the disk is whole`);
      const rerun = runCli(["create", "--type", type, ...args, "disk.vhd"], { cwd: dir });
      t.equal(rerun.status, 3, `${type}, killed at unlink: the rerun finds the disk ${rerun.stderr}`);
      t.match(rerun.stderr, /already exists/);
      t.same(readdirSync(dir), ["disk.vhd"], `${type}, killed at unlink: the second name is swept`);
    }
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

t.test("convert killed at its first write: the rerun leaves no temp file (convert's VHD is made in its own temp file, not in a temp file of that)", { skip: strace ? false : "strace is not installed" }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "in.raw"), Buffer.alloc(1024 * 1024, 7));
  for (const to of ["vhd-fixed", "vhd-dynamic"]) {
    const killed = killedAt(["convert", "in.raw", `out-${to}.vhd`, "--to", to], "pwrite64", 1, dir);
    t.equal(killed.signal, "SIGKILL", `${to}: the kill landed ${killed.stderr}`);
    const rerun = runCli(["convert", join(dir, "in.raw"), join(dir, `out-${to}.vhd`), "--to", to]);
    t.equal(rerun.status, 0, `${to}: the rerun converts ${rerun.stderr}`);
    t.equal(runCli(["compare", join(dir, "in.raw"), join(dir, `out-${to}.vhd`)]).status, 0, `${to}: the output holds the input`);
  }
  t.same(readdirSync(dir).sort(), ["in.raw", "out-vhd-dynamic.vhd", "out-vhd-fixed.vhd"], "no temp file is left");
});
