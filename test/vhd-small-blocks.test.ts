// Dynamic VHDs with blocks under 4 KiB: valid by the spec, so vhdsync reads and writes them, but
// qemu and libvhdi misread them, so vhdsync does not create them (docs/vhd.md "Layout vhdsync
// writes"). The disk read here is laid out by the test itself, bytes placed by hand from the
// spec, not by vhdsync's writer.
import t from "tap";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../dist/formats/open-image.js";
import { createVhd } from "../dist/formats/vhd/index.js";
import { createSnapshot } from "../dist/snapshot/index.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { readImage, setVhdBlockSize } from "./helpers/vhd.js";
import { tempDir } from "./helpers/tmp.js";

const BLOCK = 1024;
const BLOCKS = 64;

/**
 * A 64 KiB dynamic VHD of 1 KiB blocks: vhdsync's empty 4 KiB-block disk of 64 entries (footer,
 * header, BAT at 1536) turned into one of 1 KiB blocks (setVhdBlockSize), then blocks appended
 * by hand (a 512-byte bitmap of ones, then 1 KiB of data) for a random half of the entries.
 * Returns the disk's expected content.
 */
async function handMadeDisk(path: string, prng: Prng): Promise<Buffer> {
  await (await createVhd(path, { type: "dynamic", sizeBytes: BLOCKS * 4096, blockSizeBytes: 4096 })).close();
  t.equal(setVhdBlockSize(path, BLOCK), BLOCKS * BLOCK);
  const file = readFileSync(path);
  const footer = file.subarray(0, 512);
  const header = file.subarray(512, 1536);
  t.equal(header.readBigUInt64BE(16), 1536n, "the BAT is at 1536");
  const bat = Buffer.alloc(512, 0xff);
  const expected = Buffer.alloc(BLOCKS * BLOCK);
  const blocks: Buffer[] = [];
  let sector = 4; // after footer copy, header (2 sectors) and BAT (1 sector)
  // A random half of the entries, stored in a random order.
  const entries = [...Array(BLOCKS).keys()];
  for (let i = entries.length - 1; i > 0; i--) {
    const j = prng.int(i + 1);
    [entries[i], entries[j]] = [entries[j], entries[i]];
  }
  for (const entry of entries.slice(0, BLOCKS / 2)) {
    const data = Buffer.from(prng.bytes(BLOCK));
    data.copy(expected, entry * BLOCK);
    bat.writeUInt32BE(sector, entry * 4);
    blocks.push(Buffer.alloc(512, 0xff), data);
    sector += 1 + BLOCK / 512;
  }
  writeFileSync(path, Buffer.concat([footer, header, bat, ...blocks, footer]));
  return expected;
}

t.test("a disk of 1 KiB blocks laid out by hand reads, checks, converts and takes writes", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const path = join(dir, "small.vhd");
  const expected = await handMadeDisk(path, prng);
  const image = await openImage(path);
  t.equal((await image.info()).blockSize, BLOCK, `seed ${seed}: 1 KiB blocks`);
  t.same(await readImage(image, 3000), expected, `seed ${seed}: reads what was placed`);
  await image.close();
  t.equal(runCli(["check", path]).status, 0, "checks clean");
  const raw = join(dir, "small.raw");
  t.equal(runCli(["convert", path, raw, "--to", "raw"]).status, 0);
  t.same(readFileSync(raw), expected, "converts to its content");

  // Writes: into placed blocks, unallocated ones and across block edges.
  const writable = await openImage(path, { readOnly: false });
  for (let i = 0; i < 20; i++) {
    const length = 1 + prng.int(3 * BLOCK);
    const offset = prng.int(expected.length - length + 1);
    const data = Buffer.from(prng.bytes(length));
    await writable.write(data, offset);
    data.copy(expected, offset);
  }
  await writable.close();
  const reopened = await openImage(path);
  t.same(await readImage(reopened), expected, `seed ${seed}: reads its writes after a reopen`);
  await reopened.close();
  t.equal(runCli(["check", path]).status, 0, "checks clean after the writes");

  // A snapshot's child gets 4 KiB blocks (vhdsync does not create smaller ones); the chain reads the same.
  await createSnapshot(path, { name: "s1" });
  const active = await openImage(path);
  t.equal((await active.info()).blockSize, 4096, "the snapshot's child has 4 KiB blocks");
  t.same(await readImage(active), expected, "the chain reads the disk's content");
  await active.close();
});

t.test("blocks under 4 KiB are not created: usage errors on the CLI, refused by createVhd", async (t) => {
  const dir = tempDir(t);
  const input = join(dir, "in.raw");
  writeFileSync(input, Buffer.alloc(65536, 1));
  for (const size of ["512", "1K", "2K"]) {
    const out = join(dir, `out-${size}.vhd`);
    for (const args of [
      ["create", "--type", "dynamic", "--size", "1M", "--block-size", size, out],
      ["convert", input, out, "--to", "vhd-dynamic", "--block-size", size],
    ]) {
      const run = runCli(args);
      t.equal(run.status, 2, `${args[0]} --block-size ${size}: exit 2`);
      t.match(run.stderr, /4 KiB to 256 MiB \(blocks under 4 KiB are valid by the spec, but qemu and libvhdi misread them\)/);
    }
    await t.rejects(createVhd(out, { type: "dynamic", sizeBytes: 1 << 20, blockSizeBytes: Number(size.replace("K", "")) * (size.endsWith("K") ? 1024 : 1) }), { code: "VHDSYNC_INVALID_ARGUMENT" });
    t.equal(runCli(["info", out]).status, 3, "nothing was created");
  }
  t.equal(runCli(["create", "--type", "dynamic", "--size", "1M", "--block-size", "4K", join(dir, "ok.vhd")]).status, 0, "4 KiB blocks are created");
});
