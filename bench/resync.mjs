// Side-by-side resync benchmarks (docs/resync.md): vhdsync resync vs two parallel `xxhsum -H2`
// (the hash floor), `rsync --inplace --no-whole-file`, a resync from a target digest, checksum
// vs `cat`, blocksync-fast and bdsync when on PATH, a 5%-allocated dynamic VHD vs a full one
// (resync and checksum), the resync and checksum of the pair and the full VHD's resync with
// the files' pages mapped instead of read (VHDSYNC_SCAN_MMAP=1: which wins depends on the
// host), `checksum --hash sha256` vs one `openssl dgst -sha256` of the whole file, the pair's resync into a dynamic VHD target against the raw one, the resync ratios
// again through the library in a warm process,
// bytes written and peak RSS on a sparse
// 8 GiB pair. Runs alternate; medians are reported. Results go to bench/results/resync.json.
//   node bench/resync.mjs            (2 GiB pair; needs ~10 GiB free and a few minutes)
//   VHDSYNC_BENCH_TINY=1 node bench/resync.mjs   (a few MiB: a smoke run for CI)
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync, rmSync, existsSync, openSync, closeSync, writeSync, ftruncateSync } from "node:fs";
import { cpus, totalmem, release, tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomFillSync } from "node:crypto";
import { makePair, changeBlocks, changedBlockOffsets, fileHash, writeRandomFile } from "./resync-fixtures.mjs";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(ROOT, "bin/vhdsync.cjs");
const TINY = process.env.VHDSYNC_BENCH_TINY === "1";
const MIB = 1024 * 1024;
const SIZE = TINY ? 8 * MIB : 2048 * MIB;
const SPARSE_SIZE = TINY ? 64 * MIB : 8192 * MIB;
const ROUNDS = Number(process.env.VHDSYNC_BENCH_ROUNDS ?? (TINY ? 1 : 5));
const RSYNC_ROUNDS = TINY ? 1 : Number(process.env.VHDSYNC_BENCH_RSYNC_ROUNDS ?? 2);
const DIR = process.env.VHDSYNC_BENCH_DIR ?? join(tmpdir(), "vhdsync-bench-resync");
const FRACTION = 0.009;
const SEED = 7;

function onPath(tool) {
  return spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
}

const PEERS = { blocksyncFast: onPath("blocksync-fast"), bdsync: onPath("bdsync") };
/** The SHA-256 reference: OpenSSL hashing the whole file (SHA extensions where the CPU has them). */
const HAVE_OPENSSL = onPath("openssl");

const TIME_FILE = join(tmpdir(), `vhdsync-bench-time-${process.pid}`);
const HAVE_TIME = existsSync("/usr/bin/time");

/**
 * Runs a command; returns wall seconds and, through /usr/bin/time, the CPU seconds (user +
 * system, children included) — the figure that stays meaningful on a shared, loaded machine.
 */
