// The native compare scanner (native/src/scan.rs via src/sync/native-scanner.ts) against the
// WASM scanners (VHDSYNC_NO_NATIVE_SCAN=1) and plain-JS oracles: the same reports, the same
// differing extents, the same target bytes, over random sparse pairs, block sizes from 4 KiB
// to 8 MiB (blocks larger than a mapped window are compared in parts) and both apply modes.
// Dynamic VHD sources and targets (data mapped where the BAT puts it) against the same
// references, differencing disks (read through their format into memory, chunk by chunk),
// the Windows fixture.
// Also the addon call itself: argument checks, a range past the end, a failed write.
import t, { type Test } from "tap";
import { closeSync, copyFileSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { gunzipSync } from "node:zlib";
import { createVhd } from "../dist/formats/vhd/index.js";
import { openImage } from "../dist/index.js";
import { filePiecesOf } from "../dist/formats/data-location.js";
import { checkImage } from "../dist/formats/check.js";
import { convertImage } from "../dist/sync/convert.js";
import { copy } from "../dist/sync/copy.js";
import { diff } from "../dist/sync/diff.js";
import { verify } from "../dist/sync/verify.js";
import { resync } from "../dist/sync/resync.js";
import { checksum } from "../dist/sync/checksum.js";
import { Prng } from "./helpers/prng.js";
import { STATE, buildVhdx, dataWriteGuidOf, regionOffsets, type BuildBlock } from "./helpers/vhdx-builder.js";
import { writeLogEntries } from "./helpers/vhdx-log-builder.js";
import { model, qemuParent, randomBlocks } from "./helpers/vhdx-model.js";
import { qemuImg, qemuIo, qemuRaw } from "./helpers/vhdx-qemu.js";
import { qemuContent, sha256 } from "./helpers/vhd.js";
import { MEMORY_CHUNK_BYTES, chunksOf, joinChanges, jobsRunningAtOnce } from "../dist/sync/native-scanner.js";
import { nativeAddon } from "../dist/io/native-addon.js";
import { closeJobGate, compareSegment, openJobGate } from "../dist/io/native-compare.js";
import { setEnvFor, withEnv } from "./helpers/env.js";
import { sparseUnsupportedReason } from "./helpers/native-sparse.js";
import { PATTERNS, applyPattern, differingBlocks, fileSha, pairSetup, openRandomPair, resyncOutcome, writeRandomImage, zeroBlocks } from "./helpers/resync-images.js";

const addon = nativeAddon();
const skip = addon ? false : "no native addon (VHDSYNC_NO_NATIVE=1 or not built)";

/** Runs `body` with VHDSYNC_NO_NATIVE_SCAN set to `value` (or unset), restoring it after. */
function withScanEnv<T>(value: string | undefined, body: () => Promise<T>): Promise<T> {
  return withEnv("VHDSYNC_NO_NATIVE_SCAN", value, body);
}

const MIB = 1024 * 1024;
const BLOCK_SIZES = [4096, 65536, MIB, 8 * MIB];
/** Digest-file algorithms: the chain tests draw one per round. */
const DIGESTS = ["xxh3-128", "xxh3-64", "xxh64", "sha256"] as const;

t.test("native and WASM compares agree with each other and with the oracles", { skip }, async (t) => {
  for (let round = 0; round < 10; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const { seed, prng, dir, source, target } = pairSetup(t);
      const blockSizeBytes = BLOCK_SIZES[round % BLOCK_SIZES.length];
      const size = (4 + prng.int(20)) * 1024 * 1024 + prng.int(blockSizeBytes);
      const chunk = [4096, 65536, 512 * 1024, 4 * 1024 * 1024][prng.int(4)];
      writeRandomImage(source, size, prng, chunk);
      // Half the rounds: an independent sparse target (holes and data in other places).
      if (round % 2 === 0) {
        copyFileSync(source, target);
        applyPattern(target, size, blockSizeBytes, PATTERNS[prng.int(PATTERNS.length)], prng);
      } else writeRandomImage(target, size, prng, chunk);
      const workers = prng.int(2) === 0 ? 2 : 1;
      // Rounds 2, 3, 6, 7: the addon maps the files' pages instead of reading them.
      const mapped = round % 4 >= 2;
      if (mapped) setEnvFor(t, "VHDSYNC_SCAN_MMAP", "1");
      const context = `seed ${seed}, ${blockSizeBytes}-byte blocks, ${size} bytes, ${workers} threads, ${mapped ? "mmap" : "pread"}`;

      const dryNative = await resync(source, target, { blockSizeBytes, workers, dryRun: true });
      const dryWasm = await withScanEnv("1", () => resync(source, target, { blockSizeBytes, workers, dryRun: true }));
      t.equal(dryNative.scanner, "native", `the native scanner ran (${context})`);
      t.equal(dryWasm.scanner, "wasm", `the WASM scanners ran (${context})`);
      t.same(resyncOutcome(dryNative), resyncOutcome(dryWasm), `dry-run reports agree (${context})`);
      t.equal(dryNative.blocksZero, zeroBlocks(source, blockSizeBytes), `blocksZero = the oracle's (${context})`);
      t.equal(dryNative.blocksChanged, differingBlocks(source, target, blockSizeBytes), `blocksChanged = the oracle's (${context})`);

      const diffNative = await diff(source, target, { blockSizeBytes, workers });
      const diffWasm = await withScanEnv("1", () => diff(source, target, { blockSizeBytes, workers }));
      t.same([diffNative.scanner, diffWasm.scanner], ["native", "wasm"], `diff says which scanner ran (${context})`);
      t.same(diffNative.extents, diffWasm.extents, `diff extents agree (${context})`);
      t.equal(diffNative.bytesDiffering, diffWasm.bytesDiffering, `diff bytes agree (${context})`);

      const [nativeTarget, wasmTarget] = [join(dir, "native.img"), join(dir, "wasm.img")];
      copyFileSync(target, nativeTarget);
      copyFileSync(target, wasmTarget);
      const applied = await resync(source, nativeTarget, { blockSizeBytes, workers });
      const appliedWasm = await withScanEnv("1", () => resync(source, wasmTarget, { blockSizeBytes, workers }));
      t.same(resyncOutcome(applied), resyncOutcome(appliedWasm), `reports agree (${context})`);
      t.equal(fileSha(nativeTarget), fileSha(source), `native: target equals the source (${context})`);
      t.equal(fileSha(wasmTarget), fileSha(source), `WASM: target equals the source (${context})`);
      t.ok(applied.bytesWritten + applied.bytesZeroed <= applied.blocksChanged * blockSizeBytes, `writes bounded by changed blocks (${context})`);
      t.equal((await resync(source, nativeTarget, { blockSizeBytes, workers, dryRun: true })).blocksChanged, 0, `nothing left to change (${context})`);
    });
  }
});

/** A dynamic VHD at `path` holding the raw image at `raw` (unallocated where `raw` reads as zeros), made by the library's own converter. */
async function dynamicVhdOf(raw: string, path: string, vhdBlockBytes: number): Promise<void> {
  await convertImage(raw, path, { to: "vhd-dynamic", blockSizeBytes: vhdBlockBytes });
}

