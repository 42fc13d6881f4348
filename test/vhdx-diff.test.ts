// Differencing VHDX (qemu cannot create one: "Backing file not supported for file format
// 'vhdx'"), so children come from the test builder and are checked against an independent
// in-memory model: per block state, per sector bitmap bit, parent content from qemu.

import t from "tap";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../dist/index.js";
import { STATE, buildVhdx, type BuildBlock } from "./helpers/vhdx-builder.js";
import { model, qemuParent, randomBlocks } from "./helpers/vhdx-model.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuImg, qemuIo, qemuRaw, readWholeImage } from "./helpers/vhdx-qemu.js";

const MIB = 1024 * 1024;
const seed = testSeed();

t.test("differencing child over a qemu parent reads as the model (every block state)", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed);
  const size = 12 * MIB;
  const parent = qemuParent(dir, prng, size);
  const blocks = randomBlocks(prng, size / MIB, MIB, 512);
  mkdirSync(join(dir, "kids"));
  const childPath = join(dir, "kids", "child.vhdx");
  writeFileSync(childPath, buildVhdx({
    virtualSize: size, blockSize: MIB, hasParent: true, blocks,
    locator: { parent_linkage: `{${parent.guid.toUpperCase()}}`, relative_path: "..\\base\\parent.vhdx", absolute_win32_path: "\\\\?\\C:\\nowhere\\parent.vhdx" },
    dataWriteGuid: "c0c0c0c0-0000-0000-0000-000000000001",
  }));
  const expected = model({ blocks }, parent.content, size, MIB, 512);
  const image = await openImage(childPath);
  const all = new Uint8Array(size);
  await image.read(all, 0);
  t.ok(Buffer.from(all).equals(expected.content), `whole disk equals the model (seed ${seed})`);
  for (let i = 0; i < 30; i++) {
    const offset = prng.int(size);
    const length = prng.int(Math.min(size - offset, 2 * MIB) + 1);
    const buffer = new Uint8Array(length);
    await image.read(buffer, offset);
    t.ok(Buffer.from(buffer).equals(expected.content.subarray(offset, offset + length)), `read ${offset}+${length} (seed ${seed})`);
  }
  const layer = await image.allocationMap(0, size, "layer");
  const listed = new Array(size / 512).fill(false);
  for (const e of layer) for (let s = e.offset / 512; s < (e.offset + e.length) / 512; s++) listed[s] = true;
  t.same(listed, expected.layerBytes, `layer allocation map equals the model (seed ${seed})`);
  const chain = await image.allocationMap();
  let cursor = 0;
  for (const e of [...chain, { offset: size, length: 0 }]) {
    t.ok(expected.content.subarray(cursor, e.offset).every((b) => b === 0), `zeros outside the chain map ${cursor}..${e.offset}`);
    cursor = e.offset + e.length;
  }
  const info = await image.info();
  t.equal(info.type, "differencing");
  t.same(info.chain.map((l) => [l.format, l.type]), [["vhdx", "differencing"], ["vhdx", "dynamic"]]);
  t.match(info.chain[1].path, /parent\.vhdx$/);
  await image.close();
});

t.test("three-level chain, absolute_win32_path, 4 KiB sectors", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed + 7);
  const size = 8 * MIB;
  const blockSize = 1 * MIB;
  const basePath = join(dir, "base4k.vhdx");
  const baseBlocks = new Map<number, BuildBlock>([[0, { state: STATE.FULLY_PRESENT, data: prng.bytes(blockSize) }], [5, { state: STATE.FULLY_PRESENT, data: prng.bytes(blockSize) }]]);
  writeFileSync(basePath, buildVhdx({ virtualSize: size, blockSize, logicalSectorSize: 4096, blocks: baseBlocks, dataWriteGuid: "ba5e0000-0000-0000-0000-000000000001" }));
  const baseContent = model({ blocks: baseBlocks }, new Uint8Array(size), size, blockSize, 4096).content;
  t.ok(Buffer.from(await readWholeImage(basePath)).equals(baseContent), "4 KiB-sector dynamic base");
  let parentPath = basePath;
  let parentGuid = "ba5e0000-0000-0000-0000-000000000001";
  let expected = baseContent;
  for (let level = 1; level <= 2; level++) {
    const blocks = randomBlocks(prng, size / blockSize, blockSize, 4096);
    const path = join(dir, `level${level}.vhdx`);
    const guid = `1e7e1000-0000-0000-0000-00000000000${level}`;
    writeFileSync(path, buildVhdx({
      virtualSize: size, blockSize, logicalSectorSize: 4096, hasParent: true, blocks, dataWriteGuid: guid,
      locator: { parent_linkage: `{${parentGuid}}`, absolute_win32_path: `\\\\?\\${parentPath.replace(/\//g, "\\")}` },
    }));
    expected = model({ blocks }, expected, size, blockSize, 4096).content;
    t.ok(Buffer.from(await readWholeImage(path)).equals(expected), `level ${level} equals the model (seed ${seed})`);
    parentPath = path;
    parentGuid = guid;
  }
  const image = await openImage(parentPath);
  t.equal(image.logicalSectorSize, 4096);
  t.equal((await image.info()).chain.length, 3);
  await image.close();
});

