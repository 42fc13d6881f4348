// The native adapter (src/io/native.ts) on whichever path this run uses — addon or portable
// fallback (VHDSYNC_NO_NATIVE=1) — plus a child process forced onto the fallback: raw image
// allocation maps and zero writes, cloneFile/copyFileRange saying which path they took,
// nativeStatus, `vhdsync doctor` and the native section of `--version --json`.
import t from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, statfsSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { RawImage } from "../dist/formats/raw.js";
import { cloneFile, copyFileRange, fdatasync, fileExtents, nativeStatus, zeroRange } from "../dist/io/native.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { UNIT_BYTES, layoutExtents, randomLayout, sparseUnsupportedReason, writeSparseFile } from "./helpers/native-sparse.js";

const seed = testSeed();
const status = nativeStatus();
const forcedOff = process.env.VHDSYNC_NO_NATIVE === "1";

t.test("nativeStatus reports the path in use and why", async (t) => {
  if (forcedOff) {
    t.equal(status.loaded, false);
    t.match(status.reason, /VHDSYNC_NO_NATIVE=1/);
  } else if (status.loaded) {
    t.ok(status.path && existsSync(status.path), `loaded from ${status.path}`);
    t.match(status.version, /^\d+\.\d+\.\d+$/);
  } else {
    t.match(status.reason, /\S/, `not loaded: ${status.reason}`);
  }
  t.same(
    status.features.map((feature) => feature.name),
    ["extents", "punchHole", "zeroRange", "reflink", "copyRange", "blockDeviceInfo", "fdatasync", "fadvise", "mapFile", "hashBlocks", "hashStream", "compareScan", "hashScan", "logAppender"],
  );
  const switches: Record<string, string[]> = {
    mapFile: ["VHDSYNC_NO_MMAP"], // and off unless VHDSYNC_SCAN_MMAP=1
    hashBlocks: ["VHDSYNC_NO_NATIVE_HASH"],
    hashStream: ["VHDSYNC_NO_NATIVE_HASH"],
    logAppender: ["VHDSYNC_NO_NATIVE_LOG"],
    compareScan: ["VHDSYNC_NO_NATIVE_SCAN"],
    hashScan: ["VHDSYNC_NO_NATIVE_HASH", "VHDSYNC_NO_NATIVE_SCAN"],
  };
  const off = (name: string) => (switches[name] ?? []).some((variable) => process.env[variable] === "1") || (name === "mapFile" && process.env.VHDSYNC_SCAN_MMAP !== "1");
  t.ok(status.features.every((feature) => feature.active === (status.loaded && !off(feature.name))));
});

t.test("RawImage.allocationMap returns the file's extents (native) or the whole range (fallback)", async (t) => {
  const dir = tempDir(t);
  const noHoles = sparseUnsupportedReason(dir);
  const layout = randomLayout(new Prng(seed), 64);
  const path = join(dir, "sparse.img");
  writeSparseFile(path, layout, new Prng(seed));
  const image = await RawImage.open(path, true);
  t.teardown(() => image.close());
  const size = layout.length * UNIT_BYTES;
  const map = await image.allocationMap();
  const info = await image.info();
  if (!status.loaded || noHoles) {
    t.same(map, [{ offset: 0, length: size }], `fallback: everything allocated (${noHoles ?? status.reason})`);
    return;
  }
  const expected = layoutExtents(layout);
  t.same(map, expected, `seed ${seed}: exact extents`);
  t.equal(info.allocatedBytes, expected.reduce((sum, extent) => sum + extent.length, 0), "info().allocatedBytes");
  t.same(await image.allocationMap(UNIT_BYTES / 2, 3 * UNIT_BYTES), await fileExtents(image.fd, UNIT_BYTES / 2, 3 * UNIT_BYTES), "clipped window");
});

t.test("RawImage.writeZeros punches holes (native) or writes zeros (fallback); reads back zeros", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "zeros.img");
  writeSparseFile(path, Array.from({ length: 8 }, () => true), new Prng(seed));
  const before = statSync(path).blocks;
  const image = await RawImage.open(path, false);
  await image.writeZeros(2 * UNIT_BYTES, 4 * UNIT_BYTES);
  const middle = new Uint8Array(4 * UNIT_BYTES);
  await image.read(middle, 2 * UNIT_BYTES);
  await image.close();
  t.ok(middle.every((byte) => byte === 0), "zeros read back");
  const after = statSync(path).blocks;
  if (status.loaded && !sparseUnsupportedReason(dir)) t.ok(after < before, `hole punched: blocks ${before} → ${after}`);
  else t.ok(after >= before - 8, `zeros written: blocks ${before} → ${after}`);
});