t.test("dynamic VHD sources and targets: native and WASM compares agree with each other and the oracles", { skip }, async (t) => {
  const FIXED_BLOCK_SIZES = [4096, 65536, 1024 * 1024, 4 * 1024 * 1024, 8 * 1024 * 1024];
  for (let round = 0; round < 6; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const { seed, prng, dir, source: sourceRaw, target } = pairSetup(t);
      // VHD blocks smaller and larger than the resync block (parts then stop at each VHD block).
      const vhdBlock = [512 * 1024, 2 * 1024 * 1024][round % 2];
      const blockSizeBytes = FIXED_BLOCK_SIZES[prng.int(FIXED_BLOCK_SIZES.length)];
      const size = (3 + prng.int(12)) * 1024 * 1024 + prng.int(2048) * 512;
      writeRandomImage(sourceRaw, size, prng, [65536, 512 * 1024, 1024 * 1024][prng.int(3)]);
      const source = join(dir, "source.vhd");
      await dynamicVhdOf(sourceRaw, source, vhdBlock);
      if (round % 3 === 0) writeRandomImage(target, size, prng, 256 * 1024);
      else {
        await copy(source, target);
        applyPattern(target, size, blockSizeBytes, PATTERNS[prng.int(PATTERNS.length)], prng);
      }
      const workers = prng.int(2) === 0 ? 2 : 1;
      const mapped = round >= 3; // the addon maps the files' pages instead of reading them
      if (mapped) setEnvFor(t, "VHDSYNC_SCAN_MMAP", "1");
      const context = `seed ${seed}, VHD blocks ${vhdBlock}, ${blockSizeBytes}-byte blocks, ${size} bytes, ${workers} threads, ${mapped ? "mmap" : "pread"}`;

      const dryNative = await resync(source, target, { blockSizeBytes, workers, dryRun: true });
      const dryWasm = await withScanEnv("1", () => resync(source, target, { blockSizeBytes, workers, dryRun: true }));
      t.equal(dryNative.scanner, "native", `the native scanner ran (${context})`);
      t.equal(dryWasm.scanner, "wasm", `the WASM scanners ran (${context})`);
      t.same(resyncOutcome(dryNative), resyncOutcome(dryWasm), `dry-run reports agree (${context})`);
      t.equal(dryNative.blocksChanged, differingBlocks(sourceRaw, target, blockSizeBytes), `blocksChanged = the oracle's (${context})`);
      t.equal(dryNative.blocksZero, zeroBlocks(sourceRaw, blockSizeBytes), `blocksZero = the oracle's (${context})`);

      // Both sides dynamic VHDs (verify and diff do not write).
      const targetVhd = join(dir, "target.vhd");
      await dynamicVhdOf(target, targetVhd, [512 * 1024, 2 * 1024 * 1024][prng.int(2)]);
      const diffNative = await diff(source, targetVhd, { blockSizeBytes, workers });
      const diffWasm = await withScanEnv("1", () => diff(source, targetVhd, { blockSizeBytes, workers }));
      t.same([diffNative.scanner, diffWasm.scanner], ["native", "wasm"], `diff of two VHDs says which scanner ran (${context})`);
      t.same(diffNative.extents, diffWasm.extents, `diff extents of two VHDs agree (${context})`);
      t.equal(diffNative.bytesDiffering, diffWasm.bytesDiffering, `diff bytes agree (${context})`);
      const verified = await verify(targetVhd, sourceRaw, { blockSizeBytes, workers });
      t.equal(verified.blocksDiffering, differingBlocks(sourceRaw, target, blockSizeBytes), `verify VHD against raw = the oracle (${context})`);

      const [nativeTarget, wasmTarget] = [join(dir, "native.img"), join(dir, "wasm.img")];
      copyFileSync(target, nativeTarget);
      copyFileSync(target, wasmTarget);
      const applied = await resync(source, nativeTarget, { blockSizeBytes, workers });
      const appliedWasm = await withScanEnv("1", () => resync(source, wasmTarget, { blockSizeBytes, workers }));
      t.equal(applied.scanner, "native", `the native scanner wrote (${context})`);
      t.same(resyncOutcome(applied), resyncOutcome(appliedWasm), `reports agree (${context})`);
      t.equal(fileSha(nativeTarget), fileSha(sourceRaw), `native: target equals the source (${context})`);
      t.equal(fileSha(wasmTarget), fileSha(sourceRaw), `WASM: target equals the source (${context})`);
      t.ok(applied.bytesWritten + applied.bytesZeroed <= applied.blocksChanged * blockSizeBytes, `writes bounded by changed blocks (${context})`);
      t.equal((await resync(source, nativeTarget, { blockSizeBytes, workers, dryRun: true })).blocksChanged, 0, `nothing left to change (${context})`);

      // Into a dynamic VHD target: compared natively, the changed data read here and written
      // through the format ("caller" apply), as the WASM scanners return it.
      const [nativeVhd, wasmVhd] = [join(dir, "native.vhd"), join(dir, "wasm.vhd")];
      copyFileSync(targetVhd, nativeVhd);
      copyFileSync(targetVhd, wasmVhd);
      const intoVhd = await resync(source, nativeVhd, { blockSizeBytes, workers });
      const intoVhdWasm = await withScanEnv("1", () => resync(source, wasmVhd, { blockSizeBytes, workers }));
      t.same([intoVhd.scanner, intoVhdWasm.scanner], ["native", "wasm"], `a dynamic VHD target: the native scanner compared (${context})`);
      t.same(resyncOutcome(intoVhd), resyncOutcome(intoVhdWasm), `reports into a VHD agree (${context})`);
      for (const written of [nativeVhd, wasmVhd]) {
        t.equal((await verify(written, sourceRaw, { blockSizeBytes, workers })).blocksDiffering, 0, `${written === nativeVhd ? "native" : "WASM"}: the VHD equals the source (${context})`);
        t.same((await checkImage(written)).problems, [], `and checks clean (${context})`);
      }
    });
  }
});

t.test("dynamic VHD targets with blocks larger than a segment: resync empties and refills them across segments", { skip }, async (t) => {
  const { seed, prng, dir, source: sourceRaw, target: targetRaw } = pairSetup(t);
  const size = 56 * MIB + 3 * 512;
  writeRandomImage(targetRaw, size, prng, MIB);
  const source = readFileSync(targetRaw);
  // The source: whole 16 MiB VHD blocks of zeros (unallocated in the target after), one
  // zeroed in pieces, random changes in the rest.
  source.fill(0, 0, 16 * MIB);
  for (let at = 16 * MIB; at < 32 * MIB; at += 65536) source.fill(0, at, at + 32768);
  for (let i = 0; i < 200; i++) source.set(prng.bytes(4096), prng.int(Math.floor(size / 4096)) * 4096); // whole blocks inside the image
  writeFileSync(sourceRaw, source);
  const targetVhd = join(dir, "target.vhd");
  await dynamicVhdOf(targetRaw, targetVhd, 16 * MIB);
  for (const workers of [2, 1]) {
    const report = await resync(sourceRaw, targetVhd, { workers });
    t.equal(report.scanner, "native", `seed ${seed}, ${workers} threads: the native scanner compared`);
    t.equal((await verify(targetVhd, sourceRaw, { workers })).blocksDiffering, 0, `equal after resync (seed ${seed})`);
    t.same((await checkImage(targetVhd)).problems, []);
    // Refill from the original: blocks taken again (in freed room) across the segments.
    const back = await resync(targetRaw, targetVhd, { workers });
    t.ok(back.blocksChanged > 0);
    t.equal((await verify(targetVhd, targetRaw, { workers })).blocksDiffering, 0, `equal after the refill (seed ${seed})`);
    t.same((await checkImage(targetVhd)).problems, []);
  }
});

