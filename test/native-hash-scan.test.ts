// The native hash scanner (native/src/hash_scan.rs via NativeHashScanner in
// src/sync/native-scanner.ts) against the WASM scanners (VHDSYNC_NO_NATIVE_HASH=1): checksum
// writes byte-identical digest files, and resync --target-digest gives the same reports, the
// same targets and the same updated digests, over random sparse raw images, dynamic VHDs and
// qemu-made VHDX files, block sizes from 4 KiB to 8 MiB and all four digests (XXH3-128,
// XXH3-64, XXH64, SHA-256); plain-JS oracles for the counts, and `xxhsum` and `sha256sum` for
// a block's digest; VHD targets (the changes written through the format, checked with
// qemu-img compare). What stays on WASM: blocks larger than a dynamic image's, XXH3 with a last
// block of 240 bytes or less. And the addon call itself: argument checks, a range past the
// end, a failed write.
import t, { type Test } from "tap";
import { closeSync, copyFileSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { convertImage } from "../dist/sync/convert.js";
import { createVhd } from "../dist/formats/vhd/index.js";
import { checksum } from "../dist/sync/checksum.js";
import { diff } from "../dist/sync/diff.js";
import { resync } from "../dist/sync/resync.js";
import { DigestReader } from "../dist/sync/digest-reader.js";
import { nativeAddon } from "../dist/io/native-addon.js";
import { closeJobGate, hashSegment, openJobGate } from "../dist/io/native-compare.js";
import { setEnvFor, withEnv } from "./helpers/env.js";
import { PATTERNS, applyPattern, differingBlocks, fileSha, pairSetup, openRandomPair, resyncOutcome, writeRandomImage, zeroBlocks } from "./helpers/resync-images.js";

const addon = nativeAddon();
const skip = addon ? false : "no native addon (VHDSYNC_NO_NATIVE=1 or not built)";

/** Runs `body` on the WASM scanners when `wasm` (VHDSYNC_NO_NATIVE_HASH=1). */
function scanWith<T>(wasm: boolean, body: () => Promise<T>): Promise<T> {
  return withEnv("VHDSYNC_NO_NATIVE_HASH", wasm ? "1" : undefined, body);
}

/** The block states and digests of a digest file, frame by frame (its header and identity left out). */
async function framesOf(path: string): Promise<string[]> {
  const reader = await DigestReader.open(path);
  const frames: string[] = [];
  try {
    for await (const frame of reader.frames()) frames.push(`${frame.firstBlock}:${Buffer.from(frame.flags).toString("hex")}:${Buffer.from(frame.digests).toString("hex")}`);
  } finally {
    await reader.close();
  }
  return frames;
}

/** Checksums `image` with both scanners: the digest files must be byte-identical. Returns the native report. */
async function checksumBoth(t: Test, image: string, dir: string, options: Parameters<typeof checksum>[2], context: string) {
  const [nativePath, wasmPath] = [join(dir, "native.digest"), join(dir, "wasm.digest")];
  const native = await checksum(image, nativePath, options);
  const wasm = await scanWith(true, () => checksum(image, wasmPath, options));
  t.equal(wasm.scanner, "wasm", `the WASM scanners ran (${context})`);
  const { seconds: _a, throughputBytesPerSecond: _b, digestPath: _c, scanner: _d, ...nativeCounts } = native;
  const { seconds: _e, throughputBytesPerSecond: _f, digestPath: _g, scanner: _h, ...wasmCounts } = wasm;
  t.same(nativeCounts, wasmCounts, `reports agree (${context})`);
  t.ok(readFileSync(nativePath).equals(readFileSync(wasmPath)), `the digest files are byte-identical (${context})`);
  return native;
}

const BLOCK_SIZES = [4096, 65536, 1024 * 1024, 8 * 1024 * 1024];
/** The digests a digest file can use: the addon computes all four. */
const ALGORITHMS = ["xxh3-128", "xxh3-64", "xxh64", "sha256"] as const;

t.test("checksum of raw images: native and WASM digest files are byte-identical", { skip }, async (t) => {
  for (let round = 0; round < 8; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const { seed, prng, dir, source } = pairSetup(t);
      const blockSizeBytes = BLOCK_SIZES[round % BLOCK_SIZES.length];
      // Last blocks of every kind: whole, longer than 240 bytes, and (WASM then) 240 or less.
      const tail = [0, 241 + prng.int(blockSizeBytes - 241), 1 + prng.int(240)][round % 3];
      const size = (3 + prng.int(16)) * 1024 * 1024 + tail;
      writeRandomImage(source, size, prng, [4096, 65536, 512 * 1024][prng.int(3)]);
      const algo = ALGORITHMS[prng.int(ALGORITHMS.length)];
      const workers = prng.int(2) === 0 ? 2 : 1;
      const mapped = round % 4 >= 2; // the addon maps the file's pages instead of reading them
      if (mapped) setEnvFor(t, "VHDSYNC_SCAN_MMAP", "1");
      const context = `seed ${seed}, ${blockSizeBytes}-byte blocks, ${size} bytes, ${algo}, ${workers} threads, ${mapped ? "mmap" : "pread"}`;
      const report = await checksumBoth(t, source, dir, { blockSizeBytes, algo, workers }, context);
      // XXH3 has only its long-input path natively; the other digests take any last block.
      const shortTail = algo.startsWith("xxh3-") && size % blockSizeBytes > 0 && size % blockSizeBytes <= 240;
      t.equal(report.scanner, shortTail ? "wasm" : "native", `a last block of ${size % blockSizeBytes} bytes goes to ${shortTail ? "WASM" : "the addon"} (${context})`);
      t.equal(report.blocksZero, zeroBlocks(source, blockSizeBytes), `blocksZero = the oracle's (${context})`);
    });
  }
});