t.test("a resync punches zero runs of 64 KiB or more and writes shorter ones as zeros (MIN_HOLE_BYTES)", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed);
  const size = 4 * 1024 * 1024;
  const content = prng.bytes(size);
  for (let at = 0; at < size; at += 4096) content[at] |= 1; // no 4 KiB block of zeros by chance
  const target = join(dir, "t.img");
  writeFileSync(target, content);
  const source = Buffer.from(content);
  source.fill(0, 1024 * 1024, 2048 * 1024); // one long run: a hole
  const shortRuns = [3 * 1024 * 1024, 3 * 1024 * 1024 + 65536, 3 * 1024 * 1024 + 200 * 1024];
  for (const at of shortRuns) source.fill(0, at, at + 61440); // 60 KiB runs: zeros written
  writeFileSync(join(dir, "s.img"), source);
  const before = statSync(target).blocks;
  const cli = runCli(["resync", join(dir, "s.img"), target, "--json"]);
  t.equal(cli.status, 0, cli.stderr);
  t.ok(readFileSync(target).equals(source), `equal after resync (seed ${seed})`);
  const freed = (before - statSync(target).blocks) * 512;
  if (status.loaded && !sparseUnsupportedReason(dir)) t.equal(freed, 1024 * 1024, "the 1 MiB run became a hole, the 60 KiB runs stayed allocated");
  else t.equal(freed, 0, "no holes without the addon: zeros written");
  // Short zero ranges over holes (writeZeros through the library, as a log apply does) take no space.
  const empty = join(dir, "empty.img");
  writeFileSync(empty, "");
  truncateSync(empty, 64 * 1024 * 1024);
  const image = await RawImage.open(empty, false);
  for (let at = 0; at < 64 * 1024 * 1024; at += 65536) await image.writeZeros(at, 32768);
  await image.write(new Uint8Array(8192).fill(1), 1024 * 1024);
  await image.writeZeros(1024 * 1024 - 4096, 16384); // half hole, half data
  const back = new Uint8Array(8192);
  await image.read(back, 1024 * 1024);
  await image.close();
  t.ok(back.every((byte) => byte === 0), "the data in a short range reads as zeros");
  if (status.loaded && !sparseUnsupportedReason(dir)) t.ok(statSync(empty).blocks * 512 <= 8192, `short zero ranges over holes allocate nothing (${statSync(empty).blocks * 512} bytes on disk)`);
});

