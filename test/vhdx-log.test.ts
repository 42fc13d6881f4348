// Dirty VHDX logs: entries crafted into copies of qemu images are replayed in memory on a
// read-only open; the file's bytes never change. qemu-io (which replays on a read-write open
// of a second copy) is the oracle for the content.

import t from "tap";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../dist/index.js";
import { regionOffsets } from "./helpers/vhdx-builder.js";
import { writeLogEntries, type LogEntrySpec } from "./helpers/vhdx-log-builder.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuImg, qemuIo, qemuRaw, sha256, readWholeImage } from "./helpers/vhdx-qemu.js";

const MIB = 1024 * 1024;

/** A 6 MiB dynamic image (1 MiB blocks) with blocks 0-3 holding patterns 0xA0-0xA3. */
function baseImage(dir: string): Uint8Array {
  const path = join(dir, "base.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", path, String(6 * MIB));
  qemuIo(path, [0, 1, 2, 3].map((b) => `write -P 0x${(0xa0 + b).toString(16)} ${b * MIB} ${MIB}`));
  return new Uint8Array(readFileSync(path));
}

/** The first BAT sector with block 0 pointing at block 2's data and block 1 set to ZERO. */
function patchedBatSector(file: Uint8Array): { offset: number; data: Uint8Array } {
  const { bat } = regionOffsets(file);
  const sector = file.slice(bat, bat + 4096);
  const view = new DataView(sector.buffer);
  view.setBigUint64(0, view.getBigUint64(16, true), true);
  view.setBigUint64(8, 2n, true);
  return { offset: bat, data: sector };
}


/** Writes the dirty image twice: ours (read-only) and qemu's copy (replayed by a rw open). */
function dirtyPair(dir: string, name: string, file: Uint8Array): { ours: string; oracle: string } {
  const ours = join(dir, `${name}.vhdx`);
  const oracle = join(dir, `${name}-qemu.vhdx`);
  writeFileSync(ours, file);
  writeFileSync(oracle, file);
  qemuIo(oracle, ["read 0 512"]);
  return { ours, oracle };
}

for (const wrap of [false, true]) {
  t.test(`replays a two-entry sequence${wrap ? " that wraps around the log end" : ""} in memory, never writing the file`, async (t) => {
    const dir = tempDir(t);
    const file = baseImage(dir);
    const bat = patchedBatSector(file);
    const block3 = Number(new DataView(file.buffer).getBigUint64(regionOffsets(file).bat + 24, true) >> 20n) * MIB;
    const entries: LogEntrySpec[] = [
      { sequence: 40n, descriptors: [{ kind: "data", fileOffset: bat.offset, data: bat.data }] },
      { sequence: 41n, descriptors: [{ kind: "zero", fileOffset: block3, length: 8192 }] },
    ];
    writeLogEntries(file, entries, wrap ? MIB - 4096 : 0);
    const { ours, oracle } = dirtyPair(dir, "seq", file);
    const before = sha256(readFileSync(ours));
    const content = await readWholeImage(ours);
    t.equal(sha256(readFileSync(ours)), before, "file bytes unchanged by open/read/close");
    // qemu 7.2 did not replay the entry split across the log's end in our runs, so it is the oracle only
    // for the contiguous layout; the expectations below hold for both.
    if (!wrap) t.equal(sha256(content), sha256(qemuRaw(oracle, dir)), "content equals qemu's after its replay");
    t.ok(content.subarray(0, MIB).every((b) => b === 0xa2), "block 0 now maps to block 2's data");
    t.ok(content.subarray(MIB, 2 * MIB).every((b) => b === 0), "block 1 is ZERO");
    t.ok(content.subarray(2 * MIB, 3 * MIB).every((b) => b === 0xa2), "block 2 unchanged");
    t.ok(content.subarray(3 * MIB, 3 * MIB + 8192).every((b) => b === 0), "zero descriptor applied");
    t.ok(content.subarray(3 * MIB + 8192, 4 * MIB).every((b) => b === 0xa3), "rest of block 3 unchanged");
    const image = await openImage(ours);
    t.same((await image.info()).logReplayed, { entries: 2, headSequenceNumber: "41" });
    await image.close();
  });
}

