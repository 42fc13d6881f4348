// Before/after of a change on the resync benchmark's 2 GiB pair (bench/resync-fixtures.mjs):
// `vhdsync resync` (the target dirtied the same way before each run) and `vhdsync checksum` of
// the source, through this build's bin and VHDSYNC_BENCH_BASELINE_BIN (another build's
// bin/vhdsync.cjs: a worktree of the older commit, built), alternating, with two parallel
// `xxhsum -H2` (the hash floor) each round for scale. Medians are printed; nothing is written
// to bench/results (the session notes quote them). Without a baseline it compares this build
// with itself (the spread of the sitting).
//   VHDSYNC_BENCH_BASELINE_BIN=/tmp/base/bin/vhdsync.cjs node bench/ab-pair.mjs
//   VHDSYNC_BENCH_TINY=1 node bench/ab-pair.mjs   (8 MiB, 2 rounds: a smoke run for CI)
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { changeBlocks, makePair } from "./resync-fixtures.mjs";
import { median, root } from "./hash-common.mjs";

const TINY = process.env.VHDSYNC_BENCH_TINY === "1";
const MIB = 1024 * 1024;
const SIZE = TINY ? 8 * MIB : 2048 * MIB;
const ROUNDS = TINY ? 2 : Number(process.env.VHDSYNC_BENCH_ROUNDS ?? 15);
const SEED = 7;
const dir = join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-ab-pair");
const bins = { current: join(root, "bin/vhdsync.cjs"), baseline: process.env.VHDSYNC_BENCH_BASELINE_BIN ?? join(root, "bin/vhdsync.cjs") };
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS; // a CA bundle parsed by every process (see bench/resync.mjs)

function seconds(command, args) {
  const started = performance.now();
  const run = spawnSync(command, args, { env, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (status ${run.status}): ${run.stderr}`);
  return (performance.now() - started) / 1000;
}

mkdirSync(dir, { recursive: true });
try {
  const { source, target, changedBlocks } = makePair(dir, SIZE, 0.009, SEED);
  spawnSync("sh", ["-c", `cat '${source}' '${target}' > /dev/null`]);
  const floor = spawnSync("xxhsum", ["--version"]).status === 0;
  const times = { xxhsum: [], ...Object.fromEntries(Object.keys(bins).flatMap((name) => [[`resync ${name}`, []], [`checksum ${name}`, []]])) };
  for (let round = 0; round < ROUNDS; round++) {
    if (floor) times.xxhsum.push(seconds("sh", ["-c", `xxhsum -H2 '${source}' > /dev/null & xxhsum -H2 '${target}' > /dev/null & wait`]));
    for (const name of round % 2 ? ["baseline", "current"] : ["current", "baseline"]) {
      changeBlocks(target, SIZE, changedBlocks, SEED);
      spawnSync("sync");
      times[`resync ${name}`].push(seconds(process.execPath, [bins[name], "resync", source, target]));
      times[`checksum ${name}`].push(seconds(process.execPath, [bins[name], "checksum", source, "-o", join(dir, "source.digest")]));
    }
  }
  console.log(`${ROUNDS} alternating rounds, ${SIZE / MIB} MiB pair; baseline ${bins.baseline}`);
  for (const [name, values] of Object.entries(times)) if (values.length) console.log(`${name.padEnd(18)} ${median(values).toFixed(4)} s (median)`);
} finally {
  if (process.env.VHDSYNC_BENCH_KEEP !== "1") rmSync(dir, { recursive: true, force: true });
}