/**
 * What a differencing VHD reads as, independently of the library: its own sectors (parsed
 * here from the file as the VHD spec lays them out: footer, dynamic header, BAT, each block's
 * sector bitmap before its data) over `parent`'s content (qemu-img's: it reads dynamic VHDs,
 * not differencing ones).
 */
function childOverParent(childPath: string, parent: Buffer): Buffer {
  const file = readFileSync(childPath);
  const footer = file.subarray(file.length - 512);
  const header = file.subarray(Number(footer.readBigUInt64BE(16)));
  const tableOffset = Number(header.readBigUInt64BE(16));
  const entries = header.readUInt32BE(28);
  const blockBytes = header.readUInt32BE(32);
  const bitmapBytes = Math.ceil(blockBytes / 512 / 8 / 512) * 512;
  const content = Buffer.from(parent);
  for (let block = 0; block < entries; block++) {
    const sector = file.readUInt32BE(tableOffset + block * 4);
    if (sector === 0xffffffff) continue;
    const bitmap = file.subarray(sector * 512, sector * 512 + bitmapBytes);
    for (let s = 0; s < blockBytes / 512 && block * blockBytes + s * 512 < content.length; s++) {
      if (bitmap[s >> 3] & (0x80 >> (s & 7))) file.copy(content, block * blockBytes + s * 512, sector * 512 + bitmapBytes + s * 512, sector * 512 + bitmapBytes + s * 512 + 512);
    }
  }
  return content;
}

t.test("differencing VHD targets a resync writes are compared natively (gathered from the chain's files, or read into memory): the WASM scanners' results, the child parsed over its parent", { skip }, async (t) => {
  for (const gathered of [true, false]) {
    await t.test(gathered ? "gathered" : "in memory", async (t: Test) => {
      if (!gathered) setEnvFor(t, "VHDSYNC_NO_GATHER", "1");
      const { seed, prng, dir, source } = pairSetup(t);
      const size = 24 * 1024 * 1024 + 4096 * 3;
      writeRandomImage(source, size, prng, 65536);
      const base = join(dir, "base.raw");
      copyFileSync(source, base);
      applyPattern(base, size, 4096, PATTERNS[prng.int(PATTERNS.length)], prng);
      // The same chain twice: a dynamic parent holding `base`, and a child with sectors of its
      // own (whole blocks, single sectors, runs across a 4 KiB block's edge) and holes.
      const writes = Array.from({ length: 40 }, () => ({ offset: prng.int(size / 512 - 16) * 512, data: prng.bytes(512 * (1 + prng.int(prng.int(2) ? 3 : 2100))) }));
      const chain = async (name: string): Promise<string> => {
        const parent = join(dir, `${name}-parent.vhd`);
        await dynamicVhdOf(base, parent, 512 * 1024);
        const child = join(dir, `${name}-child.vhd`);
        const image = await createVhd(child, { type: "differencing", parentPath: parent });
        for (const { offset, data } of writes) await image.write(data.subarray(0, Math.min(data.length, size - offset)), offset);
        await image.close();
        return child;
      };
      const [nativeChild, wasmChild] = [await chain("native"), await chain("wasm")];
      const context = `seed ${seed}`;
      const parents = [join(dir, "native-parent.vhd"), join(dir, "wasm-parent.vhd")];
      const parentShas = parents.map(fileSha);
      const parentContent = qemuContent(parents[0], dir);
      t.equal(sha256(parentContent), fileSha(base), "qemu-img reads the parent as the base image");
      const before = join(dir, "child-before.raw");
      writeFileSync(before, childOverParent(nativeChild, parentContent));
      t.equal(differingBlocks(source, before, 4096), (await resync(source, nativeChild, { dryRun: true })).blocksChanged, `the dry run counts the blocks the child differs in (${context})`);
      const applied = await resync(source, nativeChild, {});
      const appliedWasm = await withScanEnv("1", () => resync(source, wasmChild, {}));
      t.same([applied.scanner, appliedWasm.scanner], ["native", "wasm"], `the native scanner ran (${context})`);
      t.same(resyncOutcome(applied), resyncOutcome(appliedWasm), `native and WASM reports agree (${context})`);
      t.ok(applied.blocksChanged > 0, "something changed");
      t.equal(sha256(childOverParent(nativeChild, parentContent)), fileSha(source), `the child (parsed here) over its parent (qemu-img) equals the source (${context})`);
      t.equal(sha256(childOverParent(wasmChild, qemuContent(parents[1], dir))), fileSha(source), `so does the WASM-synced child (${context})`);
      t.same(parents.map(fileSha), parentShas, "neither run wrote to its parent");
      t.equal((await resync(source, nativeChild, { dryRun: true })).blocksChanged, 0, "nothing left to change");
    });
  }
});

t.test("differencing VHD sources, and targets a run does not change, are scanned natively (gathered from the chain's files, or read into memory chunk by chunk): the WASM scanners' results, the child parsed over its parent", { skip }, async (t) => {
  for (let round = 0; round < 6; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      // Odd rounds: the chain is read through its format into memory (as VHDX files with a
      // parent or a log are), even rounds gather its pieces from the files.
      const gathered = round % 2 === 0;
      if (!gathered) setEnvFor(t, "VHDSYNC_NO_GATHER", "1");
      const { seed, prng, dir, source: base, target } = pairSetup(t);
      const size = 20 * 1024 * 1024 + 4096 * 3;
      writeRandomImage(base, size, prng, 65536);
      const parent = join(dir, "parent.vhd");
      await dynamicVhdOf(base, parent, 512 * 1024);
      // A child with sectors of its own: whole blocks, single sectors, runs across a 4 KiB
      // block's edge, and runs across chunk edges (every MEMORY_CHUNK_BYTES from a segment's start).
      const child = join(dir, "child.vhd");
      const image = await createVhd(child, { type: "differencing", parentPath: parent });
      const writes = Array.from({ length: 40 }, () => ({ offset: prng.int(size / 512 - 16) * 512, data: prng.bytes(512 * (1 + prng.int(prng.int(2) ? 3 : 2100))) }));
      for (const edge of [MEMORY_CHUNK_BYTES, 2 * MEMORY_CHUNK_BYTES]) writes.push({ offset: edge - 2560, data: prng.bytes(512 * 13) });
      for (const { offset, data } of writes) await image.write(data.subarray(0, Math.min(data.length, size - offset)), offset);
      await image.close();
      const content = join(dir, "child.raw");
      writeFileSync(content, childOverParent(child, qemuContent(parent, dir)));
      // The target: the child's content with a pattern of changes, or an independent image.
      if (round % 3 !== 1) {
        copyFileSync(content, target);
        applyPattern(target, size, 4096, PATTERNS[prng.int(PATTERNS.length)], prng);
        // A run differing across a chunk's edge.
        const fd = openSync(target, "r+");
        writeSync(fd, prng.bytes(12288), 0, 12288, MEMORY_CHUNK_BYTES - 4096);
        closeSync(fd);
      } else writeRandomImage(target, size, prng, 65536);
      const blockSizeBytes = [4096, 65536, 8 * 1024 * 1024][round % 3];
      const workers = prng.int(2) === 0 ? 2 : 1;
      // The digest part runs with blocks up to 64 KiB (rounds 0, 1, 3, 4): each digest once.
      const algo = DIGESTS[[0, 3, 0, 2, 1, 0][round]];
      const context = `seed ${seed}, ${blockSizeBytes}-byte blocks, ${workers} threads, ${gathered ? "gathered" : "in memory"}, ${algo}`;
      await chainScansAgree(t, { dir, child, chainFiles: [parent, child], content, target, blockSizeBytes, workers, algo, context });
    });
  }
});

