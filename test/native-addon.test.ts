// The native addon called directly (skipped with the reason when it is not loaded, e.g. under
// VHDSYNC_NO_NATIVE=1): exact extents of sparse files, hole punching, zero ranges, reflink
// and copy_file_range errors/results, fadvise/fdatasync, sync and async forms.
import t from "tap";
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { addonLoadState, nativeAddon } from "../dist/io/native-addon.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { UNIT_BYTES, clipExtents, layoutExtents, randomLayout, sparseUnsupportedReason, writeSparseFile } from "./helpers/native-sparse.js";

const addon = nativeAddon();
const skip = addon ? false : `native addon not loaded: ${addonLoadState().reason}`;
const seed = testSeed();

function readAt(fd: number, offset: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  readSync(fd, buffer, 0, length, offset);
  return buffer;
}

t.test("extents of random sparse files are exact, whole and clipped, sync and async", { skip }, async (t) => {
  const dir = tempDir(t);
  const noHoles = sparseUnsupportedReason(dir);
  if (noHoles) return t.plan(0, noHoles);
  const prng = new Prng(seed);
  for (let round = 0; round < 8; round++) {
    const layout = randomLayout(prng, 8 + prng.int(120));
    const path = join(dir, `sparse-${round}.img`);
    writeSparseFile(path, layout, prng);
    const expected = layoutExtents(layout);
    const fd = openSync(path, "r");
    try {
      const size = layout.length * UNIT_BYTES;
      t.same(addon!.extents(fd, 0, size), expected, `seed ${seed} round ${round}: whole file`);
      t.same(await addon!.extentsAsync(fd, 0, size), expected, `seed ${seed} round ${round}: async`);
      t.same(addon!.extents(fd, 0, size * 4), expected, `seed ${seed} round ${round}: range past the end`);
      const offset = prng.int(size);
      const length = prng.int(size - offset + 1);
      t.same(addon!.extents(fd, offset, length), clipExtents(expected, offset, length), `seed ${seed} round ${round}: ${offset}+${length}`);
      t.same(addon!.extents(fd, offset, 0), [], "empty range");
    } finally {
      closeSync(fd);
    }
  }
});

t.test("extents restores the file position", { skip }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "position.img");
  writeSparseFile(path, [false, true, false, true], new Prng(seed));
  const fd = openSync(path, "r");
  t.teardown(() => closeSync(fd));
  readSync(fd, Buffer.alloc(100), 0, 100, null); // position 100
  addon!.extents(fd, 0, 4 * UNIT_BYTES);
  const next = Buffer.alloc(1);
  readSync(fd, next, 0, 1, null);
  t.equal(next[0], 0, "still inside the leading hole, at byte 100");
  t.same(readAt(fd, 100, 1), next, "the non-positional read continued at byte 100");
});

t.test("punchHole lowers stat blocks, reads back zeros and keeps the size", { skip }, async (t) => {
  const dir = tempDir(t);
  const noHoles = sparseUnsupportedReason(dir);
  if (noHoles) return t.plan(0, noHoles);
  const path = join(dir, "punch.img");
  const layout = Array.from({ length: 16 }, () => true);
  writeSparseFile(path, layout, new Prng(seed));
  const fd = openSync(path, "r+");
  t.teardown(() => closeSync(fd));
  const before = fstatSync(fd);
  const original = readAt(fd, 0, 16 * UNIT_BYTES);
  await addon!.punchHoleAsync(fd, 4 * UNIT_BYTES, 4 * UNIT_BYTES);
  addon!.punchHole(fd, 3 * UNIT_BYTES + 100, 1000); // unaligned: zeroes bytes, may free nothing
  const after = fstatSync(fd);
  t.equal(after.size, before.size, "size kept");
  t.ok(before.blocks - after.blocks >= (4 * UNIT_BYTES) / 512, `blocks ${before.blocks} → ${after.blocks}`);
  const content = readAt(fd, 0, 16 * UNIT_BYTES);
  const expected = Buffer.from(original);
  expected.fill(0, 4 * UNIT_BYTES, 8 * UNIT_BYTES);
  expected.fill(0, 3 * UNIT_BYTES + 100, 3 * UNIT_BYTES + 1100);
  t.ok(content.equals(expected), "punched ranges read as zeros, the rest is intact");
  t.same(addon!.extents(fd, 0, 16 * UNIT_BYTES), [
    { offset: 0, length: 4 * UNIT_BYTES },
    { offset: 8 * UNIT_BYTES, length: 8 * UNIT_BYTES },
  ]);
});

