// Pipes and other special files where vhdsync reads an image or a digest, or writes an output:
// refused with a coded error (exit 3), never waited on (opening a FIFO whose writer has gone
// blocks forever: `diff IMG FIFO` once hung in the CLI's worker prewarm), never replaced (an
// output is renamed into place: `checksum -o /dev/null` would have replaced /dev/null).
import t from "tap";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checksum } from "../dist/sync/checksum.js";
import { diff } from "../dist/sync/diff.js";
import { openImage } from "../dist/formats/open-image.js";
import { CLI_PATH, runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { randomWrites, trackWrites } from "./helpers/hrl-fixtures.js";

/** Runs the CLI with a deadline: a hang fails the test instead of stalling the suite. */
function runWithin(args: string[]) {
  return spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: "utf8", timeout: 20_000 });
}

t.test("a FIFO or a pipe as an image or a digest file: exit 3, no wait", async (t) => {
  const dir = tempDir(t);
  const image = join(dir, "a.raw");
  writeFileSync(image, new Prng(testSeed()).bytes(1 << 20));
  const digest = join(dir, "a.digest");
  t.equal(runCli(["checksum", image, "-o", digest]).status, 0);
  const target = join(dir, "t.raw");
  copyFileSync(image, target);
  const fifo = join(dir, "pipe");
  t.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
  for (const args of [
    ["diff", image, fifo],
    ["diff", fifo, digest],
    ["verify", fifo, image],
    ["resync", fifo, image],
    ["resync", image, fifo],
    ["resync", image, target, "--target-digest", fifo],
    ["copy", fifo, join(dir, "out.raw")],
    ["checksum", fifo, "-o", join(dir, "f.digest")],
    ["hash", fifo],
    ["info", fifo],
    // These opened the FIFO and waited for a writer.
    ["check", fifo],
    ["compare", image, fifo],
    ["log", "info", fifo],
    ["log", "verify", fifo],
    ["log", "extents", fifo],
    ["log", "compact", fifo, join(dir, "c.hrl")],
    ["log", "recover", fifo, join(dir, "r.hrl")],
    ["log", "apply", fifo, target],
    ["create", "--type", "differencing", "--parent", fifo, join(dir, "child.vhd")],
  ]) {
    const run = runWithin([...args, "--json"]);
    t.equal(run.signal, null, `${args.join(" ")}: ends by itself`);
    t.equal(run.status, 3, `${args.join(" ")}: exit 3 ${run.stderr}`);
    t.match(JSON.parse(run.stdout).error, { code: "VHDSYNC_UNSUPPORTED", message: /is a pipe \(FIFO\)/ }, args.join(" "));
  }
  // An anonymous pipe (<(…)) is refused the same way, not reported as an I/O failure (ESPIPE, exit 4).
  const piped = spawnSync("bash", ["-c", `"$0" "$1" diff "$2" <(cat "$2")`, process.execPath, CLI_PATH, image], { encoding: "utf8", timeout: 20_000 });
  t.equal(piped.status, 3, piped.stderr);
  t.match(piped.stderr, /^vhdsync: VHDSYNC_UNSUPPORTED: \/dev\/fd\/\d+ is a pipe \(FIFO\)/m);
  // log apply's undo log and state sidecar: a FIFO there was opened to be read (is it an old
  // undo log? the last state?) and waited for a writer, holding the image's write lock.
  const { log } = await trackWrites(dir, "tracked", image, randomWrites(new Prng(testSeed()), 1 << 20, 5));
  const before = readFileSync(target);
  for (const option of ["--undo", "--state"]) {
    const run = runWithin(["log", "apply", log, target, option, fifo, "--json"]);
    t.equal(run.signal, null, `log apply ${option} FIFO: ends by itself`);
    t.equal(run.status, 3, `log apply ${option} FIFO: exit 3 ${run.stderr}`);
    t.match(JSON.parse(run.stdout).error, { code: "VHDSYNC_INVALID_ARGUMENT", message: /is a pipe \(FIFO\)/ });
  }
  t.ok(readFileSync(target).equals(before), "the image is untouched");
  // The library.
  await t.rejects(openImage(fifo), { code: "VHDSYNC_UNSUPPORTED" });
  await t.rejects(diff(image, fifo), { code: "VHDSYNC_UNSUPPORTED" });
});

