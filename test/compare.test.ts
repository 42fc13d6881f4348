// compareImages / `vhdsync compare` against qemu-img compare as the oracle.
import t from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, openSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { compareImages } from "../dist/formats/compare-images.js";
import { RawImage } from "../dist/formats/raw.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

function qemuSame(a: string, b: string): boolean {
  const result = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "raw", a, b]);
  if (result.status !== 0 && result.status !== 1) throw new Error(`qemu-img compare failed: ${result.stderr}`);
  return result.status === 0;
}

/** compareImages of two raw files; `counting` sees each image before the compare (to wrap its reads). */
async function compareFiles(a: string, b: string, strict = false, counting?: (imageA: RawImage) => void) {
  const imageA = await RawImage.open(a);
  const imageB = await RawImage.open(b);
  try {
    counting?.(imageA);
    return await compareImages(imageA, imageB, { strict });
  } finally {
    await imageA.close();
    await imageB.close();
  }
}

t.test("random pairs: same verdict as qemu-img, exact first offset", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  for (let round = 0; round < 12; round++) {
    const size = 1 + prng.int(3 * 1024 * 1024);
    const a = prng.bytes(size);
    const b = a.slice();
    let expectedOffset: number | undefined;
    if (prng.int(3) > 0) {
      expectedOffset = prng.int(size);
      b[expectedOffset] ^= 1 + prng.int(255);
      for (let extra = prng.int(3); extra > 0; extra--) {
        const later = expectedOffset + prng.int(size - expectedOffset);
        b[later] ^= 0x40;
      }
    }
    writeFileSync(join(dir, "a"), a);
    writeFileSync(join(dir, "b"), b);
    const result = await compareFiles(join(dir, "a"), join(dir, "b"));
    t.equal(result.identical, qemuSame(join(dir, "a"), join(dir, "b")), `verdict, seed ${seed} round ${round}`);
    t.equal(result.firstDifferenceOffset, expectedOffset, `offset, seed ${seed} round ${round}`);
  }
});

t.test("fragmented sparse images over several map windows: qemu-img's verdict, exact offset, few reads", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const MIB = 1024 * 1024;
  const size = 600 * MIB;
  const a = join(dir, "a");
  const b = join(dir, "b");
  // 4 KiB of data every 8 KiB in clusters, one straddling each 256 MiB window edge.
  const fragments: number[] = [];
  for (const center of [3 * MIB, 256 * MIB, 400 * MIB, 512 * MIB]) {
    for (let i = -200; i < 200; i++) fragments.push(center + i * 8192);
  }
  const fill = (path: string) => {
    writeFileSync(path, "");
    truncateSync(path, size);
    const fd = openSync(path, "r+");
    for (const offset of fragments) writeSync(fd, new Prng(offset).bytes(4096), 0, 4096, offset);
    closeSync(fd);
  };
  fill(a);
  fill(b);
  // 1,600 fragments in four clusters: one read per 8 MiB chunk of each cluster, not one per
  // fragment. Without the addon the maps cannot tell holes: every 8 MiB chunk is read.
  const holes = await RawImage.open(a);
  const bound = (await holes.allocationMap(0, size)).length > 1 ? 8 : Math.ceil(size / (8 * MIB)) + 3;
  await holes.close();
  const counted = async (changeAt?: number) => {
    let reads = 0;
    const result = await compareFiles(a, b, false, (imageA) => {
      const read = imageA.read.bind(imageA);
      imageA.read = (buffer: Uint8Array, offset: number) => (reads++, read(buffer, offset));
    });
    t.equal(result.identical, qemuSame(a, b), `verdict (change at ${changeAt}), seed ${seed}`);
    t.equal(result.firstDifferenceOffset, changeAt, `offset, seed ${seed}`);
    t.ok(reads <= bound, `${reads} reads (at most ${bound})`);
  };
  await counted(undefined);
  // A byte in the second window's part of the cluster that straddles the first window edge.
  const changeAt = 256 * MIB + 8192 * (1 + prng.int(150)) + prng.int(4096);
  const fd = openSync(b, "r+");
  writeSync(fd, new Uint8Array([(new Prng(changeAt - (changeAt % 8192)).bytes(4096)[changeAt % 8192] ^ 0xff) & 0xff]), 0, 1, changeAt);
  closeSync(fd);
  await counted(changeAt);
});

t.test("different sizes: zero tail is equal unless strict; non-zero tail differs", async (t) => {
  const dir = tempDir(t);
  const a = join(dir, "a");
  const b = join(dir, "b");
  writeFileSync(a, new Uint8Array(100000).fill(3));
  writeFileSync(b, new Uint8Array(100000).fill(3));
  truncateSync(b, 5 * 1024 * 1024 + 17);
  t.equal((await compareFiles(a, b)).identical, true);
  t.equal(qemuSame(a, b), true, "qemu agrees");
  const strict = await compareFiles(a, b, true);
  t.equal(strict.identical, false);
  t.equal(strict.reason, "size");
  const tail = new Uint8Array(1);
  tail[0] = 9;
  const handle = await RawImage.open(b, false);
  await handle.write(tail, 4 * 1024 * 1024 + 5);
  await handle.close();
  const withTail = await compareFiles(a, b);
  t.equal(withTail.identical, false);
  t.equal(withTail.firstDifferenceOffset, 4 * 1024 * 1024 + 5);
  t.equal(qemuSame(a, b), false, "qemu agrees");
});

t.test("CLI exit codes and JSON", async (t) => {
  const dir = tempDir(t);
  const a = join(dir, "a");
  const b = join(dir, "b");
  writeFileSync(a, new Uint8Array(70000).fill(1));
  writeFileSync(b, new Uint8Array(70000).fill(1));
  t.equal(runCli(["compare", a, b]).status, 0);
  const bytes = new Uint8Array(70000).fill(1);
  bytes[65536] = 2;
  writeFileSync(b, bytes);
  const different = runCli(["compare", a, b, "--json"]);
  t.equal(different.status, 1);
  t.equal(JSON.parse(different.stdout).firstDifferenceOffset, 65536);
  const missing = runCli(["compare", a, join(dir, "missing")]);
  t.equal(missing.status, 3);
  t.match(missing.stderr, /^vhdsync: VHDSYNC_NOT_FOUND: /);
  t.equal(runCli(["compare", a]).status, 2);
});
