// Differencing VHD chains against an in-memory model: chains 3+ deep with seeded random
// writes at every level read as one disk, allocation maps per layer and per chain, zeros over
// parent data, vhdiinfo's view of the child, and broken chains (missing parent, unique-ID
// mismatch, loop) as VHDSYNC_CHAIN_BROKEN with the paths, files unchanged.

import t from "tap";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createVhd, openImage } from "../dist/index.js";
import { buildHeader, parseHeader } from "../dist/formats/vhd/index.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";
import { firstDifference, randomWrites, readImage, run, sha256 } from "./helpers/vhd.js";

const seed = testSeed();
const SIZE = 6 * 1024 * 1024 + 512 * 5;
const BLOCK = 512 * 1024;

/** Builds base → child1 → ... (depth layers), random writes in each; returns paths and the model. */
async function buildChain(dir: string, depth: number, prng: Prng): Promise<{ paths: string[]; model: Buffer; layerModels: Uint8Array[] }> {
  const model = Buffer.alloc(SIZE);
  const paths: string[] = [];
  const layerModels: Uint8Array[] = [];
  for (let level = 0; level < depth; level++) {
    const path = join(dir, `layer${level}.vhd`);
    const image = level === 0 ? await createVhd(path, { type: "dynamic", sizeBytes: SIZE, blockSizeBytes: BLOCK }) : await createVhd(path, { type: "differencing", parentPath: paths[level - 1], blockSizeBytes: BLOCK });
    const before = Buffer.from(model);
    await randomWrites(image, model, prng, 25, BLOCK);
    const touched = new Uint8Array(SIZE / 512);
    for (let s = 0; s < touched.length; s++) if (Buffer.compare(before.subarray(s * 512, s * 512 + 512), model.subarray(s * 512, s * 512 + 512)) !== 0) touched[s] = 1;
    layerModels.push(touched);
    await image.close();
    paths.push(path);
  }
  return { paths, model, layerModels };
}

t.test("chains 3 and 5 deep read as one disk", async (t) => {
  for (const depth of [3, 5]) {
    const dir = tempDir(t);
    const prng = new Prng(seed + depth);
    const { paths, model, layerModels } = await buildChain(dir, depth, prng);
    const top = await openImage(paths[depth - 1]);
    const info = await top.info();
    t.equal(info.type, "differencing");
    t.equal(info.chain.length, depth, "chain lists every layer");
    t.equal(firstDifference(await readImage(top, 700 * 1024 + 512), model), -1, `depth ${depth} content (seed ${seed})`);
    const odd = Buffer.alloc(123457);
    await top.read(odd, 98765);
    t.equal(firstDifference(odd, model.subarray(98765, 98765 + 123457)), -1, "unaligned read");
    const chainMap = await top.allocationMap(0, SIZE, "chain");
    let outside = 0;
    let position = 0;
    for (const gap of [...chainMap, { offset: SIZE, length: 0 }]) {
      if (gap.offset > position && model.subarray(position, gap.offset).some((b) => b !== 0)) outside++;
      position = gap.offset + gap.length;
    }
    t.equal(outside, 0, "chain allocation map covers all data");
    const layerMap = await top.allocationMap(0, SIZE, "layer");
    const inLayer = new Uint8Array(SIZE / 512);
    for (const e of layerMap) inLayer.fill(1, e.offset / 512, (e.offset + e.length) / 512);
    const topTouched = layerModels[depth - 1];
    let missing = 0;
    for (let s = 0; s < topTouched.length; s++) if (topTouched[s] && !inLayer[s]) missing++;
    t.equal(missing, 0, "layer map covers every sector written to the top layer");
    await top.close();
    const vhdi = run("vhdiinfo", [paths[depth - 1]]);
    t.match(vhdi, /Disk type\s*: Differential/);
    const parent = await openImage(paths[depth - 2]);
    t.match(vhdi, new RegExp(`Parent identifier\\s*: ${(await parent.info()).uniqueId}`), "vhdiinfo sees the right parent");
    await parent.close();
  }
});

t.test("writes and zeros on a differencing disk over parent data", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed ^ 77);
  const { paths, model } = await buildChain(dir, 2, prng);
  const child = await openImage(paths[1], { readOnly: false });
  const parentData = await child.allocationMap(0, SIZE, "chain");
  t.ok(parentData.length > 0);
  await child.writeZeros(0, SIZE);
  model.fill(0);
  t.equal(firstDifference(await readImage(child), model), -1, "zeros hide the parent");
  await randomWrites(child, model, prng, 30, BLOCK);
  t.equal(firstDifference(await readImage(child), model), -1, `after random writes (seed ${seed})`);
  await child.close();
  const again = await openImage(paths[1]);
  t.equal(firstDifference(await readImage(again), model), -1, "after reopen");
  await again.close();
  t.match(runCli(["check", paths[1]]).stdout, /no problems/);
});

