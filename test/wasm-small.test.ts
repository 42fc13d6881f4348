// The small WASM instance (wasmFor): commands that only parse images (headers, tables,
// bitmaps) do not make the 128 MiB shared instance, whose memory makes V8 collect garbage.
// Runs in its own process: nothing here may have made the shared instance first.
import t from "tap";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SMALL_ARENA_BYTES, getWasm, hasSharedWasm, wasmFor } from "../dist/wasm/driver.js";
import { createVhd } from "../dist/formats/vhd/index.js";
import { openImage } from "../dist/formats/open-image.js";
import { BitmapOps } from "../dist/formats/vhd/vhd-bitmap.js";
import { tempDir } from "./helpers/tmp.js";
import { STATE, buildVhdx, regionOffsets } from "./helpers/vhdx-builder.js";
import { writeLogEntries } from "./helpers/vhdx-log-builder.js";

const MIB = 1024 * 1024;

t.test("opening, reading and writing a dynamic VHD uses the small instance", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "d.vhd");
  const image = await createVhd(path, { type: "dynamic", sizeBytes: 64 << 20 });
  const data = Buffer.alloc(3 * 512, 0x5a);
  await image.write(data, 5 * 1024 * 1024 + 512);
  await image.close();
  const opened = await openImage(path, { readOnly: true });
  const back = Buffer.alloc(data.length + 1024);
  await opened.read(back, 5 * 1024 * 1024);
  await opened.close();
  t.ok(back.subarray(512, 512 + data.length).equals(data), "the data reads back");
  t.ok(back.subarray(0, 512).every((byte) => byte === 0) && back.subarray(512 + data.length).every((byte) => byte === 0), "around it, zeros");
  t.notOk(hasSharedWasm(), "no shared instance was made");
  t.ok(wasmFor(0).memory.buffer.byteLength <= SMALL_ARENA_BYTES + (2 << 20), "the small instance's memory is small");
});

t.test("opening a VHDX whose log needs replaying, and reading it, uses the small instance", async (t) => {
  const dir = tempDir(t);
  const data = Buffer.alloc(MIB, 0x3c);
  const file = buildVhdx({ virtualSize: 4 * MIB, blockSize: MIB, blocks: new Map([[1, { state: STATE.FULLY_PRESENT, data }], [2, { state: STATE.FULLY_PRESENT, data }]]) });
  // Through the log, block 2 becomes ZERO: replayed in memory when the image is opened.
  const { bat } = regionOffsets(file);
  const sector = file.slice(bat, bat + 4096);
  new DataView(sector.buffer).setBigUint64(16, 2n, true);
  writeLogEntries(file, [{ sequence: 5n, descriptors: [{ kind: "data", fileOffset: bat, data: sector }] }], 0);
  const path = join(dir, "dirty.vhdx");
  writeFileSync(path, file);
  const image = await openImage(path, { readOnly: true });
  const bytes = Buffer.alloc(3 * MIB);
  await image.read(bytes, 0);
  await image.close();
  t.ok(bytes.subarray(MIB, 2 * MIB).equals(data), "block 1 reads its data");
  t.ok(bytes.subarray(0, MIB).every((byte) => byte === 0) && bytes.subarray(2 * MIB).every((byte) => byte === 0), "blocks 0 and 2 (zeroed through the log) read zeros");
  t.notOk(hasSharedWasm(), "no shared instance was made");
});

t.test("work that does not fit gets the shared instance, and everything does once it exists", async (t) => {
  const small = wasmFor(1024);
  t.notOk(hasSharedWasm());
  // Hold most of the small arena, as images' bitmaps would.
  const held = small.alloc(SMALL_ARENA_BYTES - 64 * 1024);
  const bitmap = new BitmapOps(128 * 1024);
  t.ok(hasSharedWasm(), "a bitmap workspace that no longer fits went to the shared instance");
  const bits = new Uint8Array(128 * 1024);
  t.equal(bitmap.setRange(bits, 9, 7), 7, "and works there");
  t.equal(bitmap.count(bits, 64), 7);
  bitmap.release();
  small.release(held);
  t.equal(wasmFor(16), getWasm(), "with the shared instance made, small requests get it too");
  t.ok(getWasm().memory.buffer.byteLength > SMALL_ARENA_BYTES * 4);
});