t.test("cloneFile copies content and holes and says which path it used", async (t) => {
  const dir = tempDir(t);
  const src = join(dir, "src.img");
  writeSparseFile(src, [true, false, false, true, false, true, true, false], new Prng(seed));
  const result = await cloneFile(src, join(dir, "dst.img"));
  t.ok(readFileSync(join(dir, "dst.img")).equals(readFileSync(src)), `identical copy via ${result.method}`);
  t.equal(result.sizeBytes, 8 * UNIT_BYTES);
  if (!status.loaded) {
    t.equal(result.method, "copy");
    t.match(result.reason, /native addon not loaded/);
  } else if (result.method !== "reflink") {
    t.match(result.reason, /reflink unsupported here \((EOPNOTSUPP|ENOTTY|EXDEV|EINVAL)/, `reason: ${result.reason}`);
  }
  if (!sparseUnsupportedReason(dir)) {
    t.ok(statSync(join(dir, "dst.img")).blocks <= statSync(src).blocks, "holes stayed holes");
  }
  const dataBytes = status.loaded && !sparseUnsupportedReason(dir) ? 4 * UNIT_BYTES : 8 * UNIT_BYTES;
  if (result.method !== "reflink") t.equal(result.bytesCopied, dataBytes, "bytes read (only data with the addon)");
  await t.rejects(cloneFile(src, join(dir, "dst.img")), { code: "VHDSYNC_INVALID_ARGUMENT" }, "existing target refused");
  await t.rejects(cloneFile(src, src, { overwrite: true }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "cloning onto itself refused");
  t.equal(statSync(src).size, 8 * UNIT_BYTES, "source untouched");
  const again = await cloneFile(src, join(dir, "dst.img"), { overwrite: true });
  t.equal(again.method, result.method, "overwrite allowed");
  await t.rejects(cloneFile(join(dir, "missing.img"), join(dir, "other.img")), { code: "VHDSYNC_NOT_FOUND" });
  t.notOk(existsSync(join(dir, "other.img")), "no target created for a missing source");
});

t.test("cloneFile lists the source's extents a window at a time; extents across a window's edge are copied whole", async (t) => {
  const dir = tempDir(t);
  const src = join(dir, "src.img");
  const prng = new Prng(seed);
  const layout = randomLayout(prng, 40);
  writeSparseFile(src, layout, prng);
  const size = layout.length * UNIT_BYTES;
  const dataBytes = status.loaded && !sparseUnsupportedReason(dir) ? layoutExtents(layout).reduce((sum, extent) => sum + extent.length, 0) : size;
  // 4 KiB and 12 KiB windows cut every 64 KiB unit; 5 units, and more than the file, do not.
  for (const mapWindowBytes of [4096, 12 * 1024, 5 * UNIT_BYTES, 2 * size]) {
    const dst = join(dir, `dst-${mapWindowBytes}.img`);
    const result = await cloneFile(src, dst, { mapWindowBytes });
    t.ok(readFileSync(dst).equals(readFileSync(src)), `${mapWindowBytes}-byte windows: identical copy via ${result.method}`);
    if (result.method !== "reflink") t.equal(result.bytesCopied, dataBytes, `${mapWindowBytes}-byte windows: only data read`);
    // Its data lies where the source's does (block counts would differ by ext4's extent index block).
    if (status.loaded && !sparseUnsupportedReason(dir)) {
      const handle = openSync(dst, "r");
      try {
        t.same(await fileExtents(handle, 0, size), layoutExtents(layout), `${mapWindowBytes}-byte windows: holes stayed holes`);
      } finally {
        closeSync(handle);
      }
    }
  }
  for (const mapWindowBytes of [0, 1000, 4097, -4096, 1.5, Number.NaN]) {
    const dst = join(dir, "refused.img");
    await t.rejects(cloneFile(src, dst, { mapWindowBytes }), { code: "VHDSYNC_INVALID_ARGUMENT" }, `window ${mapWindowBytes} refused`);
    t.notOk(existsSync(dst), `window ${mapWindowBytes}: no target made`);
  }
});

t.test("copyFileRange copies a range and reports the method", async (t) => {
  const dir = tempDir(t);
  const src = join(dir, "src.bin");
  const bytes = new Prng(seed).bytes(300_000);
  writeFileSync(src, bytes);
  const srcFd = openSync(src, "r");
  const dstFd = openSync(join(dir, "dst.bin"), "w+");
  t.teardown(() => (closeSync(srcFd), closeSync(dstFd)));
  const result = await copyFileRange(srcFd, 1000, dstFd, 7, 200_000);
  t.equal(result.bytesCopied, 200_000);
  t.equal(result.method, status.loaded ? "copy-file-range" : "copy", result.reason ?? "kernel copy");
  const copied = Buffer.alloc(200_000);
  readSync(dstFd, copied, 0, copied.length, 7);
  t.ok(copied.equals(Buffer.from(bytes.subarray(1000, 201_000))), `seed ${seed}: bytes match`);
  const tail = await copyFileRange(srcFd, 250_000, dstFd, 0, 100_000);
  t.equal(tail.bytesCopied, 50_000, "stops at the end of the source");
  await fdatasync(dstFd);
  t.equal(typeof (await zeroRange(dstFd, 0, 4096)), "boolean");
});

t.test("a child process with VHDSYNC_NO_NATIVE=1 uses every fallback", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "sparse.img");
  writeSparseFile(path, [false, true, false], new Prng(seed));
  const nativeModule = fileURLToPath(new URL("../dist/io/native.js", import.meta.url));
  const script = `
    import { openSync } from "node:fs";
    const native = await import(${JSON.stringify(nativeModule)});
    const fd = openSync(${JSON.stringify(path)}, "r+");
    console.log(JSON.stringify({
      status: native.nativeStatus(),
      extents: await native.fileExtents(fd, 0, ${3 * UNIT_BYTES}),
      punched: await native.punchHole(fd, 0, 4096),
      reflinked: await native.reflink(fd, fd),
    }));
  `;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { ...process.env, VHDSYNC_NO_NATIVE: "1" },
  });
  t.equal(child.status, 0, child.stderr);
  const report = JSON.parse(child.stdout);
  t.equal(report.status.loaded, false);
  t.match(report.status.reason, /VHDSYNC_NO_NATIVE=1/);
  t.same([report.extents, report.punched, report.reflinked], [null, false, false]);
});

