// Prewarmed scan workers (src/sync/scan-workers.ts): the pool adopts them and the results are
// right; unused ones never keep a process alive; small images and unreadable paths prewarm
// nothing.
import t, { type Test } from "tap";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { copyFileSync, existsSync, openSync, closeSync, ftruncateSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { INLINE_BELOW_BYTES, hasPrewarmedWorkers, prewarmScanWorkers, takePrewarmedWorker, workerCountFor } from "../dist/sync/scan-workers.js";
import { nativeAddon } from "../dist/io/native-addon.js";
import { setEnvFor } from "./helpers/env.js";
import { workersOption } from "../dist/cli/prewarm.js";
import { resync } from "../dist/sync/resync.js";
import { CALLER_IN_FLIGHT_PER_SCANNER, IN_FLIGHT_PER_SCANNER, SegmentPool } from "../dist/sync/segment-pool.js";
import { fileSha } from "./helpers/resync-images.js";
import { tempDir } from "./helpers/tmp.js";
import { CLI_PATH as CLI } from "./helpers/cli.js";

/** A sparse file of `size` bytes with random data every 8 MiB. */
function sparseImage(path: string, size: number): void {
  const fd = openSync(path, "w");
  ftruncateSync(fd, size);
  for (let offset = 0; offset < size; offset += 8 * 1024 * 1024) writeSync(fd, randomBytes(65536), 0, 65536, offset);
  closeSync(fd);
}

/** Prewarms a worker for `source` (two threads), resyncs with WASM scanners, and checks both threads ran. */
async function prewarmedResync(t: Test, source: string, target: string) {
  setEnvFor(t, "VHDSYNC_WORKERS", "2");
  // Raw pairs are compared by the native scanner when the addon is there, without workers.
  setEnvFor(t, "VHDSYNC_NO_NATIVE_SCAN", "1");
  prewarmScanWorkers(source);
  const report = await resync(source, target);
  t.equal(report.workers, 2);
  return report;
}

/** A sparse raw source big enough for a worker, and a copy of it with random bytes written at `changes` (offset, length). */
function rawPair(t: Test, changes: (size: number) => Array<[number, number]>): { source: string; target: string } {
  const dir = tempDir(t);
  const source = join(dir, "s.img");
  const target = join(dir, "t.img");
  const size = INLINE_BELOW_BYTES + 16 * 1024 * 1024;
  sparseImage(source, size);
  copyFileSync(source, target);
  const fd = openSync(target, "r+");
  for (const [offset, length] of changes(size)) writeSync(fd, randomBytes(length), 0, length, offset);
  closeSync(fd);
  return { source, target };
}

t.test("prewarmed workers are adopted by the next pool and resync is exact", async (t) => {
  const { source, target } = rawPair(t, (size) => [
    [size - 4096 * 3, 4096],
    [12345, 100],
  ]);
  const report = await prewarmedResync(t, source, target);
  t.equal(report.blocksChanged, 2);
  t.equal(fileSha(target), fileSha(source), "target identical");
  t.equal(takePrewarmedWorker(), undefined, "the prewarmed worker was taken by the pool");
});

t.test("a run compared natively stops prewarmed workers instead of adopting them", { skip: nativeAddon() ? false : "no native addon" }, async (t) => {
  const { source, target } = rawPair(t, () => [[8192, 4096]]);
  setEnvFor(t, "VHDSYNC_WORKERS", "2");
  prewarmScanWorkers(source);
  t.ok(hasPrewarmedWorkers(), "a worker was prewarmed");
  const report = await resync(source, target);
  t.equal(report.blocksChanged, 1);
  t.equal(fileSha(target), fileSha(source), "target identical");
  t.notOk(hasPrewarmedWorkers(), "the prewarmed worker is gone (stopped, not left to hold the process)");
});

t.test("a worker prewarmed for a dynamic VHD source (format modules preloaded) scans it exactly", async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, "s.img");
  const source = join(dir, "s.vhd");
  const target = join(dir, "t.img");
  const size = INLINE_BELOW_BYTES + 16 * 1024 * 1024;
  sparseImage(raw, size);
  const converted = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, source], { encoding: "utf8" });
  t.equal(converted.status, 0, converted.stderr);
  sparseImage(target, size);
  const report = await prewarmedResync(t, source, target);
  t.equal(takePrewarmedWorker(), undefined, "the prewarmed worker was taken by the pool");
  t.equal(fileSha(target), fileSha(raw), "target equals the VHD's content");
});

