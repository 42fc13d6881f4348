// One writer per target (src/io/write-lock.ts): a second resync or copy into a target that a run
// is writing is refused with VHDSYNC_BUSY (recoverable, exit 4) before it writes anything, in one
// process and between processes; a lock that a killed run left behind is taken over; another
// host's is honoured; dry runs take no lock.
import t from "tap";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { copy, resync } from "../dist/index.js";
import { processRuns } from "../dist/io/atomic-file.js";
import { CLI_PATH, runCli } from "./helpers/cli.js";
import { fileSha, pairSetup, writeRandomImage } from "./helpers/resync-images.js";

const MIB = 1024 * 1024;
const busy = { code: "VHDSYNC_BUSY", recoverable: true };

/** A random 4 MiB source and target, the target's digest and the path of its lock file. */
function smallPair(t: Parameters<typeof pairSetup>[0]) {
  const pair = pairSetup(t);
  writeRandomImage(pair.source, 4 * MIB, pair.prng);
  writeRandomImage(pair.target, 4 * MIB, pair.prng);
  return { ...pair, before: fileSha(pair.target), lock: join(pair.dir, ".t.img.vhdsync-lock") };
}

function deadPid(): number {
  let pid = 4_000_000;
  while (processRuns(pid)) pid--;
  return pid;
}

t.test("in one process: a second resync or copy into the target being written is refused, also through a symlink", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  const other = join(dir, "other.img");
  for (const path of [source, target, other]) writeRandomImage(path, 8 * MIB, prng);
  const link = join(dir, "link.img");
  symlinkSync(target, link);
  const runs = await Promise.allSettled([resync(source, target), resync(other, link), copy(other, target)]);
  const won = runs.flatMap((run, i) => (run.status === "fulfilled" ? [i] : []));
  t.equal(won.length, 1, `seed ${seed}: one run writes the target`);
  for (const [i, run] of runs.entries()) if (i !== won[0]) t.match(run, { status: "rejected", reason: busy }, `run ${i} (of resync, resync through a symlink, copy) is refused`);
  t.equal(fileSha(target), fileSha(won[0] === 0 ? source : other), "the target is the winner's source, whole");
  t.notOk(existsSync(join(dir, ".t.img.vhdsync-lock")), "the lock file is gone after the run");
  t.equal((await resync(won[0] === 0 ? other : source, target)).blocksChanged > 0, true, "the next run takes the lock");
});

t.test("between processes: the CLI refuses with exit 4 while another process holds the target's lock", async (t) => {
  const { prng, dir, source, target, before, lock } = smallPair(t);
  // A process that takes the lock as a run does and holds it until its stdin closes.
  const holder = spawn(process.execPath, ["--input-type=module", "-e", `
    const { acquireWriteLock } = await import(${JSON.stringify(new URL("../dist/io/write-lock.js", import.meta.url).href)});
    const lock = await acquireWriteLock(process.argv[1], "resync");
    process.stdout.write("locked\\n");
    process.stdin.resume();
    process.stdin.on("end", async () => { await lock.release(); process.exit(0); });
  `, target], { stdio: ["pipe", "pipe", "inherit"] });
  await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
  t.same(readFileSync(lock, "utf8").trim().split(" "), [String(holder.pid), hostname()], "the lock file names the holder and its host");
  for (const args of [["resync", source, target, "--json"], ["copy", source, target, "--json"]]) {
    const refused = runCli(args);
    t.equal(refused.status, 4, `${args[0]}: exit 4 (${refused.stderr.trim()})`);
    t.match(refused.stderr, /^vhdsync: VHDSYNC_BUSY: .* is being written by process \d+/);
    t.equal(JSON.parse(refused.stdout).error.code, "VHDSYNC_BUSY");
  }
  t.equal(fileSha(target), before, "nothing written");
  holder.stdin.end();
  await new Promise((resolve) => holder.on("exit", resolve));
  t.notOk(existsSync(lock), "released");
  // A CLI run holds it the same way: its lock file names it while it runs.
  writeRandomImage(source, 128 * MIB, prng, 4 * MIB);
  writeRandomImage(target, 128 * MIB, prng, 4 * MIB);
  const run = spawn(process.execPath, [CLI_PATH, "resync", source, target, "--workers", "1"], { stdio: "ignore" });
  const ended = new Promise<number | null>((resolve) => run.on("exit", resolve));
  let owner: string | undefined;
  let running = true;
  void ended.then(() => (running = false));
  while (running && owner === undefined) {
    try {
      const text = readFileSync(lock, "utf8");
      if (text.endsWith("\n")) owner = text.split(" ")[0]; // (whole: it is written after it is made)
    } catch {
      // not yet made, or already removed
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  t.equal(await ended, 0);
  if (owner !== undefined) t.equal(owner, String(run.pid), "a running CLI resync's lock names it");
  t.equal(fileSha(target), fileSha(source));
  t.notOk(existsSync(lock), "and is removed when it ends");
});

t.test("a lock a killed run left is taken over; another host's is honoured; dry runs take none", async (t) => {
  const { prng, dir, source, target, before, lock } = smallPair(t);
  writeFileSync(lock, `12345 another-host.example\n`);
  await t.rejects(resync(source, target), busy, "another host's lock is honoured");
  const refused = runCli(["copy", source, target]);
  t.equal(refused.status, 4);
  t.match(refused.stderr, /process 12345 on host another-host\.example \(or remove .*\.t\.img\.vhdsync-lock if none runs there\)/);
  t.equal(fileSha(target), before, "nothing written");
  t.equal((await resync(source, target, { dryRun: true })).blocksChanged > 0, true, "a dry run takes no lock");
  writeFileSync(lock, `${deadPid()} ${hostname()}\n`);
  await resync(source, target);
  t.equal(fileSha(target), fileSha(source), "a dead process's lock is taken over");
  t.notOk(existsSync(lock));
  writeFileSync(lock, "not a lock\n");
  writeRandomImage(target, 4 * MIB, prng);
  const copied = runCli(["copy", source, target]);
  t.equal(copied.status, 0, `an unreadable lock file is taken over (${copied.stderr})`);
  t.equal(fileSha(target), fileSha(source));
});
