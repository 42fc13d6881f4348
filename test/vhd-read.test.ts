// VHD reads against the oracles: the Windows fixtures' content digests, and images made by
// qemu-img (dynamic, fixed, force_size, odd sizes) written by qemu-io, compared with
// `qemu-img convert -O raw`.

import t from "tap";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkImage, openImage } from "../dist/index.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { firstDifference, isZeroBuffer, qemuContent, qemuVirtualSize, readImage, run, sha256 } from "./helpers/vhd.js";

// ../shared beside the project, wherever it is cloned (CI clones it elsewhere than /work).
const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/", import.meta.url));
const seed = testSeed();

t.test("Windows fixtures read with their published digests", async (t) => {
  const dir = tempDir(t);
  const cases = [
    { file: "windows-fixed-10M.vhd.gz", type: "fixed", size: 10485760, digest: "fa0490edf13cf9699ac7ead2b2024f2ec7921f583ff824039bca0529055e409d" },
    { file: "windows-dynamic-512M.vhd.gz", type: "dynamic", size: 536870912, digest: "c461afded0b54cc1cfb5441e08f4d7f9d699d2eff7d9526d1cf6ad227da26683" },
  ];
  for (const c of cases) {
    const path = join(dir, c.file.replace(/\.gz$/, ""));
    writeFileSync(path, execFileSync("gunzip", ["-c", join(FIXTURES, c.file)], { maxBuffer: 1 << 30 }));
    const image = await openImage(path);
    const info = await image.info();
    t.equal(info.format, "vhd");
    t.equal(info.type, c.type);
    t.equal(image.virtualSize, c.size);
    t.equal(info.creatorApplication, "win ");
    const content = await readImage(image, 3 << 20);
    t.equal(sha256(content), c.digest, `${c.file} content digest`);
    if (c.type === "dynamic") {
      t.equal(info.allocatedBlocks, 11);
      const map = await image.allocationMap(0, image.virtualSize, "layer");
      let position = 0;
      let nonZeroOutside = 0;
      for (const gap of [...map, { offset: image.virtualSize, length: 0 }]) {
        if (gap.offset > position && !isZeroBuffer(content.subarray(position, gap.offset))) nonZeroOutside++;
        position = gap.offset + gap.length;
      }
      t.equal(nonZeroOutside, 0, "every non-zero byte lies inside the allocation map");
    }
    await image.close();
  }
});

/** Writes seeded patterns with qemu-io and returns the image path. */
function qemuImage(dir: string, name: string, sizeBytes: number, createOptions: string[], prng: Prng, writes: number): string {
  const path = join(dir, name);
  run("qemu-img", ["create", "-q", "-f", "vpc", ...createOptions, path, String(sizeBytes)]);
  const virtualSize = qemuVirtualSize(path);
  const commands: string[] = [];
  for (let i = 0; i < writes; i++) {
    const length = (1 + prng.int(64)) * 512 * (prng.int(4) === 0 ? 64 : 1);
    const offset = Math.floor(prng.int(Math.max(1, virtualSize - length)) / 512) * 512;
    commands.push("-c", `write -P 0x${(1 + prng.int(255)).toString(16)} ${offset} ${Math.min(length, virtualSize - offset)}`);
  }
  if (commands.length) run("qemu-io", ["-f", "vpc", ...commands, path]);
  return path;
}

t.test("qemu-img vpc images read the same content as qemu-img convert", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed);
  const cases: { name: string; size: number; options: string[] }[] = [
    { name: "dyn-odd.vhd", size: 10 * 1024 * 1024 + 7 * 512, options: [] },
    { name: "dyn-force.vhd", size: 9 * 1024 * 1024 + 3 * 512, options: ["-o", "force_size=on"] },
    { name: "fixed-odd.vhd", size: 5 * 1024 * 1024 + 512, options: ["-o", "subformat=fixed"] },
    { name: "fixed-force.vhd", size: 6 * 1024 * 1024 + 1536, options: ["-o", "subformat=fixed,force_size=on"] },
    { name: "dyn-small.vhd", size: 1024 * 1024 + 512, options: [] },
  ];
  for (const c of cases) {
    const path = qemuImage(dir, c.name, c.size, c.options, prng, 12);
    const image = await openImage(path);
    t.equal(image.virtualSize, qemuVirtualSize(path), `${c.name}: virtual size as qemu (seed ${seed})`);
    const expected = qemuContent(path, dir);
    const actual = await readImage(image, 1536 * 1024 + 512);
    t.equal(firstDifference(actual, expected), -1, `${c.name}: same content as qemu (seed ${seed})`);
    await image.close();
  }
});

t.test("qemu-img convert of random sparse raw to vpc reads back the raw content", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed ^ 0x5a5a);
  const size = 24 * 1024 * 1024;
  const raw = Buffer.alloc(size);
  for (let i = 0; i < 20; i++) {
    const offset = prng.int(size - 300000);
    raw.set(prng.bytes(1 + prng.int(300000)), offset);
  }
  writeFileSync(join(dir, "src.raw"), raw);
  const vhd = join(dir, "conv.vhd");
  run("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "force_size=on", join(dir, "src.raw"), vhd]);
  const image = await openImage(vhd);
  t.equal(image.virtualSize, size);
  t.equal(firstDifference(await readImage(image), raw), -1, `converted content (seed ${seed})`);
  const whole = Buffer.alloc(size);
  await image.read(whole, 0);
  t.equal(firstDifference(whole, raw), -1, "one read across every block (coalesced readv)");
  const unaligned = Buffer.alloc(777777);
  await image.read(unaligned, 123457);
  t.equal(firstDifference(unaligned, raw.subarray(123457, 123457 + 777777)), -1, "unaligned read");
  await image.close();
});

t.test("511-byte footers (Virtual PC before 2004) read like 512-byte ones", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed ^ 511);
  for (const options of [["-o", "subformat=fixed,force_size=on"], ["-o", "force_size=on"]]) {
    const path = qemuImage(dir, `old-${options[1].length}.vhd`, 3 * 1024 * 1024, options, prng, 6);
    const expected = qemuContent(path, dir);
    const bytes = readFileSync(path);
    t.equal(bytes[bytes.length - 1], 0, "last footer byte is reserved (zero)");
    writeFileSync(path, bytes.subarray(0, bytes.length - 1));
    const image = await openImage(path);
    t.equal(image.format, "vhd", "detected with a 511-byte footer");
    t.equal(firstDifference(await readImage(image), expected), -1, `${options[1]}: content (seed ${seed})`);
    await image.close();
    t.same((await checkImage(path)).problems, [], "check accepts it");
  }
});