t.test("zeroRange zeroes on filesystems that support it, else a coded EOPNOTSUPP", { skip }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "zero.img");
  writeSparseFile(path, [true, true, true], new Prng(seed));
  const fd = openSync(path, "r+");
  t.teardown(() => closeSync(fd));
  const expected = readAt(fd, 0, 3 * UNIT_BYTES).fill(0, UNIT_BYTES, 2 * UNIT_BYTES);
  try {
    await addon!.zeroRangeAsync(fd, UNIT_BYTES, UNIT_BYTES);
  } catch (error) {
    t.equal((error as { code: string }).code, "EOPNOTSUPP", "only an unsupported filesystem may refuse");
    return;
  }
  t.ok(readAt(fd, 0, 3 * UNIT_BYTES).equals(expected), "middle unit zeroed, the others intact");
  t.equal(fstatSync(fd).size, 3 * UNIT_BYTES);
});

t.test("copyRange copies in the kernel, loops to the end, stops at the end of the source", { skip }, async (t) => {
  const dir = tempDir(t);
  const src = join(dir, "src.img");
  writeSparseFile(src, [true, false, true, true], new Prng(seed));
  const srcFd = openSync(src, "r");
  const dstFd = openSync(join(dir, "dst.img"), "w+");
  t.teardown(() => (closeSync(srcFd), closeSync(dstFd)));
  t.equal(addon!.copyRange(srcFd, UNIT_BYTES, dstFd, 10, 2 * UNIT_BYTES), 2 * UNIT_BYTES);
  t.ok(readAt(dstFd, 10, 2 * UNIT_BYTES).equals(readAt(srcFd, UNIT_BYTES, 2 * UNIT_BYTES)), "bytes match");
  t.equal(await addon!.copyRangeAsync(srcFd, 3 * UNIT_BYTES, dstFd, 0, 10 * UNIT_BYTES), UNIT_BYTES, "short at end of source");
  t.equal(addon!.copyRange(srcFd, 100 * UNIT_BYTES, dstFd, 0, 5), 0, "nothing past the end");
});

t.test("reflink clones or fails with a coded error saying the filesystem cannot", { skip }, async (t) => {
  const dirs = [tempDir(t)];
  if (existsSync("/dev/shm")) {
    const shm = mkdtempSync("/dev/shm/vhdsync-test-");
    t.teardown(() => rmSync(shm, { recursive: true, force: true }));
    dirs.push(shm);
  }
  for (const dir of dirs) {
    const src = join(dir, "src.img");
    writeSparseFile(src, [true, true], new Prng(seed));
    const srcFd = openSync(src, "r");
    const dstFd = openSync(join(dir, "dst.img"), "w+");
    try {
      await addon!.reflinkAsync(srcFd, dstFd);
      t.ok(readFileSync(join(dir, "dst.img")).equals(readFileSync(src)), `${dir}: reflinked copy is identical`);
    } catch (error) {
      const { code, syscall, message } = error as { code: string; syscall: string; message: string };
      t.match(code, /^(EOPNOTSUPP|ENOTTY|EXDEV|EINVAL)$/, `${dir}: ${message}`);
      t.equal(syscall, "ioctl(FICLONE)");
      t.match(message, /FICLONE/);
    } finally {
      closeSync(srcFd);
      closeSync(dstFd);
    }
  }
});

t.test("fdatasync and fadvise succeed on a file; blockDeviceInfo refuses one with ENOTTY", { skip }, async (t) => {
  const dir = tempDir(t);
  const fd = openSync(join(dir, "f.img"), "w+");
  t.teardown(() => closeSync(fd));
  writeSync(fd, Buffer.alloc(4096, 7));
  addon!.fdatasync(fd);
  await addon!.fdatasyncAsync(fd);
  for (const advice of ["sequential", "dontneed", "willneed", "normal", "random", "noreuse"] as const) addon!.fadvise(fd, 0, 0, advice);
  await addon!.fadviseAsync(fd, 0, 4096, "dontneed");
  t.throws(() => addon!.blockDeviceInfo(fd), { code: "ENOTTY", syscall: "ioctl(BLKGETSIZE64)" });
  await t.rejects(addon!.blockDeviceInfoAsync(fd), { code: "ENOTTY" });
});