t.test("nothing is prewarmed for small images, missing paths or one thread", async (t) => {
  const dir = tempDir(t);
  const small = join(dir, "small.img");
  sparseImage(small, 1024 * 1024);
  prewarmScanWorkers(small);
  t.equal(takePrewarmedWorker(), undefined, "small image");
  prewarmScanWorkers(join(dir, "missing.img"));
  t.equal(takePrewarmedWorker(), undefined, "missing path");
  prewarmScanWorkers(undefined);
  t.equal(takePrewarmedWorker(), undefined, "no path");
  const big = join(dir, "big.img");
  sparseImage(big, INLINE_BELOW_BYTES + 1024 * 1024);
  prewarmScanWorkers(big, 1);
  t.equal(takePrewarmedWorker(), undefined, "--workers 1: this thread only");
  // The CLI's prewarm reads --workers before yargs has parsed anything.
  t.equal(workersOption(["a.img", "b.img", "--workers", "1"]), 1);
  t.equal(workersOption(["--workers=3", "a.img", "b.img"]), 3);
  t.equal(workersOption(["a.img", "b.img"]), undefined);
  t.equal(workersOption(["a.img", "--workers", "x"]), undefined);
  t.equal(workerCountFor(INLINE_BELOW_BYTES - 1), 0, "inline below the threshold");
  t.equal(workerCountFor(1, 3), 3, "an explicit count wins");
});

