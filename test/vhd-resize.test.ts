// Resizing VHDs (resync --resize, vhdsync resize, DiskImage.resize): fixed and dynamic disks
// grown and shrunk in seeded sequences, the BAT grown in place and moved behind the blocks,
// checked against qemu-img (content, size), vhdiinfo (size) and vhdsync check; differencing
// disks and disks others depend on refused; sizes a VHD cannot hold refused with nothing
// written; a resize stopped after any one of its writes leaves a disk that opens, at the old
// size or the new one, with its data; after a shrink, blocks qemu adds read zeros.
import t, { type Test } from "tap";
import fs, { copyFileSync, mkdirSync, readFileSync, readlinkSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { open as openHandle } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { createVhd } from "../dist/formats/vhd/index.js";
import { openImage } from "../dist/formats/open-image.js";
import { checkImage } from "../dist/formats/check.js";
import { resync } from "../dist/sync/resync.js";
import { resizeImage } from "../dist/sync/resize.js";
import { createSnapshot, deleteSnapshot, listSnapshots, mergeSnapshots } from "../dist/snapshot/index.js";
import type { DiskImage } from "../dist/formats/disk-image.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { fixChecksums, isZeroBuffer, qemuContent, qemuVirtualSize, readImage, run, sha256 } from "./helpers/vhd.js";
import { sealedCheckpoint } from "./helpers/checkpoint.js";

const KIB = 1024;
const MIB = 1024 * KIB;
type VhdType = "fixed" | "dynamic" | "differencing";
type Resizable = DiskImage & { resize(sizeBytes: number): Promise<void> };

/** The media size vhdiinfo reports. */
function vhdiSize(path: string): number {
  const match = /Media size\s*:.*\((\d+) bytes\)/.exec(run("vhdiinfo", [path]));
  if (!match) throw new Error(`vhdiinfo ${path}: no media size`);
  return Number(match[1]);
}

/** A random multiple of 512 in [min, max]. */
function sectors(prng: Prng, min: number, max: number): number {
  return min + prng.int((max - min) / 512 + 1) * 512;
}

/**
 * A VHD of `type` and `sizeBytes` holding random data in some places (a differencing disk: a
 * child of a filled dynamic parent of the same size, with writes of its own); returns its
 * content as read back.
 */
async function makeDisk(dir: string, name: string, type: VhdType, sizeBytes: number, blockSizeBytes: number, prng: Prng): Promise<{ path: string; content: Buffer }> {
  const path = join(dir, `${name}.vhd`);
  // Data in most of the disk (a shrink then a grow must not bring any of it back), then
  // scattered writes; a differencing child gets data in a random half, its parent shows elsewhere.
  const fill = async (image: DiskImage, dense: boolean) => {
    const start = dense ? 512 : Math.floor(prng.int(sizeBytes / 2) / 512) * 512;
    await image.write(prng.bytes(dense ? sizeBytes - 512 : Math.floor(sizeBytes / 1024) * 512), start);
    for (let i = 0; i < 6; i++) {
      const length = Math.min(sizeBytes, sectors(prng, 512, 96 * KIB));
      await image.write(prng.bytes(length), Math.floor(prng.int(sizeBytes - length + 1) / 512) * 512);
    }
  };
  if (type === "differencing") {
    const parentPath = join(dir, `${name}-parent.vhd`);
    const parent = await createVhd(parentPath, { type: "dynamic", sizeBytes, blockSizeBytes });
    await fill(parent, true);
    await parent.close();
    const child = await createVhd(path, { type, parentPath, blockSizeBytes });
    await fill(child, false);
    await child.close();
  } else {
    const image = await createVhd(path, { type, sizeBytes, blockSizeBytes: type === "fixed" ? undefined : blockSizeBytes });
    await fill(image, true);
    await image.close();
  }
  return { path, content: await contentOf(path) };
}

async function contentOf(path: string): Promise<Buffer> {
  const image = await openImage(path, { readOnly: true });
  try {
    return await readImage(image);
  } finally {
    await image.close();
  }
}

async function resizeFile(path: string, sizeBytes: number): Promise<void> {
  const image = (await openImage(path, { readOnly: false })) as Resizable;
  try {
    await image.resize(sizeBytes);
  } finally {
    await image.close();
  }
}

/**
 * What every reader says about `path`: the sizes agree, qemu-img's content equals ours (not
 * for differencing disks: qemu's vpc driver reads them as dynamic ones, without the parent),
 * the structure checks clean.
 */
async function checkReaders(t: Test, path: string, dir: string, sizeBytes: number, what: string, type: VhdType): Promise<Buffer> {
  const ours = await contentOf(path);
  t.equal(ours.length, sizeBytes, `${what}: vhdsync's size`);
  t.equal(qemuVirtualSize(path), sizeBytes, `${what}: qemu-img's size`);
  t.equal(vhdiSize(path), sizeBytes, `${what}: vhdiinfo's size`);
  if (type !== "differencing") t.ok(qemuContent(path, dir).equals(ours), `${what}: qemu-img reads what vhdsync reads`);
  const check = await checkImage(path);
  t.ok(check.ok, `${what}: vhdsync check clean ${JSON.stringify(check.problems)}`);
  return ours;
}

t.test("resize grows and shrinks fixed and dynamic VHDs; every reader agrees", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  let round = 0;
  for (const type of ["fixed", "dynamic"] as const) {
    // 4 KiB blocks make the BAT outgrow its room (it then moves behind the blocks); 64 KiB
    // blocks mostly grow it in place.
    for (const blockSizeBytes of type === "fixed" ? [0] : [4 * KIB, 64 * KIB]) {
      const first = sectors(prng, 64 * KIB, 2 * MIB);
      const { path, content } = await makeDisk(dir, `d${round++}`, type, first, blockSizeBytes, prng);
      let model = content;
      let size = first;
      for (let step = 0; step < 4; step++) {
        // Shrunk first: the grow after it must not bring back the data that was past the new end.
        const next = step % 2 === 1 ? sectors(prng, size + 512, 6 * MIB) : sectors(prng, 32 * KIB, size - 512);
        const what = `${type} block ${blockSizeBytes} ${size} -> ${next} (seed ${seed})`;
        await resizeFile(path, next);
        const ours = await checkReaders(t, path, dir, next, what, type);
        const kept = Math.min(size, next);
        t.ok(ours.subarray(0, kept).equals(model.subarray(0, kept)), `${what}: the content below the smaller size is kept`);
        t.ok(isZeroBuffer(ours.subarray(kept)), `${what}: the grown range reads zeros`);
        model = ours;
        size = next;
      }
    }
  }
});

