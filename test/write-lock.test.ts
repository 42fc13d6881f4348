// One writer per target (src/io/write-lock.ts): a second resync or copy into a target that a run
// is writing is refused with VHDSYNC_BUSY (recoverable, exit 4) before it writes anything, in one
// process and between processes, under any name of the target; of many runs started at once
// exactly one holds it; a killed holder's lock is free at once; dry runs take none; nothing is
// left in the target's directory.
import t from "tap";
import { spawn, type ChildProcess } from "node:child_process";
import { linkSync, readdirSync, symlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { convertImage, copy, resync } from "../dist/index.js";
import { acquireWriteLock, writeLockHolder } from "../dist/io/write-lock.js";
import { CLI_PATH, runCli } from "./helpers/cli.js";
import { fileSha, pairSetup, writeRandomImage } from "./helpers/resync-images.js";

const MIB = 1024 * 1024;
const busy = { code: "VHDSYNC_BUSY", recoverable: true };
const LOCK_MODULE = new URL("../dist/io/write-lock.js", import.meta.url).href;

/**
 * A process that tries to take `path`'s lock, prints "held" or "busy", and holds it until its
 * stdin closes; `portable`: without the addon (a node:net server binds the name).
 */
function contender(path: string, portable = false): { child: ChildProcess; outcome: Promise<string> } {
  const child = spawn(process.execPath, ["--input-type=module", "-e", `
    const { acquireWriteLock } = await import(${JSON.stringify(LOCK_MODULE)});
    let lock;
    try { lock = await acquireWriteLock(process.argv[1], "resync"); } catch (error) { process.stdout.write(error.code === "VHDSYNC_BUSY" ? "busy\\n" : "error " + error.code + "\\n"); process.exit(0); }
    process.stdout.write("held\\n");
    process.stdin.resume();
    process.stdin.on("end", async () => { await lock.release(); process.exit(0); });
  `, path], { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, ...(portable ? { VHDSYNC_NO_NATIVE: "1" } : {}) } });
  const outcome = new Promise<string>((resolve) => {
    let text = "";
    child.stdout!.on("data", (chunk) => {
      text += chunk;
      if (text.endsWith("\n")) resolve(text.trim());
    });
    // "close", not "exit": a contender that exits at once (busy) may have its line still in the
    // pipe when "exit" fires; its outcome would then read as "".
    child.on("close", () => resolve(text.trim()));
  });
  return { child, outcome };
}

const exited = (child: ChildProcess) => new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on("exit", resolve)));

t.test("in one process: one run writes a target; a second resync or copy, under any of its names, is refused", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  const other = join(dir, "other.img");
  for (const path of [source, target, other]) writeRandomImage(path, 8 * MIB, prng);
  const link = join(dir, "link.img");
  symlinkSync(target, link);
  const hard = join(dir, "hard.img");
  linkSync(target, hard);
  const runs = await Promise.allSettled([resync(source, target), resync(other, link), copy(other, target), resync(other, hard)]);
  const won = runs.flatMap((run, i) => (run.status === "fulfilled" ? [i] : []));
  t.equal(won.length, 1, `seed ${seed}: one run writes the target`);
  for (const [i, run] of runs.entries()) if (i !== won[0]) t.match(run, { status: "rejected", reason: busy }, `run ${i} (resync; through a symlink; copy; through a hard link) is refused`);
  t.equal(fileSha(target), fileSha(won[0] === 0 ? source : other), "the target is the winner's source, whole");
  t.equal((await resync(won[0] === 0 ? other : source, target)).blocksChanged > 0, true, "the next run takes the lock");
  t.same(readdirSync(dir).sort(), [basename(source), basename(target), "hard.img", "link.img", "other.img"].sort(), "nothing left beside the target");
});