t.test("vhdsync doctor and --version --json describe the native features", async (t) => {
  const version = runCli(["--version", "--json"]);
  t.equal(version.status, 0, version.stderr);
  t.equal(JSON.parse(version.stdout).native.loaded, status.loaded);
  const doctor = runCli(["doctor", tempDir(t), "--json"]);
  t.equal(doctor.status, 0, doctor.stderr);
  const report = JSON.parse(doctor.stdout);
  t.equal(report.native.loaded, status.loaded);
  t.same(report.native.features.map((f: { name: string }) => f.name), status.features.map((f) => f.name));
  // The bin sizes libuv's pool for two jobs per default scanning thread unless told otherwise.
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  t.equal(JSON.parse(runCli(["doctor", "--json"], { env }).stdout).native.threadPool, Math.max(4, 2 * Math.min(8, availableParallelism())));
  t.equal(JSON.parse(runCli(["doctor", "--json"], { env: { ...env, UV_THREADPOOL_SIZE: "7" } }).stdout).native.threadPool, 7, "a size the user set is kept");
  if (!status.loaded) {
    t.equal(report.native.hashKernels, undefined, "no hash kernels without the addon");
    return;
  }
  // The hash kernels: the CPU's best (the addon's own choice), or portable when asked for.
  const kernels = JSON.parse(runCli(["doctor", "--json"], { env }).stdout).native.hashKernels;
  t.ok(["avx512", "avx2", "portable"].includes(kernels.xxh3) && ["sha-ni", "portable"].includes(kernels.sha256), `hash kernels reported: ${JSON.stringify(kernels)}`);
  const hasSha = readFileSync("/proc/cpuinfo", "utf8").includes(" sha_ni");
  t.equal(kernels.sha256, hasSha ? "sha-ni" : "portable", "SHA-256 runs on the SHA extensions when the CPU has them");
  t.same(JSON.parse(runCli(["doctor", "--json"], { env: { ...env, VHDSYNC_NATIVE_HASH_KERNEL: "portable" } }).stdout).native.hashKernels, { xxh3: "portable", sha256: "portable" }, "VHDSYNC_NATIVE_HASH_KERNEL=portable narrows both");
  t.match(runCli(["doctor"], { env }).stdout, /^hash kernels: XXH3 \S+, SHA-256 \S+$/m, "doctor prints them");
  t.match(runCli(["doctor"], { env }).stdout, /^libuv pool: \d+ threads/m);
  t.same(report.probe.checks.map((c: { name: string }) => c.name), ["holes", "punchHole", "zeroRange", "reflink", "copyRange"]);
  if (status.loaded) {
    // The hole probe names how extents were found: FIEMAP on ext4 and XFS, SEEK_DATA elsewhere or when told.
    const holes = (dir: string, extra: Record<string, string> = {}) => JSON.parse(runCli(["doctor", dir, "--json"], { env: { ...env, ...extra } }).stdout).probe.checks[0].detail;
    const probed = tempDir(t);
    const fiemap = [0xef53, 0x58465342].includes(Number(statfsSync(probed).type));
    t.match(holes(probed), fiemap ? /\(FIEMAP\)$/ : /\(SEEK_DATA\/SEEK_HOLE\)$/, "the probe names the method");
    t.match(holes(probed, { VHDSYNC_EXTENTS: "lseek" }), /\(SEEK_DATA\/SEEK_HOLE\)$/, "VHDSYNC_EXTENTS=lseek turns FIEMAP off");
  }
  if (!status.loaded) t.ok(report.probe.checks.every((c: { supported: boolean }) => !c.supported));
  const missing = runCli(["doctor", join(tempDir(t), "no-such-dir")]);
  t.equal(missing.status, 3, "missing directory is an error");
  t.match(missing.stderr, /^vhdsync: VHDSYNC_NOT_FOUND: /m);
  t.match(missing.stdout, status.loaded ? /^native addon: loaded/ : /^native addon: not loaded/, "status printed before probing");
});