t.test("resync --resize into VHD targets: the target equals the source (CLI and library)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  for (const type of ["fixed", "dynamic"] as const) {
    const { path: target } = await makeDisk(dir, `t-${type}`, type, 3 * MIB, 64 * KIB, prng);
    for (const [i, sourceSize] of [5 * MIB + 4096, 1 * MIB + 512, 7 * MIB].entries()) {
      const source = join(dir, `s-${type}-${i}.img`);
      writeFileSync(source, prng.bytes(sourceSize));
      const what = `${type} to ${sourceSize} (seed ${seed})`;
      if (i === 1) {
        const cli = runCli(["resync", source, target, "--resize", "--json"]);
        t.equal(cli.status, 0, cli.stderr);
        t.equal(JSON.parse(cli.stdout).resized, true, `${what}: the report says resized`);
      } else {
        const report = await resync(source, target, { resize: true, blockSizeBytes: 4096 });
        t.equal(report.resized, true, `${what}: the report says resized`);
      }
      const ours = await checkReaders(t, target, dir, sourceSize, what, type);
      t.ok(ours.equals(readFileSync(source)), `${what}: the target equals the source`);
    }
  }
});

t.test("differencing disks, and disks that differencing disks depend on, are not resized; snapshot operations refuse layers of other sizes", async (t) => {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const { path: child } = await makeDisk(dir, "child", "differencing", 2 * MIB, 64 * KIB, prng);
  const parent = join(dir, "child-parent.vhd");
  const source = join(tempDir(t), "s.raw");
  writeFileSync(source, prng.bytes(3 * MIB));
  const files = () => [child, parent].map((path) => sha256(readFileSync(path)));
  const before = files();
  await t.rejects(resizeFile(child, 3 * MIB), { code: "VHDSYNC_UNSUPPORTED", message: /its size follows its parent's/ }, "DiskImage.resize() of a differencing disk");
  await resizeFile(child, 2 * MIB); // its own size: nothing to do
  for (const [what, args] of [
    ["resize the child", ["resize", child, "3M"]],
    ["resync --resize into the child", ["resync", source, child, "--resize"]],
    ["resize the parent", ["resize", parent, "3M"]],
    ["resync --resize into the parent", ["resync", source, parent, "--resize"]],
  ] as const) {
    const refused = runCli([...args]);
    t.equal(refused.status, 3, `${what}: exit 3`);
    t.match(refused.stderr, /VHDSYNC_UNSUPPORTED: .*(follows its parent's|differencing disks depend on it|differencing disks depend on .*child\.vhd)/, what);
  }
  await t.rejects(resizeImage(parent, 3 * MIB), { code: "VHDSYNC_UNSUPPORTED", details: { dependents: [child] } });
  // Through a symlink in another directory, the parent's own directory is still searched.
  const elsewhere = join(dir, "elsewhere");
  mkdirSync(elsewhere);
  symlinkSync(parent, join(elsewhere, "link.vhd"));
  t.equal(runCli(["resize", join(elsewhere, "link.vhd"), "3M"]).status, 3, "resize through a symlink: refused");
  // A child need not be named *.vhd; a FIFO in the directory is passed over, not waited on.
  renameSync(child, join(dir, "child.img"));
  spawnSync("mkfifo", [join(dir, "pipe.vhd")]);
  const renamed = runCli(["resize", parent, "3M"], { timeout: 60_000 });
  t.equal(renamed.status, 3, `a child named child.img: refused (${renamed.signal ?? renamed.stderr.trim()})`);
  renameSync(join(dir, "child.img"), child);
  // Without --shrink too: the differencing refusal comes first (exit 3, not "add --shrink").
  const small = runCli(["resize", child, "1M"]);
  t.equal(small.status, 3, "a smaller size for a differencing disk: exit 3");
  t.match(small.stderr, /follows its parent's/);
  t.same(files(), before, "nothing written to either");

  // A snapshotted disk: the active disk is differencing, its snapshot a layer it depends on.
  const disk = join(dir, "disk.vhd");
  await (await createVhd(disk, { type: "dynamic", sizeBytes: MIB })).close();
  const { snapshot } = await createSnapshot(disk);
  t.equal(runCli(["resize", disk, "2M"]).status, 3, "the active disk is not resized");
  const layer = join(dir, snapshot.layer);
  t.equal(runCli(["resize", layer, "2M"]).status, 3, "nor its snapshot's layer");
  // A layer resized anyway, below the checks (an open image's resize()): delete and merge
  // refuse before they write anything, instead of stopping halfway.
  await resizeFile(layer, 2 * MIB);
  await t.rejects(deleteSnapshot(disk, snapshot.id), { code: "VHDSYNC_UNSUPPORTED", message: /every layer the disk's size/ });
  await t.rejects(mergeSnapshots(disk), { code: "VHDSYNC_UNSUPPORTED", message: /every layer the disk's size/ });
  t.notOk((await listSnapshots(disk)).pending, "no operation left pending");
});

t.test("sizes a VHD cannot hold are refused before anything is written", async (t) => {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const { path: dynamic } = await makeDisk(dir, "dyn", "dynamic", 1 * MIB, 4 * KIB, prng);
  const { path: fixed } = await makeDisk(dir, "fix", "fixed", 1 * MIB, 0, prng);
  const expectRefused = async (path: string, sizeBytes: number, pattern: RegExp) => {
    const before = readFileSync(path);
    await t.rejects(resizeFile(path, sizeBytes), { code: "VHDSYNC_UNSUPPORTED", message: pattern }, `${path} to ${sizeBytes}`);
    t.ok(readFileSync(path).equals(before), `${path} to ${sizeBytes}: nothing written`);
  };
  await expectRefused(dynamic, MIB + 100, /multiple of 512/);
  await expectRefused(fixed, MIB + 100, /multiple of 512/);
  await expectRefused(dynamic, 2041 * 1024 * MIB, /at most/);
  await expectRefused(fixed, 2 ** 47, /at most/);
  // 4 KiB blocks: 2 GiB would need 2^19 entries... 32 GiB needs 2^23, more than a BAT holds.
  await expectRefused(dynamic, 32 * 1024 * MIB, /more than a BAT holds/);

  // A raw source of an odd size into a VHD target: the CLI refuses with exit 3, nothing written.
  const source = join(dir, "odd.img");
  writeFileSync(source, prng.bytes(MIB + 100));
  const before = readFileSync(dynamic);
  const cli = runCli(["resync", source, dynamic, "--resize"]);
  t.equal(cli.status, 3, cli.stderr);
  t.match(cli.stderr, /^vhdsync: VHDSYNC_UNSUPPORTED: .*multiple of 512/m);
  t.ok(readFileSync(dynamic).equals(before), "the target is untouched");

  // A creator whose size rule takes the CHS geometry ("vpc "): only sizes it describes.
  const vpc = join(dir, "vpc.vhd");
  const image = await createVhd(vpc, { type: "dynamic", sizeBytes: 1 * MIB, blockSizeBytes: 4 * KIB, creatorApplication: "vpc " });
  await image.close();
  await expectRefused(vpc, 3 * MIB + 512, /CHS geometry/);
});

t.test("growing a fixed VHD whose size comes from its CHS geometry: the hidden tail and the old footer read as zeros", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  // A 10 MiB fixed disk relabelled as VirtualBox's: its size is now the geometry's, 10,479,616
  // bytes, and the 6 KiB of file before the footer are hidden (filled with 0xAB here).
  const path = join(dir, "vbox.vhd");
  const image = await createVhd(path, { type: "fixed", sizeBytes: 10 * MIB });
  await image.write(prng.bytes(10 * MIB), 0);
  await image.close();
  const file = readFileSync(path);
  const footerAt = file.length - 512;
  file.write("vbox", footerAt + 28, "latin1");
  fixChecksums(file, [footerAt]);
  const chsBytes = 10479616;
  file.fill(0xab, chsBytes, footerAt);
  writeFileSync(path, file);
  // libvhdi takes the footer's size whatever the creator; qemu, like vhdsync, the geometry's.
  const before = await contentOf(path);
  t.equal(before.length, chsBytes, "relabelled: vhdsync's size is the geometry's");
  t.equal(qemuVirtualSize(path), chsBytes, "relabelled: so is qemu-img's");
  // The next sizes the geometry describes: 310 and 400 cylinders of 4 heads and 17 sectors.
  for (const grown of [10792960, 13926400]) {
    const copy = join(dir, `grown-${grown}.vhd`);
    copyFileSync(path, copy);
    await resizeFile(copy, grown);
    const after = await checkReaders(t, copy, dir, grown, `seed ${seed}: grown to ${grown}`, "fixed");
    t.ok(after.subarray(0, chsBytes).equals(before), `grown to ${grown}: the data is unchanged`);
    t.ok(isZeroBuffer(after.subarray(chsBytes)), `grown to ${grown}: the grown range reads zeros (the first non-zero byte was at ${after.subarray(chsBytes).findIndex((byte) => byte !== 0)})`);
    t.equal(statSync(copy).size, grown + 512, `grown to ${grown}: the file ends with the new footer`);
  }
});

t.test("a dynamic disk whose last block is stored short, with the footer right after it, is not grown", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "short.vhd");
  const image = await createVhd(path, { type: "dynamic", sizeBytes: 64 * KIB + 1024, blockSizeBytes: 64 * KIB });
  await image.write(Buffer.alloc(1024, 7), 64 * KIB);
  await image.close();
  // Cut the last block's data to the 1024 bytes the disk reaches and put the footer after them.
  const file = readFileSync(path);
  const info = await openImage(path, { readOnly: true });
  const { tableOffset } = (await info.info()) as unknown as { tableOffset: number };
  await info.close();
  const blockStart = file.readUInt32BE(tableOffset + 4) * 512;
  const cut = Buffer.concat([file.subarray(0, blockStart + 512 + 1024), file.subarray(file.length - 512)]);
  writeFileSync(path, cut);
  t.ok((await checkImage(path)).ok, "the short block is accepted when read");
  const before = readFileSync(path);
  await t.rejects(resizeFile(path, 256 * KIB), { code: "VHDSYNC_UNSUPPORTED", message: /stored shorter than a block/ });
  t.ok(readFileSync(path).equals(before), "nothing written");
  await resizeFile(path, 64 * KIB);
  t.equal(qemuVirtualSize(path), 64 * KIB, "shrinking it works");
});

/**
 * Makes the image file's writes fail from the `failAt`-th on (0-based), as if the process had
 * died there: every write after it fails too. Counts the writes to `path` either way.
 */
async function failingWrites(path: string, failAt: number): Promise<{ writes: () => number; restore: () => void }> {
  const probe = await openHandle(path, "r");
  const handleProto = Object.getPrototypeOf(probe) as Record<string, (...args: unknown[]) => unknown>;
  await probe.close();
  const isTarget = (fd: number) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  };
  let writes = 0;
  const fail = () => {
    const error = new Error("EIO: injected") as NodeJS.ErrnoException;
    error.code = "EIO";
    return error;
  };
  const originals = { writeSync: fs.writeSync, write: handleProto.write, writev: handleProto.writev, truncate: handleProto.truncate };
  const counted = (fd: number) => isTarget(fd) && writes++ >= failAt;
  fs.writeSync = function (fd: number, ...rest: unknown[]) {
    if (counted(fd)) throw fail();
    return (originals.writeSync as (...args: unknown[]) => number)(fd, ...rest);
  } as typeof fs.writeSync;
  for (const name of ["write", "writev", "truncate"] as const) {
    handleProto[name] = function (this: { fd: number }, ...args: unknown[]) {
      if (counted(this.fd)) return Promise.reject(fail());
      return originals[name].apply(this, args);
    };
  }
  syncBuiltinESMExports();
  return {
    writes: () => writes,
    restore: () => {
      fs.writeSync = originals.writeSync;
      handleProto.write = originals.write;
      handleProto.writev = originals.writev;
      handleProto.truncate = originals.truncate;
      syncBuiltinESMExports();
    },
  };
}

t.test("a resize stopped after any of its writes leaves a disk that opens, at either size, with its data; a rerun finishes it", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const scenarios: { name: string; type: VhdType; from: number; to: number; blockSizeBytes: number; empty?: boolean }[] = [
    { name: "fixed grows", type: "fixed", from: 512 * KIB, to: 1 * MIB + 512, blockSizeBytes: 0 },
    { name: "fixed shrinks", type: "fixed", from: 1 * MIB, to: 300 * KIB, blockSizeBytes: 0 },
    { name: "dynamic grows, its BAT moves behind the blocks", type: "dynamic", from: 1 * MIB, to: 6 * MIB + 512, blockSizeBytes: 4 * KIB },
    { name: "dynamic grows, its BAT grows in place", type: "dynamic", from: 1 * MIB + 512, to: 3 * MIB, blockSizeBytes: 64 * KIB },
    { name: "empty dynamic grows, its footer moves back", type: "dynamic", from: 64 * KIB, to: 8 * MIB, blockSizeBytes: 4 * KIB, empty: true },
    { name: "dynamic shrinks", type: "dynamic", from: 2 * MIB, to: 700 * KIB + 512, blockSizeBytes: 64 * KIB },
  ];
  for (const scenario of scenarios) {
    const { type, from, to } = scenario;
    const template = scenario.empty
      ? await (async () => {
          const path = join(dir, "empty.vhd");
          await (await createVhd(path, { type: "dynamic", sizeBytes: from, blockSizeBytes: scenario.blockSizeBytes })).close();
          return { path, content: Buffer.alloc(from) };
        })()
      : await makeDisk(dir, scenario.name.replace(/\W+/g, "-"), type, from, scenario.blockSizeBytes, prng);
    const kept = Math.min(from, to);
    const path = join(dir, "work.vhd");
    // An uninterrupted resize, to count its writes.
    copyFileSync(template.path, path);
    const counter = await failingWrites(path, Infinity);
    try {
      await resizeFile(path, to);
    } finally {
      counter.restore();
    }
    const total = counter.writes();
    const cleanFileBytes = statSync(path).size;
    t.ok(total >= 2, `${scenario.name}: ${total} writes`);
    for (let failAt = 0; failAt < total; failAt++) {
      const what = `${scenario.name}, stopped at write ${failAt} of ${total} (seed ${seed})`;
      copyFileSync(template.path, path);
      const faults = await failingWrites(path, failAt);
      try {
        const image = (await openImage(path, { readOnly: false })) as Resizable;
        await t.rejects(image.resize(to), { code: "VHDSYNC_IO" }, `${what}: the resize fails`);
        await image.close().catch(() => undefined);
      } finally {
        faults.restore();
      }
      const content = await contentOf(path);
      t.ok(content.length === from || content.length === to, `${what}: at the old or the new size (${content.length})`);
      // Stopped between the footer copy and the footer, vhdsync check names the difference
      // (vhdsync reads the old size at the end, qemu the new one in the copy) until a rerun.
      const check = await checkImage(path);
      const copyAhead = check.problems.length === 1 && /footer copy at offset 0 differs/.test(check.problems[0].message) && content.length === from;
      t.ok(check.ok || copyAhead, `${what}: the disk checks clean ${JSON.stringify(check.problems)}`);
      t.ok(content.subarray(0, kept).equals(template.content.subarray(0, kept)), `${what}: the data below the smaller size is kept`);
      // Grown: past the old end reads zeros. The one exception, documented: a fixed disk grown
      // as far as its new footer holds the old footer's 512 bytes at the old end until a resync
      // rewrites them. (Shrunk: past the new end is given up.)
      const junk = type === "fixed" ? 512 : 0;
      if (content.length === to && to > from) t.ok(isZeroBuffer(content.subarray(from + junk)), `${what}: past the old end reads zeros`);
      await resizeFile(path, to);
      const finished = await checkReaders(t, path, dir, to, `${what}, run again`, type);
      // A shrink run again also finishes its last steps (the BAT cut, the file cut after what it holds).
      if (to < from) t.equal(statSync(path).size, cleanFileBytes, `${what}, run again: the file ends where an uninterrupted shrink leaves it`);
      t.ok(finished.subarray(0, kept).equals(template.content.subarray(0, kept)), `${what}, run again: the data is kept`);
    }
  }
});

t.test("vhdsync resize: grows raw and VHD images, shrinks only with --shrink, refuses what it cannot resize", async (t) => {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const sha = (path: string) => sha256(readFileSync(path));
  // A raw file: grown, its data kept, the rest zeros.
  const raw = join(dir, "r.raw");
  const rawData = Buffer.from(prng.bytes(MIB));
  writeFileSync(raw, rawData);
  const grown = runCli(["resize", raw, "3M", "--json"]);
  t.equal(grown.status, 0, grown.stderr);
  t.match(JSON.parse(grown.stdout), { ok: true, format: "raw", oldSizeBytes: MIB, sizeBytes: 3 * MIB, resized: true });
  t.match(runCli(["resize", raw, "4M"]).stdout, /^resized .*r\.raw \(raw\) from 3145728 to 4194304 bytes$/m, "the summary names the format once");
  const rawNow = readFileSync(raw);
  t.ok(rawNow.subarray(0, MIB).equals(rawData) && isZeroBuffer(rawNow.subarray(MIB)) && rawNow.length === 4 * MIB, "raw: data kept, the rest zeros");

  const { path: vhd, content } = await makeDisk(dir, "v", "dynamic", 2 * MIB, 64 * KIB, prng);
  const human = runCli(["resize", vhd, "5M"]);
  t.equal(human.status, 0, human.stderr);
  t.match(human.stdout, /^resized .*v\.vhd \(vhd dynamic\) from 2097152 to 5242880 bytes$/m);
  t.equal(qemuVirtualSize(vhd), 5 * MIB, "qemu-img sees the new size");
  // Shrinking needs --shrink; sizes the format cannot take are usage errors; nothing written.
  for (const [args, pattern] of [
    [[vhd, "1M"], /add --shrink/],
    [[vhd, "6000000"], /SIZE: .*multiple of 512/],
    [[vhd, "0"], /SIZE/],
    [[vhd, "ten"], /SIZE/],
  ] as const) {
    const before = sha(vhd);
    const refused = runCli(["resize", ...args]);
    t.equal(refused.status, 2, `${args.join(" ")}: exit 2`);
    t.match(refused.stderr, pattern);
    t.equal(sha(vhd), before, `${args.join(" ")}: nothing written`);
  }
  const same = runCli(["resize", vhd, "5M"]);
  t.match(same.stdout, /already 5242880 bytes/);
  const shrunk = runCli(["resize", vhd, "1M", "--shrink", "--json"]);
  t.equal(shrunk.status, 0, shrunk.stderr);
  const ours = await checkReaders(t, vhd, dir, MIB, "resize --shrink", "dynamic");
  t.ok(ours.equals(content.subarray(0, MIB)), "the data below the new size is kept");

  // What cannot be resized: a VHDX (read-only format), exit 3, nothing written.
  const vhdx = join(dir, "x.vhdx");
  run("qemu-img", ["create", "-q", "-f", "vhdx", vhdx, "4M"]);
  const before = sha(vhdx);
  const refused = runCli(["resize", vhdx, "8M"]);
  t.equal(refused.status, 3, refused.stderr);
  t.match(refused.stderr, /VHDSYNC_UNSUPPORTED/);
  t.equal(sha(vhdx), before, "the VHDX is untouched");

  // The library: arguments checked, a shrink refused without allowShrink, one writer at a time.
  await t.rejects(resizeImage(vhd, -1), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(resizeImage(vhd, 512), { code: "VHDSYNC_INVALID_ARGUMENT", details: { shrink: true } });
  const both = await Promise.allSettled([resizeImage(vhd, 2 * MIB), resizeImage(vhd, 3 * MIB)]);
  t.equal(both.filter((outcome) => outcome.status === "fulfilled").length, 1, "one of two resizes at once runs");
  t.match(both.find((outcome) => outcome.status === "rejected"), { reason: { code: "VHDSYNC_BUSY" } });
});

t.test("a checkpoint of a target resized since (a shrunk dynamic VHD keeps its file size) is not resumed from", async (t) => {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const source = join(dir, "s.raw");
  writeFileSync(source, prng.bytes(32 * MIB));
  const target = join(dir, "t.vhd");
  await (await createVhd(target, { type: "dynamic", sizeBytes: 32 * MIB })).close();
  // A run stopped after its first segment, its checkpoint made periodic (as kill -9 leaves it).
  const stop = new AbortController();
  await t.rejects(resync(source, target, { workers: 1, blockSizeBytes: MIB, signal: stop.signal, onProgress: () => stop.abort() }), { code: "VHDSYNC_INTERRUPTED" });
  const checkpointPath = `${target}.vhdsync-checkpoint`;
  const checkpoint = JSON.parse(readFileSync(checkpointPath, "utf8"));
  t.ok(checkpoint.nextBlock > 4, `the checkpoint marks ${checkpoint.nextBlock} MiB done`);
  writeFileSync(checkpointPath, JSON.stringify(sealedCheckpoint({ ...checkpoint, final: false })));
  await resizeImage(target, 4 * MIB, { allowShrink: true });
  const report = await resync(source, target, { resize: true, resume: true, blockSizeBytes: MIB });
  t.match(report.checkpointIgnored, /resized since the checkpoint/);
  t.equal(report.resumedFromBlock, 0, "started over");
  t.ok((await contentOf(target)).equals(readFileSync(source)), "the target equals the source");
});

t.test("after a shrink the file ends after what it holds: blocks qemu adds later read zeros, not stale bytes", async (t) => {
  const dir = tempDir(t);
  const content = async (path: string) => {
    const qemu = qemuContent(path, dir);
    t.ok((await contentOf(path)).equals(qemu), `${path}: vhdsync reads what qemu reads`);
    t.ok((await checkImage(path)).ok, `${path}: checks clean`);
    return qemu;
  };
  // The BAT moved behind the blocks by a grow, then cut by a shrink: its old tail was 0xFF,
  // where qemu put its next block's data.
  const moved = join(dir, "moved.vhd");
  const first = await createVhd(moved, { type: "dynamic", sizeBytes: 64 * KIB, blockSizeBytes: 4 * KIB });
  await first.write(Buffer.alloc(64 * KIB, 0x11), 0);
  await (first as Resizable).resize(4 * MIB);
  await (first as Resizable).resize(128 * KIB);
  await first.close();
  run("qemu-io", ["-f", "vpc", "-c", "write -P 0x22 65536 512", moved]);
  const afterMoved = await content(moved);
  t.ok(isZeroBuffer(afterMoved.subarray(64 * KIB + 512)), "qemu's new block reads zeros past its write");
  // Blocks given back and the footer left at the old end: qemu's new blocks covered the old footer.
  const shrunk = join(dir, "shrunk.vhd");
  const second = await createVhd(shrunk, { type: "dynamic", sizeBytes: 8 * MIB, blockSizeBytes: 2 * MIB });
  await second.write(Buffer.alloc(8 * MIB, 0x11), 0);
  await second.close();
  t.equal(runCli(["resize", shrunk, "2M", "--shrink"]).status, 0);
  const info = await openImage(shrunk, { readOnly: true });
  const { fileSize, tableOffset } = (await info.info()) as unknown as { fileSize: number; tableOffset: number };
  await info.close();
  const blockStart = readFileSync(shrunk).readUInt32BE(tableOffset) * 512;
  t.equal(fileSize, blockStart + 512 + 2 * MIB + 512, "the file ends with the footer right after its one block");
  t.equal(runCli(["resize", shrunk, "16M"]).status, 0);
  for (const at of [2, 4, 6, 8]) run("qemu-io", ["-f", "vpc", "-c", `write -P 0x22 ${at}M 512`, shrunk]);
  const afterShrunk = await content(shrunk);
  const expected = Buffer.alloc(16 * MIB);
  expected.fill(0x11, 0, 2 * MIB);
  for (const at of [2, 4, 6, 8]) expected.fill(0x22, at * MIB, at * MIB + 512);
  t.ok(afterShrunk.equals(expected), "only what was written reads as data");
});