t.test("an entry with a bad CRC ends the sequence: only the entries before it replay", async (t) => {
  const dir = tempDir(t);
  const file = baseImage(dir);
  const bat = patchedBatSector(file);
  writeLogEntries(file, [
    { sequence: 7n, descriptors: [{ kind: "data", fileOffset: bat.offset, data: bat.data }] },
    { sequence: 8n, descriptors: [{ kind: "zero", fileOffset: bat.offset, length: 4096 }], badChecksum: true },
  ], 0);
  const { ours, oracle } = dirtyPair(dir, "badcrc", file);
  const content = await readWholeImage(ours);
  t.equal(sha256(content), sha256(qemuRaw(oracle, dir)));
  t.ok(content.subarray(0, MIB).every((b) => b === 0xa2), "first entry replayed");
});

t.test("the newest valid sequence wins over an older one", async (t) => {
  const dir = tempDir(t);
  const file = baseImage(dir);
  const bat = patchedBatSector(file);
  const old = bat.data.slice();
  new DataView(old.buffer).setBigUint64(0, 2n, true); // older sequence: block 0 ZERO
  const next = writeLogEntries(file, [{ sequence: 3n, descriptors: [{ kind: "data", fileOffset: bat.offset, data: old }] }], 0);
  writeLogEntries(file, [{ sequence: 90n, descriptors: [{ kind: "data", fileOffset: bat.offset, data: bat.data }] }], next);
  const { ours, oracle } = dirtyPair(dir, "newest", file);
  const content = await readWholeImage(ours);
  t.equal(sha256(content), sha256(qemuRaw(oracle, dir)));
  t.ok(content.subarray(0, MIB).every((b) => b === 0xa2));
});

t.test("unusable logs are coded errors and leave the file alone", async (t) => {
  const dir = tempDir(t);
  const cases: [string, LogEntrySpec, string][] = [
    ["only entry has a bad CRC", { sequence: 5n, descriptors: [], badChecksum: true }, "VHDSYNC_CORRUPT"],
    ["entry from another log", { sequence: 5n, descriptors: [], foreignGuid: true }, "VHDSYNC_CORRUPT"],
    ["file shorter than FlushedFileOffset", { sequence: 5n, descriptors: [], flushedFileOffset: 64 * MIB }, "VHDSYNC_TRUNCATED"],
  ];
  const base = baseImage(dir);
  for (const [name, spec, code] of cases) {
    const file = base.slice();
    writeLogEntries(file, [spec], 0);
    const path = join(dir, "bad.vhdx");
    writeFileSync(path, file);
    await t.rejects(openImage(path), { code }, name);
    t.equal(sha256(readFileSync(path)), sha256(file), `${name}: file unchanged`);
  }
});

t.test("a hostile log (an entry header claiming the whole log at every 4 KiB) fails fast with a coded error", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "hostile.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "log_size=16M", path, String(4 * MIB));
  const file = new Uint8Array(readFileSync(path));
  writeLogEntries(file, [{ sequence: 1n, descriptors: [] }], 0); // sets the header's LogGuid
  const view = new DataView(file.buffer);
  const logOffset = Number(view.getBigUint64(64 * 1024 + 72, true));
  const logLength = view.getUint32(64 * 1024 + 68, true);
  const header = file.slice(logOffset, logOffset + 64);
  for (let position = 0; position < logLength; position += 4096) {
    file.set(header, logOffset + position);
    view.setUint32(logOffset + position + 8, logLength, true); // EntryLength: the whole log
    view.setBigUint64(logOffset + position + 16, BigInt(1 + position / 4096), true);
  }
  writeFileSync(path, file);
  await t.rejects(openImage(path), { code: "VHDSYNC_CORRUPT" });
  t.equal(sha256(readFileSync(path)), sha256(file), "file unchanged");
});