t.test("broken chains are VHDSYNC_CHAIN_BROKEN", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed + 3);
  const size = 4 * MIB;
  const parent = qemuParent(dir, prng, size);
  const child = (name: string, locator: Record<string, string>, guid = "c4170000-0000-0000-0000-000000000001", sector = 512) => {
    const path = join(dir, name);
    writeFileSync(path, buildVhdx({ virtualSize: size, blockSize: MIB, logicalSectorSize: sector, hasParent: true, locator, dataWriteGuid: guid }));
    return path;
  };
  const cases: [string, string][] = [
    ["linkage mismatch", child("mismatch.vhdx", { parent_linkage: "{00000000-0000-0000-0000-00000000beef}", relative_path: "base\\parent.vhdx" })],
    ["missing parent", child("missing.vhdx", { parent_linkage: `{${parent.guid}}`, relative_path: "base\\gone.vhdx" })],
    ["no usable path", child("nopath.vhdx", { parent_linkage: `{${parent.guid}}`, volume_path: "\\\\?\\Volume{x}\\p.vhdx" })],
    ["self loop", child("self.vhdx", { parent_linkage: "{5e1f0000-0000-0000-0000-000000000001}", relative_path: "self.vhdx" }, "5e1f0000-0000-0000-0000-000000000001")],
    ["sector size mismatch", child("sector.vhdx", { parent_linkage: `{${parent.guid}}`, relative_path: "base\\parent.vhdx" }, undefined, 4096)],
  ];
  child("loop-a.vhdx", { parent_linkage: "{b0000000-0000-0000-0000-000000000001}", relative_path: "loop-b.vhdx" }, "a0000000-0000-0000-0000-000000000001");
  child("loop-b.vhdx", { parent_linkage: "{a0000000-0000-0000-0000-000000000001}", relative_path: "loop-a.vhdx" }, "b0000000-0000-0000-0000-000000000001");
  cases.push(["two-file loop", join(dir, "loop-a.vhdx")]);
  for (const [name, path] of cases) await t.rejects(openImage(path), { code: "VHDSYNC_CHAIN_BROKEN" }, name);
  const ok = child("ok.vhdx", { parent_linkage: `{${parent.guid}}`, parent_linkage2: "{11111111-0000-0000-0000-000000000000}", relative_path: "base\\parent.vhdx" });
  t.ok(Buffer.from(await readWholeImage(ok)).equals(parent.content), "an empty child reads as its parent");
});

t.test("a VHD parent (opened through openImage), smaller than the child", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed + 11);
  const parentPath = join(dir, "parent.vhd");
  qemuImg("create", "-f", "vpc", parentPath, String(4 * MIB));
  execFileSync("qemu-io", ["-f", "vpc", "-c", `write -P 0x5c ${prng.int(4096) * 512} ${MIB}`, parentPath], { stdio: "ignore" });
  const parentContent = qemuRaw(parentPath, dir, "vpc");
  const parentImage = await openImage(parentPath);
  const uniqueId = (await parentImage.info()).uniqueId as string;
  await parentImage.close();
  const size = 6 * MIB;
  const blocks = randomBlocks(prng, size / MIB, MIB, 512);
  const childPath = join(dir, "child.vhdx");
  writeFileSync(childPath, buildVhdx({ virtualSize: size, blockSize: MIB, hasParent: true, blocks, locator: { parent_linkage: `{${uniqueId}}`, relative_path: "parent.vhd" } }));
  const expected = model({ blocks }, parentContent, size, MIB, 512).content;
  t.ok(Buffer.from(await readWholeImage(childPath)).equals(expected), `equals the model; beyond the parent's end reads zeros (seed ${seed})`);
  const image = await openImage(childPath);
  t.same((await image.info()).chain.map((l) => l.format), ["vhdx", "vhd"]);
  await image.close();
});

