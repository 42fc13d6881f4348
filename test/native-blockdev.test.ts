// Block device geometry on a real loop device (losetup, root only; skipped with the reason
// elsewhere): the addon's ioctls (BLKGETSIZE64/BLKSSZGET/BLKPBSZGET) and the sysfs fallback
// agree with what losetup was asked for, and RawImage opens the device with that size; a
// resync onto a loop device (native compare and WASM scanners) leaves it equal to the source.
import t from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, constants as fsConstants, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from "node:fs";
import { acquireWriteLock } from "../dist/io/write-lock.js";
import { join } from "node:path";
import { RawImage } from "../dist/formats/raw.js";
import { blockDeviceInfo, nativeAddon, sysfsBlockDeviceInfo } from "../dist/io/native.js";
import { resync } from "../dist/sync/resync.js";
import { verify } from "../dist/sync/verify.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { writeRandomImage } from "./helpers/resync-images.js";
import { withEnv } from "./helpers/env.js";
import { tempDir } from "./helpers/tmp.js";
import { runCli } from "./helpers/cli.js";

const SIZE_BYTES = 24 * 1024 * 1024;

/** Attaches a loop device over a sparse file; returns its path or why that is impossible here. */
function attachLoop(t: { teardown: (fn: () => void) => void }, sectorSize: number): { device?: string; backing?: string; reason?: string } {
  if (process.getuid?.() !== 0) return { reason: "loop devices need root" };
  const backing = join(tempDir(t), `loop-${sectorSize}.img`);
  closeSync(openSync(backing, "w"));
  truncateSync(backing, SIZE_BYTES);
  const attach = spawnSync("losetup", ["--find", "--show", "--sector-size", String(sectorSize), backing], { encoding: "utf8" });
  if (attach.status !== 0) return { reason: `losetup failed here: ${(attach.stderr || attach.error?.message || "").trim()}` };
  const device = attach.stdout.trim();
  t.teardown(() => {
    spawnSync("losetup", ["--detach", device]);
  });
  return { device, backing };
}

for (const sectorSize of [512, 4096]) {
  t.test(`a loop device with ${sectorSize}-byte sectors reports its geometry`, async (t) => {
    const { device, reason } = attachLoop(t, sectorSize);
    if (!device) return t.plan(0, reason);
    const fd = openSync(device, "r");
    t.teardown(() => closeSync(fd));
    const sysfs = sysfsBlockDeviceInfo(device);
    t.same(sysfs && [sysfs.sizeBytes, sysfs.logicalSectorSize], [SIZE_BYTES, sectorSize], `sysfs fallback for ${device}`);
    const addon = nativeAddon();
    if (addon) {
      const native = addon.blockDeviceInfo(fd);
      t.same([native.sizeBytes, native.logicalSectorSize], [SIZE_BYTES, sectorSize], `ioctls on ${device}`);
      t.ok(native.physicalSectorSize >= native.logicalSectorSize, "physical ≥ logical sector size");
      t.same(await addon.blockDeviceInfoAsync(fd), native, "async form agrees");
      t.same(sysfs, native, "sysfs and ioctls agree");
    }
    t.same(blockDeviceInfo(fd, device)?.sizeBytes, SIZE_BYTES, "adapter (native or sysfs)");
    const image = await RawImage.open(device, true);
    t.teardown(() => image.close());
    t.equal(image.format, "block-device");
    t.equal(image.virtualSize, SIZE_BYTES);
    t.equal(image.logicalSectorSize, sectorSize);
    t.same(await image.allocationMap(), [{ offset: 0, length: SIZE_BYTES }], "block devices are fully allocated");
  });
}

t.test("resync and verify with a loop device as the target: native compare and WASM scanners agree", async (t) => {
  const { device, reason } = attachLoop(t, 512);
  if (!device) return t.plan(0, reason);
  const dir = tempDir(t);
  const prng = new Prng(testSeed());
  const source = join(dir, "source.img");
  writeRandomImage(source, SIZE_BYTES, prng, 1024 * 1024);
  const expected = readFileSync(source);
  for (const scan of [undefined, "1"]) {
    // Fill the device with other data, then resync the source onto it.
    const fd = openSync(device, "r+");
    writeSync(fd, prng.bytes(SIZE_BYTES));
    closeSync(fd);
    await withEnv("VHDSYNC_NO_NATIVE_SCAN", scan ?? process.env.VHDSYNC_NO_NATIVE_SCAN, async () => {
      const report = await resync(source, device, { workers: 2 });
      t.equal(report.scanner, nativeAddon() && !scan ? "native" : "wasm", `scanner (${report.scanner})`);
      t.ok(report.blocksChanged > 0, `blocks changed (${report.scanner})`);
      t.ok(readFileSync(device).equals(expected), `the device holds the source (${report.scanner})`);
      const check = await verify(source, device, { workers: 2 });
      t.equal(check.equal, true, `verify finds no difference afterwards (${report.scanner})`);
    });
  }
});