/**
 * A differencing disk (`child`, over the files `chainFiles`) as a source and as a target the
 * run does not change, against `target` (a raw image): every mode by the native scanner and by
 * the WASM scanners, each checked against the other and against `content` (a raw file of what
 * the child reads as, made by the test's own parsing of the chain).
 */
async function chainScansAgree(t: Test, o: { dir: string; child: string; chainFiles: string[]; content: string; target: string; blockSizeBytes: number; workers: number; algo: (typeof DIGESTS)[number]; context: string }): Promise<void> {
  const { dir, child, chainFiles, content, target, blockSizeBytes, workers, algo, context } = o;
  const chain = chainFiles.map(fileSha);
  const both = async <R extends { scanner: string }>(what: string, run: () => Promise<R>): Promise<[R, R]> => {
    const pair: [R, R] = [await run(), await withScanEnv("1", run)];
    t.same(pair.map((report) => report.scanner), ["native", "wasm"], `${what}: which scanner ran (${context})`);
    return pair;
  };

  const [dry, dryWasm] = await both("dry run", () => resync(child, target, { blockSizeBytes, workers, dryRun: true }));
  t.same(resyncOutcome(dry), resyncOutcome(dryWasm), `dry-run reports agree (${context})`);
  t.equal(dry.blocksChanged, differingBlocks(content, target, blockSizeBytes), `blocksChanged = the oracle's (${context})`);
  t.equal(dry.blocksZero, zeroBlocks(content, blockSizeBytes), `blocksZero = the oracle's (${context})`);
  const [differences, differencesWasm] = await both("diff", () => diff(child, target, { blockSizeBytes, workers }));
  t.same(differences.extents, differencesWasm.extents, `diff extents agree (${context})`);
  t.ok(differences.extents.length > 0, "something differs");
  // The child as an unchanged target.
  const [verified, verifiedWasm] = await both("verify", () => verify(target, child, { blockSizeBytes, workers }));
  t.same(verified.extents, verifiedWasm.extents, `verify into the child agrees (${context})`);

  // Digests: the same file from both scanners; diffed against the child's content, nothing differs.
  if (blockSizeBytes <= 65536) {
    const [nativeDigest, wasmDigest] = [join(dir, "native.digest"), join(dir, "wasm.digest")];
    const sums = [await checksum(child, nativeDigest, { blockSizeBytes, workers, algo }), await withScanEnv("1", () => checksum(child, wasmDigest, { blockSizeBytes, workers, algo }))];
    t.same(sums.map((report) => report.scanner), ["native", "wasm"], `checksum: which scanner ran (${context})`);
    t.equal(fileSha(nativeDigest), fileSha(wasmDigest), `checksum: the same digest file (${context})`);
    t.equal((await withEnv("VHDSYNC_NO_NATIVE_HASH", "1", () => diff(content, nativeDigest, { blockSizeBytes }))).blocksDiffering, 0, `the digest describes the child's content, hashed again without the addon (${context})`);
    const targetDigest = join(dir, "target.digest");
    await checksum(target, targetDigest, { blockSizeBytes, algo });
    const [byDigest, byDigestWasm] = await both("resync --target-digest", () => resync(child, target, { blockSizeBytes, workers, dryRun: true, targetDigestPath: targetDigest }));
    t.same(resyncOutcome(byDigest), resyncOutcome(byDigestWasm), `--target-digest reports agree (${context})`);
  }

  // Applied into raw targets (written by the jobs from the chunks' memory).
  const [nativeTarget, wasmTarget] = [join(dir, "native.img"), join(dir, "wasm.img")];
  copyFileSync(target, nativeTarget);
  copyFileSync(target, wasmTarget);
  const applied = await resync(child, nativeTarget, { blockSizeBytes, workers });
  const appliedWasm = await withScanEnv("1", () => resync(child, wasmTarget, { blockSizeBytes, workers }));
  t.same([applied.scanner, appliedWasm.scanner], ["native", "wasm"], `resync: which scanner ran (${context})`);
  t.same(resyncOutcome(applied), resyncOutcome(appliedWasm), `reports agree (${context})`);
  t.equal(fileSha(nativeTarget), fileSha(content), `native: the target equals the child's content (${context})`);
  t.equal(fileSha(wasmTarget), fileSha(content), `WASM: the target equals the child's content (${context})`);

  // Into a dynamic VHD target (changes written through its format, their data taken from the chunks).
  const [nativeVhd, wasmVhd] = [join(dir, "native.vhd"), join(dir, "wasm.vhd")];
  await dynamicVhdOf(target, nativeVhd, 2 * 1024 * 1024);
  copyFileSync(nativeVhd, wasmVhd);
  const intoVhd = await resync(child, nativeVhd, { blockSizeBytes, workers });
  const intoVhdWasm = await withScanEnv("1", () => resync(child, wasmVhd, { blockSizeBytes, workers }));
  t.same([intoVhd.scanner, intoVhdWasm.scanner], ["native", "wasm"], `into a VHD: which scanner ran (${context})`);
  t.same(resyncOutcome(intoVhd), resyncOutcome(intoVhdWasm), `into a VHD: reports agree (${context})`);
  t.equal(sha256(qemuContent(nativeVhd, dir)), fileSha(content), `the VHD target (read by qemu-img) equals the child's content (${context})`);

  // Copied into a new raw file.
  const copied = join(dir, "copy.raw");
  const [copyNative, copyWasm] = await both("copy", async () => {
    rmSync(copied, { force: true });
    const report = await copy(child, copied, { blockSizeBytes, workers });
    t.equal(fileSha(copied), fileSha(content), `the copy holds the child's content (${context})`);
    return report;
  });
  t.same([copyNative.bytesWritten, copyNative.blocksZero], [copyWasm.bytesWritten, copyWasm.blocksZero], `copies agree (${context})`);
  t.same(chainFiles.map(fileSha), chain, "the chain was never written");
}