t.test("the bin's prewarm bundle acts on scan commands only, and the library adopts its worker", async (t) => {
  const dir = tempDir(t);
  const big = join(dir, "big.img");
  sparseImage(big, INLINE_BELOW_BYTES + 1024 * 1024);
  // dist/bin/prewarm.cjs is a separate bundle (its own copy of scan-workers): the prewarmed
  // workers live in a registry on globalThis that both copies use.
  const { prewarmFor } = createRequire(import.meta.url)("../dist/bin/prewarm.cjs") as { prewarmFor: (args: string[]) => void };
  for (const args of [["info", big], ["resync", "--help", big, big], ["--json"], ["resync", join(dir, "missing.img")], ["checksum", big, "-o", "x", "--workers", "1"]]) {
    prewarmFor(args);
    const stray = takePrewarmedWorker();
    t.equal(stray, undefined, `nothing prewarmed for ${args.join(" ")}`);
    await stray?.terminate();
  }
  // Two raw images: the native scanner compares them, without a worker (when the addon is there).
  const other = join(dir, "other.img");
  sparseImage(other, INLINE_BELOW_BYTES + 1024 * 1024);
  // A dynamic VHD or a VHDX too (a dynamic VHD target of a resync is compared natively, its
  // changes written through the format; so is a target digest run into one since the
  // seventeenth session).
  const dynamic = join(dir, "dynamic.vhd");
  const converted = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", big, dynamic], { encoding: "utf8" });
  t.equal(converted.status, 0, converted.stderr);
  const vhdx = join(dir, "image.vhdx");
  const madeVhdx = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", big, vhdx], { encoding: "utf8" });
  t.equal(madeVhdx.status, 0, madeVhdx.stderr);
  const cases: Array<[string[], boolean]> = [
    [["verify", vhdx, big], false],
    [["resync", big, other], false],
    [["verify", big, other, "--json"], false],
    [["resync", dynamic, other], false],
    [["diff", other, dynamic], false],
    [["resync", other, dynamic], false], // compared natively, written through the format (thirteenth session)
    [["resync", other, dynamic, "--dry-run"], false],
    // The hash modes: hashed natively, into raw targets or through a VHD's format when writing.
    [["resync", big, other, "--target-digest", other], false],
    [["resync", dynamic, other, "--target-digest", other], false],
    [["resync", other, dynamic, "--target-digest", other], false],
    [["resync", other, vhdx, "--target-digest", other], true], // resync refuses to write a VHDX
    [["resync", dynamic, big, "--target-digest", other, "--dry-run"], false],
    [["checksum", big, "-o", join(dir, "d"), "--workers=2"], false],
    [["checksum", dynamic, "-o", join(dir, "d")], false],
    [["checksum", vhdx, "-o", join(dir, "d"), "--hash", "xxh3-64"], false],
    // copy: into a new target natively; over an existing one with a worker.
    [["copy", dynamic, join(dir, "new.raw")], false],
    [["copy", "--block-size", "65536", big, join(dir, "new.raw")], false],
    [["copy", big, other], true],
  ];
  for (const [args, needsWorker] of cases) {
    prewarmFor(args);
    const worker = takePrewarmedWorker();
    // Without the addon every scan needs a worker, if the source file is big enough for one.
    const sourceArg = args.find((arg, index) => index > 0 && existsSync(arg))!;
    const wanted = needsWorker || (!nativeAddon() && statSync(sourceArg).size >= INLINE_BELOW_BYTES);
    t.equal(worker !== undefined, wanted, `${args.join(" ")}: ${wanted ? "a worker" : "no worker"} prewarmed`);
    await worker?.terminate();
  }
  // Every digest is hashed natively (no worker); an unknown one is refused by the command.
  for (const [hash, needsWorker] of [[undefined, false], ["xxh3-64", false], ["sha256", false], ["xxh64", false], ["md5", true]] as const) {
    prewarmFor(["checksum", big, "-o", join(dir, "d"), ...(hash ? [`--hash=${hash}`] : [])]);
    const prewarmed = takePrewarmedWorker();
    const wanted = needsWorker || !nativeAddon();
    t.equal(prewarmed !== undefined, wanted, `checksum --hash ${hash ?? "(default)"}: ${wanted ? "a worker" : "no worker"}`);
    await prewarmed?.terminate();
  }
  prewarmFor(["--json", "copy", big, other, "--workers=2"]);
  const worker = takePrewarmedWorker();
  t.ok(worker, "copy of a big image over an existing target: one worker prewarmed, taken by the library's copy");
  t.equal(takePrewarmedWorker(), undefined, "only one");
  await worker?.terminate();
});

t.test("an unused prewarmed worker does not keep the process alive", async (t) => {
  const dir = tempDir(t);
  const big = join(dir, "big.img");
  sparseImage(big, INLINE_BELOW_BYTES + 1024 * 1024);
  const script = `
    import { prewarmScanWorkers } from ${JSON.stringify(new URL("../dist/sync/scan-workers.js", import.meta.url).href)};
    prewarmScanWorkers(${JSON.stringify(big)});
    console.log("done");
  `;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000, env: { ...process.env, VHDSYNC_WORKERS: "2" } });
  t.equal(child.status, 0, child.stderr);
  t.equal(child.stdout.trim(), "done");
});

t.test("the pool keeps fewer segments in flight when results carry their data", async (t) => {
  const dir = tempDir(t);
  const source = join(dir, "s.img");
  sparseImage(source, 1024 * 1024);
  for (const apply of ["here", "caller"] as const) {
    const pool = await SegmentPool.start({ mode: "compare", sourcePath: source, targetPath: source, blockSizeBytes: 4096, apply, windowBytes: 512 * 1024 }, 1);
    // Carrying data: two per native thread, one per WASM scanner (their copies wait for two GCs).
    const perScanner = apply === "here" ? IN_FLIGHT_PER_SCANNER : pool.native ? CALLER_IN_FLIGHT_PER_SCANNER : 1;
    t.equal(pool.defaultInFlight, perScanner, `${apply}, ${pool.native ? "native" : "WASM"}`);
    await pool.close();
  }
  t.ok(CALLER_IN_FLIGHT_PER_SCANNER < IN_FLIGHT_PER_SCANNER);
});

