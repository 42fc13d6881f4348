// The CLI's standard output (src/cli/output.ts): plain writes to descriptor 1, the stream only
// when a non-blocking pipe is full; a reader that goes away ends a listing quietly on either
// path, and never stops work that changes files.
import t from "tap";
import { spawn, spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { closeSync, constants, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { CLI_PATH, runCli, runCliIntoClosedPipe } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const seed = testSeed();

/** A 16 MiB random image: `hash --block-size 4K` prints 4,096 lines (~370 KB, more than a pipe holds). */
function image(t: Parameters<typeof tempDir>[0]): string {
  const path = join(tempDir(t), "image.raw");
  writeFileSync(path, new Prng(seed).bytes(16 * 1024 * 1024));
  return path;
}

/**
 * Runs `hash --block-size 4K source` with stdout on a FIFO opened non-blocking at both ends
 * (the child's descriptor shares the writer's O_NONBLOCK), and waits while it fills the pipe
 * and meets EAGAIN. Returns the reader's descriptor and the child's exit status and stderr.
 */
async function hashIntoFullPipe(t: Parameters<typeof tempDir>[0], source: string) {
  const fifo = join(tempDir(t), "out.fifo");
  t.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  const child = spawn(process.execPath, [CLI_PATH, "hash", "--block-size", "4K", source], { stdio: ["ignore", writer, "pipe"] });
  closeSync(writer);
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve)).then((status) => ({ status, stderr }));
  await delay(500);
  return { reader, exited };
}