/**
 * A differencing VHDX chain for a round (`kind` 0: a child over a qemu-made dynamic VHDX; 1: a
 * child over a qemu-made dynamic VHD smaller than it, zeros past the VHD's end; 2: three
 * levels, 4 KiB sectors, a builder-made base): children from the test builder with blocks in
 * every payload state, and what the top reads as, from the model over qemu's reading of the
 * base (an independent parse of the chain).
 */
async function vhdxChain(dir: string, prng: Prng, kind: number): Promise<{ child: string; chainFiles: string[]; content: Uint8Array }> {
  const size = 20 * MIB;
  const blockSize = [MIB, 2 * MIB, MIB][kind];
  const sector = kind === 2 ? 4096 : 512;
  mkdirSync(dir, { recursive: true });
  let parent: { path: string; content: Uint8Array; guid: string };
  if (kind === 0) parent = qemuParent(dir, prng, 12 * MIB + 4 * MIB * prng.int(3));
  else if (kind === 1) {
    const path = join(dir, "parent.vhd");
    qemuImg("create", "-f", "vpc", path, String(12 * MIB));
    execFileSync("qemu-io", ["-f", "vpc", ...[0, 1, 2, 3].flatMap(() => ["-c", `write -P 0x${(1 + prng.int(254)).toString(16)} ${prng.int(20000) * 512} ${(1 + prng.int(4096)) * 512}`]), path], { stdio: "ignore" });
    const image = await openImage(path);
    const guid = (await image.info()).uniqueId as string;
    await image.close();
    parent = { path, content: qemuRaw(path, dir, "vpc"), guid };
  } else {
    const path = join(dir, "base.vhdx");
    const blocks = new Map<number, BuildBlock>([0, 3, 4, 9, 19].map((block) => [block, { state: STATE.FULLY_PRESENT, data: prng.bytes(blockSize) }]));
    writeFileSync(path, buildVhdx({ virtualSize: size, blockSize, logicalSectorSize: sector, blocks, dataWriteGuid: "ba5e0000-0000-0000-0000-000000000001" }));
    parent = { path, content: model({ blocks }, new Uint8Array(size), size, blockSize, sector).content, guid: "ba5e0000-0000-0000-0000-000000000001" };
  }
  const chainFiles = [parent.path];
  let content = parent.content;
  for (let level = 1; level <= (kind === 2 ? 2 : 1); level++) {
    const blocks = randomBlocks(prng, size / blockSize, blockSize, sector);
    const path = join(dir, `level${level}.vhdx`);
    const guid = `1e7e1000-0000-0000-0000-00000000000${level}`;
    const locator = { parent_linkage: `{${parent.guid.toUpperCase()}}`, relative_path: parent.path.slice(dir.length + 1).replace(/\//g, "\\") };
    writeFileSync(path, buildVhdx({ virtualSize: size, blockSize, logicalSectorSize: sector, hasParent: true, blocks, dataWriteGuid: guid, locator }));
    content = model({ blocks }, content, size, blockSize, sector).content;
    chainFiles.push(path);
    parent = { path, content, guid };
  }
  return { child: chainFiles[chainFiles.length - 1], chainFiles, content };
}

t.test("differencing VHDX files: filePiecesOf says where each byte lies (what the model reads); not with a log replayed in memory", async (t) => {
  const { seed, prng, dir } = pairSetup(t);
  for (const kind of [0, 1, 2]) {
    const chain = await vhdxChain(join(dir, `k${kind}`), prng, kind);
    const image = await openImage(chain.child);
    try {
      const pieces = filePiecesOf(image);
      if (!pieces) {
        t.fail(`chain ${kind}: no pieces`);
        continue;
      }
      for (let i = 0; i < 12; i++) {
        const offset = i === 0 ? 0 : prng.int(image.virtualSize);
        const length = i === 0 ? image.virtualSize : 1 + prng.int(Math.min(image.virtualSize - offset, 3 * MIB));
        const gathered = new Uint8Array(length);
        let at = offset;
        const misplaced: string[] = []; // pieces that do not follow the one before, or lie past their file's end
        for (const piece of await pieces(offset, length)) {
          if (piece.offset !== at) misplaced.push(`piece at ${piece.offset}, expected ${at}`);
          if (piece.fileOffset !== null && readSync(piece.fd, gathered, piece.offset - offset, piece.length, piece.fileOffset) !== piece.length) misplaced.push(`piece at ${piece.offset} past its file's end`);
          at = piece.offset + piece.length;
        }
        t.same(misplaced, [], `chain ${kind}: pieces follow each other inside their files (seed ${seed})`);
        t.equal(at, offset + length, "pieces cover the range");
        t.ok(Buffer.from(gathered).equals(chain.content.subarray(offset, offset + length)), `chain ${kind}: the pieces of ${offset}+${length} hold what the model reads (seed ${seed})`);
      }
    } finally {
      await image.close();
    }
  }
  // A dirty log: some bytes lie in the log, replayed in memory. Neither the image nor a child over it can say.
  const dirty = join(dir, "dirty.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", dirty, String(4 * MIB));
  qemuIo(dirty, ["write -P 0x5a 0 1M"]);
  const file = new Uint8Array(readFileSync(dirty));
  writeLogEntries(file, [{ sequence: 5n, descriptors: [{ kind: "zero", fileOffset: regionOffsets(file).bat, length: 4096 }] }], 0);
  writeFileSync(dirty, file);
  const kid = join(dir, "kid.vhdx");
  writeFileSync(kid, buildVhdx({ virtualSize: 4 * MIB, blockSize: MIB, hasParent: true, locator: { parent_linkage: `{${dataWriteGuidOf(file).toUpperCase()}}`, relative_path: "dirty.vhdx" } }));
  for (const path of [dirty, kid]) {
    const image = await openImage(path);
    t.equal(filePiecesOf(image), undefined, `${path.split("/").pop()}: no pieces`);
    await image.close();
  }
  // Such an image is read into memory by the native scanner: the content qemu reads after replaying the log on a copy.
  if (!skip) {
    const replayed = join(dir, "replayed.vhdx");
    writeFileSync(replayed, file);
    qemuIo(replayed, ["read 0 512"]);
    const expected = qemuRaw(replayed, dir);
    t.ok(expected.subarray(0, MIB).every((byte) => byte === 0), "the log's zeroed BAT sector unmaps the written block");
    const before = join(dir, "dirty-target.raw");
    writeRandomImage(before, 4 * MIB, prng, 65536);
    const reports = [];
    for (const scan of [undefined, "1"]) {
      const target = join(dir, `dirty-${scan ?? "native"}.raw`);
      copyFileSync(before, target);
      reports.push(await withScanEnv(scan, () => resync(dirty, target, { blockSizeBytes: 65536 })));
      t.ok(readFileSync(target).equals(expected), `${reports.at(-1)!.scanner}: the target holds the replayed content`);
    }
    t.same(reports.map((report) => report.scanner), ["native", "wasm"]);
    t.same(resyncOutcome(reports[0]), resyncOutcome(reports[1]), "native and WASM reports agree");
  }
});

t.test("differencing VHDX sources, and targets a run does not change, are scanned natively (gathered from the chain's files, or read into memory): the WASM scanners' results, the model of the chain", { skip }, async (t) => {
  for (let round = 0; round < 6; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const gathered = round % 2 === 0;
      if (!gathered) setEnvFor(t, "VHDSYNC_NO_GATHER", "1");
      const { seed, prng, dir, target } = pairSetup(t);
      const kind = round % 3;
      const { child, chainFiles, content: bytes } = await vhdxChain(dir, prng, kind);
      const content = join(dir, "child.raw");
      writeFileSync(content, bytes);
      if (prng.int(3) !== 0) {
        copyFileSync(content, target);
        applyPattern(target, bytes.length, 4096, PATTERNS[prng.int(PATTERNS.length)], prng);
        const fd = openSync(target, "r+");
        writeSync(fd, prng.bytes(12288), 0, 12288, MEMORY_CHUNK_BYTES - 4096); // a run differing across a chunk's edge
        closeSync(fd);
      } else writeRandomImage(target, bytes.length, prng, 65536);
      const blockSizeBytes = [4096, 65536, MIB, 8 * MIB][prng.int(4)];
      const workers = prng.int(2) === 0 ? 2 : 1;
      const algo = DIGESTS[prng.int(DIGESTS.length)];
      const context = `seed ${seed}, chain ${kind}, ${blockSizeBytes}-byte blocks, ${workers} threads, ${gathered ? "gathered" : "in memory"}, ${algo}`;
      await chainScansAgree(t, { dir, child, chainFiles, content, target, blockSizeBytes, workers, algo, context });
    });
  }
});

