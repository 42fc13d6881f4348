// log compact and log recover write their output to a temp file and rename it into place: an
// OUT that exists as a FIFO, a directory or a device is refused (as checksum's and convert's
// outputs are), not replaced by a regular file.
import t from "tap";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, linkSync, readFileSync, readdirSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./helpers/cli.js";
import { makeImage, randomWrites, trackWrites } from "./helpers/hrl-fixtures.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

t.test("log compact/recover refuse an OUT that is a FIFO or a device", async (t) => {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const source = join(dir, "source.raw");
  makeImage(source, prng, 1 << 20);
  const { log } = await trackWrites(dir, "tracked", source, randomWrites(prng, 1 << 20, 5));
  const fifo = join(dir, "pipe");
  t.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
  // A device node of our own (the null device's numbers), where we may make one.
  const device = join(dir, "null");
  const made = spawnSync("mknod", [device, "c", "1", "3"]).status === 0;
  for (const command of ["compact", "recover"]) {
    for (const [out, kind, check] of [
      [fifo, "FIFO", () => statSync(fifo).isFIFO()],
      ...(made ? [[device, "device", () => statSync(device).isCharacterDevice()]] : []),
    ] as [string, string, () => boolean][]) {
      const run = runCli(["log", command, log, out, "--json"]);
      t.equal(run.status, 3, `${command} onto a ${kind}: exit 3 ${run.stderr}`);
      t.match(JSON.parse(run.stdout).error, { code: "VHDSYNC_INVALID_ARGUMENT" }, `${command} onto a ${kind}`);
      t.ok(check(), `${command}: the ${kind} is left as it was`);
    }
  }
  t.equal(runCli(["log", "compact", log, join(dir, "c.hrl")]).status, 0, "a regular OUT is written");
});

t.test("an input log or an image named like the output's old temp file (OUT.partial) is read, not overwritten", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const source = join(dir, "source.raw");
  makeImage(source, prng, 1 << 20);
  const { log, image: written } = await trackWrites(dir, "tracked", source, randomWrites(prng, 1 << 20, 20));
  const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
  const logSha = sha(log);
  // compact and recover: the input is OUT.partial.
  for (const command of ["compact", "recover"]) {
    const input = join(dir, `${command}.hrl.partial`);
    copyFileSync(log, input);
    const run = runCli(["log", command, input, join(dir, `${command}.hrl`)]);
    t.equal(run.status, 0, `seed ${seed} ${command}: ${run.stderr}`);
    t.equal(sha(input), logSha, `${command}: the input log is intact`);
    t.equal(runCli(["log", "verify", join(dir, `${command}.hrl`)]).status, 0, `${command}: its output verifies`);
  }
  // apply --undo U: the log is U.partial, then the image is.
  const undoLog = join(dir, "a.hrl");
  const logNamed = join(dir, "a.hrl.partial");
  copyFileSync(log, logNamed);
  const image = join(dir, "t.raw");
  copyFileSync(source, image);
  let run = runCli(["log", "apply", logNamed, image, "--undo", undoLog]);
  t.equal(run.status, 0, run.stderr);
  t.equal(sha(logNamed), logSha, "the applied log is intact");
  t.equal(sha(image), sha(written), "the image holds the log's writes");
  const imageNamed = join(dir, "vm.partial");
  copyFileSync(source, imageNamed);
  run = runCli(["log", "apply", log, imageNamed, "--undo", join(dir, "vm")]);
  t.equal(run.status, 0, run.stderr);
  t.ok(existsSync(imageNamed), "the image is still there");
  t.equal(sha(imageNamed), sha(written), "and holds the log's writes");
  t.equal(runCli(["log", "apply", join(dir, "vm"), imageNamed]).status, 0, "its undo log applies");
  t.equal(sha(imageNamed), sha(source), "and restores it");
  t.same(readdirSync(dir).filter((name) => name.endsWith(".tmp")), [], "no temp file left");
});

t.test("log compact/recover refuse an OUT that is another name of the input (a symbolic or hard link): the input is kept", async (t) => {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const source = join(dir, "source.raw");
  makeImage(source, prng, 1 << 20);
  const { log } = await trackWrites(dir, "tracked", source, randomWrites(prng, 1 << 20, 5));
  const before = readFileSync(log);
  symlinkSync(log, join(dir, "symbolic.hrl"));
  linkSync(log, join(dir, "hard.hrl"));
  // Outputs are written through a link: recover through one replaced the damaged original with its salvage.
  for (const command of ["compact", "recover"]) {
    for (const name of ["symbolic.hrl", "hard.hrl"]) {
      const run = runCli(["log", command, log, join(dir, name), "--json"]);
      t.equal(run.status, 3, `${command} onto ${name}: ${run.stderr}`);
      t.match(JSON.parse(run.stdout).error, { code: "VHDSYNC_INVALID_ARGUMENT", message: /is the same file as the input log/ }, `${command} onto ${name}`);
    }
  }
  t.ok(readFileSync(log).equals(before), "the input log is unchanged");
});