t.test("an output that is a FIFO, a directory or a device: exit 3, left as it was", async (t) => {
  const dir = tempDir(t);
  const image = join(dir, "a.raw");
  writeFileSync(image, new Prng(testSeed()).bytes(1 << 20));
  const fifo = join(dir, "pipe");
  t.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
  const cases: [string[], RegExp][] = [
    [["checksum", image, "-o", fifo], /the digest file .*pipe is a pipe \(FIFO\)/],
    [["checksum", image, "-o", dir], /the digest file .* is a directory/],
    [["checksum", image, "-o", "/dev/null"], /the digest file \/dev\/null is a device/],
    [["convert", image, fifo, "--to", "raw", "--force"], /the output .*pipe is a pipe \(FIFO\)/],
    [["convert", image, "/dev/null", "--to", "raw", "--force"], /the output \/dev\/null is a device/],
  ];
  for (const [args, message] of cases) {
    const run = runWithin(args);
    t.equal(run.status, 3, `${args.join(" ")}: exit 3`);
    t.match(run.stderr, message, args.join(" "));
  }
  t.ok(statSync(fifo).isFIFO(), "the FIFO is still a FIFO");
  t.ok(statSync("/dev/null").isCharacterDevice(), "/dev/null is still a device");
  await t.rejects(checksum(image, fifo), { code: "VHDSYNC_INVALID_ARGUMENT" });
});

t.test("an output that is a symbolic link to a missing file: exit 3 before any work, nothing created", async (t) => {
  const dir = tempDir(t);
  const source = join(dir, "source.raw");
  writeFileSync(source, new Prng(testSeed()).bytes(1024 * 1024));
  const link = join(dir, "dangling.raw");
  symlinkSync("nowhere.raw", link);
  // Each wrote its whole output, then failed to commit it with VHDSYNC_BUSY (exit 4), every time.
  for (const args of [["convert", source, link, "--to", "raw"], ["convert", source, link, "--to", "vhd-dynamic"], ["copy", source, link], ["checksum", source, "-o", link]]) {
    const result = runCli(args);
    t.equal(result.status, 3, `${args[0]}: ${result.stderr}`);
    t.match(result.stderr, /^vhdsync: VHDSYNC_INVALID_ARGUMENT: .*dangling\.raw is a symbolic link to a missing file \(nowhere\.raw\)/m, args.join(" "));
  }
  t.same(readdirSync(dir).sort(), ["dangling.raw", "source.raw"], "no file made: neither the link's target nor a temp file");
  t.equal(readlinkSync(link), "nowhere.raw", "the link is left as it was");
});

t.test("an output that is a symbolic link to a file is written through: the file it names is replaced, the link kept", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(testSeed());
  const source = join(dir, "source.raw");
  writeFileSync(source, prng.bytes(1024 * 1024));
  mkdirSync(join(dir, "real"));
  const real = join(dir, "real", "out.raw");
  writeFileSync(real, prng.bytes(4096));
  const link = join(dir, "out.raw");
  symlinkSync("real/out.raw", link);
  // Renaming the new output over the link replaced the link with a regular file and left the file it named as it was.
  const converted = runCli(["convert", source, link, "--to", "raw", "--force"]);
  t.equal(converted.status, 0, converted.stderr);
  t.equal(readlinkSync(link), "real/out.raw", "convert --force: the link is kept");
  t.ok(readFileSync(real).equals(readFileSync(source)), "convert --force: the file it names holds the output");
  const digest = join(dir, "real", "source.digest");
  writeFileSync(digest, "old");
  symlinkSync("real/source.digest", join(dir, "source.digest"));
  const summed = runCli(["checksum", source, "-o", join(dir, "source.digest")]);
  t.equal(summed.status, 0, summed.stderr);
  t.equal(readlinkSync(join(dir, "source.digest")), "real/source.digest", "checksum -o: the link is kept");
  t.equal(runCli(["diff", source, digest]).status, 0, "checksum -o: the file it names is the digest of the source");
  t.same(readdirSync(join(dir, "real")).sort(), ["out.raw", "source.digest"], "no temp file left beside either file");
});