t.test("a data block's digest is the reference tools' (xxhsum, sha256sum), a short last one too", { skip }, async (t) => {
  const { prng, dir, source } = pairSetup(t);
  // Two blocks: a whole one and a last one of 100 bytes (XXH3 leaves such a one to WASM).
  const blocks = [prng.bytes(65536), prng.bytes(100)];
  writeFileSync(source, Buffer.concat(blocks));
  const oracles = { "xxh3-128": ["xxhsum", "-H2"], "xxh3-64": ["xxhsum", "-H3"], xxh64: ["xxhsum", "-H1"], sha256: ["sha256sum"] } as const;
  for (const algo of ALGORITHMS) {
    const digest = join(dir, `${algo}.digest`);
    const report = await checksum(source, digest, { blockSizeBytes: 65536, algo });
    t.equal(report.scanner, algo.startsWith("xxh3-") ? "wasm" : "native", `${algo}: the scanner a 100-byte last block goes to`);
    const whole = join(dir, `${algo}-whole.digest`);
    writeFileSync(join(dir, "block0"), blocks[0]);
    t.equal((await checksum(join(dir, "block0"), whole, { blockSizeBytes: 65536, algo })).scanner, "native", `${algo}: one whole block is hashed natively`);
    const packed = (await framesOf(digest))[0].split(":")[2] + "|" + (await framesOf(whole))[0].split(":")[2];
    const [command, ...args] = oracles[algo];
    const expected = blocks.map((bytes, index) => {
      const file = join(dir, `block${index}`);
      writeFileSync(file, bytes);
      const run = spawnSync(command, [...args, file], { encoding: "utf8" });
      t.equal(run.status, 0, run.stderr);
      // xxhsum 0.8.1 prints -H3 as `XXH3 (file) = hex`, the others as `hex  file`.
      return (/= ([0-9a-f]+)\s*$/.exec(run.stdout) ?? /^([0-9a-f]+)\s/.exec(run.stdout))![1];
    });
    t.equal(packed, `${expected.join("")}|${expected[0]}`, `${algo}: the packed digests are the canonical ones of each block`);
  }
});