t.test("chunksOf and joinChanges: chunks cut at their size from the start, changes joined across their edges", async (t) => {
  // Spans and chunks' spans are (from, to) pairs in a Float64Array.
  const pairs = (list: Array<[number, number]>) => Float64Array.from(list.flat());
  const cut = (list: Array<[number, number]>, start: number, end: number, bytes: number, all?: boolean) =>
    chunksOf(pairs(list), start, end, bytes, all).map((chunk) => ({ ...chunk, spans: Array.from({ length: chunk.spans.length / 2 }, (_, i) => [chunk.spans[2 * i], chunk.spans[2 * i + 1]]) }));
  t.same(cut([[0, 10], [20, 45], [60, 61], [95, 100]], 0, 100, 30), [
    { start: 0, end: 30, spans: [[0, 10], [20, 30]] },
    { start: 30, end: 60, spans: [[30, 45]] },
    { start: 60, end: 90, spans: [[60, 61]] },
    { start: 90, end: 100, spans: [[95, 100]] },
  ]);
  t.same(cut([[5, 6]], 0, 90, 30, true).map((chunk) => chunk.spans.length), [1, 0, 0], "all chunks when asked");
  t.same(cut([[5, 6]], 0, 90, 30).length, 1, "else only those with spans");
  t.same(cut([[0, 100]], 0, 100, 40).map((chunk) => chunk.spans), [[[0, 40]], [[40, 80]], [[80, 100]]], "a span across chunks is cut");
  const joined = joinChanges([new Float64Array([0, 10, 0, 20, 10, 1]), new Float64Array([30, 5, 1, 40, 2, 0]), new Float64Array(0), new Float64Array([42, 3, 1])]);
  t.same([...joined], [0, 10, 0, 20, 15, 1, 40, 2, 0, 42, 3, 1], "adjacent changes of one kind become one; of two kinds, not");
});

t.test("VHDX sources (qemu-img made, dynamic and fixed): native and WASM compares agree", { skip }, async (t) => {
  const { seed, prng, dir, source: raw, target } = pairSetup(t);
  const size = 9 * 1024 * 1024 + 3 * 4096;
  writeRandomImage(raw, size, prng, 512 * 1024);
  for (const [subformat, blockSizeBytes] of [["dynamic", 4096], ["fixed", 2 * 1024 * 1024]] as const) {
    const source = join(dir, `${subformat}.vhdx`);
    const made = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "-o", `subformat=${subformat},block_size=1M`, raw, source], { encoding: "utf8" });
    t.equal(made.status, 0, made.stderr);
    writeRandomImage(target, size, prng, 256 * 1024);
    const context = `seed ${seed}, ${subformat}, ${blockSizeBytes}-byte blocks`;
    const reports = [];
    for (const scan of [undefined, "1"]) {
      const copyTarget = join(dir, `t-${scan ?? "native"}.img`);
      copyFileSync(target, copyTarget);
      reports.push(await withScanEnv(scan, () => resync(source, copyTarget, { blockSizeBytes, workers: 2 })));
      t.equal(fileSha(copyTarget), fileSha(raw), `target equals the VHDX's content (${reports.at(-1)!.scanner}, ${context})`);
    }
    t.equal(reports[0].scanner, "native", `the native scanner ran (${context})`);
    t.same(resyncOutcome(reports[0]), resyncOutcome(reports[1]), `reports agree (${context})`);
    t.equal(reports[0].blocksChanged, differingBlocks(raw, target, blockSizeBytes), `blocksChanged = the oracle's (${context})`);
  }
});

const FIXTURE = new URL("../../shared/fixtures/windows-dynamic-512M.vhd.gz", import.meta.url);

t.test("the Windows dynamic fixture (blocks out of BAT order) against its raw content", { skip: skip || (!existsSync(FIXTURE) && "shared fixtures not found") }, async (t) => {
  const { prng, dir } = pairSetup(t);
  const vhd = join(dir, "windows.vhd");
  writeFileSync(vhd, gunzipSync(readFileSync(FIXTURE)));
  const raw = join(dir, "windows.raw");
  await copy(vhd, raw);
  t.equal(fileSha(raw), "c461afded0b54cc1cfb5441e08f4d7f9d699d2eff7d9526d1cf6ad227da26683", "the published content digest");
  const changed = join(dir, "changed.raw");
  copyFileSync(raw, changed);
  applyPattern(changed, 512 * 1024 * 1024, 65536, "mixed", prng);
  const reports = [];
  for (const scan of [undefined, "1"]) {
    const target = join(dir, `t-${scan ?? "native"}.raw`);
    copyFileSync(changed, target);
    reports.push(await withScanEnv(scan, () => resync(vhd, target, { blockSizeBytes: 65536 })));
    t.equal(fileSha(target), fileSha(raw), `the target holds the fixture's content (${reports.at(-1)!.scanner})`);
  }
  t.equal(reports[0].scanner, "native");
  t.same(resyncOutcome(reports[0]), resyncOutcome(reports[1]), "native and WASM reports agree");
  t.equal(reports[0].blocksChanged, differingBlocks(raw, changed, 65536));
});

