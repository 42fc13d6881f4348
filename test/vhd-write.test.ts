// VHD writes and creation against an in-memory model and the oracles: seeded random writes
// (aligned, unaligned, whole blocks, zeros) on fixed and dynamic disks made by vhdsync;
// `qemu-img compare` with the model, `qemu-img info` size, `vhdiinfo` parses, reopen agrees.

import t from "tap";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkImage, createVhd, openImage } from "../dist/index.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { firstDifference, qemuVirtualSize, randomWrites, readImage, run } from "./helpers/vhd.js";

const seed = testSeed();

for (const type of ["dynamic", "fixed"] as const) {
  t.test(`${type} VHD made by vhdsync: random writes match the model and the oracles`, async (t) => {
    const dir = tempDir(t);
    const prng = new Prng(seed);
    for (const [sizeBytes, blockSizeBytes] of [[10 * 1024 * 1024 + 1536, 512 * 1024], [7 * 1024 * 1024, 2 * 1024 * 1024], [3 * 1024 * 1024 + 512, 4096]]) {
      const path = join(dir, `${type}-${sizeBytes}-${blockSizeBytes}.vhd`);
      const image = await createVhd(path, { type, sizeBytes, blockSizeBytes });
      t.equal(image.virtualSize, sizeBytes, "exact requested size");
      const model = Buffer.alloc(sizeBytes);
      await randomWrites(image, model, prng, 40, blockSizeBytes);
      t.equal(firstDifference(await readImage(image), model), -1, `${path}: read back (seed ${seed})`);
      await image.close();
      const fileBytes = readFileSync(path);
      if (type === "dynamic") {
        t.same(fileBytes.subarray(0, 512), fileBytes.subarray(fileBytes.length - 512), "footer copy at offset 0 equals the footer at the end");
      }
      writeFileSync(join(dir, "model.raw"), model);
      t.equal(qemuVirtualSize(path), sizeBytes, "qemu-img info shows the requested size");
      t.match(run("qemu-img", ["compare", "-f", "vpc", "-F", "raw", path, join(dir, "model.raw")]), /identical/, `qemu-img compare (seed ${seed})`);
      t.match(run("vhdiinfo", [path]), new RegExp(`Media size.*\\(${sizeBytes} bytes\\)`), "vhdiinfo parses it");
      const reopened = await openImage(path);
      t.equal(firstDifference(await readImage(reopened), model), -1, "reopened content");
      t.same((await checkImage(path)).problems, [], "check finds no problems");
      await reopened.close();
    }
  });
}

t.test("writeZeros leaves unallocated dynamic blocks unallocated; full-block writes allocate once", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "z.vhd");
  const image = await createVhd(path, { type: "dynamic", sizeBytes: 16 * 1024 * 1024, blockSizeBytes: 1024 * 1024 });
  await image.writeZeros(0, 16 * 1024 * 1024);
  t.equal((await image.info()).allocatedBlocks, 0);
  const sizeBefore = statSync(path).size;
  await image.write(new Uint8Array(1024 * 1024).fill(7), 3 * 1024 * 1024);
  t.equal((await image.info()).allocatedBlocks, 1);
  t.ok(statSync(path).size >= sizeBefore + 1024 * 1024, "file grew by a block");
  t.same(await image.allocationMap(0, 16 * 1024 * 1024, "layer"), [{ offset: 3 * 1024 * 1024, length: 1024 * 1024 }]);
  await image.writeZeros(3 * 1024 * 1024 + 100, 1000);
  const back = new Uint8Array(2048);
  await image.read(back, 3 * 1024 * 1024);
  t.equal(back[99], 7);
  t.equal(back[100], 0);
  t.equal(back[1099], 0);
  t.equal(back[1100], 7);
  await image.close();
  const readOnly = await openImage(path);
  await t.rejects(readOnly.write(new Uint8Array(512), 0), { code: "VHDSYNC_READ_ONLY" });
  await readOnly.close();
  await t.rejects(createVhd(path, { type: "dynamic", sizeBytes: 1024 * 1024 }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "refuses to overwrite");
  await t.rejects(createVhd(join(dir, "odd.vhd"), { type: "dynamic", sizeBytes: 1000 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(createVhd(join(dir, "bs.vhd"), { type: "dynamic", sizeBytes: 1 << 20, blockSizeBytes: 3000 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
});

t.test("concurrent writes to a dynamic and a differencing disk land intact", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed ^ 4242);
  const size = 8 * 1024 * 1024;
  const base = await createVhd(join(dir, "cbase.vhd"), { type: "dynamic", sizeBytes: size, blockSizeBytes: 1024 * 1024 });
  const baseModel = Buffer.alloc(size);
  await randomWrites(base, baseModel, prng, 10, 1024 * 1024);
  await base.close();
  for (const image of [await createVhd(join(dir, "c1.vhd"), { type: "dynamic", sizeBytes: size, blockSizeBytes: 1024 * 1024 }), await createVhd(join(dir, "c2.vhd"), { type: "differencing", parentPath: join(dir, "cbase.vhd"), blockSizeBytes: 1024 * 1024 })]) {
    const model = image.type === "differencing" ? Buffer.from(baseModel) : Buffer.alloc(size);
    const writes = [];
    for (let i = 0; i < 64; i++) {
      const offset = i * (size / 64) + prng.int(1000);
      const data = prng.bytes(1 + prng.int(size / 64 - 1000));
      model.set(data, offset);
      writes.push(image.write(data, offset));
    }
    await Promise.all(writes);
    t.equal(firstDifference(await readImage(image), model), -1, `${image.type}: concurrent writes (seed ${seed})`);
    await image.close();
  }
});