t.test("sniffSync (the worker prewarm's detection read) returns what sniff returns", async (t) => {
  const { sniff, sniffSync } = await import("../dist/formats/open-image.js");
  const dir = tempDir(t);
  const raw = join(dir, "r.img");
  sparseImage(raw, 3 * 1024 * 1024 + 77);
  const vhd = join(dir, "r.vhd");
  const converted = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", raw, vhd], { encoding: "utf8" });
  t.equal(converted.status, 0, converted.stderr);
  const tiny = join(dir, "tiny.img");
  const empty = join(dir, "empty.img");
  writeFileSync(tiny, Uint8Array.of(1, 2, 3));
  writeFileSync(empty, new Uint8Array(0));
  for (const path of [raw, vhd, tiny, empty]) {
    const expected = await sniff(path);
    const actual = sniffSync(path);
    t.same([Buffer.from(actual.head), Buffer.from(actual.tail), actual.isBlockDevice], [Buffer.from(expected.head), Buffer.from(expected.tail), expected.isBlockDevice], path);
  }
  t.throws(() => sniffSync(join(dir, "missing.img")), { code: "VHDSYNC_NOT_FOUND" });
});

t.test("caller-apply segments cover whole target blocks, and the data in flight stays bounded", async (t) => {
  const { CALLER_IN_FLIGHT_BYTES, CALLER_SEGMENT_BYTES, callerInFlight, callerSegmentBytes, callerSegmentsWholeBlocks } = await import("../dist/sync/segment-plan.js");
  const MIB = 1024 * 1024;
  t.equal(callerSegmentBytes({}), CALLER_SEGMENT_BYTES, "a target without blocks: the default");
  t.equal(callerSegmentBytes({ blockSizeBytes: 2 * MIB }), CALLER_SEGMENT_BYTES, "2 MiB VHD blocks fit the default segment");
  t.equal(callerSegmentBytes({ blockSizeBytes: 16 * MIB }), 16 * MIB, "a larger VHD block makes the segment");
  t.equal(callerSegmentBytes({ blockSizeBytes: 64 * MIB }), 16 * MIB, "up to 16 MiB");
  t.same([callerSegmentsWholeBlocks({ blockSizeBytes: 16 * MIB }), callerSegmentsWholeBlocks({ blockSizeBytes: 64 * MIB }), callerSegmentsWholeBlocks({})], [true, false, true]);
  t.equal(callerInFlight(4, CALLER_SEGMENT_BYTES), 4);
  t.equal(callerInFlight(4, 16 * MIB), 2);
  t.equal(callerInFlight(4, 256 * MIB), 1, "one segment at least");
  for (const segment of [8, 16, 32].map((n) => n * MIB)) t.ok(callerInFlight(4, segment) * segment <= CALLER_IN_FLIGHT_BYTES);
});

t.test("a resync into a dynamic VHD of 64 MiB blocks, every byte changed, stays under 200 MiB", { skip: !existsSync("/usr/bin/time") ? "no /usr/bin/time" : !nativeAddon() ? "the WASM scanners' figures are in docs/resync.md (160-190 MiB: too close to assert)" : false }, async (t) => {
  const dir = tempDir(t);
  const MIB = 1024 * 1024;
  const source = join(dir, "s.img");
  writeFileSync(source, randomBytes(256 * MIB));
  const target = join(dir, "t.vhd");
  const made = spawnSync(process.execPath, [CLI, "create", "--type", "dynamic", "--size", "256M", "--block-size", "64M", target], { encoding: "utf8" });
  t.equal(made.status, 0, made.stderr);
  const run = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, CLI, "resync", source, target, "--json"], { encoding: "utf8" });
  t.equal(run.status, 0, run.stderr);
  const peakKib = Number(run.stderr.trim().split("\n").pop());
  t.ok(peakKib < 200 * 1024, `peak RSS ${Math.round(peakKib / 1024)} MiB`);
  t.equal(spawnSync(process.execPath, [CLI, "verify", source, target]).status, 0, "equal after the resync");
});
