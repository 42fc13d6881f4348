// Shared helpers of the benchmarks: the machine description saved with every result,
// xxhsum's own benchmark figure, the median, timed CLI runs in their own process with their
// peak RSS (measureCli), and writing bench/results/<name>.json (tiny runs go to
// bench/results/tmp/).
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("..", import.meta.url));
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** stdout + stderr of a command (xxhsum reports on stderr), or undefined when it cannot run. */
function tryRun(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8" });
  return result.error ? undefined : `${result.stdout}${result.stderr}`;
}

/** CPU model, core count, memory, kernel, Node and xxhsum versions, load average. */
export function machine() {
  const xxhsum = tryRun("xxhsum", ["--version"])?.trim().split("\n")[0]?.trim();
  return {
    cpu: cpus()[0]?.model,
    nproc: cpus().length,
    totalMemoryGiB: Number((totalmem() / GiB).toFixed(1)),
    kernel: release(),
    node: process.version,
    xxhsum: xxhsum ?? "not installed",
    // 1/5/15-minute load averages when the results were written: > nproc means other work
    // competed for the CPUs and the figures are pessimistic.
    loadAverage: loadavg().map((value) => Number(value.toFixed(2))),
  };
}

/**
 * xxhsum's own in-memory benchmark of a variant (`xxhsum -b<id> -i<iterations>`; 11 = XXH128,
 * 3 = XXH64), in bytes per second (it/s x its 100 KB sample), or undefined without xxhsum.
 */
export function xxhsumBenchmark(variantId, iterations) {
  const output = tryRun("xxhsum", [`-b${variantId}`, `-i${iterations}`]);
  const matches = [...(output ?? "").matchAll(/:\s+(\d+) ->\s+(\d+) it\/s/g)];
  if (matches.length === 0) return undefined;
  const [, sampleBytes, perSecond] = matches[matches.length - 1];
  return Number(sampleBytes) * Number(perSecond);
}

export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
export const round = (value, digits = 3) => Number(value.toFixed(digits));

/** Writes `result` to bench/results/<name>.json (tiny: bench/results/tmp/<name>.json); returns the path. */
export function writeResults(name, tiny, result) {
  const dir = join(root, "bench", "results", tiny ? "tmp" : "");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ benchmark: name, tiny, date: new Date().toISOString(), machine: machine(), ...result }, null, 2) + "\n");
  return path;
}

/**
 * Runs `vhdsync ARGS --json` `repeats` times, each in its own process under /usr/bin/time
 * (`prepare` first, untimed): the median wall seconds, every run's, the peak RSS (MiB) and the
 * last run's JSON report. Throws when a run exits with a status not in `allow`.
 */
export function measureCli(args, { repeats, env = process.env, allow = [0], prepare } = {}) {
  const cli = join(root, "bin", "vhdsync.cjs");
  const runs = Array.from({ length: repeats }, () => {
    prepare?.();
    const started = performance.now();
    const result = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, cli, ...args, "--json"], { encoding: "utf8", env, maxBuffer: 256 * 1024 * 1024 });
    const seconds = (performance.now() - started) / 1000;
    if (!allow.includes(result.status)) throw new Error(`vhdsync ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
    const rssKib = Number(result.stderr.trim().split("\n").pop());
    return { seconds, rssMiB: rssKib / 1024, report: JSON.parse(result.stdout.trim().split("\n").pop()) };
  });
  return { seconds: round(median(runs.map((r) => r.seconds))), peakRssMiB: round(Math.max(...runs.map((r) => r.rssMiB)), 1), allSeconds: runs.map((r) => round(r.seconds)), report: runs.at(-1).report };
}
