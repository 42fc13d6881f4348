// The machine's floors under the resync benchmark's targets, measured on the same kind of
// pair (bench/resync-fixtures.mjs): a C program (bench/floor.c, compiled here with cc) that
// compares the two files with pread on two threads, or only reads one, against the same work
// done by the library in this warm process (a dry-run resync; a checksum) and `cat`. The
// in-process figures leave out Node's and the CLI's start-up, which bench/resync.mjs includes.
// Medians of alternating rounds; VHDSYNC_BENCH_TINY=1 runs it at 8 MiB. Without cc it says so
// and exits 0. Writes bench/results/floors.json at full size.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makePair } from "./resync-fixtures.mjs";

const TINY = process.env.VHDSYNC_BENCH_TINY === "1";
const MIB = 1024 * 1024;
const SIZE = TINY ? 8 * MIB : 2048 * MIB;
const ROUNDS = TINY ? 1 : Number(process.env.VHDSYNC_BENCH_ROUNDS ?? 7);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const dir = mkdtempSync(join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-floors-"));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

try {
  const binary = join(dir, "floor");
  const built = spawnSync("cc", ["-O2", "-pthread", "-o", binary, join(ROOT, "bench/floor.c")], { encoding: "utf8" });
  if (built.status !== 0) console.log(`floors: no C compiler (${built.error?.code ?? built.stderr.trim()}); skipped`);
  else await measure(binary);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

async function measure(binary) {
  const lib = await import(join(ROOT, "dist/index.js"));
  const { source, target, changedBlocks } = makePair(dir, SIZE, 0.009, 7);
  const digest = join(dir, "source.digest");
  const floor = (...args) => {
    const run = spawnSync(binary, args, { encoding: "utf8" });
    if (run.status !== 0) throw new Error(`floor ${args.join(" ")}: ${run.stderr}`);
    const [seconds, result] = run.stdout.trim().split(" ").map(Number);
    return { seconds, result };
  };
  const timedAsync = async (work) => {
    const started = performance.now();
    await work();
    return (performance.now() - started) / 1000;
  };
  const threads = String(Math.min(2, availableParallelism()));
  const times = { cCompare: [], resyncDryRun: [], cRead: [], checksum: [], cat: [] };
  spawnSync("sh", ["-c", `cat '${source}' '${target}' > /dev/null`]);
  // One of each first: the page cache and the code warm.
  await lib.resync(source, target, { dryRun: true });
  await lib.checksum(source, digest, {});
  let differing = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const compared = floor("compare", source, target, threads);
    differing = compared.result;
    times.cCompare.push(compared.seconds);
    times.resyncDryRun.push(await timedAsync(() => lib.resync(source, target, { dryRun: true })));
    times.cRead.push(floor("read", source, threads).seconds);
    times.checksum.push(await timedAsync(() => lib.checksum(source, digest, {})));
    const started = performance.now();
    spawnSync("sh", ["-c", `cat '${source}' > /dev/null`]);
    times.cat.push((performance.now() - started) / 1000);
  }
  if (differing !== changedBlocks) throw new Error(`the C compare found ${differing} differing blocks, not ${changedBlocks}`);
  const m = Object.fromEntries(Object.entries(times).map(([key, values]) => [key, median(values)]));
  const results = {
    benchmark: "floors",
    tiny: TINY,
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model, cpus: availableParallelism(), node: process.version },
    sizeBytes: SIZE,
    rounds: ROUNDS,
    threads: Number(threads),
    medianSeconds: m,
    // < 1: the library's scan is faster than the C floor.
    resyncDryRunOverCCompare: m.resyncDryRun / m.cCompare,
    checksumOverCRead: m.checksum / m.cRead,
    checksumOverCat: m.checksum / m.cat,
    allSeconds: times,
  };
  console.log(JSON.stringify(results, null, 2));
  if (!TINY) {
    mkdirSync(join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(join(ROOT, "bench/results/floors.json"), JSON.stringify(results, null, 2) + "\n");
  }
}