t.test("a parent without an identity (raw file) is refused", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "parent.raw"), new Uint8Array(2 * MIB));
  const path = join(dir, "child.vhdx");
  writeFileSync(path, buildVhdx({ virtualSize: 2 * MIB, blockSize: MIB, hasParent: true, locator: { parent_linkage: "{00000000-0000-0000-0000-000000000001}", relative_path: "parent.raw" } }));
  await t.rejects(openImage(path), { code: "VHDSYNC_CHAIN_BROKEN" });
});

t.test("partially present blocks in six chunks (a sector bitmap block each), read in an order that evicts kept bitmaps", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed + 13);
  const chunkBytes = 2 ** 23 * 512; // one sector bitmap block's worth of a 512-byte-sector disk (4 GiB)
  const size = 6 * chunkBytes;
  const base = join(dir, "base.vhdx");
  writeFileSync(base, buildVhdx({ virtualSize: size, blockSize: MIB, dataWriteGuid: "ba5e0000-0000-0000-0000-0000000000b6" }));
  // In each chunk, two partially present blocks with bitmaps of their own (runs, and bytes of mixed bits).
  const blocks = new Map<number, BuildBlock>();
  for (let chunk = 0; chunk < 6; chunk++) {
    for (const inChunk of [prng.int(2048), 2048 + prng.int(2048)]) {
      const bits = new Uint8Array(MIB / 512).map(() => prng.int(2));
      for (let run = 0; run < 4; run++) bits.fill(prng.int(2), prng.int(bits.length), prng.int(bits.length));
      blocks.set(chunk * 4096 + inChunk, { state: STATE.PARTIALLY_PRESENT, data: prng.bytes(MIB), present: (s) => bits[s] === 1 });
    }
  }
  const child = join(dir, "child.vhdx");
  writeFileSync(child, buildVhdx({ virtualSize: size, blockSize: MIB, hasParent: true, blocks, locator: { parent_linkage: "{BA5E0000-0000-0000-0000-0000000000B6}", relative_path: "base.vhdx" } }));
  const image = await openImage(child);
  try {
    const order = [...blocks.keys()];
    for (const block of [...order, ...order.reverse(), ...order.map((_, i) => order[(i * 5) % order.length])]) {
      const { data, present } = blocks.get(block)!;
      const expected = new Uint8Array(MIB);
      for (let s = 0; s < MIB / 512; s++) if (present!(s)) expected.set(data!.subarray(s * 512, s * 512 + 512), s * 512);
      const from = prng.int(MIB / 2);
      const got = new Uint8Array(MIB - from);
      await image.read(got, block * MIB + from);
      t.ok(Buffer.from(got).equals(expected.subarray(from)), `block ${block} from byte ${from} reads its own sectors over zeros (seed ${seed})`);
    }
  } finally {
    await image.close();
  }
});

t.test("a parent that is a FIFO is refused without opening it (an open would wait for a writer)", async (t) => {
  const dir = tempDir(t);
  t.equal(spawnSync("mkfifo", [join(dir, "parent.vhdx")]).status, 0, "mkfifo");
  const path = join(dir, "child.vhdx");
  writeFileSync(path, buildVhdx({ virtualSize: 2 * MIB, blockSize: MIB, hasParent: true, locator: { parent_linkage: "{00000000-0000-0000-0000-000000000001}", relative_path: "parent.vhdx" } }));
  const opening = openImage(path);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((resolve) => (timer = setTimeout(resolve, 10_000, "still waiting")));
  const outcome = await Promise.race([opening.then(() => "opened", (error: { code?: string; message?: string }) => `${error.code}: ${error.message}`), deadline]);
  clearTimeout(timer);
  t.match(outcome, /is a pipe \(FIFO\)/, "refused at once");
});
