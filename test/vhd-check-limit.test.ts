// `vhdsync check` lists at most MAX_CHECK_PROBLEMS (1000) problems and counts the rest: a VHD
// with 262,144 bad bitmaps once took 162 MiB of RSS for the text report and 288 MiB for
// --json (one message per bad block); capped, 66 MiB. Also: more than 1000 bad BAT entries
// (the scan's own cap) are counted, not read past the footer.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { checkImage, MAX_CHECK_PROBLEMS } from "../dist/index.js";
import { runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";
import { setVhdBlockSize } from "./helpers/vhd.js";

const SECTOR = 512;

/**
 * A dynamic VHD in 512-byte blocks whose first `blocks` blocks are allocated, each with a
 * clear bitmap over non-zero data (a bad bitmap), or, with `pastEnd`, its first `pastEnd`
 * BAT entries pointing past the footer instead.
 */
function damagedVhd(path: string, blocks: number, pastEnd = 0): void {
  // vhdsync creates 4 KiB blocks at least; the header is then rewritten to 512-byte ones.
  const created = runCli(["create", "--type", "dynamic", "--size", String(blocks * 4096), "--block-size", "4K", path]);
  if (created.status !== 0) throw new Error(created.stderr);
  setVhdBlockSize(path, SECTOR);
  const file = readFileSync(path);
  const footer = file.subarray(file.length - SECTOR);
  const headerOffset = Number(footer.readBigUInt64BE(16));
  const tableOffset = Number(file.readBigUInt64BE(headerOffset + 16));
  const dataStart = file.length - SECTOR;
  const blockBytes = 2 * SECTOR; // a bitmap sector (all clear), a data sector
  const out = Buffer.alloc(dataStart + blocks * blockBytes + SECTOR);
  file.copy(out, 0, 0, dataStart);
  for (let block = 0; block < blocks; block++) {
    const at = dataStart + block * blockBytes;
    out[at + SECTOR] = 1;
    out.writeUInt32BE(block < pastEnd ? 0x7fffff00 + block : at / SECTOR, tableOffset + block * 4);
  }
  footer.copy(out, out.length - SECTOR);
  writeFileSync(path, out);
}

t.test("1500 bad bitmaps: 1000 listed, 500 counted (API, --json and text)", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "bad-bitmaps.vhd");
  damagedVhd(path, 1500);
  t.equal(MAX_CHECK_PROBLEMS, 1000);
  const result = await checkImage(path);
  t.equal(result.ok, false);
  t.equal(result.problems.length, 1000, "the first 1000 listed");
  t.equal(result.problemsOmitted, 500, "the rest counted");
  t.match(result.problems[0], { code: "VHDSYNC_CORRUPT", message: /VHD block 0, sector 0/ });
  t.match(result.problems[999], { code: "VHDSYNC_CORRUPT", message: /VHD block 999, sector 0/ });

  const json = runCli(["check", "--json", path]);
  t.equal(json.status, 3);
  const parsed = JSON.parse(json.stdout);
  t.same([parsed.ok, parsed.problems.length, parsed.problemsOmitted], [false, 1000, 500]);

  const text = runCli(["check", path]);
  t.equal(text.status, 3);
  const lines = text.stdout.trimEnd().split("\n");
  t.equal(lines[0], `${path}: vhd, 1500 problem(s), the first 1000 listed:`);
  t.equal(lines.length, 1 + 1000 + 1);
  t.equal(lines.at(-1), "  ... and 500 more not listed (check lists at most 1000)");
});

t.test("1200 BAT entries past the footer: the scan's 1000 listed, 200 counted, nothing read past the end", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "bad-entries.vhd");
  damagedVhd(path, 1300, 1200);
  const result = await checkImage(path);
  t.equal(result.problems.length, 1000);
  t.ok(result.problems.every((p) => p.code === "VHDSYNC_TRUNCATED" && /VHD BAT entry/.test(p.message)), "all BAT entry problems");
  t.equal(result.problemsOmitted, 200 + 100, "200 more entries past the end, 100 bad bitmaps");
});

t.test("a clean image reports problemsOmitted 0", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "clean.vhd");
  runCli(["create", "--type", "dynamic", "--size", "1M", path]);
  t.same(JSON.parse(runCli(["check", "--json", path]).stdout), { path, format: "vhd", ok: true, problems: [], problemsOmitted: 0 });
  t.match(runCli(["check", path]).stdout, /no problems found/);
});

t.test("blocks larger than the WASM arena are checked a piece at a time, problems placed exactly", async (t) => {
  const dir = tempDir(t);
  // 256 MiB blocks (the largest the spec's tools make): an empty disk checks clean.
  const empty = join(dir, "big-blocks.vhd");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "1M", "--block-size", "256M", empty]).status, 0);
  t.same(await checkImage(empty), { path: empty, format: "vhd", ok: true, problems: [], problemsOmitted: 0 });
  t.equal(runCli(["check", empty]).status, 0);
  // 16 MiB blocks, one allocated: every sector's bit set but one in the block's third 4 MiB
  // piece, whose data is not zero.
  const path = join(dir, "pieces.vhd");
  const blockBytes = 16 * 1024 * 1024;
  t.equal(runCli(["create", "--type", "dynamic", "--size", String(2 * blockBytes), "--block-size", "16M", path]).status, 0);
  const file = readFileSync(path);
  const footer = file.subarray(file.length - SECTOR);
  const headerOffset = Number(footer.readBigUInt64BE(16));
  const tableOffset = Number(file.readBigUInt64BE(headerOffset + 16));
  const bitmapBytes = blockBytes / SECTOR / 8;
  const blockAt = file.length - SECTOR;
  const out = Buffer.alloc(blockAt + bitmapBytes + blockBytes + SECTOR);
  file.copy(out, 0, 0, blockAt);
  out.fill(0xff, blockAt, blockAt + bitmapBytes);
  const badSector = 2 * 8192 + 13;
  out[blockAt + (badSector >> 3)] &= ~(0x80 >> (badSector & 7));
  const badOffset = blockAt + bitmapBytes + badSector * SECTOR;
  out[badOffset + 100] = 7;
  out.writeUInt32BE(blockAt / SECTOR, tableOffset);
  footer.copy(out, out.length - SECTOR);
  writeFileSync(path, out);
  const result = await checkImage(path);
  t.equal(result.problems.length, 1);
  t.match(result.problems[0], { code: "VHDSYNC_CORRUPT", message: new RegExp(`VHD block 0, sector ${badSector}\\b`), offset: badOffset });
  // Zeros under the clear bit are no problem.
  out[badOffset + 100] = 0;
  writeFileSync(path, out);
  t.equal((await checkImage(path)).ok, true);
});
