// copy() keeps holes; resync into VHD targets (fixed and dynamic) checked with qemu-img
// compare; a dynamic VHD source with few allocated blocks reads only those blocks.
import t from "tap";
import { spawnSync } from "node:child_process";
import { statSync, copyFileSync, openSync, ftruncateSync, writeSync, closeSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { copy } from "../dist/sync/copy.js";
import { resync } from "../dist/sync/resync.js";
import { createVhd } from "../dist/formats/vhd/index.js";
import { openImage } from "../dist/formats/open-image.js";
import { nativeStatus } from "../dist/io/native.js";
import { runCli } from "./helpers/cli.js";
import { withEnv } from "./helpers/env.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { applyPattern, fileSha, writeRandomImage, zeroBlocks } from "./helpers/resync-images.js";
import { sparseUnsupportedReason } from "./helpers/native-sparse.js";

function qemuSame(a: string, b: string /* a VHD */): boolean {
  // Fixed VHDs look like raw files to qemu's probe: name the formats.
  const result = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "vpc", a, b]);
  if (result.status !== 0 && result.status !== 1) throw new Error(`qemu-img compare failed: ${result.stderr}`);
  return result.status === 0;
}

t.test("copy: content equal, zero and unallocated ranges stay holes", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const source = join(dir, "s.img");
  const target = join(dir, "copy.img");
  writeRandomImage(source, 4 * 1024 * 1024, prng);
  const report = await copy(source, target, { workers: prng.int(2) * 2 });
  t.equal(report.created, true);
  t.equal(fileSha(target), fileSha(source), `seed ${seed}`);
  // The copy allocates the source's non-zero blocks only, give or take the filesystem's own
  // blocks (an extent-tree block: 32 KiB allowed, half of one 64 KiB zero or hole chunk). It
  // was compared with the source's allocation, which its zero chunks normally kept ahead, but
  // the source's delayed allocation could still leave its extent-tree block uncounted.
  const noHoles = nativeStatus().loaded ? sparseUnsupportedReason(dir) : "native addon absent";
  const dataBytes = 4 * 1024 * 1024 - zeroBlocks(source, 4096) * 4096;
  if (!noHoles) t.ok(statSync(target).blocks * 512 <= dataBytes + 32 * 1024, `zero blocks stay holes: ${statSync(target).blocks * 512} bytes allocated for ${dataBytes} of data (seed ${seed})`);
  else t.pass(`sparseness not checked: ${noHoles}`);
  // Copy over an existing, different image: same content afterwards.
  writeRandomImage(target, 4 * 1024 * 1024, prng);
  const cli = runCli(["copy", source, target, "--json"]);
  t.equal(cli.status, 0, cli.stderr);
  t.equal(fileSha(target), fileSha(source));
});

t.test("resync into VHD targets (fixed, dynamic): qemu-img compare agrees", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const size = 6 * 1024 * 1024;
  const source = join(dir, "s.img");
  writeRandomImage(source, size, prng);
  for (const type of ["dynamic", "fixed"] as const) {
    const target = join(dir, `t-${type}.vhd`);
    const vhd = await createVhd(target, { type, sizeBytes: size, blockSizeBytes: 512 * 1024 });
    await vhd.close();
    const first = await resync(source, target, { workers: prng.int(2) * 2 });
    t.ok(qemuSame(source, target), `${type}: equal after first resync (seed ${seed})`);
    t.ok(first.blocksChanged > 0);
    const changed = join(dir, "s2.img");
    copyFileSync(source, changed);
    applyPattern(changed, size, 65536, "mixed", prng);
    const second = await resync(changed, target, {});
    t.ok(qemuSame(changed, target), `${type}: equal after an incremental resync (seed ${seed})`);
    t.ok(second.bytesWritten + second.bytesZeroed <= second.blocksChanged * 65536);
    const check = runCli(["check", target]);
    t.equal(check.status, 0, `${type}: vhdsync check clean: ${check.stdout}`);
  }
});

