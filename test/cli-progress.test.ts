// The terminal progress bar: a line never wider than the terminal (a wrapped line left stale
// rows on screen), and output written to the same terminal (hash --block-size) starts on a line
// of its own, not after the bar.
import t from "tap";
import { spawnSync } from "node:child_process";
import { truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { barLine } from "../dist/cli/progress.js";
import { CLI_PATH } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

t.test("barLine fits the terminal: the detail goes first, then the bar narrows, then the line is cut", async (t) => {
  const detail = "1234567 blocks differed so far";
  for (const columns of [10, 20, 40, 60, 70, 80, 100, 132, 200]) {
    for (const fraction of [0, 0.333, 1]) {
      const line = barLine("resync", fraction, fraction * 2 ** 40, 2 ** 40, 1.5 * 2 ** 30, 3725, detail, columns);
      t.ok(line.length <= columns - 1, `${columns} columns, ${fraction}: ${line.length} characters`);
    }
  }
  t.match(barLine("resync", 0.5, 512, 1024, 1024, 1, detail, 200), /\[#{14}\.{14}\] 50\.0% .* {2}1234567 blocks differed so far$/, "a wide terminal shows all");
  t.notMatch(barLine("resync", 0.5, 512, 1024, 1024, 1, detail, 80), /blocks differed/, "80 columns: the detail goes first");
  t.match(barLine("resync", 0.5, 512, 1024, 1024, 1, detail, 80), /\[#{14}\.{14}\]/, "the bar keeps its width while it fits");
  t.match(barLine("resync", 0.5, 2 ** 40, 2 ** 41, 2 ** 30, 7200, undefined, 60), /\[#{4}\.{4}\]/, "then it narrows to 8");
  t.equal(barLine("hash", 1, 1, 1, 1, 0, undefined, undefined), "hash [############################] 100.0% 1 B/1 B 1 B/s ETA 0:00", "no terminal width: the whole line");
});

t.test("on a terminal (script): bar lines fit 60 columns; hash --block-size lines do not follow the bar", async (t) => {
  if (spawnSync("script", ["--version"]).status !== 0) return t.plan(0, "script (util-linux) is not installed");
  const dir = tempDir(t);
  const image = join(dir, "a.raw");
  // 1 GiB (sparse, with data at the start) hashed with SHA-256: long enough for the bar to be
  // drawn (every 100 ms after the first event) on a fast machine too.
  writeFileSync(image, new Prng(testSeed()).bytes(1 << 20));
  truncateSync(image, 1 << 30);
  const command = `stty cols 60; "${process.execPath}" "${CLI_PATH}" hash --algo sha256 --block-size 64M "${image}"`;
  const run = spawnSync("script", ["-qec", command, "/dev/null"], { encoding: "utf8", timeout: 60_000 });
  t.equal(run.status, 0, run.stderr);
  const pieces = run.stdout.split(/\r|\n/).map((piece) => piece.replaceAll("\x1b[K", ""));
  const bars = pieces.filter((piece) => piece.startsWith("hash ["));
  t.ok(bars.length > 0, `the bar was drawn (${bars.length} times)`);
  t.ok(bars.every((bar) => bar.length <= 59), `bar lines fit: ${Math.max(...bars.map((bar) => bar.length))} characters`);
  const digests = pieces.filter((piece) => /\/a\.raw \[\d+\+\d+\]$/.test(piece));
  t.equal(digests.length, 16, "a line per 64 MiB block");
  t.ok(digests.every((line) => /^[0-9a-f]{64} {2}/.test(line)), "each on a line of its own");
});