t.test("zero ranges of the source are zeroed by the device: a loop device's backing file gets holes", async (t) => {
  const { device, backing, reason } = attachLoop(t, 512);
  if (!device || !backing) return t.plan(0, reason);
  const dir = tempDir(t);
  const prng = new Prng(testSeed());
  // Data in every other MiB, zeros (holes) between.
  const source = join(dir, "half-zero.img");
  const fd = openSync(source, "w");
  truncateSync(source, SIZE_BYTES);
  for (let mib = 0; mib < SIZE_BYTES >> 20; mib += 2) writeSync(fd, prng.bytes(1 << 20), 0, 1 << 20, mib << 20);
  closeSync(fd);
  const expected = readFileSync(source);
  const zeroBytes = SIZE_BYTES / 2;
  const allocatedKib = () => Number(spawnSync("du", ["-k", backing], { encoding: "utf8" }).stdout.split(/\s/)[0]);
  for (const scan of [undefined, "1"]) {
    // Random data over the whole device, written through and flushed: the backing file is fully allocated.
    const device_fd = openSync(device, "r+");
    writeSync(device_fd, prng.bytes(SIZE_BYTES));
    fsyncSync(device_fd);
    closeSync(device_fd);
    t.ok(allocatedKib() >= SIZE_BYTES / 1024, "backing file fully allocated before");
    await withEnv("VHDSYNC_NO_NATIVE_SCAN", scan ?? process.env.VHDSYNC_NO_NATIVE_SCAN, async () => {
      const report = await resync(source, device, { workers: 2 });
      t.equal(report.bytesZeroed, zeroBytes, `the zero half is made zero (${report.scanner})`);
      t.ok(readFileSync(device).equals(expected), `the device holds the source (${report.scanner})`);
      spawnSync("sync");
      const after = allocatedKib();
      if (nativeAddon()) {
        // fallocate(PUNCH_HOLE) on the device: the loop driver punches its backing file.
        t.ok(after <= (SIZE_BYTES - zeroBytes) / 1024 + 1024, `zeroed by the device, not written: ${after} KiB allocated (${report.scanner})`);
      } else {
        t.ok(after >= SIZE_BYTES / 1024, `without the addon zeros are written: ${after} KiB allocated (${report.scanner})`);
      }
    });
  }
});

t.test("a block device that another program holds exclusively (as a mount does) is refused: VHDSYNC_BUSY, nothing written", async (t) => {
  const { device, reason } = attachLoop(t, 512);
  if (!device) return t.plan(0, reason);
  const dir = tempDir(t);
  const source = join(dir, "source.img");
  writeRandomImage(source, SIZE_BYTES, new Prng(testSeed()));
  const before = readFileSync(device);
  const claim = openSync(device, fsConstants.O_RDONLY | fsConstants.O_EXCL);
  try {
    await t.rejects(resync(source, device), { code: "VHDSYNC_BUSY", recoverable: true });
    t.ok(readFileSync(device).equals(before), "nothing written to the device");
    t.equal((await resync(source, device, { dryRun: true })).blocksChanged > 0, true, "a dry run, which writes nothing, still runs");
  } finally {
    closeSync(claim);
  }
  // A run writing the device through another node of it (same device number) holds its lock.
  const alias = join(dir, "alias");
  const [major, minor] = spawnSync("stat", ["-c", "%t %T", device], { encoding: "utf8" }).stdout.trim().split(" ").map((hex) => parseInt(hex, 16));
  t.equal(spawnSync("mknod", [alias, "b", String(major), String(minor)]).status, 0, "mknod");
  const lock = await acquireWriteLock(alias, "resync");
  try {
    await t.rejects(resync(source, device), { code: "VHDSYNC_BUSY", message: /another resync in this process/ }, "a device written through another of its nodes is refused");
  } finally {
    await lock.release();
  }
  t.ok(readFileSync(device).equals(before), "nothing written to the device");
  await resync(source, device);
  t.ok(readFileSync(device).equals(readFileSync(source)), "once released, the resync runs");
});

t.test("a loop device holding a dynamic VHD is a block device of its own bytes: info, check, hash and resync treat it as raw", async (t) => {
  const { device, backing, reason } = attachLoop(t, 512);
  if (!device) return t.plan(0, reason);
  const { createVhd } = await import("../dist/formats/vhd/index.js");
  const seed = testSeed();
  const prng = new Prng(seed);
  // A dynamic VHD small enough to fit, written onto the device from offset 0: its footer copy
  // at 0 is what the format sniffer sees (and it once made every command fail on the device).
  const vhdPath = join(tempDir(t), "d.vhd");
  const vhd = await createVhd(vhdPath, { type: "dynamic", sizeBytes: 4 * 1024 * 1024 });
  await vhd.write(prng.bytes(65536), 0);
  await vhd.close();
  const fd = openSync(device, "r+");
  writeSync(fd, readFileSync(vhdPath), 0, undefined, 0);
  fsyncSync(fd);
  closeSync(fd);
  const info = runCli(["info", device, "--json"]);
  t.equal(info.status, 0, info.stderr);
  t.match(JSON.parse(info.stdout), { format: "block-device", virtualSize: SIZE_BYTES });
  const check = runCli(["check", device, "--json"]);
  t.equal(check.status, 0, check.stderr);
  t.match(JSON.parse(check.stdout), { format: "block-device", ok: true });
  const hash = runCli(["hash", device, "--json"]);
  t.equal(hash.status, 0, hash.stderr);
  // The backing file's bytes, as xxhsum reads them (`vhdsync hash` of the file reads the VHD in it).
  const { hashFile, toHex } = await import("../dist/hash/index.js");
  t.equal(JSON.parse(hash.stdout).files[0].digest, toHex((await hashFile(backing!)).digest), "the digest of the device's bytes");
  const source = join(tempDir(t), "s.raw");
  writeRandomImage(source, SIZE_BYTES, prng);
  const run = runCli(["resync", source, device]);
  t.equal(run.status, 0, run.stderr);
  t.equal((await verify(source, device)).equal, true, `seed ${seed}: equal`);
});