t.test("checksum of dynamic VHDs and VHDX files: native and WASM agree", { skip }, async (t) => {
  for (let round = 0; round < 4; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const { seed, prng, dir, source: raw } = pairSetup(t);
      const vhdBlock = [512 * 1024, 2 * 1024 * 1024][round % 2];
      const size = (3 + prng.int(10)) * 1024 * 1024 + prng.int(2048) * 512;
      writeRandomImage(raw, size, prng, [65536, 512 * 1024, 1024 * 1024][prng.int(3)]);
      const vhd = join(dir, "source.vhd");
      await convertImage(raw, vhd, { to: "vhd-dynamic", blockSizeBytes: vhdBlock });
      // Blocks up to the VHD's own go native; a larger block spans two runs of the file (WASM).
      for (const blockSizeBytes of [4096, vhdBlock, 4 * 1024 * 1024]) {
        const context = `seed ${seed}, VHD blocks ${vhdBlock}, ${blockSizeBytes}-byte blocks, ${size} bytes`;
        const report = await checksumBoth(t, vhd, dir, { blockSizeBytes, workers: 2 }, context);
        t.equal(report.scanner, blockSizeBytes <= vhdBlock ? "native" : "wasm", `scanner (${context})`);
        t.equal(report.blocksZero, zeroBlocks(raw, blockSizeBytes), `blocksZero = the oracle's (${context})`);
      }
      const vhdx = join(dir, "source.vhdx");
      const made = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=1M", raw, vhdx], { encoding: "utf8" });
      t.equal(made.status, 0, made.stderr);
      const report = await checksumBoth(t, vhdx, dir, { blockSizeBytes: 65536, workers: 2 }, `seed ${seed}, VHDX`);
      t.equal(report.scanner, "native", "a qemu-made VHDX is hashed natively");
    });
  }
});

t.test("resync --target-digest: native and WASM agree with each other and the oracles", { skip }, async (t) => {
  for (let round = 0; round < 8; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const { seed, prng, dir, source, target } = pairSetup(t);
      const blockSizeBytes = BLOCK_SIZES[round % BLOCK_SIZES.length];
      const size = (3 + prng.int(16)) * 1024 * 1024 + [0, 241 + prng.int(blockSizeBytes - 241)][round % 2];
      const chunk = [4096, 65536, 512 * 1024][prng.int(3)];
      writeRandomImage(source, size, prng, chunk);
      if (round % 3 === 0) writeRandomImage(target, size, prng, chunk);
      else {
        copyFileSync(source, target);
        applyPattern(target, size, blockSizeBytes, PATTERNS[prng.int(PATTERNS.length)], prng);
      }
      const workers = prng.int(2) === 0 ? 2 : 1;
      const mapped = round % 4 >= 2; // the addon maps the files' pages instead of reading them
      if (mapped) setEnvFor(t, "VHDSYNC_SCAN_MMAP", "1");
      const algo = ALGORITHMS[round % ALGORITHMS.length];
      const context = `seed ${seed}, ${blockSizeBytes}-byte blocks, ${size} bytes, ${algo}, ${workers} threads, ${mapped ? "mmap" : "pread"}`;
      const digest = join(dir, "target.digest");
      await checksum(target, digest, { blockSizeBytes, algo });

      const dryNative = await resync(source, target, { targetDigestPath: digest, workers, dryRun: true });
      const dryWasm = await scanWith(true, () => resync(source, target, { targetDigestPath: digest, workers, dryRun: true }));
      t.same([dryNative.scanner, dryWasm.scanner], ["native", "wasm"], `which scanner ran (${context})`);
      t.same(resyncOutcome(dryNative), resyncOutcome(dryWasm), `dry-run reports agree (${context})`);
      t.equal(dryNative.blocksChanged, differingBlocks(source, target, blockSizeBytes), `blocksChanged = the oracle's (${context})`);
      t.equal(dryNative.blocksZero, zeroBlocks(source, blockSizeBytes), `blocksZero = the oracle's (${context})`);
      const against = await diff(source, digest, { workers });
      t.equal(against.scanner, "native", `diff of an image against a digest hashes natively (${context})`);
      t.equal(against.blocksDiffering, dryNative.blocksChanged, `diff against the digest finds the same blocks (${context})`);

      const applied: Array<Awaited<ReturnType<typeof resync>>> = [];
      const updated: string[][] = [];
      for (const wasm of [false, true]) {
        const copyTarget = join(dir, `t-${wasm ? "wasm" : "native"}.img`);
        const copyDigest = join(dir, `t-${wasm ? "wasm" : "native"}.digest`);
        copyFileSync(target, copyTarget);
        await checksum(copyTarget, copyDigest, { blockSizeBytes, algo });
        applied.push(await scanWith(wasm, () => resync(source, copyTarget, { targetDigestPath: copyDigest, updateTargetDigest: true, workers })));
        t.equal(fileSha(copyTarget), fileSha(source), `${applied.at(-1)!.scanner}: target equals the source (${context})`);
        updated.push(await framesOf(copyDigest));
        await checksum(copyTarget, join(dir, "fresh.digest"), { blockSizeBytes, algo });
        t.ok(readFileSync(copyDigest).equals(readFileSync(join(dir, "fresh.digest"))), `${applied.at(-1)!.scanner}: the updated digest is byte for byte a fresh checksum of the target (${context})`);
      }
      t.same(resyncOutcome(applied[0]), resyncOutcome(applied[1]), `reports agree (${context})`);
      t.same(updated[0], updated[1], `the updated target digests hold the same frames (${context})`);
      t.ok(applied[0].bytesWritten + applied[0].bytesZeroed <= applied[0].blocksChanged * blockSizeBytes, `writes bounded by changed blocks (${context})`);
      const after = join(dir, "t-native.img");
      t.equal((await resync(source, after, { targetDigestPath: join(dir, "t-native.digest"), workers, dryRun: true })).blocksChanged, 0, `the updated digest finds nothing left to change (${context})`);
    });
  }
});

