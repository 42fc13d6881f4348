// `vhdsync hash` vs `xxhsum -H2` on the same file in the page cache (2 GiB of random bytes),
// run alternately; reports wall-clock medians and the median of per-pair ratios (vhdsync /
// xxhsum, < 1 means vhdsync is faster), plus user+system CPU seconds from /usr/bin/time when
// present. Both digests must match. VHDSYNC_BENCH_TINY=1: 64 MiB, 3 pairs.
// Results: bench/results/hash-vs-xxhsum.json.   node bench/hash-vs-xxhsum.mjs (needs `npm run build`)
import { spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GiB, MiB, median, root, round, writeResults } from "./hash-common.mjs";

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const FILE_BYTES = tiny ? 64 * MiB : 2 * GiB;
const PAIRS = tiny ? 3 : 9;
const CLI = join(root, "bin", "vhdsync.cjs");
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

/** Writes `sizeBytes` random bytes to `path` (in 16 MiB writes). */
function writeRandomFile(path, sizeBytes) {
  const chunk = Buffer.alloc(16 * MiB);
  const fd = openSync(path, "w");
  for (let offset = 0; offset < sizeBytes; offset += chunk.length) {
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, Math.min(chunk.length, sizeBytes - offset), offset);
  }
  closeSync(fd);
}

/**
 * NODE_EXTRA_CA_CERTS makes every Node start parse a CA bundle (~0.1 s here) though vhdsync
 * opens no TLS connection: the timed runs go without it (reported in the results).
 */
const RUN_ENV = { ...process.env };
delete RUN_ENV.NODE_EXTRA_CA_CERTS;

/** Runs a command; returns wall seconds, CPU seconds (if measurable) and the digest it printed. */
function timed(command, args, dir) {
  const cpuFile = join(dir, "cpu.txt");
  const [file, argv] = TIME ? [TIME, ["-f", "%U %S", "-o", cpuFile, command, ...args]] : [command, args];
  const started = process.hrtime.bigint();
  const result = spawnSync(file, argv, { encoding: "utf8", env: RUN_ENV });
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr}`);
  const cpuSeconds = TIME ? readFileSync(cpuFile, "utf8").trim().split(/\s+/).map(Number).reduce((a, b) => a + b, 0) : undefined;
  return { wallSeconds, cpuSeconds, digest: /^([0-9a-f]{32})\s/.exec(result.stdout)?.[1] };
}

const dir = mkdtempSync(join(tmpdir(), "vhdsync-bench-"));
try {
  const path = join(dir, "random.bin");
  writeRandomFile(path, FILE_BYTES);
  spawnSync("sync"); // no writeback of the fresh file during the timed runs
  const runs = { vhdsync: [], xxhsum: [] };
  const vhdsync = () => timed(process.execPath, [CLI, "hash", "--algo", "xxh3-128", path], dir);
  const xxhsum = () => timed("xxhsum", ["-H2", path], dir);
  xxhsum(); // warm the page cache
  vhdsync();
  for (let pair = 0; pair < PAIRS; pair++) {
    // Alternate which goes first so neither always runs right after the other's cache effects.
    const order = pair % 2 === 0 ? ["vhdsync", "xxhsum"] : ["xxhsum", "vhdsync"];
    for (const name of order) runs[name].push(name === "vhdsync" ? vhdsync() : xxhsum());
  }
  const digests = new Set([...runs.vhdsync, ...runs.xxhsum].map((run) => run.digest));
  if (digests.size !== 1) throw new Error(`digests differ: ${[...digests].join(", ")}`);
  const summary = (list) => ({
    medianWallSeconds: round(median(list.map((run) => run.wallSeconds))),
    medianCpuSeconds: TIME ? round(median(list.map((run) => run.cpuSeconds))) : undefined,
    medianGBps: round(FILE_BYTES / median(list.map((run) => run.wallSeconds)) / 1e9),
  });
  const ratios = runs.vhdsync.map((run, i) => run.wallSeconds / runs.xxhsum[i].wallSeconds);
  const result = {
    fileBytes: FILE_BYTES,
    pairs: PAIRS,
    nodeExtraCaCertsRemovedForRuns: Boolean(process.env.NODE_EXTRA_CA_CERTS),
    vhdsync: summary(runs.vhdsync),
    xxhsum: summary(runs.xxhsum),
    // Target <= 1: vhdsync no slower than xxhsum (median of per-pair wall-time ratios).
    medianWallRatioVhdsyncToXxhsum: round(median(ratios)),
    wallSeconds: { vhdsync: runs.vhdsync.map((run) => round(run.wallSeconds)), xxhsum: runs.xxhsum.map((run) => round(run.wallSeconds)) },
  };
  console.log(result);
  console.log(`results: ${writeResults("hash-vs-xxhsum", tiny, result)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
