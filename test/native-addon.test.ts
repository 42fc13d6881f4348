// The native addon called directly (skipped with the reason when it is not loaded, e.g. under
// VHDSYNC_NO_NATIVE=1): exact extents of sparse files, hole punching, zero ranges, reflink
// and copy_file_range errors/results, fadvise/fdatasync, sync and async forms.
import t, { type Test } from "tap";
import { closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { addonLoadState, nativeAddon } from "../dist/io/native-addon.js";
import { extentsOfPairs } from "../dist/io/extent-pairs.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { UNIT_BYTES, clipExtents, layoutExtents, randomLayout, sparseUnsupportedReason, writeSparseFile } from "./helpers/native-sparse.js";

const addon = nativeAddon();
const skip = addon ? false : `native addon not loaded: ${addonLoadState().reason}`;
const seed = testSeed();

/** The addon's extents (a Float64Array of offset, length pairs) as objects. */
function extentsOf(fd: number, offset: number, length: number) {
  const pairs = addon!.extents(fd, offset, length);
  if (!(pairs instanceof Float64Array) || pairs.length % 2 !== 0) throw new Error(`extents() gave ${String(pairs)}, not (offset, length) pairs`);
  return extentsOfPairs(pairs);
}

/** What nextData(fd, offset) must answer given the file's extents: the first data at or after `offset`, or -1. */
function nextDataIn(extents: Array<{ offset: number; length: number }>, offset: number): number {
  const found = extents.find((extent) => extent.offset + extent.length > offset);
  return found ? Math.max(found.offset, offset) : -1;
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  readSync(fd, buffer, 0, length, offset);
  return buffer;
}

/** A temporary directory for the test, or undefined (the test planned empty, with the reason) where its filesystem keeps no holes. */
function sparseDir(t: Test): string | undefined {
  const dir = tempDir(t);
  const noHoles = sparseUnsupportedReason(dir);
  if (!noHoles) return dir;
  t.plan(0, noHoles);
  return undefined;
}

/** The extents methods to test: the addon's choice (FIEMAP on ext4 and XFS) and SEEK_DATA/SEEK_HOLE forced. */
const METHODS = [undefined, "lseek"] as const;

/** Runs `body` with VHDSYNC_EXTENTS set to `method` (unset for undefined), which the addon reads on each call. */
async function withMethod<T>(method: string | undefined, body: () => T | Promise<T>): Promise<T> {
  const saved = process.env.VHDSYNC_EXTENTS;
  if (method === undefined) delete process.env.VHDSYNC_EXTENTS;
  else process.env.VHDSYNC_EXTENTS = method;
  try {
    return await body();
  } finally {
    if (saved === undefined) delete process.env.VHDSYNC_EXTENTS;
    else process.env.VHDSYNC_EXTENTS = saved;
  }
}

/** Whether the addon maps files in `dir` with FIEMAP when left to choose: ext4 and XFS. */
function fiemapExpected(dir: string): boolean {
  return [0xef53, 0x58465342].includes(Number(statfsSync(dir).type));
}

t.test("extents of random sparse files are exact, whole and clipped, sync and async, by either method", { skip }, async (t) => {
  const dir = sparseDir(t);
  if (!dir) return;
  const prng = new Prng(seed);
  for (let round = 0; round < 8; round++) {
    const layout = randomLayout(prng, 8 + prng.int(120));
    const path = join(dir, `sparse-${round}.img`);
    writeSparseFile(path, layout, prng);
    const expected = layoutExtents(layout);
    const fd = openSync(path, "r");
    try {
      const size = layout.length * UNIT_BYTES;
      const offset = prng.int(size);
      const length = prng.int(size - offset + 1);
      for (const method of METHODS) {
        await withMethod(method, async () => {
          const label = `seed ${seed} round ${round} ${method ?? "default"}`;
          t.equal(addon!.extentsMethod(fd), method ?? (fiemapExpected(dir) ? "fiemap" : "lseek"), `${label}: method`);
          t.same(extentsOf(fd, 0, size), expected, `${label}: whole file`);
          t.same(extentsOfPairs(await addon!.extentsAsync(fd, 0, size)), expected, `${label}: async`);
          t.same(extentsOf(fd, 0, size * 4), expected, `${label}: range past the end`);
          t.same(extentsOf(fd, offset, length), clipExtents(expected, offset, length), `${label}: ${offset}+${length}`);
          t.same(extentsOf(fd, offset, 0), [], `${label}: empty range`);
        });
      }
    } finally {
      closeSync(fd);
    }
  }
});

const PAGE_BYTES = 4096;

/** Byte ranges of `fd`'s first `size` bytes that hold a non-zero byte, in 4 KiB pages, coalesced. */
function nonZeroPages(fd: number, size: number): Array<{ offset: number; length: number }> {
  const page = Buffer.alloc(PAGE_BYTES);
  const zero = Buffer.alloc(PAGE_BYTES);
  const found: Array<{ offset: number; length: number }> = [];
  for (let offset = 0; offset < size; offset += PAGE_BYTES) {
    readSync(fd, page, 0, PAGE_BYTES, offset);
    if (page.equals(zero)) continue;
    const last = found[found.length - 1];
    if (last && last.offset + last.length === offset) last.length += PAGE_BYTES;
    else found.push({ offset, length: PAGE_BYTES });
  }
  return found;
}

/** Whether every range of `inner` lies inside one range of `outer` (both sorted). */
function covered(inner: Array<{ offset: number; length: number }>, outer: Array<{ offset: number; length: number }>): boolean {
  return inner.every((range) => outer.some((extent) => extent.offset <= range.offset && range.offset + range.length <= extent.offset + extent.length));
}

t.test("FIEMAP and SEEK_DATA/SEEK_HOLE agree on fragmented, dirty, flushed and unwritten ranges", { skip }, async (t) => {
  const dir = sparseDir(t);
  if (!dir) return;
  const prng = new Prng(seed);
  for (let round = 0; round < 3; round++) {
    // 4 KiB pieces, ~1,400 extents: FIEMAP answers 512 per call, so several calls per map.
    const pages = 2048 + prng.int(2048);
    const size = pages * PAGE_BYTES;
    const path = join(dir, `fragmented-${round}.img`);
    const fd = openSync(path, "w+");
    try {
      ftruncateSync(fd, size);
      const block = Buffer.alloc(PAGE_BYTES);
      const written = new Set<number>();
      const write = (page: number) => {
        prng.fill(block);
        block[0] |= 1;
        writeSync(fd, block, 0, PAGE_BYTES, page * PAGE_BYTES);
        written.add(page);
      };
      for (let page = 0; page < pages; page++) if (prng.int(100) < 35) write(page);
      const expected = layoutExtents(Array.from({ length: pages }, (_, page) => written.has(page)), PAGE_BYTES);
      const agree = async (stage: string, exact: boolean) => {
        const label = `seed ${seed} round ${round} (${pages} pages) ${stage}`;
        const from = prng.int(size);
        const length = prng.int(size - from + 1);
        // All maps first: reading the file (below) caches zero pages over unwritten extents,
        // which SEEK_DATA then counts as data.
        const [mapped, seeked] = [await withMethod(undefined, () => extentsOf(fd, 0, size)), await withMethod("lseek", () => extentsOf(fd, 0, size))];
        const clipped = await withMethod(undefined, () => extentsOf(fd, from, length));
        t.same(mapped, seeked, `${label}: the two methods agree (${mapped.length} extents)`);
        if (exact) t.same(mapped, expected, `${label}: exactly the written pages`);
        t.same(clipped, clipExtents(seeked, from, length), `${label}: clipped to ${from}+${length}`);
        // nextData (one SEEK_DATA) finds the data the maps list, inside extents, in holes and past the end.
        const probes = [0, size, size + PAGE_BYTES, ...Array.from({ length: 24 }, () => prng.int(size))];
        const answers = probes.map((offset) => addon!.nextData(fd, offset));
        t.same(answers, probes.map((offset) => nextDataIn(seeked, offset)), `${label}: nextData from ${probes.length} offsets`);
        t.ok(covered(nonZeroPages(fd, size), mapped), `${label}: every non-zero page lies in an extent`);
      };
      // Written, not flushed: delayed allocation, in the page cache only.
      await agree("dirty", true);
      fdatasyncSync(fd);
      await agree("flushed", true);
      // Unwritten extents (ZERO_RANGE converts on ext4 and XFS), then new data in part of them, not flushed.
      let zeroed = false;
      for (let at = prng.int(64); at < pages - 64; at += 256 + prng.int(256)) {
        try {
          addon!.zeroRange(fd, at * PAGE_BYTES, 48 * PAGE_BYTES);
          zeroed = true;
        } catch (error) {
          if ((error as { code?: string }).code !== "EOPNOTSUPP") throw error;
          break;
        }
        for (let page = at; page < at + 48; page++) written.delete(page);
        for (let page = at + 8; page < at + 40; page += 5) write(page);
      }
      if (!zeroed) continue;
      await agree("unwritten, rewritten in part, dirty", false);
      fdatasyncSync(fd);
      await agree("unwritten, rewritten in part, flushed", false);
    } finally {
      closeSync(fd);
    }
  }
});

t.test("extents and nextData restore the file position", { skip }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "position.img");
  writeSparseFile(path, [false, true, false, true, true], new Prng(seed));
  // An unwritten extent (where ZERO_RANGE makes one), which FIEMAP has asked again with lseek.
  const writer = openSync(path, "r+");
  try {
    addon!.zeroRange(writer, 4 * UNIT_BYTES, UNIT_BYTES);
  } catch (error) {
    if ((error as { code?: string }).code !== "EOPNOTSUPP") throw error;
  } finally {
    closeSync(writer);
  }
  for (const method of METHODS) {
    const fd = openSync(path, "r"); // at position 0
    t.teardown(() => closeSync(fd));
    await withMethod(method, () => {
      readSync(fd, Buffer.alloc(100), 0, 100, null); // position 100
      extentsOf(fd, 0, 5 * UNIT_BYTES);
      t.same([addon!.nextData(fd, 0), addon!.nextData(fd, 2 * UNIT_BYTES + 5), addon!.nextData(fd, 5 * UNIT_BYTES)], [UNIT_BYTES, 3 * UNIT_BYTES, -1], `${method ?? "default"}: nextData`);
      const next = Buffer.alloc(1);
      readSync(fd, next, 0, 1, null);
      t.equal(next[0], 0, `${method ?? "default"}: still inside the leading hole, at byte 100`);
      t.same(readAt(fd, 100, 1), next, `${method ?? "default"}: the non-positional read continued at byte 100`);
      readSync(fd, Buffer.alloc(UNIT_BYTES), 0, UNIT_BYTES, null); // to byte 65,637, inside the data
      extentsOf(fd, 0, 5 * UNIT_BYTES);
      readSync(fd, next, 0, 1, null);
      t.same(next, readAt(fd, UNIT_BYTES + 101, 1), `${method ?? "default"}: a read after the second map continued at byte ${UNIT_BYTES + 101}`);
    });
  }
});

t.test("punchHole lowers stat blocks, reads back zeros and keeps the size", { skip }, async (t) => {
  const dir = sparseDir(t);
  if (!dir) return;
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
  t.same(extentsOf(fd, 0, 16 * UNIT_BYTES), [
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