t.test("segments that are holes in the source: native and WASM agree, the target's data there is zeroed", { skip }, async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  // Four 32 MiB segments of 4 KiB blocks and a partial fifth. The source has data in segment 1
  // only; the target has data in segments 0 and 3 (and 1), so two of the source's all-hole
  // segments meet data in the target's frames, and segment 2 is a hole on both sides.
  const segment = 32 * 1024 * 1024;
  const size = 4 * segment + 5 * 4096 + 300;
  const scatter = (path: string, segments: number[]) => {
    const fd = openSync(path, "r+");
    try {
      for (const index of segments) for (let k = 0; k < 3; k++) writeSync(fd, prng.bytes(4096 * (1 + prng.int(4))), 0, undefined, index * segment + prng.int(8000) * 4096);
    } finally {
      closeSync(fd);
    }
  };
  for (const path of [source, target]) {
    writeFileSync(path, "");
    truncateSync(path, size);
  }
  scatter(source, [1]);
  scatter(target, [0, 1, 3]);
  const context = `seed ${seed}`;
  const report = await checksumBoth(t, source, dir, { blockSizeBytes: 4096, workers: 2 }, context);
  t.equal(report.scanner, "native", context);
  t.ok(report.blocksUnallocated > 3 * 8192, `the hole segments are unallocated (${context})`);
  const digest = join(dir, "target.digest");
  await checksum(target, digest, { blockSizeBytes: 4096 });
  const expected = differingBlocks(source, target, 4096);
  const dryNative = await resync(source, target, { targetDigestPath: digest, dryRun: true });
  const dryWasm = await scanWith(true, () => resync(source, target, { targetDigestPath: digest, dryRun: true }));
  t.same([dryNative.scanner, dryWasm.scanner], ["native", "wasm"], context);
  t.same(resyncOutcome(dryNative), resyncOutcome(dryWasm), `dry-run reports agree (${context})`);
  t.equal(dryNative.blocksChanged, expected, `blocksChanged = the oracle's (${context})`);
  const applied = await resync(source, target, { targetDigestPath: digest });
  t.equal(applied.scanner, "native", context);
  t.equal(fileSha(target), fileSha(source), `the target's data in the source's hole segments is gone (${context})`);
  t.ok(applied.bytesZeroed > 0, `zeroed, not written (${context})`);
});