t.test("copy into a new target: native (raw, dynamic VHD and VHDX sources) and WASM copies agree", { skip }, async (t) => {
  for (let round = 0; round < 3; round++) {
    await t.test(`round ${round}`, async (t: Test) => {
      const { seed, prng, dir, source: raw } = pairSetup(t);
      const size = (3 + prng.int(12)) * 1024 * 1024 + [0, prng.int(2048) * 512][round % 2];
      writeRandomImage(raw, size, prng, [4096, 65536, 512 * 1024][round]);
      const vhdBlock = [512 * 1024, 2 * 1024 * 1024][prng.int(2)];
      const vhd = join(dir, "source.vhd");
      await dynamicVhdOf(raw, vhd, vhdBlock);
      const vhdx = join(dir, "source.vhdx");
      const made = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=1M", raw, vhdx], { encoding: "utf8" });
      t.equal(made.status, 0, made.stderr);
      const blockSizeBytes = [4096, 65536, 512 * 1024][prng.int(3)];
      const holes = sparseUnsupportedReason(dir);
      for (const source of [raw, vhd, vhdx]) {
        const context = `seed ${seed}, ${source.split("/").pop()}, VHD blocks ${vhdBlock}, ${blockSizeBytes}-byte blocks, ${size} bytes`;
        const [nativeTarget, wasmTarget] = [join(dir, "copy-native.raw"), join(dir, "copy-wasm.raw")];
        const native = await copy(source, nativeTarget, { blockSizeBytes, workers: 2 });
        const wasm = await withScanEnv("1", () => copy(source, wasmTarget, { blockSizeBytes, workers: 2 }));
        t.same([native.scanner, wasm.scanner], ["native", "wasm"], `which scanner copied (${context})`);
        t.equal(fileSha(nativeTarget), fileSha(raw), `native: the copy holds the content (${context})`);
        t.equal(fileSha(wasmTarget), fileSha(raw), `WASM: the copy holds the content (${context})`);
        const counts = (report: typeof native) => [report.bytesWritten, report.bytesZeroed, report.blocksZero, report.bytesRead, report.blocksTotal, report.blocksWritten, report.blocksCompared, report.blocksUnallocated];
        t.same(counts(native), counts(wasm), `bytes written and zero blocks agree (${context})`);
        t.equal(native.blocksZero, zeroBlocks(raw, blockSizeBytes), `blocksZero = the oracle's (${context})`);
        t.equal(native.blocksWritten, Math.ceil(size / blockSizeBytes) - native.blocksZero, `blocksWritten: the blocks that are not zero (${context})`);
        t.ok(native.bytesWritten <= native.blocksWritten * blockSizeBytes, `bytes written ≤ blocks written × block size (${context})`);
        if (!holes) t.ok(statSync(nativeTarget).blocks * 512 <= native.bytesWritten + 1024 * 1024, `zero blocks stay holes in the copy (${context})`);
        for (const path of [nativeTarget, wasmTarget]) unlinkSync(path);
      }
      // An existing target is rewritten whole by the WASM copy (zero ranges punched too).
      const existing = join(dir, "existing.raw");
      writeRandomImage(existing, size, prng, 65536);
      const over = await copy(vhd, existing, { workers: 2 });
      t.equal(over.scanner, "wasm", "an existing target is copied over by the WASM scanners");
      t.equal(fileSha(existing), fileSha(raw), "and holds the content");
    });
  }
});

t.test("blocks larger than a window are zero only when every part is (both scanners)", async (t) => {
  const { dir, source, target } = pairSetup(t);
  const block = 8 * 1024 * 1024;
  const size = 3 * block + 12345;
  const fd = openSync(source, "w");
  const data = new Uint8Array(4096).fill(0x5a);
  writeSync(fd, data, 0, data.length, block - 4096); // block 0: zeros, then data at its end
  writeSync(fd, new Uint8Array(65536), 0, 65536, block); // block 1: allocated zeros only
  writeSync(fd, data, 0, data.length, 2 * block + 4 * 1024 * 1024); // block 2: data in its second half
  writeSync(fd, new Uint8Array(1), 0, 1, size - 1); // block 3 (partial): zeros to the end
  closeSync(fd);
  writeRandomImage(target, size, pairSetup(t).prng, 1024 * 1024);
  for (const scan of [undefined, "1"]) {
    for (const workers of [1, 2]) {
      const report = await withScanEnv(scan, () => resync(source, target, { blockSizeBytes: block, workers, dryRun: true }));
      const what = `${report.scanner}, ${workers} threads`;
      t.equal(report.blocksZero, zeroBlocks(source, block), `blocksZero (${what})`);
      t.equal(report.blocksZero, 2, `blocks 1 and 3 (${what})`);
    }
  }
  const copyTarget = join(dir, "copy.img");
  copyFileSync(target, copyTarget);
  await resync(source, copyTarget, { blockSizeBytes: block });
  t.equal(fileSha(copyTarget), fileSha(source), "resync with 8 MiB blocks makes the target equal");
});

