// Bad VHDX input: truncation, signatures, checksums (one copy bad → the other is used; both
// bad → error), region table, metadata and BAT damage. Each is a coded VhdsyncError (or a
// clean open when a good copy remains), the file is never modified, and `check` reports it.

import t from "tap";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkImage, openImage } from "../dist/index.js";
import { regionOffsets, setChecksum } from "./helpers/vhdx-builder.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuImg, qemuIo, qemuRaw, readWholeImage, sha256 } from "./helpers/vhdx-qemu.js";

const MIB = 1024 * 1024;
const KIB = 1024;
const GUID_BAT = [0x66, 0x77, 0xc2, 0x2d];
const GUID_FILE_PARAMETERS = [0x37, 0x67, 0xa1, 0xca];
const GUID_LOGICAL = [0x1d, 0xbf, 0x41, 0x81];
const GUID_SIZE = [0x24, 0x42, 0xa5, 0x2f];

type Mutation = (file: Uint8Array, view: DataView) => Uint8Array | void;

/** Offset of a metadata item's data (matched by the first 4 bytes of its GUID). */
function metadataItem(file: Uint8Array, view: DataView, guidStart: number[]): number {
  const { metadata } = regionOffsets(file);
  for (let i = 0; i < view.getUint16(metadata + 10, true); i++) {
    const entry = metadata + 32 + i * 32;
    if (guidStart.every((b, k) => file[entry + k] === b)) return metadata + view.getUint32(entry + 16, true);
  }
  throw new Error("item not found");
}

function fixRegionChecksums(file: Uint8Array): void {
  for (const at of [192 * KIB, 256 * KIB]) setChecksum(file.subarray(at, at + 64 * KIB));
}

const corruptions: [string, Mutation, string][] = [
  ["truncated inside the header section", (f) => f.subarray(0, 100 * KIB), "VHDSYNC_TRUNCATED"],
  ["truncated before the metadata", (f) => f.subarray(0, regionOffsets(f).metadata + 4096), "VHDSYNC_TRUNCATED"],
  ["truncated inside the data blocks", (f) => f.subarray(0, f.length - MIB / 2), "VHDSYNC_TRUNCATED"],
  ["both headers with bad CRCs", (f) => { f[64 * KIB + 100] ^= 1; f[128 * KIB + 100] ^= 1; }, "VHDSYNC_BAD_CHECKSUM"],
  ["both header signatures wrong", (f) => { f[64 * KIB] = 0x78; f[128 * KIB] = 0x78; }, "VHDSYNC_CORRUPT"],
  ["header version 2", (f, v) => { for (const at of [64 * KIB, 128 * KIB]) { v.setUint16(at + 66, 2, true); setChecksum(f.subarray(at, at + 4096)); } }, "VHDSYNC_UNSUPPORTED"],
  ["log offset not MiB-aligned", (f, v) => { for (const at of [64 * KIB, 128 * KIB]) { v.setBigUint64(at + 72, 12345n, true); setChecksum(f.subarray(at, at + 4096)); } }, "VHDSYNC_CORRUPT"],
  ["both region tables with bad CRCs", (f) => { f[192 * KIB + 40] ^= 1; f[256 * KIB + 40] ^= 1; }, "VHDSYNC_BAD_CHECKSUM"],
  ["region offset not MiB-aligned", (f, v) => { v.setBigUint64(192 * KIB + 16 + 16, 3n * BigInt(MIB) + 7n, true); v.setBigUint64(256 * KIB + 16 + 16, 3n * BigInt(MIB) + 7n, true); fixRegionChecksums(f); }, "VHDSYNC_CORRUPT"],
  ["unknown required region", (f, v) => { for (const at of [192 * KIB, 256 * KIB]) { f[at + 16] ^= 0xff; v.setUint32(at + 16 + 28, 1, true); } fixRegionChecksums(f); }, "VHDSYNC_UNSUPPORTED"],
  ["BAT region missing", (f) => { for (const at of [192 * KIB, 256 * KIB]) for (let i = 0; i < 2; i++) if (GUID_BAT.every((b, k) => f[at + 16 + i * 32 + k] === b)) f[at + 16 + i * 32 + 15] ^= 1; fixRegionChecksums(f); }, "VHDSYNC_CORRUPT"],
  ["metadata signature", (f) => { f[regionOffsets(f).metadata] = 0x4d; }, "VHDSYNC_CORRUPT"],
  ["block size 3 MiB", (f, v) => { v.setUint32(metadataItem(f, v, GUID_FILE_PARAMETERS), 3 * MIB, true); }, "VHDSYNC_CORRUPT"],
  ["block size 1 GiB", (f, v) => { v.setUint32(metadataItem(f, v, GUID_FILE_PARAMETERS), 1024 * MIB, true); }, "VHDSYNC_CORRUPT"],
  ["logical sector size 1000", (f, v) => { v.setUint32(metadataItem(f, v, GUID_LOGICAL), 1000, true); }, "VHDSYNC_CORRUPT"],
  ["virtual size 2^60", (f, v) => { v.setBigUint64(metadataItem(f, v, GUID_SIZE), 1n << 60n, true); }, "VHDSYNC_CORRUPT"],
  ["virtual size larger than the BAT", (f, v) => { v.setBigUint64(metadataItem(f, v, GUID_SIZE), 1n << 45n, true); }, "VHDSYNC_CORRUPT"],
  ["unknown required metadata item", (f, v) => { const entry = regionOffsets(f).metadata + 32; f[entry] ^= 0xff; v.setUint32(entry + 24, 4, true); }, "VHDSYNC_UNSUPPORTED"],
  ["BAT entry in reserved state 4", (f, v) => { v.setBigUint64(regionOffsets(f).bat, 4n, true); }, "VHDSYNC_CORRUPT"],
  ["PARTIALLY_PRESENT in a dynamic disk", (f, v) => { const at = regionOffsets(f).bat; v.setBigUint64(at, (v.getBigUint64(at, true) & ~7n) | 7n, true); }, "VHDSYNC_CORRUPT"],
  ["BAT entry past the end of file", (f, v) => { v.setBigUint64(regionOffsets(f).bat, 6n | (4000n << 20n), true); }, "VHDSYNC_TRUNCATED"],
  ["BAT entry inside the header section", (f, v) => { v.setBigUint64(regionOffsets(f).bat, 6n, true); }, "VHDSYNC_CORRUPT"],
  ["BAT entry at 2^63", (f, v) => { v.setBigUint64(regionOffsets(f).bat, 6n | (0xfffffffffffn << 20n), true); }, "VHDSYNC_TRUNCATED"],
  // A block over one of the file's own structures was read as disk data ([MS-VHDX] 2.5.1: a
  // payload block must not overlap any other structure; qemu refuses such a file).
  ["BAT entry on the BAT itself", (f, v) => { const { bat } = regionOffsets(f); v.setBigUint64(bat, 6n | (BigInt(Math.floor(bat / MIB)) << 20n), true); }, "VHDSYNC_CORRUPT"],
  ["BAT entry on the metadata region", (f, v) => { const { bat, metadata } = regionOffsets(f); v.setBigUint64(bat, 6n | (BigInt(Math.floor(metadata / MIB)) << 20n), true); }, "VHDSYNC_CORRUPT"],
  ["BAT entry on the log", (f, v) => { v.setBigUint64(regionOffsets(f).bat, 6n | (BigInt(Number(v.getBigUint64(64 * KIB + 72, true)) / MIB) << 20n), true); }, "VHDSYNC_CORRUPT"],
];