t.test("resync --target-digest into VHD targets: the jobs hash, the changes go through the format; native and WASM agree", { skip }, async (t) => {
  // Dynamic VHDs with blocks smaller and larger than a segment (16 MiB: a block spans
  // segments; the target is never read, so that is allowed), and a fixed VHD; sources raw,
  // dynamic VHD, and a differencing VHD gathered from its files or read into memory (their
  // changed data is read again through the format); each digest once.
  const kinds = [
    { to: "vhd-dynamic", blockSizeBytes: 512 * 1024 },
    { to: "vhd-dynamic", blockSizeBytes: 16 * 1024 * 1024 },
    { to: "vhd-fixed" },
    { to: "vhd-dynamic", blockSizeBytes: 2 * 1024 * 1024 },
  ] as const;
  for (let round = 0; round < kinds.length; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const { seed, prng, dir, source: sourceRaw, target: targetRaw } = pairSetup(t);
      const size = (3 + prng.int(30)) * 1024 * 1024 + prng.int(2048) * 512;
      writeRandomImage(sourceRaw, size, prng, [65536, 512 * 1024][prng.int(2)]);
      copyFileSync(sourceRaw, targetRaw);
      applyPattern(targetRaw, size, 4096, PATTERNS[prng.int(PATTERNS.length)], prng);
      const algo = ALGORITHMS[round];
      const sourceKind = ["raw", "dynamic VHD", "differencing VHD, gathered", "differencing VHD, in memory"][round];
      let source = sourceRaw;
      if (round === 1) {
        source = join(dir, "source.vhd");
        await convertImage(sourceRaw, source, { to: "vhd-dynamic", blockSizeBytes: 512 * 1024 });
      } else if (round >= 2) {
        // A child over the target's content holding the source's differing 4 KiB blocks.
        const parent = join(dir, "parent.vhd");
        await convertImage(targetRaw, parent, { to: "vhd-dynamic", blockSizeBytes: 512 * 1024 });
        source = join(dir, "source-child.vhd");
        const child = await createVhd(source, { type: "differencing", parentPath: parent });
        const [want, have] = [readFileSync(sourceRaw), readFileSync(targetRaw)];
        for (let at = 0; at < size; at += 4096) {
          const end = Math.min(size, at + 4096);
          if (!want.subarray(at, end).equals(have.subarray(at, end))) await child.write(want.subarray(at, end), at);
        }
        await child.close();
        if (round === 3) setEnvFor(t, "VHDSYNC_NO_GATHER", "1");
      }
      const context = `seed ${seed}, ${JSON.stringify(kinds[round])} target, ${sourceKind} source, ${size} bytes, ${algo}`;
      const original = join(dir, "target.vhd");
      await convertImage(targetRaw, original, kinds[round]);
      const reports: Array<Awaited<ReturnType<typeof resync>>> = [];
      const updated: string[][] = [];
      for (const wasm of [false, true]) {
        const vhd = join(dir, `${wasm ? "wasm" : "native"}.vhd`);
        const digest = join(dir, `${wasm ? "wasm" : "native"}.digest`);
        copyFileSync(original, vhd);
        await checksum(vhd, digest, { algo });
        reports.push(await scanWith(wasm, () => resync(source, vhd, { targetDigestPath: digest, updateTargetDigest: true, workers: 2 })));
        const qemu = spawnSync("qemu-img", ["compare", "-f", "vpc", "-F", "raw", vhd, sourceRaw], { encoding: "utf8" });
        t.equal(qemu.status, 0, `${reports.at(-1)!.scanner}: qemu-img compare finds the VHD equal to the source (${context}) ${qemu.stdout}${qemu.stderr}`);
        updated.push(await framesOf(digest));
        await checksum(vhd, join(dir, "fresh.digest"), { algo });
        t.ok(readFileSync(digest).equals(readFileSync(join(dir, "fresh.digest"))), `${reports.at(-1)!.scanner}: the updated digest is byte for byte a fresh checksum of the target (${context})`);
      }
      t.same(reports.map((report) => report.scanner), ["native", "wasm"], `which scanner ran (${context})`);
      t.same(resyncOutcome(reports[0]), resyncOutcome(reports[1]), `reports agree (${context})`);
      t.equal(reports[0].blocksChanged, differingBlocks(sourceRaw, targetRaw, 4096), `blocksChanged = the oracle's (${context})`);
      t.same(updated[0], updated[1], `the updated target digests hold the same frames (${context})`);
      const again = await resync(source, join(dir, "native.vhd"), { targetDigestPath: join(dir, "native.digest"), dryRun: true });
      t.equal(again.blocksChanged, 0, `the updated digest finds nothing left to change (${context})`);
    });
  }
});