t.test("compareSegment: arguments, a range past the end, a failed write", { skip }, async (t) => {
  const { dir, source, target, sourceFd, targetFd } = openRandomPair(t);
  const request = { sourceFd, targetFd, blockSizeBytes: 4096, unitBytes: 4096, startBytes: 0, lengthBytes: 1024 * 1024, ranges: [[0, 1024 * 1024]] as Array<[number, number]>, write: false };
  const found = await compareSegment(request);
  t.equal(found.blocksCompared, 256);
  t.equal(found.blocksChanged, differingBlocks(source, target, 4096));
  t.equal(found.bytesWritten, 0, "nothing written without write");
  await t.rejects(compareSegment({ ...request, unitBytes: 3000 }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "unit not dividing the block");
  await t.rejects(compareSegment({ ...request, ranges: [[4096, 8192], [0, 4096]] }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "ranges out of order");
  await t.rejects(compareSegment({ ...request, ranges: [[100, 8192]] }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "range not unit-aligned");
  await t.rejects(compareSegment({ ...request, lengthBytes: 2 * 1024 * 1024, ranges: [[0, 2 * 1024 * 1024]] }), { code: "VHDSYNC_TRUNCATED" }, "a range past the end of the files is refused, not faulted on");
  await t.rejects(compareSegment({ ...request, write: true }), { details: { syscall: "pwrite" } }, "a write to a read-only descriptor fails with its errno");
  t.equal(fstatSync(targetFd).size, 1024 * 1024);
  // A descriptor that cannot be read: pread's error, or mmap's with VHDSYNC_SCAN_MMAP=1.
  const writeOnly = openSync(source, "r+");
  const unreadable = openSync(source, "a");
  t.teardown(() => [writeOnly, unreadable].forEach((fd) => closeSync(fd)));
  await t.rejects(compareSegment({ ...request, sourceFd: unreadable }), { details: { syscall: "pread", errno: "EBADF" } }, "reading a write-only descriptor fails with pread's errno");
  await t.rejects(withEnv("VHDSYNC_SCAN_MMAP", "1", () => compareSegment({ ...request, sourceFd: unreadable })), { details: { syscall: "mmap" } }, "mapping it fails with mmap's");
  t.same(await withEnv("VHDSYNC_SCAN_MMAP", "1", () => compareSegment({ ...request, sourceFd: writeOnly })), found, "mapped pages give the same compare");
  t.throws(() => addon!.compareSegment(sourceFd, targetFd, 4096, 4096, 0, 4096, new Float64Array([0, 4096, 0, 0]).buffer, 1, 8, new Float64Array(3).buffer), { code: "VHDSYNC_INVALID_ARGUMENT" }, "an unknown mode bit is refused");
  t.ok(dir);
});

t.test("job gates: gated jobs give the same results, a closed gate or a bad capacity is refused", { skip }, async (t) => {
  const { sourceFd, targetFd } = openRandomPair(t);
  const segment = 256 * 1024;
  const request = (index: number, gate?: number) => ({ sourceFd, targetFd, blockSizeBytes: 4096, unitBytes: 4096, startBytes: index * segment, lengthBytes: segment, ranges: [[index * segment, (index + 1) * segment]] as Array<[number, number]>, write: false, gate });
  const counts = (outcomes: Array<{ blocksChanged: number; blocksNonZero: number; changesArray: Float64Array }>) => outcomes.map((o) => [o.blocksChanged, o.blocksNonZero, [...o.changesArray]]);
  const ungated = await Promise.all([0, 1, 2, 3].map((index) => compareSegment(request(index))));
  for (const capacity of [1, 2]) {
    const gate = openJobGate(capacity);
    t.type(gate, "number", "the addon opens gates");
    // Eight jobs at once on libuv's four threads: at most `capacity` run, the rest wait at the gate.
    const gated = await Promise.all([0, 1, 2, 3, 0, 1, 2, 3].map((index) => compareSegment(request(index, gate))));
    t.same(counts(gated), counts([...ungated, ...ungated]), `capacity ${capacity}: every gated job finished with the ungated results`);
    closeJobGate(gate!);
    await t.rejects(compareSegment(request(0, gate)), { code: "VHDSYNC_INVALID_ARGUMENT" }, "a closed gate is refused");
  }
  t.throws(() => openJobGate(0), { code: "VHDSYNC_INVALID_ARGUMENT" }, "capacity 0");
  t.throws(() => openJobGate(1025), { code: "VHDSYNC_INVALID_ARGUMENT" }, "capacity over 1024");
  t.throws(() => closeJobGate(123456789), { code: "VHDSYNC_INVALID_ARGUMENT" }, "an unknown gate");
});

t.test("jobs running at once: two per thread when the threads cover the cores, else one", async (t) => {
  t.equal(jobsRunningAtOnce(2, 2), 4, "the default on two cores: four jobs share them");
  t.equal(jobsRunningAtOnce(4, 2), 8);
  t.equal(jobsRunningAtOnce(1, 2), 1, "--workers 1 keeps one core busy");
  t.equal(jobsRunningAtOnce(8, 16), 8, "--workers 8 of 16 cores: eight");
});

t.test("segments unallocated on both sides are counted without a compare", { skip }, async (t) => {
  const { dir, prng, source } = pairSetup(t);
  const size = 100 * 1024 * 1024 + 4096 * 3;
  const [head, tail, changed] = [prng.bytes(65536), prng.bytes(8192), prng.bytes(4096)];
  // Data in the first and last 32 MiB segments only; segments 1 and 2 are holes on both sides
  // (written, not copied: a copy would fill the holes).
  const sparse = (path: string, first: Uint8Array) => {
    const fd = openSync(path, "w");
    writeSync(fd, head, 0, head.length, 1024 * 1024);
    writeSync(fd, first, 0, first.length, 1024 * 1024);
    writeSync(fd, tail, 0, tail.length, size - tail.length);
    closeSync(fd);
  };
  sparse(source, head.subarray(0, 4096));
  const reports = [];
  for (const scan of [undefined, "1"]) {
    const target = join(dir, `t-${scan ?? "native"}.img`);
    sparse(target, changed);
    reports.push(await withScanEnv(scan, () => resync(source, target, { workers: 2 })));
    t.equal(fileSha(target), fileSha(source), `target equals the source (${reports.at(-1)!.scanner})`);
  }
  t.same(resyncOutcome(reports[0]), resyncOutcome(reports[1]), "native and WASM reports agree");
  t.equal(reports[0].blocksChanged, 1);
  t.equal(reports[0].blocksZero, zeroBlocks(source, 4096));
  const holes = sparseUnsupportedReason(dir);
  if (holes) return;
  t.ok(reports[0].blocksUnallocated >= (64 * 1024 * 1024) / 4096, "the two empty segments count as unallocated");
  t.equal(reports[0].bytesRead, 2 * (65536 + 8192), "only the allocated data of both sides was read");
});

t.test("fragmented sparse files (maps taken on the libuv pool; close ranges read together): native and WASM results agree", { skip }, async (t) => {
  const { dir, prng, source, seed } = pairSetup(t);
  // 4 KiB of data every 8 KiB over 80 MiB: 2,560 extents per 32 MiB segment, far past the 64
  // after which SegmentMaps stops mapping on the main thread. The native jobs read the pieces
  // 4 KiB apart together (64 KiB apart when mapping: native/src/spans.rs).
  const size = 80 * 1024 * 1024;
  // The target: every 997th piece changed, and data in every 13th hole (zeros in the source).
  const fragmented = (path: string, changedEvery: number, filledEvery: number) => {
    const fd = openSync(path, "w");
    for (let offset = 0, i = 0; offset < size; offset += 8192, i++) {
      const data = new Prng(seed + i).bytes(4096);
      if (changedEvery > 0 && i % changedEvery === 0) data[prng.int(4096)] ^= 1;
      writeSync(fd, data, 0, 4096, offset);
      if (filledEvery > 0 && i % filledEvery === 0) writeSync(fd, new Prng(seed - i).bytes(4096), 0, 4096, offset + 4096);
    }
    closeSync(fd);
  };
  fragmented(source, 0, 0);
  const reports = [];
  for (const [scan, mapped] of [[undefined, undefined], [undefined, "1"], ["1", undefined]]) {
    const target = join(dir, `t-${scan ?? "native"}-${mapped ?? "read"}.img`);
    fragmented(target, 997, 13);
    reports.push(await withEnv("VHDSYNC_SCAN_MMAP", mapped, () => withScanEnv(scan, () => resync(source, target, { workers: 2 }))));
    t.equal(fileSha(target), fileSha(source), `target equals the source (${reports.at(-1)!.scanner}, ${mapped ? "mapped" : "read"}, seed ${seed})`);
  }
  t.same(reports.map((report) => report.scanner), ["native", "native", "wasm"]);
  t.same(resyncOutcome(reports[0]), resyncOutcome(reports[2]), "native and WASM reports agree");
  t.same(resyncOutcome(reports[1]), resyncOutcome(reports[2]), "native (mapped) and WASM reports agree");
  const pieces = size / 8192;
  t.equal(reports[0].blocksChanged, Math.ceil(pieces / 997) + Math.ceil(pieces / 13), "the changed pieces and the filled holes");
  t.equal(reports[0].bytesWritten, Math.ceil(pieces / 997) * 4096, "only the changed pieces are written (the filled holes are zeroed)");
  const digests = [];
  for (const scan of [undefined, "1"]) {
    const out = join(dir, `${scan ?? "native"}.digest`);
    await withScanEnv(scan, () => checksum(source, out, { workers: 2 }));
    digests.push(readFileSync(out).subarray(4096));
  }
  t.ok(Buffer.compare(digests[0], digests[1]) === 0, "native and WASM digest frames agree");
});