/** A 4 MiB dynamic image with two written blocks. */
function sample(dir: string): string {
  const path = join(dir, "sample.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", path, String(4 * MIB));
  qemuIo(path, ["write -P 0x61 0 1M", `write -P 0x62 ${2 * MIB} 4096`]);
  return path;
}

t.test("corruptions are coded errors; nothing is written; check lists them", async (t) => {
  const dir = tempDir(t);
  const original = new Uint8Array(readFileSync(sample(dir)));
  for (const [name, mutate, code] of corruptions) {
    const copy = original.slice();
    const file = mutate(copy, new DataView(copy.buffer)) ?? copy;
    const path = join(dir, "bad.vhdx");
    writeFileSync(path, file);
    await t.rejects(openImage(path), { code }, name);
    await t.rejects(openImage(path, { format: "vhdx" }), { code }, `${name} (forced format)`);
    const checked = await checkImage(path);
    t.equal(checked.ok, false, `${name}: check fails`);
    t.ok(checked.problems.some((p: { code: string }) => p.code === code), `${name}: check reports ${code}`);
    t.equal(sha256(readFileSync(path)), sha256(file), `${name}: file unchanged`);
  }
});

t.test("one damaged header or region table: the other copy is used, check reports it", async (t) => {
  const dir = tempDir(t);
  const source = sample(dir);
  const original = new Uint8Array(readFileSync(source));
  const expected = sha256(qemuRaw(source, dir));
  const cases: [string, number][] = [["first header", 64 * KIB + 300], ["second header", 128 * KIB + 300], ["first region table", 192 * KIB + 900], ["second region table", 256 * KIB + 900]];
  for (const [name, offset] of cases) {
    const file = original.slice();
    file[offset] ^= 0x40;
    const path = join(dir, "one-bad.vhdx");
    writeFileSync(path, file);
    const content = await readWholeImage(path);
    t.equal(sha256(content), expected, `${name} damaged: content intact`);
    const checked = await checkImage(path);
    t.same(checked.problems.map((p: { code: string }) => p.code), ["VHDSYNC_BAD_CHECKSUM"], `${name}: one problem reported`);
  }
  t.same((await checkImage(source)).problems, [], "the undamaged image checks clean");
});

t.test("check finds blocks that overlap other structures", async (t) => {
  const dir = tempDir(t);
  const file = new Uint8Array(readFileSync(sample(dir)));
  const view = new DataView(file.buffer);
  const { bat, metadata } = regionOffsets(file);
  view.setBigUint64(bat + 8, view.getBigUint64(bat, true), true); // block 1 shares block 0's data
  view.setBigUint64(bat + 24, 6n | (BigInt(metadata / MIB) << 20n), true); // block 3 on the metadata
  const path = join(dir, "overlap.vhdx");
  writeFileSync(path, file);
  const checked = await checkImage(path);
  t.equal(checked.problems.length, 2, JSON.stringify(checked.problems));
  t.ok(checked.problems.every((p: { code: string; message: string }) => p.code === "VHDSYNC_CORRUPT" && /overlaps/.test(p.message)));
});

t.test("BAT state 5 (UNMAPPED in pre-1.0 drafts) reads as zeros, like qemu", async (t) => {
  const dir = tempDir(t);
  const source = sample(dir);
  const file = new Uint8Array(readFileSync(source));
  const { bat } = regionOffsets(file);
  new DataView(file.buffer).setBigUint64(bat, 5n, true);
  const path = join(dir, "state5.vhdx");
  writeFileSync(path, file);
  const oracle = qemuRaw(path, dir);
  const content = await readWholeImage(path);
  t.equal(sha256(content), sha256(oracle), "same as qemu");
  t.ok(content.subarray(0, MIB).every((b) => b === 0), "block 0 reads as zeros");
});
