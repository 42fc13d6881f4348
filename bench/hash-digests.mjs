// The hash modes by digest, native against the WASM scanners (VHDSYNC_NO_NATIVE_HASH=1: the
// WASM kernels, and node:crypto once per block for SHA-256), in alternating rounds by the CLI:
// - `vhdsync checksum --hash H` of the pair's 2 GiB source for each of the four digests, and
//   `openssl dgst -sha256` of the same file (one SHA-256 stream: the reference for a
//   cryptographic digest, when openssl is on PATH);
// - `vhdsync resync --target-digest` into a dynamic VHD target (the pair's target converted,
//   0.9% of its 4 KiB blocks differing), each round on a fresh copy of the VHD and its digest;
//   the native run writes the changes through the format ("caller" apply).
// Checks: both paths write byte-identical digest files, both target-digest runs change the
// same blocks, and the VHD then equals the source (vhdsync verify). Medians of wall time and
// CPU, peak RSS of the target-digest runs. VHDSYNC_BENCH_TINY=1 runs at 8 MiB; full size writes
// bench/results/hash-digests.json.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makePair } from "./resync-fixtures.mjs";

const TINY = process.env.VHDSYNC_BENCH_TINY === "1";
const MIB = 1024 * 1024;
const SIZE = TINY ? 8 * MIB : 2048 * MIB;
const ROUNDS = TINY ? 1 : Number(process.env.VHDSYNC_BENCH_ROUNDS ?? 5);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "bin/vhdsync.cjs");
const HAVE_TIME = existsSync("/usr/bin/time");
const DIGESTS = ["xxh3-128", "xxh3-64", "xxh64", "sha256"];
const WASM = { VHDSYNC_NO_NATIVE_HASH: "1" };
/** NODE_EXTRA_CA_CERTS costs every Node process start-up time (see bench/resync.mjs). */
const NODE_ENV = { ...process.env };
delete NODE_ENV.NODE_EXTRA_CA_CERTS;
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
const dir = mkdtempSync(join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-hash-digests-"));

/** Runs `command` and returns wall seconds, CPU seconds (user + system), peak RSS (KiB) and stdout. */
function timed(command, args, env = {}) {
  const timeFile = join(dir, "time");
  const [file, argv] = HAVE_TIME ? ["/usr/bin/time", ["-f", "%U %S %M", "-o", timeFile, command, ...args]] : [command, args];
  const started = performance.now();
  const run = spawnSync(file, argv, { encoding: "utf8", maxBuffer: 64 * MIB, env: { ...NODE_ENV, ...env } });
  const seconds = (performance.now() - started) / 1000;
  if (run.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${run.status}): ${run.stderr}`);
  const [user, system, rss] = HAVE_TIME ? readFileSync(timeFile, "utf8").trim().split(/\s+/).slice(-3).map(Number) : [NaN, NaN, NaN];
  return { seconds, cpuSeconds: user + system, peakRssKib: rss, stdout: run.stdout };
}

const vhdsync = (args, env) => timed(process.execPath, [CLI, ...args, "--json"], env);
const report = (run) => JSON.parse(run.stdout.trim().split("\n").at(-1));

try {
  const { source, target } = makePair(dir, SIZE, 0.009, 7);
  const vhd = join(dir, "target.vhd");
  vhdsync(["convert", target, vhd, "--to", "vhd-dynamic"]);
  spawnSync("sh", ["-c", `cat '${source}' '${vhd}' > /dev/null`]);
  const openssl = spawnSync("sh", ["-c", "command -v openssl"]).status === 0;
  const times = {};
  const cpu = {};
  const record = (key, run) => {
    (times[key] ??= []).push(run.seconds);
    (cpu[key] ??= []).push(run.cpuSeconds);
  };
  const rss = { native: [], wasm: [] };
  const checks = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const algo of DIGESTS) {
      const digests = {};
      for (const [path, env] of [["native", {}], ["wasm", WASM]]) {
        digests[path] = join(dir, `${path}-${algo}.digest`);
        const run = vhdsync(["checksum", source, "-o", digests[path], "--hash", algo], env);
        if (report(run).scanner !== path) throw new Error(`checksum --hash ${algo}: the ${report(run).scanner} scanner ran, not ${path}`);
        record(`checksum ${algo} ${path}`, run);
      }
      if (!readFileSync(digests.native).equals(readFileSync(digests.wasm))) throw new Error(`checksum --hash ${algo}: the digest files differ`);
    }
    if (openssl) record("openssl dgst -sha256", timed("openssl", ["dgst", "-sha256", source]));
    const changed = {};
    for (const [path, env] of [["native", {}], ["wasm", WASM]]) {
      const copy = join(dir, `${path}.vhd`);
      const digest = join(dir, `${path}-vhd.digest`);
      copyFileSync(vhd, copy);
      vhdsync(["checksum", copy, "-o", digest]);
      spawnSync("sh", ["-c", `cat '${copy}' > /dev/null`]);
      const run = vhdsync(["resync", source, copy, "--target-digest", digest], env);
      const result = report(run);
      if (result.scanner !== path) throw new Error(`--target-digest into a VHD: the ${result.scanner} scanner ran, not ${path}`);
      record(`target-digest into a dynamic VHD ${path}`, run);
      rss[path].push(run.peakRssKib);
      changed[path] = result.blocksChanged;
      const left = report(vhdsync(["verify", source, copy]));
      if (left.blocksDiffering !== 0) throw new Error(`--target-digest into a VHD (${path}): ${left.blocksDiffering} blocks still differ`);
    }
    if (changed.native !== changed.wasm) throw new Error(`--target-digest into a VHD: ${changed.native} blocks changed natively, ${changed.wasm} by WASM`);
    checks.push(`round ${round}: digest files identical, ${changed.native} blocks changed by both, VHD equal to the source`);
  }
  const medians = Object.fromEntries(Object.entries(times).map(([key, values]) => [key, median(values)]));
  const results = {
    date: new Date().toISOString(),
    tiny: TINY,
    machine: { cpuModel: cpus()[0]?.model, cpus: cpus().length, kernel: release(), node: process.version, load: readFileSync("/proc/loadavg", "utf8").trim() },
    sizeBytes: SIZE,
    rounds: ROUNDS,
    medianSeconds: medians,
    medianCpuSeconds: Object.fromEntries(Object.entries(cpu).map(([key, values]) => [key, median(values)])),
    ratios: {
      ...Object.fromEntries(DIGESTS.map((algo) => [`checksum ${algo} native / WASM`, medians[`checksum ${algo} native`] / medians[`checksum ${algo} wasm`]])),
      "checksum sha256 native / openssl dgst -sha256": openssl ? medians["checksum sha256 native"] / medians["openssl dgst -sha256"] : null,
      "target-digest into a dynamic VHD native / WASM": medians["target-digest into a dynamic VHD native"] / medians["target-digest into a dynamic VHD wasm"],
    },
    peakRssKibTargetDigestIntoVhd: { native: median(rss.native), wasm: median(rss.wasm) },
    allSeconds: times,
    checks,
  };
  if (!TINY) {
    mkdirSync(join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(join(ROOT, "bench/results/hash-digests.json"), JSON.stringify(results, null, 2) + "\n");
  }
  console.log(JSON.stringify(results, null, 2));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