t.test("a sparse VHD source and a sparse raw target: only blocks allocated on either side are read and compared", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const size = 64 * 1024 * 1024;
  const vhdBlock = 2 * 1024 * 1024;
  const block = 4096;
  const source = join(dir, "s.vhd");
  const vhd = await createVhd(source, { type: "dynamic", sizeBytes: size, blockSizeBytes: vhdBlock });
  const sourceBlocks = new Set<number>();
  while (sourceBlocks.size < 3) sourceBlocks.add(prng.int(size / vhdBlock));
  const data = Buffer.alloc(vhdBlock);
  for (const index of sourceBlocks) {
    for (let i = 0; i < data.length; i++) data[i] = prng.int(256);
    await vhd.write(data, index * vhdBlock);
  }
  await vhd.close();
  // The target: a hole with a few 4 KiB blocks written at random places (inside and outside the source's blocks).
  const target = join(dir, "t.img");
  const fd = openSync(target, "w");
  ftruncateSync(fd, size);
  for (let i = 0; i < 6; i++) writeSync(fd, Buffer.alloc(block, 1 + prng.int(255)), 0, block, prng.int(size / block) * block);
  closeSync(fd);
  // Expected work, from each side's own allocation map (holes are seen only where the file system reports them).
  const used = new Set<number>();
  let expectedRead = 0;
  for (const path of [source, target]) {
    const image = await openImage(path, { readOnly: true });
    for (const extent of await image.allocationMap(0, size)) {
      expectedRead += extent.length;
      for (let b = Math.floor(extent.offset / block); b < Math.ceil((extent.offset + extent.length) / block); b++) used.add(b);
    }
    await image.close();
  }
  const report = await resync(source, target, { workers: prng.int(2) * 2 });
  t.ok(qemuSame(target, source), `equal after resync (seed ${seed})`);
  t.equal(report.blocksCompared, used.size, `compared only blocks allocated on either side (seed ${seed})`);
  t.equal(report.blocksCompared + report.blocksUnallocated, size / block);
  t.equal(report.bytesRead, expectedRead, `read only allocated bytes (seed ${seed})`);
});

t.test("a resync that zeroes dynamic VHD blocks piece by piece gives them back (unallocated)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const MIB = 1024 * 1024;
  const vhdBlock = 2 * MIB;
  const size = 8 * vhdBlock;
  // The target: every block allocated, holding scattered 4 KiB pieces of data and zeros between them.
  const content = Buffer.alloc(size);
  for (let piece = 0; piece < size / 4096; piece++) if (prng.int(4) === 0) content.set(prng.bytes(4096), piece * 4096);
  // The source: the same, except three blocks that are now all zeros, and one that keeps a single piece.
  const emptied = new Set<number>();
  while (emptied.size < 4) emptied.add(prng.int(8));
  const [kept, ...zeroed] = [...emptied];
  const source = Buffer.from(content);
  for (const block of emptied) source.fill(0, block * vhdBlock, (block + 1) * vhdBlock);
  const keptPiece = kept * vhdBlock + prng.int(vhdBlock / 4096) * 4096;
  source.set(prng.bytes(4096), keptPiece);
  const sourcePath = join(dir, "s.img");
  writeFileSync(sourcePath, source);
  for (const how of ["library", "cli"] as const) {
    const target = join(dir, `t-${how}.vhd`);
    const vhd = await createVhd(target, { type: "dynamic", sizeBytes: size, blockSizeBytes: vhdBlock });
    await vhd.write(content, 0);
    await vhd.close();
    if (how === "library") {
      const report = await resync(sourcePath, target, { workers: prng.int(2) * 2 });
      t.ok(report.bytesZeroed > 0, "zeros were written piece by piece");
    } else {
      const cli = runCli(["resync", sourcePath, target, "--json"]);
      t.equal(cli.status, 0, cli.stderr);
    }
    t.ok(qemuSame(sourcePath, target), `${how}: equal after resync (seed ${seed})`);
    const image = await openImage(target, { readOnly: true });
    const layer = await image.allocationMap(0, size, "layer");
    await image.close();
    const allocatedBlocks = new Set(layer.flatMap(({ offset, length }) => Array.from({ length: length / vhdBlock }, (_, i) => offset / vhdBlock + i)));
    for (const block of zeroed) t.notOk(allocatedBlocks.has(block), `${how}: block ${block}, now all zeros, is unallocated (seed ${seed})`);
    t.ok(allocatedBlocks.has(kept), `${how}: block ${kept}, one piece of data left, stays allocated`);
    t.equal(allocatedBlocks.size, 8 - zeroed.length, `${how}: the other blocks stay allocated`);
    const check = runCli(["check", target]);
    t.equal(check.status, 0, `${how}: vhdsync check clean: ${check.stdout}`);
    t.match(spawnSync("vhdiinfo", [target], { encoding: "utf8" }).stdout, /Media size/, `${how}: vhdiinfo parses it`);
  }
});