t.test("broken chains are VHDSYNC_CHAIN_BROKEN with paths, files unchanged", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed ^ 99);
  const { paths } = await buildChain(dir, 3, prng);
  const hashes = () => paths.map((p) => { try { return sha256(readFileSync(p)); } catch { return "missing"; } });
  const before = hashes();
  renameSync(paths[0], join(dir, "moved.vhd"));
  await t.rejects(openImage(paths[2]), { code: "VHDSYNC_CHAIN_BROKEN", message: /layer0\.vhd/ }, "missing parent");
  const impostor = await createVhd(paths[0], { type: "dynamic", sizeBytes: SIZE });
  await impostor.close();
  await t.rejects(openImage(paths[2]), { code: "VHDSYNC_CHAIN_BROKEN", message: /does not match/ }, "unique ID mismatch");
  const cli = runCli(["info", paths[2]]);
  t.equal(cli.status, 3, `CLI exit 3 (${cli.stderr.trim()})`);
  t.match(cli.stderr, /VHDSYNC_CHAIN_BROKEN/);
  t.same(hashes().slice(1), before.slice(1), "chain files unchanged");

  // Loop: layer1's parent becomes layer2 (header patched), and layer2's parent is layer1.
  const loopDir = tempDir(t);
  const chain = await buildChain(loopDir, 3, prng);
  const l1 = readFileSync(chain.paths[1]);
  const l2 = await openImage(chain.paths[2]);
  const l2Info = await l2.info();
  await l2.close();
  const header = parseHeader(l1.subarray(512, 1536), { headerOffsetBytes: 512, fileSizeBytes: l1.length, virtualSizeBytes: SIZE, isDifferencing: true });
  const uid = Buffer.from(l2Info.uniqueId.replace(/-/g, ""), "hex");
  const patched = buildHeader({ ...header, parentUniqueId: uid, parentName: "layer2.vhd", locators: [] });
  l1.set(patched, 512);
  writeFileSync(chain.paths[1], l1);
  const loopHash = sha256(readFileSync(chain.paths[1]));
  await t.rejects(openImage(chain.paths[2]), { code: "VHDSYNC_CHAIN_BROKEN", message: /loop/ }, "loop detected");
  t.equal(sha256(readFileSync(chain.paths[1])), loopHash, "unchanged after failed open");
});

t.test("Windows-style locators: drive-letter W2ku, W2ru relative, data space in bytes, name fallback", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed ^ 555);
  const { paths, model } = await buildChain(dir, 2, prng);
  const original = readFileSync(paths[1]);
  const header = parseHeader(original.subarray(512, 1536), { headerOffsetBytes: 512, fileSizeBytes: original.length, virtualSizeBytes: SIZE, isDifferencing: true });
  const slots = header.locators.filter((l: { platformCode: string }) => l.platformCode).map((l: { dataOffsetBytes: number }) => l.dataOffsetBytes);
  const variants = [
    { name: "W2ku drive path + W2ru", locators: [["W2ku", "C:\\vms\\layer0.vhd"], ["W2ru", ".\\layer0.vhd"]], parentName: "C:\\vms\\layer0.vhd" },
    { name: "only a drive path; parent name in the child's directory", locators: [["W2ku", "D:\\elsewhere\\layer0.vhd"]], parentName: "D:\\elsewhere\\layer0.vhd" },
    { name: "only a MacX file URL", locators: [["MacX", `file://localhost${join(dir, "layer0.vhd")}`]], parentName: "" },
  ];
  for (const variant of variants) {
    const file = Buffer.from(original);
    const locators = variant.locators.map(([code, text], i) => {
      const data = Buffer.from(text, code === "MacX" ? "utf8" : "utf16le");
      file.fill(0, slots[i], slots[i] + 512);
      data.copy(file, slots[i]);
      return { platformCode: code, dataSpace: 512, dataLengthBytes: data.length, dataOffsetBytes: slots[i] };
    });
    Buffer.from(buildHeader({ ...header, parentName: variant.parentName, locators })).copy(file, 512);
    writeFileSync(paths[1], file);
    const image = await openImage(paths[1]);
    t.equal(firstDifference(await readImage(image), model), -1, `${variant.name}: parent found, content right`);
    await image.close();
  }
});

t.test("differencing children of a fixed VHD and of a qemu-made dynamic VHD", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed ^ 1234);
  const fixedBase = join(dir, "fixed-base.vhd");
  const fixed = await createVhd(fixedBase, { type: "fixed", sizeBytes: SIZE });
  const fixedModel = Buffer.alloc(SIZE);
  await randomWrites(fixed, fixedModel, prng, 10, BLOCK);
  await fixed.close();
  const qemuBase = join(dir, "qemu-base.vhd");
  run("qemu-img", ["create", "-q", "-f", "vpc", "-o", "force_size=on", qemuBase, String(SIZE)]);
  run("qemu-io", ["-f", "vpc", "-c", "write -P 0x3c 4096 1M", qemuBase]);
  const qemuModel = Buffer.alloc(SIZE);
  qemuModel.fill(0x3c, 4096, 4096 + 1024 * 1024);
  for (const [base, model] of [[fixedBase, fixedModel], [qemuBase, qemuModel]] as const) {
    const child = await createVhd(`${base}.child.vhd`, { type: "differencing", parentPath: base, blockSizeBytes: BLOCK });
    const childModel = Buffer.from(model);
    await randomWrites(child, childModel, prng, 15, BLOCK);
    t.equal(firstDifference(await readImage(child), childModel), -1, `child of ${base} (seed ${seed})`);
    await child.close();
  }
});

t.test("a differencing read's runs go in parallel: settleAll waits for every one before it throws the first failure", async (t) => {
  const { settleAll } = await import("../dist/io/file.js");
  let lateDone = false;
  const late = new Promise<void>((resolve) => setTimeout(() => ((lateDone = true), resolve()), 30));
  const early = Promise.reject(new Error("first"));
  const second = new Promise<void>((_, reject) => setTimeout(() => reject(new Error("second")), 10));
  await t.rejects(settleAll([late, early, second]), { message: "first" }, "the first failure in list order");
  t.ok(lateDone, "the slow read had finished before the error came back");
  await settleAll([late, Promise.resolve()]);
});
