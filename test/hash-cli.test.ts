// `vhdsync hash` against xxhsum: same hex digits as `xxhsum -H1/-H2/-H3` for files of sizes
// 0, 1, 17, 240, 241, 1 MiB + 3 and 100 MiB + 7; per-block output (streamed: bounded memory);
// --json; usage errors.

import { execFileSync, spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { existsSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { CLI_PATH, runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const SIZES = [0, 1, 17, 240, 241, 1048576 + 3, 100 * 1048576 + 7];

/** xxhsum's hex per file, in order (0.8.1 prints -H3 as `XXH3 (file) = hex`). */
function xxhsum(flag: string, paths: string[]): string[] {
  const output = execFileSync("xxhsum", [flag, ...paths], { encoding: "utf8" });
  return output.trim().split("\n").map((line) => (/^XXH3 \(.*\) = ([0-9a-f]+)$/.exec(line) ?? /^([0-9a-f]+) {2}/.exec(line))![1]);
}

t.test("vhdsync hash prints xxhsum's digests", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const paths = SIZES.map((size) => {
    const bytes = new Uint8Array(size);
    if (size > 65536) randomFillSync(bytes);
    else prng.fill(bytes);
    const path = join(dir, `file-${size}`);
    writeFileSync(path, bytes);
    return path;
  });
  for (const [algo, flag] of [["xxh64", "-H1"], ["xxh3-128", "-H2"], ["xxh3-64", "-H3"]]) {
    const expected = xxhsum(flag, paths).map((hex, i) => `${hex}  ${paths[i]}`);
    const result = runCli(["hash", "--algo", algo, ...paths]);
    t.equal(result.status, 0, `${algo} exit status (${result.stderr})`);
    t.same(result.stdout.trim().split("\n"), expected, `${algo} equals xxhsum ${flag} (VHDSYNC_SEED=${seed})`);
  }
  const defaultAlgo = runCli(["hash", paths[2]]);
  t.equal(defaultAlgo.stdout, `${xxhsum("-H2", [paths[2]])[0]}  ${paths[2]}\n`, "default algorithm is xxh3-128");
});

t.test("--block-size and --json", async (t) => {
  const dir = tempDir(t);
  const bytes = new Prng(testSeed()).bytes(10000);
  const path = join(dir, "image.raw");
  writeFileSync(path, bytes);
  const blockPaths = [0, 4096, 8192].map((offset, i) => {
    const blockPath = join(dir, `block-${i}`);
    writeFileSync(blockPath, bytes.subarray(offset, offset + 4096));
    return blockPath;
  });
  const expected = xxhsum("-H1", blockPaths);
  const result = runCli(["hash", "--algo", "xxh64", "--block-size", "4K", "--json", path]);
  t.equal(result.status, 0, result.stderr);
  const lines = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
  t.same(lines.slice(0, -1), [
    { type: "block", file: path, offset: 0, length: 4096, digest: expected[0] },
    { type: "block", file: path, offset: 4096, length: 4096, digest: expected[1] },
    { type: "block", file: path, offset: 8192, length: 1808, digest: expected[2] },
  ]);
  t.same(lines.at(-1), { ok: true, type: "report", algorithm: "xxh64", files: [{ file: path, sizeBytes: 10000, blockSizeBytes: 4096, blockCount: 3 }] });
  const human = runCli(["hash", "--algo", "xxh64", "--block-size", "4096", path]);
  t.same(
    human.stdout.trim().split("\n"),
    expected.map((hex, i) => `${hex}  ${path} [${i * 4096}+${i === 2 ? 1808 : 4096}]`),
    "one line per block",
  );
  const whole = JSON.parse(runCli(["hash", "--json", path]).stdout);
  t.same(whole.files, [{ file: path, sizeBytes: 10000, digest: xxhsum("-H2", [path])[0] }]);
});

t.test("--block-size --json streams its block lines: memory stays bounded for a 4 GiB image in 4 KiB blocks", { skip: existsSync("/usr/bin/time") ? false : "no /usr/bin/time" }, async (t) => {
  // Gathered into one document, the 1,048,576 records took 520 MB of RSS.
  const dir = tempDir(t);
  const path = join(dir, "sparse.raw");
  writeFileSync(path, "");
  truncateSync(path, 4 * 2 ** 30);
  const run = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, CLI_PATH, "hash", "--block-size", "4K", "--json", path], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  t.equal(run.status, 0, run.stderr);
  const peakKib = Number(run.stderr.trim().split("\n").pop());
  t.ok(peakKib < 200 * 1024, `peak RSS ${Math.round(peakKib / 1024)} MiB`);
  const lines = run.stdout.trimEnd().split("\n");
  t.equal(lines.length, 2 ** 20 + 1, "a line per block and the result");
  const zeroBlock = join(dir, "zero-block");
  writeFileSync(zeroBlock, new Uint8Array(4096));
  const zero = xxhsum("-H2", [zeroBlock])[0];
  t.same(JSON.parse(lines[2 ** 20 - 1]), { type: "block", file: path, offset: 4 * 2 ** 30 - 4096, length: 4096, digest: zero });
  t.same(JSON.parse(lines[2 ** 20]).files, [{ file: path, sizeBytes: 4 * 2 ** 30, blockSizeBytes: 4096, blockCount: 2 ** 20 }]);
});

t.test("usage errors exit 2", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "file");
  writeFileSync(path, "x");
  const badAlgo = runCli(["hash", "--algo", "md5", path]);
  t.equal(badAlgo.status, 2);
  t.match(badAlgo.stderr, /^vhdsync: VHDSYNC_USAGE: /);
  t.equal(badAlgo.stdout, "");
  t.equal(runCli(["hash", "--block-size", "1000", path]).status, 2, "block size not a power of two");
  t.equal(runCli(["hash"]).status, 2, "no file");
  const missing = runCli(["hash", join(dir, "missing")]);
  t.not(missing.status, 0);
  t.match(missing.stderr, /VHDSYNC_NOT_FOUND/);
});

t.test("vhdsync hash of a fixed VHD (read, and mapped; size not a page multiple) equals xxhsum of qemu-img's raw export", async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, "content.raw");
  const bytes = new Uint8Array(5 * 1048576 + 512 * 7);
  randomFillSync(bytes);
  writeFileSync(raw, bytes);
  const vhd = join(dir, "fixed.vhd");
  t.equal(runCli(["convert", raw, vhd, "--to", "vhd-fixed"]).status, 0);
  const exported = join(dir, "exported.raw");
  execFileSync("qemu-img", ["convert", "-f", "vpc", "-O", "raw", vhd, exported]);
  for (const mapped of [false, true]) {
    const result = runCli(["hash", vhd], { env: { ...process.env, VHDSYNC_SCAN_MMAP: mapped ? "1" : "0" } });
    t.equal(result.status, 0, result.stderr);
    t.equal(result.stdout.split(" ")[0], xxhsum("-H2", [exported])[0], `digest of the virtual content (${mapped ? "pages mapped" : "read"})`);
  }
});
