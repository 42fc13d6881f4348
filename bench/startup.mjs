// What a command costs before and after its own work: wall time of tiny runs through the bin
// (a 4 KiB pair), in alternating rounds, against `node -e 0`:
// - `vhdsync --version`;
// - `vhdsync resync A B` (a 4 KiB raw pair, one block differing each round);
// - `vhdsync checksum A -o D`;
// - `vhdsync resync A B --target-digest D` (the digest's check included).
// With VHDSYNC_BENCH_BASELINE_BIN=<another build's bin/vhdsync.cjs> each command also runs
// through that bin, alternating, for a before/after of a change (the session notes' start-up
// figures: a worktree of the older commit, built).
// VHDSYNC_BENCH_TINY=1 runs 2 rounds; full size runs 31 and writes bench/results/startup.json.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { median, root, writeResults } from "./hash-common.mjs";

const TINY = process.env.VHDSYNC_BENCH_TINY === "1";
const ROUNDS = TINY ? 2 : Number(process.env.VHDSYNC_BENCH_ROUNDS ?? 31);
const bins = { current: join(root, "bin/vhdsync.cjs") };
if (process.env.VHDSYNC_BENCH_BASELINE_BIN) bins.baseline = process.env.VHDSYNC_BENCH_BASELINE_BIN;

const dir = mkdtempSync(join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-startup-"));
const [a, b, digest] = [join(dir, "a.img"), join(dir, "b.img"), join(dir, "b.digest")];
const block = new Uint8Array(4096).map((_, i) => (i * 7) & 255);

function timed(args, before) {
  before?.();
  const started = process.hrtime.bigint();
  const run = spawnSync(process.execPath, args, { encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (run.status !== 0) throw new Error(`${args.join(" ")} failed (status ${run.status}): ${run.stderr}`);
  return ms;
}

try {
  writeFileSync(a, block);
  const dirty = () => writeFileSync(b, block.map((byte, i) => (i === 0 ? byte ^ 1 : byte)));
  const commands = {
    version: { args: ["--version"] },
    resync: { args: ["resync", a, b], before: dirty },
    checksum: { args: ["checksum", a, "-o", digest] },
    targetDigest: {
      args: ["resync", a, b, "--target-digest", digest],
      before: () => {
        dirty();
        timed([bins.current, "checksum", b, "-o", digest]);
      },
    },
  };
  const ms = { node: [] };
  for (let round = 0; round < ROUNDS; round++) {
    ms.node.push(timed(["-e", "0"]));
    for (const [name, command] of Object.entries(commands)) {
      for (const [which, bin] of Object.entries(bins)) (ms[`${name} ${which}`] ??= []).push(timed([bin, ...command.args], command.before));
    }
  }
  const medianMs = Object.fromEntries(Object.entries(ms).map(([key, values]) => [key, Math.round(median(values) * 100) / 100]));
  const overNode = Object.fromEntries(Object.entries(medianMs).filter(([key]) => key !== "node").map(([key, value]) => [key, Math.round((value - medianMs.node) * 100) / 100]));
  for (const [key, value] of Object.entries(medianMs)) console.log(`${key.padEnd(22)} ${value.toFixed(1)} ms${key === "node" ? "" : ` (${overNode[key].toFixed(1)} over node -e 0)`}`);
  const written = writeResults("startup", TINY, { rounds: ROUNDS, bins, medianMs, medianMsOverNode: overNode, allMs: ms });
  console.log(`results: ${written}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