t.test("between processes: the CLI refuses with exit 4 and names the holder; a killed holder's lock is free at once", async (t) => {
  const { prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, 4 * MIB, prng);
  writeRandomImage(target, 4 * MIB, prng);
  const before = fileSha(target);
  const hard = join(dir, "hard.img");
  linkSync(target, hard);
  const holder = contender(target, true); // the portable lock; the CLI runs below bind with the addon
  t.equal(await holder.outcome, "held");
  for (const args of [["resync", source, target, "--json"], ["copy", source, target, "--json"], ["resync", source, hard, "--json"]]) {
    const refused = runCli(args);
    t.equal(refused.status, 4, `${args.slice(0, 3).join(" ")}: exit 4 (${refused.stderr.trim()})`);
    t.match(refused.stderr, new RegExp(`^vhdsync: VHDSYNC_BUSY: .* is being written by process ${holder.child.pid}; retry when it ends`));
    t.match(JSON.parse(refused.stdout).error, { code: "VHDSYNC_BUSY", recoverable: true, details: { pid: holder.child.pid } });
  }
  t.equal(fileSha(target), before, "nothing written");
  holder.child.kill("SIGKILL");
  await exited(holder.child);
  const after = runCli(["resync", source, target]);
  t.equal(after.status, 0, `after kill -9 of the holder the next run takes the lock (${after.stderr})`);
  t.equal(fileSha(target), fileSha(source));
  t.same(readdirSync(dir).sort(), ["hard.img", basename(source), basename(target)].sort(), "no file made for the lock");
});

t.test("of many processes that try at once, with the addon's bind or the portable one, exactly one holds the lock", async (t) => {
  const { prng, target } = pairSetup(t);
  writeRandomImage(target, MIB, prng);
  for (let round = 0; round < 4; round++) {
    // Rounds 0 and 1: one kind each; then both kinds at once (they bind the same name).
    const contenders = Array.from({ length: 12 }, (_, i) => contender(target, round === 1 || (round > 1 && i % 2 === 1)));
    const outcomes = await Promise.all(contenders.map((c) => c.outcome));
    t.equal(outcomes.filter((outcome) => outcome === "held").length, 1, `round ${round}: one holder (${outcomes.join(" ")})`);
    t.equal(outcomes.filter((outcome) => outcome === "busy").length, 11, "the others refused");
    for (const c of contenders) c.child.stdin!.end();
    await Promise.all(contenders.map((c) => exited(c.child)));
  }
});

t.test("a running CLI resync holds the lock; dry runs take none", async (t) => {
  const { prng, source, target } = pairSetup(t);
  writeRandomImage(source, 128 * MIB, prng, 4 * MIB);
  writeRandomImage(target, 128 * MIB, prng, 4 * MIB);
  const run = spawn(process.execPath, [CLI_PATH, "resync", source, target, "--workers", "1"], { stdio: "ignore" });
  let running = true;
  const ended = new Promise<number | null>((resolve) => run.on("exit", (code) => ((running = false), resolve(code))));
  let holder: number | undefined;
  while (running && holder === undefined) holder = await writeLockHolder(target); // asks, never takes it
  t.equal(await ended, 0);
  if (holder === undefined) t.comment("the resync ended before the probe met its lock");
  else t.equal(holder, run.pid, "the lock's holder is the running resync");
  t.equal(await writeLockHolder(target), undefined, "and it is free once the run ends");
  t.equal(fileSha(target), fileSha(source));
  writeRandomImage(target, 128 * MIB, prng, 4 * MIB);
  const lock = await acquireWriteLock(target, "test");
  try {
    t.equal((await resync(source, target, { dryRun: true })).blocksChanged > 0, true, "a dry run takes no lock");
    await t.rejects(resync(source, target), busy);
  } finally {
    await lock.release();
  }
});

t.test("convert --force does not replace a target a run is writing", async (t) => {
  const { prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, MIB, prng);
  writeRandomImage(target, MIB, prng);
  const before = fileSha(target);
  const lock = await acquireWriteLock(target, "resync");
  try {
    await t.rejects(convertImage(source, target, { to: "raw", overwrite: true }), busy);
    t.equal(fileSha(target), before, "the target is still the one being written");
    t.same(readdirSync(dir).filter((name) => name.endsWith(".tmp")), [], "no temp file left");
  } finally {
    await lock.release();
  }
  await convertImage(source, target, { to: "raw", overwrite: true });
  t.equal(fileSha(target), fileSha(source), "once the run ends, convert replaces it");
});