t.test("resync with large blocks writes only the 4 KiB pieces that differ: a sparse target keeps its holes (both scanners)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const size = 24 * 1024 * 1024;
  const source = join(dir, "s.img");
  // A sparse source: scattered 4 KiB pieces of data, some zero pieces written as data.
  const fd = openSync(source, "w");
  ftruncateSync(fd, size);
  for (let i = 0; i < 120; i++) writeSync(fd, i % 10 === 0 ? new Uint8Array(4096) : prng.bytes(4096), 0, 4096, prng.int(size / 4096) * 4096);
  closeSync(fd);
  const noHoles = nativeStatus().loaded ? sparseUnsupportedReason(dir) : "native addon absent";
  for (const [blockSizeBytes, scan] of [[1024 * 1024, undefined], [64 * 1024 * 1024, undefined], [1024 * 1024, "1"]] as const) {
    const context = `seed ${seed}, ${blockSizeBytes}-byte blocks${scan ? ", WASM scanners" : ""}`;
    const target = join(dir, `t-${blockSizeBytes}-${scan ?? "native"}.img`);
    // A sparse target holding other data in a few places, where the source has data or zeros.
    const tfd = openSync(target, "w");
    ftruncateSync(tfd, size);
    for (let i = 0; i < 8; i++) writeSync(tfd, prng.bytes(4096), 0, 4096, prng.int(size / 4096) * 4096);
    closeSync(tfd);
    // The oracle: the 4 KiB pieces that differ, and those of them the source has data in.
    const [a, b] = [readFileSync(source), readFileSync(target)];
    let differingData = 0;
    for (let at = 0; at < size; at += 4096) {
      if (a.subarray(at, at + 4096).equals(b.subarray(at, at + 4096))) continue;
      if (a.subarray(at, at + 4096).some((byte) => byte !== 0)) differingData += 4096;
    }
    const report = await withEnv("VHDSYNC_NO_NATIVE_SCAN", scan ?? process.env.VHDSYNC_NO_NATIVE_SCAN, () => resync(source, target, { blockSizeBytes }));
    t.equal(fileSha(target), fileSha(source), `equal (${context})`);
    t.equal(report.bytesWritten, differingData, `bytes written: the differing pieces with data (${context})`);
    t.ok(report.bytesWritten <= report.blocksChanged * blockSizeBytes, `within the changed blocks (${context})`);
    if (!noHoles) t.ok(statSync(target).blocks * 512 <= differingData + 8 * 4096 + 256 * 1024, `the target stays sparse: ${statSync(target).blocks * 512} bytes allocated (${context})`);
  }
});

t.test("blocks a resync gives back read as zeros in the file, with or without the addon: a block qemu puts there later shows no old bytes", async (t) => {
  const dir = tempDir(t);
  const MIB = 1024 * 1024;
  const source = join(dir, "s.raw");
  const content = Buffer.alloc(8 * MIB, 0x11);
  content.fill(0, 4 * MIB);
  writeFileSync(source, content);
  for (const [how, env] of [["addon", {}], ["no addon", { VHDSYNC_NO_NATIVE: "1" }]] as const) {
    const target = join(dir, `t-${how.replace(" ", "-")}.vhd`);
    const vhd = await createVhd(target, { type: "dynamic", sizeBytes: 8 * MIB, blockSizeBytes: 2 * MIB });
    await vhd.write(Buffer.alloc(8 * MIB, 0x11), 0);
    await vhd.close();
    const run = runCli(["resync", source, target, "--json"], { env: { ...process.env, ...env } });
    t.equal(run.status, 0, run.stderr);
    // qemu allocates its next block right after the last allocated one: where block 2 was.
    t.equal(spawnSync("qemu-io", ["-f", "vpc", "-c", "write -P 0x22 4M 512", target]).status, 0);
    const expected = Buffer.from(content);
    expected.fill(0x22, 4 * MIB, 4 * MIB + 512);
    const out = join(dir, `out-${how.replace(" ", "-")}.raw`);
    t.equal(spawnSync("qemu-img", ["convert", "-f", "vpc", "-O", "raw", target, out]).status, 0);
    t.ok(readFileSync(out).equals(expected), `${how}: qemu's new block holds its write and zeros`);
  }
});