t.test("hashSegment: arguments, a range past the end, a failed write", { skip }, async (t) => {
  const { source, target, sourceFd, targetFd } = openRandomPair(t);
  const request = { sourceFd, targetFd, algorithmId: 2, digestLength: 16, blockSizeBytes: 4096, startBytes: 0, lengthBytes: 1024 * 1024, ranges: [[0, 1024 * 1024]] as Array<[number, number]>, write: false };
  const found = await hashSegment(request);
  t.equal(found.dataBlocks, 256 - zeroBlocks(source, 4096));
  t.equal(found.digests.length, found.dataBlocks * 16);
  t.equal(found.unallocatedBlocks, 0);
  const sparse = await hashSegment({ ...request, ranges: [[8192, 16384]] });
  t.same([...sparse.flags.subarray(0, 5)], [0, 0, found.flags[2], found.flags[3], 0], "blocks outside the ranges are unallocated");
  await t.rejects(hashSegment({ ...request, algorithmId: 5 }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "an unknown algorithm");
  await t.rejects(hashSegment({ ...request, algorithmId: 0 }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "algorithm 0");
  await t.rejects(hashSegment({ ...request, ranges: [[4096, 8192], [0, 4096]] }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "ranges out of order");
  await t.rejects(hashSegment({ ...request, ranges: [[100, 8192]] }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "range not block-aligned");
  await t.rejects(hashSegment({ ...request, lengthBytes: 4096 + 200, ranges: [[0, 4096 + 200]] }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "XXH3: a last block of 240 bytes or less");
  const shortLast = await hashSegment({ ...request, algorithmId: 4, digestLength: 32, lengthBytes: 4096 + 200, ranges: [[0, 4096 + 200]] });
  t.equal(shortLast.flags.length, 2, "SHA-256 takes a last block of 200 bytes");
  await t.rejects(hashSegment({ ...request, lengthBytes: 2 * 1024 * 1024, ranges: [[0, 2 * 1024 * 1024]] }), { code: "VHDSYNC_TRUNCATED" }, "a range past the end of the file is refused, not faulted on");
  await t.rejects(hashSegment({ ...request, write: true }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "writing needs the target's frame");
  t.same(await withEnv("VHDSYNC_SCAN_MMAP", "1", () => hashSegment(request)), found, "mapped pages give the same frame");
  const unreadable = openSync(source, "a");
  t.teardown(() => closeSync(unreadable));
  await t.rejects(hashSegment({ ...request, sourceFd: unreadable }), { details: { syscall: "pread", errno: "EBADF" } }, "reading a write-only descriptor fails with pread's errno");
  // The target's frame: every block holds data with a zero digest, so every data block differs.
  const frame = { flags: new Uint8Array(256).fill(2), digests: new Uint8Array(256 * 16) };
  const placed = request.ranges.map(([start, end]): [number, number, number, number] => [start, end, start, start]);
  await t.rejects(hashSegment({ ...request, ranges: placed, target: frame, write: true }), { details: { syscall: "pwrite" } }, "a write to a read-only descriptor fails with its errno");
  const compared = await hashSegment({ ...request, target: frame });
  t.equal(compared.changedBlocks, 256, "every block differs from a frame of zero digests");
  t.equal(compared.bytesWritten, 0, "nothing written without write");
  const gate = openJobGate(1)!;
  const gated = await Promise.all([0, 1, 2].map(() => hashSegment({ ...request, gate })));
  for (const frameOf of gated) t.same([frameOf.flags, frameOf.digests], [found.flags, found.digests], "a gated job builds the same frame");
  closeJobGate(gate);
  await t.rejects(hashSegment({ ...request, gate }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "a closed gate is refused");
});