t.test("a full non-blocking pipe: the rest goes through the stream, all of it and in order", async (t) => {
  const source = image(t);
  const expected = runCli(["hash", "--block-size", "4K", source]);
  t.equal(expected.status, 0, expected.stderr);
  t.ok(expected.stdout.length > 256 * 1024, `${expected.stdout.length} bytes: more than a pipe holds`);
  const { reader, exited } = await hashIntoFullPipe(t, source);
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(65536);
  for (;;) {
    let count: number;
    try {
      count = readSync(reader, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      await delay(2);
      continue;
    }
    if (count === 0) break; // every writer closed: the child is done
    chunks.push(Buffer.from(buffer.subarray(0, count)));
  }
  closeSync(reader);
  const { status, stderr } = await exited;
  t.equal(status, 0, stderr);
  t.equal(stderr, "", "nothing on stderr");
  const output = Buffer.concat(chunks).toString("utf8");
  t.equal(output.length, expected.stdout.length, "every byte");
  t.ok(output === expected.stdout, "the same lines in the same order");
});

t.test("a reader that goes away while output waits on the stream: quiet, with the command's status", async (t) => {
  const { reader, exited } = await hashIntoFullPipe(t, image(t));
  closeSync(reader);
  const { status, stderr } = await exited;
  t.equal(status, 0, "exit 0");
  t.equal(stderr, "", "nothing on stderr");
});

t.test("a reader that goes away: quiet on the plain path and on yargs' help", async (t) => {
  const source = image(t);
  for (const args of [["hash", "--block-size", "4K", source], ["--help"], ["resync", "--help"]]) {
    const run = runCliIntoClosedPipe(args);
    t.equal(run.status, 0, `${args.join(" ")}: exit 0`);
    t.equal(run.stderr, "", `${args.join(" ")}: nothing on stderr`);
  }
});

t.test("stdout that cannot be written (/dev/full) is a coded error, exit 4, said once on stderr", async (t) => {
  const dir = tempDir(t);
  const [a, b] = [join(dir, "a.img"), join(dir, "b.img")];
  writeFileSync(a, Buffer.alloc(8192, 1));
  writeFileSync(b, Buffer.alloc(8192, 2));
  for (const args of [["resync", a, b], ["verify", a, b, "--json"], ["--version"], ["--version", "--json"], ["--help"], ["resync", "--help"], ["help"]]) {
    const full = openSync("/dev/full", "w");
    try {
      const run = spawnSync(process.execPath, [CLI_PATH, ...args], { stdio: ["ignore", full, "pipe"], encoding: "utf8" });
      t.equal(run.status, 4, `${args.join(" ")}: exit 4`);
      t.equal(run.stderr, "vhdsync: VHDSYNC_NO_SPACE: ENOSPC: no space left on device, write\n", `${args.join(" ")}: one line on stderr`);
    } finally {
      closeSync(full);
    }
  }
});

t.test("a reader that goes away does not stop work that changes files: resync, copy and checksum finish", async (t) => {
  // 256 MiB: eight segments, so progress lines go out while most of the work is still to do.
  const dir = tempDir(t);
  const [source, target, copied, digest] = ["source.img", "target.img", "copied.img", "source.digest"].map((name) => join(dir, name));
  const bytes = Buffer.alloc(256 * 1024 * 1024);
  randomFillSync(bytes);
  writeFileSync(source, bytes);
  for (const block of [10, 30_000, 65_000]) randomFillSync(bytes, block * 4096, 4096); // first, middle and last segments
  writeFileSync(target, bytes);
  for (const args of [
    ["resync", source, target],
    ["copy", source, copied],
    ["checksum", source, "-o", digest],
  ]) {
    // The first progress line already meets EPIPE.
    const run = runCliIntoClosedPipe([...args, "--json", "--progress"]);
    t.equal(run.status, 0, `${args[0]}: exit 0 (${run.stderr})`);
    t.equal(run.stderr, "", `${args[0]}: nothing on stderr`);
  }
  t.ok(readFileSync(target).equals(readFileSync(source)), "resync: the target equals the source");
  t.ok(readFileSync(copied).equals(readFileSync(source)), "copy: the copy equals the source");
  const verified = runCli(["diff", source, digest, "--json"]);
  t.equal(verified.status, 0, `checksum: the digest file is whole and matches the source (${verified.stderr})`);
});

t.test("a reader of stderr that goes away: the error's exit status stays (3), no crash", async (t) => {
  const dir = tempDir(t);
  // stderr into a pipe whose reader is already gone, stdout to /dev/null.
  const run = runCliIntoClosedPipe(["resync", join(dir, "missing.img"), join(dir, "target.img")], "2>&1 >/dev/null");
  t.equal(run.status, 3, "exit 3, as with a reader");
  t.equal(runCli(["resync", join(dir, "missing.img"), join(dir, "target.img")]).status, 3, "the same command with a reader: exit 3");
});

t.test("diff and verify whose reader goes away still owe their status: 1 when the images differ", async (t) => {
  const dir = tempDir(t);
  const [a, b] = [join(dir, "a.img"), join(dir, "b.img")];
  const bytes = Buffer.alloc(64 * 1024 * 1024);
  randomFillSync(bytes);
  writeFileSync(a, bytes);
  randomFillSync(bytes, 60 * 1024 * 1024, 4096);
  writeFileSync(b, bytes);
  for (const args of [["diff", a, b], ["verify", a, b, "--json", "--progress"]]) {
    const run = runCliIntoClosedPipe(args);
    t.equal(run.status, 1, `${args.join(" ")} | true: exit 1`);
    t.equal(run.stderr, "", `${args[0]}: nothing on stderr`);
  }
});

t.test("--json --progress: progress (or block) lines, then one final line of type report", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed + 1);
  const a = join(dir, "a.raw");
  const b = join(dir, "b.raw");
  writeFileSync(a, prng.bytes(4 * 1024 * 1024));
  const changed = readFileSync(a);
  changed.fill(7, 1 << 20, (1 << 20) + 4096);
  writeFileSync(b, changed);
  const cases: [string, string[]][] = [
    ["checksum", ["checksum", a, "-o", join(dir, "a.digest")]],
    ["diff", ["diff", a, b]],
    ["verify", ["verify", a, b]],
    ["hash", ["hash", "--block-size", "1M", a]],
    ["convert", ["convert", a, join(dir, "a.vhd"), "--to", "vhd-dynamic"]],
    ["copy", ["copy", a, join(dir, "copy.raw")]],
    // compare stops at the first difference, before any progress line: compare equal images.
    ["compare", ["compare", a, join(dir, "copy.raw")]],
    ["resync", ["resync", a, b]],
  ];
  for (const [name, args] of cases) {
    const run = runCli([...args, "--json", "--progress"]);
    t.ok(run.status === 0 || run.status === 1, `${name}: exit ${run.status} ${run.stderr}`);
    const lines = run.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    const last = lines.pop();
    t.match(last, { ok: true, type: "report" }, `${name}: the last line is the report`);
    t.ok(lines.length > 0, `${name}: lines came before it`);
    const streamed = new Set(lines.map((line) => line.type));
    t.same([...streamed].sort(), name === "hash" ? ["block", "progress"] : ["progress"], `${name}: the lines before it are ${[...streamed]}`);
  }
});