function timed(command, args, { allow = [0], env, replaceEnv = false } = {}) {
  const [file, argv] = HAVE_TIME ? ["/usr/bin/time", ["-f", "%U %S", "-o", TIME_FILE, command, ...args]] : [command, args];
  const started = performance.now();
  const result = spawnSync(file, argv, { encoding: "utf8", maxBuffer: 64 * MIB, env: replaceEnv ? env : { ...process.env, ...env } });
  const seconds = (performance.now() - started) / 1000;
  if (!allow.includes(result.status)) throw new Error(`${command} ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  const cpuSeconds = HAVE_TIME ? readFileSync(TIME_FILE, "utf8").trim().split(/\s+/).slice(-2).reduce((sum, value) => sum + Number(value), 0) : null;
  return { seconds, cpuSeconds, stdout: result.stdout, stderr: result.stderr };
}

/**
 * NODE_EXTRA_CA_CERTS makes every Node process parse a CA bundle at start-up (~0.1 s on our
 * machine) although vhdsync opens no TLS connection; it is removed for the timed runs, and
 * what it costs is measured and reported separately (results.environment).
 */
const NODE_ENV = { ...process.env };
delete NODE_ENV.NODE_EXTRA_CA_CERTS;
/** The environment that makes the native scans map the files' pages instead of reading them. */
const MAPPED = { VHDSYNC_SCAN_MMAP: "1" };
const vhdsync = (args, options) => timed(process.execPath, [CLI, ...args], { ...options, env: { ...NODE_ENV, ...options?.env }, replaceEnv: true });
const lastJson = (stdout) => JSON.parse(stdout.trim().split("\n").pop());
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

/** Peak RSS (KiB) of a command via /usr/bin/time -v, or null when unavailable. */
function peakRssKib(command, args) {
  if (!existsSync("/usr/bin/time")) return null;
  const result = spawnSync("/usr/bin/time", ["-v", command, ...args], { encoding: "utf8" });
  const match = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr);
  return match ? Number(match[1]) : null;
}

/**
 * Changes blocks of the target and flushes them: the setup's own writes must not be charged
 * to the next run's fdatasync (or to hole punching, which flushes the range first on ext4).
 */
function dirty(path, sizeBytes, count, seed) {
  changeBlocks(path, sizeBytes, count, seed);
  spawnSync("sync");
}

function warm(...paths) {
  for (const path of paths) spawnSync("sh", ["-c", `cat '${path}' > /dev/null`]);
}

/** CPU time stolen by the hypervisor since `from` (a /proc/stat "cpu" line), as a share of all CPU time. */
function cpuTimes() {
  const line = existsSync("/proc/stat") ? readFileSync("/proc/stat", "utf8").split("\n")[0] : "";
  return line.split(/\s+/).slice(1).map(Number);
}

function stealShare(from, to) {
  const delta = to.map((value, i) => value - (from[i] ?? 0));
  const total = delta.reduce((sum, value) => sum + value, 0);
  return total > 0 && delta.length > 7 ? delta[7] / total : null;
}

function machine() {
  const cpu = cpus();
  return { cpuModel: cpu[0]?.model, cpus: cpu.length, memoryBytes: totalmem(), kernel: release(), node: process.version, load: spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout.trim() };
}

function benchPair(results) {
  const { source, target, changedBlocks } = makePair(DIR, SIZE, FRACTION, SEED);
  const digest = join(DIR, "target.digest");
  warm(source, target);
  const times = { resync: [], resync64k: [], xxhsum: [], targetDigest: [], checksum: [], cat: [], resyncMapped: [], checksumMapped: [], checksumSha256: [], opensslSha256: [], rsync: [], blocksyncFast: [], blocksyncFastMmap: [], blocksyncFastDigest: [], bdsyncSha256: [] };
  const reportSeconds = { resync: [], resync64k: [], targetDigest: [], checksum: [], resyncMapped: [], checksumMapped: [] };
  const cpu = { resync: [], xxhsum: [], targetDigest: [], checksum: [], cat: [] };
  let report64k;
  let report;
  let digestReport;
  for (let round = 0; round < ROUNDS; round++) {
    const floor = timed("sh", ["-c", `xxhsum -H2 '${source}' > /dev/null & xxhsum -H2 '${target}' > /dev/null & wait`]);
    times.xxhsum.push(floor.seconds);
    cpu.xxhsum.push(floor.cpuSeconds);
    let run = vhdsync(["resync", source, target, "--json"]);
    times.resync.push(run.seconds);
    cpu.resync.push(run.cpuSeconds);
    report = lastJson(run.stdout);
    reportSeconds.resync.push(report.seconds);
    dirty(target, SIZE, changedBlocks, SEED);
    run = vhdsync(["resync", source, target, "--block-size", "64K", "--json"]);
    times.resync64k.push(run.seconds);
    report64k = lastJson(run.stdout);
    reportSeconds.resync64k.push(report64k.seconds);
    dirty(target, SIZE, changedBlocks, SEED);
    vhdsync(["checksum", target, "-o", digest, "--block-size", "4K"]);
    run = vhdsync(["resync", source, target, "--target-digest", digest, "--json"]);
    times.targetDigest.push(run.seconds);
    cpu.targetDigest.push(run.cpuSeconds);
    digestReport = lastJson(run.stdout);
    reportSeconds.targetDigest.push(digestReport.seconds);
    dirty(target, SIZE, changedBlocks, SEED);
    const catRun = timed("sh", ["-c", `cat '${source}' > /dev/null`]);
    times.cat.push(catRun.seconds);
    cpu.cat.push(catRun.cpuSeconds);
    const checksumRun = vhdsync(["checksum", source, "-o", join(DIR, "source.digest"), "--json"]);
    times.checksum.push(checksumRun.seconds);
    reportSeconds.checksum.push(lastJson(checksumRun.stdout).seconds);
    cpu.checksum.push(checksumRun.cpuSeconds);
    // The same two with the files' pages mapped instead of read: which is faster depends on
    // the host (docs/native.md "Reading the files").
    run = vhdsync(["resync", source, target, "--json"], { env: MAPPED });
    times.resyncMapped.push(run.seconds);
    reportSeconds.resyncMapped.push(lastJson(run.stdout).seconds);
    dirty(target, SIZE, changedBlocks, SEED);
    run = vhdsync(["checksum", source, "-o", join(DIR, "source.digest"), "--json"], { env: MAPPED });
    times.checksumMapped.push(run.seconds);
    reportSeconds.checksumMapped.push(lastJson(run.stdout).seconds);
    // A cryptographic digest per block against OpenSSL's one digest of the whole file.
    times.checksumSha256.push(vhdsync(["checksum", source, "-o", join(DIR, "source-sha256.digest"), "--hash", "sha256", "--json"]).seconds);
    if (HAVE_OPENSSL) times.opensslSha256.push(timed("openssl", ["dgst", "-sha256", source]).seconds);
    if (round < RSYNC_ROUNDS) {
      times.rsync.push(timed("rsync", ["--inplace", "--no-whole-file", source, target]).seconds);
      dirty(target, SIZE, changedBlocks, SEED);
    }
    // Peers, when on PATH (built from their public sources; never part of this repository).
    // Neither flushes its writes, which vhdsync does (fdatasync) before reporting success.
    if (PEERS.blocksyncFast) {
      for (const [key, extra] of [["blocksyncFast", []], ["blocksyncFastMmap", ["--mmap"]]]) {
        times[key].push(timed("blocksync-fast", ["-s", source, "-d", target, "--silent", ...extra]).seconds);
        dirty(target, SIZE, changedBlocks, SEED);
      }
      const bsfDigest = join(DIR, "bsf.digest");
      timed("blocksync-fast", ["--make-digest", "-s", target, "-f", bsfDigest, "--silent", "--force"]);
      times.blocksyncFastDigest.push(timed("blocksync-fast", ["-s", source, "-d", target, "-f", bsfDigest, "--silent"]).seconds);
      dirty(target, SIZE, changedBlocks, SEED);
    }
    if (PEERS.bdsync && round < RSYNC_ROUNDS) {
      const patch = join(DIR, "bdsync.patch");
      const command = `bdsync --hash=sha256 "bdsync --server" '${source}' '${target}' > '${patch}' && bdsync --patch='${target}' < '${patch}'`;
      times.bdsyncSha256.push(timed("sh", ["-c", command]).seconds);
      rmSync(patch, { force: true });
      dirty(target, SIZE, changedBlocks, SEED);
      // bdsync drops both files from the page cache (the next round's xxhsum then read them
      // from disk: 3.8 s instead of 0.6 s); every run is measured with both files cached.
      warm(source, target);
    }
  }
  const m = Object.fromEntries(Object.entries(times).map(([key, values]) => [key, values.length ? median(values) : null]));
  results.pair = {
    sizeBytes: SIZE,
    changedBlocks4k: changedBlocks,
    rounds: ROUNDS,
    rsyncRounds: RSYNC_ROUNDS,
    medianSeconds: m,
    allSeconds: times,
    // The reports' own `seconds` (from resync() start: excludes node and CLI start-up).
    medianCpuSeconds: Object.fromEntries(Object.entries(cpu).map(([key, values]) => [key, HAVE_TIME ? median(values) : null])),
    medianReportSeconds: medians(reportSeconds),
    ratios: {
      resyncOverXxhsum: m.resync / m.xxhsum,
      resync64kOverXxhsum: m.resync64k / m.xxhsum,
      rsyncOverResync: m.rsync / m.resync,
      targetDigestOverResync: m.targetDigest / m.resync,
      checksumOverCat: m.checksum / m.cat,
      // > 1: reading the files (the default) is faster than mapping them on this host.
      resyncMappedOverResync: m.resyncMapped / m.resync,
      checksumMappedOverChecksum: m.checksumMapped / m.checksum,
      // < 1: the per-block SHA-256 digest file is made faster than OpenSSL hashes the file once.
      checksumSha256OverOpenssl: m.opensslSha256 && m.checksumSha256 / m.opensslSha256,
      // > 1: vhdsync resync is faster (a target digest is compared with a target digest).
      blocksyncFastOverResync: m.blocksyncFast && m.blocksyncFast / m.resync,
      blocksyncFastMmapOverResync: m.blocksyncFastMmap && m.blocksyncFastMmap / m.resync,
      blocksyncFastDigestOverTargetDigest: m.blocksyncFastDigest && m.blocksyncFastDigest / m.targetDigest,
      bdsyncSha256OverResync: m.bdsyncSha256 && m.bdsyncSha256 / m.resync,
    },
    // The same ratios from the reports' own seconds (the work, without Node and CLI start-up)
    // against the other tools' wall time.
    reportRatios: (() => {
      const r = medians(reportSeconds);
      return { resyncOverXxhsum: r.resync / m.xxhsum, targetDigestOverResync: r.targetDigest / r.resync, checksumOverCat: r.checksum / m.cat, rsyncOverResync: m.rsync / r.resync };
    })(),
    bytesWritten: { defaultBlock: report.bytesWritten, block64k: report64k.bytesWritten, targetDigest4k: digestReport.bytesWritten },
    defaultBlockSizeBytes: report.blockSizeBytes,
    peakRssKib: peakRssKib(process.execPath, [CLI, "resync", source, target]),
  };
  const equal = fileHash(source) === fileHash(target);
  results.pair.finalCheck = equal ? "target identical after the last run" : "MISMATCH";
}

/** A dynamic VHD source with `percent` of its blocks allocated, and a raw target with the same content, slightly changed. */
async function vhdCase(name, percent) {
  const { createVhd } = await import(join(ROOT, "dist/formats/vhd/index.js"));
  const path = join(DIR, `${name}.vhd`);
  rmSync(path, { force: true });
  const blockSizeBytes = 2 * MIB;
  const image = await createVhd(path, { type: "dynamic", sizeBytes: SIZE, blockSizeBytes });
  const blocks = SIZE / blockSizeBytes;
  const data = Buffer.alloc(blockSizeBytes);
  for (let block = 0; block < blocks; block++) {
    if (block % Math.round(100 / percent) !== 0) continue;
    randomFillSync(data);
    await image.write(data, block * blockSizeBytes);
  }
  await image.close();
  const target = join(DIR, `${name}.raw`);
  rmSync(target, { force: true });
  vhdsync(["copy", path, target]);
  return { path, target };
}

async function benchVhd(results) {
  const cases = { sparse: await vhdCase("dyn5", 5), full: await vhdCase("dyn100", 100) };
  const times = { sparse: [], full: [], fullMapped: [] };
  const inProcess = { sparse: [], full: [], fullMapped: [] };
  const scanners = new Set();
  // checksum of the same VHDs (hashed natively since the eighth session).
  const checksumTimes = { sparse: [], full: [] };
  const checksumScanners = new Set();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [key, { path, target }] of Object.entries(cases)) {
      dirty(target, SIZE, 64, SEED + round);
      warm(path, target);
      const run = vhdsync(["resync", path, target, "--json"]);
      times[key].push(run.seconds);
      inProcess[key].push(lastJson(run.stdout).seconds);
      scanners.add(lastJson(run.stdout).scanner);
      const hashed = vhdsync(["checksum", path, "-o", join(DIR, "vhd.digest"), "--json"]);
      checksumTimes[key].push(hashed.seconds);
      checksumScanners.add(lastJson(hashed.stdout).scanner);
    }
    // The fully allocated VHD again, its pages mapped instead of read.
    dirty(cases.full.target, SIZE, 64, SEED + round);
    const mapped = vhdsync(["resync", cases.full.path, cases.full.target, "--json"], { env: MAPPED });
    times.fullMapped.push(mapped.seconds);
    inProcess.fullMapped.push(lastJson(mapped.stdout).seconds);
  }
  results.vhdDynamic = {
    sizeBytes: SIZE,
    medianSeconds: { allocated5: median(times.sparse), allocated100: median(times.full), allocated100Mapped: median(times.fullMapped) },
    ratio: median(times.sparse) / median(times.full),
    // > 1: reading the VHD's blocks (the default) is faster than mapping them on this host.
    allocated100MappedOverRead: median(times.fullMapped) / median(times.full),
    // The report's own `seconds` (from resync() start: excludes node and CLI start-up).
    medianReportSeconds: { allocated5: median(inProcess.sparse), allocated100: median(inProcess.full), allocated100Mapped: median(inProcess.fullMapped) },
    reportRatio: median(inProcess.sparse) / median(inProcess.full),
    scanner: [...scanners].join(", "),
    allSeconds: times,
    checksum: { medianSeconds: { allocated5: median(checksumTimes.sparse), allocated100: median(checksumTimes.full) }, scanner: [...checksumScanners].join(", "), allSeconds: checksumTimes },
  };
}

/** The median of each list of `record`. */
function medians(record) {
  return Object.fromEntries(Object.entries(record).map(([key, values]) => [key, median(values)]));
}

/** A fresh differencing child of `parent` at `child` with `count` 4 KiB blocks of its own (changedBlockOffsets with `seed`). */
async function makeChild(lib, parent, child, count, seed) {
  rmSync(child, { force: true });
  const made = await lib.createVhd(child, { type: "differencing", parentPath: parent });
  const writes = [];
  changedBlockOffsets(SIZE, count, seed, (block, offset) => writes.push(made.write(Buffer.from(block), offset)));
  await Promise.all(writes);
  await made.close();
}

/**
 * The pair's resync into a dynamic VHD target (2 MiB blocks, every one allocated: converted
 * from the raw target) against the same resync into the raw target, alternating; before each
 * run the same blocks of both are changed (the VHD's through the library).
 */
async function benchVhdTarget(results) {
  const lib = await import(join(ROOT, "dist/index.js"));
  const source = join(DIR, "source.img");
  const raw = join(DIR, "target.img");
  const vhd = join(DIR, "target.vhd");
  // A differencing child over a dynamic parent holding the source's content (the pair is in
  // sync when this runs), made afresh each round with the same changes written into it.
  const parent = join(DIR, "parent.vhd");
  const child = join(DIR, "child.vhd");
  rmSync(vhd, { force: true });
  rmSync(parent, { force: true });
  await lib.convertImage(raw, vhd, { to: "vhd-dynamic" });
  await lib.convertImage(source, parent, { to: "vhd-dynamic" });
  const count = Math.round((SIZE / 4096) * FRACTION);
  const times = { raw: [], vhd: [], differencing: [], differencingWasm: [] };
  const inProcess = { raw: [], vhd: [], differencing: [], differencingWasm: [] };
  const scanners = new Set();
  const differencingScanners = new Set();
  for (let round = 0; round < ROUNDS; round++) {
    const seed = SEED + 100 + round;
    dirty(raw, SIZE, count, seed);
    const image = await lib.openImage(vhd, { readOnly: false });
    const pending = [];
    changedBlockOffsets(SIZE, count, seed, (block, offset) => pending.push(image.write(Buffer.from(block), offset)));
    await Promise.all(pending);
    await image.close();
    spawnSync("sync");
    for (const [key, target] of [["raw", raw], ["vhd", vhd]]) {
      const run = vhdsync(["resync", source, target, "--json"]);
      const report = lastJson(run.stdout);
      times[key].push(run.seconds);
      inProcess[key].push(report.seconds);
      if (key === "vhd") scanners.add(report.scanner);
    }
    // The differencing child: the native scanner (the target's pieces gathered from the
    // child's and the parent's files) and the WASM scanners, alternately first.
    for (const key of round % 2 === 0 ? ["differencing", "differencingWasm"] : ["differencingWasm", "differencing"]) {
      await makeChild(lib, parent, child, count, seed);
      spawnSync("sync");
      const run = vhdsync(["resync", source, child, "--json"], key === "differencingWasm" ? { env: { VHDSYNC_NO_NATIVE_SCAN: "1" } } : undefined);
      const report = lastJson(run.stdout);
      times[key].push(run.seconds);
      inProcess[key].push(report.seconds);
      differencingScanners.add(`${key}: ${report.scanner}`);
    }
  }
  const verified = vhdsync(["verify", source, vhd, "--json"], { allow: [0, 1] });
  const childVerified = vhdsync(["verify", source, child, "--json"], { allow: [0, 1] });
  results.vhdTarget = {
    sizeBytes: SIZE,
    changedBlocks4k: count,
    medianSeconds: medians(times),
    vhdOverRaw: median(times.vhd) / median(times.raw),
    differencingOverRaw: median(times.differencing) / median(times.raw),
    differencingNativeOverWasm: median(times.differencing) / median(times.differencingWasm),
    medianReportSeconds: medians(inProcess),
    scanner: [...scanners].join(", "),
    differencingScanners: [...differencingScanners].join(", "),
    allSeconds: times,
    finalCheck: lastJson(verified.stdout).equal ? "VHD target equal to the source after the last run" : "MISMATCH",
    childCheck: lastJson(childVerified.stdout).equal ? "differencing child equal to the source after the last run" : "MISMATCH",
  };
  for (const path of [vhd, child, parent]) rmSync(path, { force: true });
}

/**
 * A differencing VHD source: a child over a dynamic parent holding the pair's source, with
 * the pair's share of 4 KiB blocks changed in the child, resynced into the raw target
 * (dirtied the same way before each run) by the native scanner (the child read through its
 * format into memory, chunk by chunk) and by the WASM scanners, alternately first; and its
 * checksum by both. The raw source's resync into the same target is the reference.
 */
async function benchVhdSource(results) {
  const lib = await import(join(ROOT, "dist/index.js"));
  const source = join(DIR, "source.img");
  const target = join(DIR, "target.img");
  const parent = join(DIR, "source-parent.vhd");
  const child = join(DIR, "source-child.vhd");
  for (const path of [parent, child]) rmSync(path, { force: true });
  await lib.convertImage(source, parent, { to: "vhd-dynamic" });
  const count = Math.round((SIZE / 4096) * FRACTION);
  await makeChild(lib, parent, child, count, SEED + 200);
  const keys = ["differencing", "differencingWasm", "raw"];
  const times = Object.fromEntries(keys.map((key) => [key, []]));
  const inProcess = Object.fromEntries(keys.map((key) => [key, []]));
  const checksumTimes = { differencing: [], differencingWasm: [] };
  const scanners = new Set();
  const wasmEnv = { env: { VHDSYNC_NO_NATIVE_SCAN: "1" } };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? keys : ["differencingWasm", "differencing", "raw"];
    for (const key of order) {
      vhdsync(["resync", key === "raw" ? source : child, target]);
      dirty(target, SIZE, count, SEED + 300 + round);
      warm(parent, child, target);
      const run = vhdsync(["resync", key === "raw" ? source : child, target, "--json"], key === "differencingWasm" ? wasmEnv : undefined);
      const report = lastJson(run.stdout);
      times[key].push(run.seconds);
      inProcess[key].push(report.seconds);
      scanners.add(`${key}: ${report.scanner}`);
    }
    for (const key of round % 2 === 0 ? ["differencing", "differencingWasm"] : ["differencingWasm", "differencing"]) {
      const run = vhdsync(["checksum", child, "-o", join(DIR, "child.digest"), "--json"], key === "differencingWasm" ? wasmEnv : undefined);
      checksumTimes[key].push(run.seconds);
      scanners.add(`checksum ${key}: ${lastJson(run.stdout).scanner}`);
    }
  }
  vhdsync(["resync", child, target]);
  const verified = vhdsync(["verify", child, target, "--json"], { allow: [0, 1] });
  results.vhdSource = {
    sizeBytes: SIZE,
    changedBlocks4k: count,
    medianSeconds: medians(times),
    differencingOverRaw: median(times.differencing) / median(times.raw),
    differencingNativeOverWasm: median(times.differencing) / median(times.differencingWasm),
    medianReportSeconds: medians(inProcess),
    checksumMedianSeconds: medians(checksumTimes),
    scanners: [...scanners].join(", "),
    allSeconds: times,
    finalCheck: lastJson(verified.stdout).equal ? "target equal to the differencing source after the last run" : "MISMATCH",
  };
  // Back to the pair's source, for the runs after this.
  vhdsync(["resync", source, target]);
  for (const path of [parent, child, join(DIR, "child.digest")]) rmSync(path, { force: true });
}

/**
 * The same runs through the library in this (warm) process, as a DR tool that embeds vhdsync
 * makes them: no Node or CLI start-up, the code already compiled. Alternating rounds on the
 * files benchPair and benchVhd left (the target dirtied the same way before each run).
 */
async function benchLibrary(results) {
  const lib = await import(join(ROOT, "dist/index.js"));
  const source = join(DIR, "source.img");
  const target = join(DIR, "target.img");
  const digest = join(DIR, "library.digest");
  const changed = results.pair.changedBlocks4k;
  const vhd = { allocated5: ["dyn5.vhd", "dyn5.raw"], allocated100: ["dyn100.vhd", "dyn100.raw"] };
  const times = { resync: [], targetDigest: [], allocated5: [], allocated100: [] };
  const timedCall = async (list, call) => {
    const started = performance.now();
    await call();
    list.push((performance.now() - started) / 1000);
  };
  // One untimed call of each kind first: the code is compiled and the WASM instance made.
  await lib.resync(source, target, {});
  await lib.resync(join(DIR, vhd.allocated5[0]), join(DIR, vhd.allocated5[1]), {});
  for (let round = 0; round < ROUNDS; round++) {
    dirty(target, SIZE, changed, SEED);
    await timedCall(times.resync, () => lib.resync(source, target, {}));
    dirty(target, SIZE, changed, SEED);
    await lib.checksum(target, digest, { blockSizeBytes: 4096 });
    await timedCall(times.targetDigest, () => lib.resync(source, target, { targetDigestPath: digest }));
    for (const [key, [image, copy]] of Object.entries(vhd)) {
      dirty(join(DIR, copy), SIZE, 64, SEED + round);
      await timedCall(times[key], () => lib.resync(join(DIR, image), join(DIR, copy), {}));
    }
  }
  const m = medians(times);
  results.library = {
    note: "resync() called in the bench's own process after one warm-up call of each kind; wall seconds of the call",
    medianSeconds: m,
    allSeconds: times,
    ratios: { targetDigestOverResync: m.targetDigest / m.resync, allocated5OverAllocated100: m.allocated5 / m.allocated100 },
  };
  rmSync(digest, { force: true });
}

function benchSparse(results) {
  const make = (path) => {
    const fd = openSync(path, "w");
    ftruncateSync(fd, SPARSE_SIZE);
    const chunk = Buffer.alloc(MIB);
    for (let offset = 0; offset < SPARSE_SIZE; offset += 256 * MIB) {
      randomFillSync(chunk);
      writeSync(fd, chunk, 0, chunk.length, offset);
    }
    closeSync(fd);
  };
  const source = join(DIR, "sparse-source.img");
  const target = join(DIR, "sparse-target.img");
  make(source);
  make(target);
  const run = vhdsync(["resync", source, target, "--json"]);
  results.sparse8g = { sizeBytes: SPARSE_SIZE, seconds: run.seconds, report: lastJson(run.stdout), peakRssKib: peakRssKib(process.execPath, [CLI, "verify", source, target]) };
  rmSync(source);
  rmSync(target);
}

/** Node start-up with and without NODE_EXTRA_CA_CERTS (median of 5 `node -e 0`). */
function environment() {
  const startup = (env) => median(Array.from({ length: 5 }, () => timed(process.execPath, ["-e", "0"], { env, replaceEnv: true }).seconds));
  const set = Boolean(process.env.NODE_EXTRA_CA_CERTS);
  return {
    nodeExtraCaCertsSet: set,
    nodeExtraCaCertsRemovedForRuns: set,
    nodeStartupSeconds: startup(NODE_ENV),
    nodeStartupSecondsWithExtraCaCerts: set ? startup(process.env) : null,
  };
}

async function main() {
  mkdirSync(DIR, { recursive: true });
  const results = { date: new Date().toISOString(), tiny: TINY, machine: machine(), environment: environment(), tools: { xxhsum: onPath("xxhsum"), rsync: onPath("rsync"), bdsync: onPath("bdsync"), "blocksync-fast": onPath("blocksync-fast"), openssl: HAVE_OPENSSL } };
  const before = cpuTimes();
  benchPair(results);
  await benchVhd(results);
  await benchVhdTarget(results);
  await benchVhdSource(results);
  // What the 5%/100% ratio would be if the 5% run did nothing but start Node (`node -e 0`):
  // the floor any Node CLI has on this machine at this image size.
  results.vhdDynamic.nodeStartupFloorRatio = results.environment.nodeStartupSeconds / results.vhdDynamic.medianSeconds.allocated100;
  await benchLibrary(results);
  benchSparse(results);
  // A shared VM: the share of CPU time the hypervisor gave to others while we ran.
  results.machine.stealShareDuringRun = stealShare(before, cpuTimes());
  if (!TINY) {
    mkdirSync(join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(join(ROOT, "bench/results/resync.json"), JSON.stringify(results, null, 2) + "\n");
  }
  console.log(JSON.stringify(results, null, 2));
  if (!process.env.VHDSYNC_BENCH_KEEP) rmSync(DIR, { recursive: true, force: true });
}

await main();
