// log compact and log recover write their output to OUT.partial and rename it into place: an
// OUT that exists as a FIFO, a directory or a device is refused (as checksum's and convert's
// outputs are), not replaced by a regular file.
import t from "tap";
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
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
