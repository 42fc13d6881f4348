// VHDX read against qemu as the oracle: fixed and dynamic images of several block sizes and
// odd sizes, written by qemu-io at seeded random offsets; content must equal qemu-img convert.

import t from "tap";
import { join } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import { STATUS_TABLE } from "../dist/wasm/status.js";
import { openImage } from "../dist/index.js";
import { VhdxImage } from "../dist/formats/vhdx/index.js";
import { crc32c } from "../dist/formats/vhdx/vhdx-structures.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { STATE, buildVhdx, regionOffsets } from "./helpers/vhdx-builder.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuImg, qemuIo, qemuRaw, sha256, readWholeImage } from "./helpers/vhdx-qemu.js";

const seed = testSeed();
const MIB = 1024 * 1024;

/** Bitwise CRC-32C reference (independent of the WASM table code). */
function crc32cReference(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}


/** Random qemu-io writes (patterns, zero writes, discards) inside a disk of `size` bytes. */
function randomCommands(prng: Prng, size: number, count: number): string[] {
  const commands: string[] = [];
  for (let i = 0; i < count; i++) {
    const offset = prng.int(size / 512) * 512;
    const length = Math.min(size - offset, (1 + prng.int(prng.int(4) === 0 ? 4096 : 64)) * 512);
    const kind = prng.int(6);
    if (kind === 0) commands.push(`write -z ${offset} ${length}`);
    else if (kind === 1) commands.push(`discard ${offset} ${length}`);
    else commands.push(`write -P 0x${(1 + prng.int(255)).toString(16)} ${offset} ${length}`);
  }
  return commands;
}

t.test("CRC-32C: known answer, WASM equals a bitwise reference", async (t) => {
  t.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  const prng = new Prng(seed);
  for (const length of [0, 1, 7, 8, 9, 63, 4096, 4099]) {
    const data = prng.bytes(length);
    t.equal(crc32c(data), crc32cReference(data), `length ${length} seed ${seed}`);
  }
});

t.test("the VHDX status range is the same in assembly/status.ts and src/wasm/status.ts", async (t) => {
  const source = readFileSync(new URL("../assembly/status.ts", import.meta.url), "utf8");
  const assembly = [...source.matchAll(/export const STATUS_VHDX_\w+: i32 = (\d+);/g)].map((m) => Number(m[1]));
  const mapped = Object.keys(STATUS_TABLE).map(Number).filter((status) => status >= 200 && status < 300);
  t.ok(assembly.length > 20);
  t.same(mapped.sort((a, b) => a - b), assembly.sort((a, b) => a - b));
  for (const status of mapped) {
    t.match(STATUS_TABLE[status].code, /^VHDSYNC_(CORRUPT|BAD_CHECKSUM|TRUNCATED|UNSUPPORTED)$/, `status ${status}`);
  }
});

const MATRIX = [
  { subformat: "dynamic", blockSize: "1M", size: 5 * MIB + 7 * 4096 },
  { subformat: "dynamic", blockSize: "8M", size: 37 * MIB + 512 },
  { subformat: "dynamic", blockSize: "32M", size: 70 * MIB },
  { subformat: "fixed", blockSize: "1M", size: 3 * MIB + 1024 },
  { subformat: "fixed", blockSize: "8M", size: 20 * MIB },
];

t.test("qemu-made images read like qemu reads them", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed);
  for (const [index, { subformat, blockSize, size }] of MATRIX.entries()) {
    const path = join(dir, `m${index}.vhdx`);
    qemuImg("create", "-f", "vhdx", "-o", `subformat=${subformat},block_size=${blockSize}`, path, String(size));
    qemuIo(path, randomCommands(prng, size, 12));
    const ours = await readWholeImage(path);
    const oracle = qemuRaw(path, dir);
    t.equal(ours.length, oracle.length, `${subformat} ${blockSize} size`);
    t.equal(sha256(ours), sha256(oracle), `${subformat} ${blockSize} ${size} content (seed ${seed})`);
    // Unaligned random reads agree too.
    const image = await openImage(path);
    for (let i = 0; i < 20; i++) {
      const offset = prng.int(size);
      const length = prng.int(Math.min(size - offset, 3 * MIB) + 1);
      const buffer = new Uint8Array(length);
      await image.read(buffer, offset);
      t.ok(Buffer.from(buffer).equals(oracle.subarray(offset, offset + length)), `read ${offset}+${length} (seed ${seed})`);
    }
    const info = await image.info();
    t.equal(info.format, "vhdx");
    t.equal(info.type, subformat);
    t.equal(info.blockSize, parseInt(blockSize) * MIB);
    t.equal(info.virtualSize, size);
    t.equal(info.logicalSectorSize, 512);
    await image.close();
  }
});

t.test("qemu-img convert -O vhdx of random raw data", async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed + 1);
  const raw = new Uint8Array(9 * MIB + 4096);
  for (let i = 0; i < 6; i++) {
    const at = prng.int(raw.length - 300000);
    prng.fill(raw.subarray(at, at + 300000));
  }
  const rawPath = join(dir, "src.raw");
  writeFileSync(rawPath, raw);
  for (const blockSize of ["1M", "8M"]) {
    const path = join(dir, `conv-${blockSize}.vhdx`);
    qemuImg("convert", "-f", "raw", "-O", "vhdx", "-o", `block_size=${blockSize}`, rawPath, path);
    t.equal(sha256(await readWholeImage(path)), sha256(raw), `block ${blockSize} (seed ${seed})`);
  }
});

t.test("allocation map: holes and zero blocks are not data; chain scope equals layer scope", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "alloc.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", path, String(16 * MIB));
  qemuIo(path, [`write -P 0x11 ${2 * MIB + 100 * 512} 4096`, `write -P 0x22 ${9 * MIB} ${2 * MIB}`, `write -z ${9 * MIB} ${MIB}`]);
  const image = await openImage(path);
  const oracle = qemuRaw(path, dir);
  const layer = await image.allocationMap(0, image.virtualSize, "layer");
  t.same(await image.allocationMap(), layer);
  // Every byte outside the map must be zero.
  let cursor = 0;
  for (const extent of [...layer, { offset: image.virtualSize, length: 0 }]) {
    t.ok(oracle.subarray(cursor, extent.offset).every((b) => b === 0), `zeros in ${cursor}..${extent.offset}`);
    cursor = extent.offset + extent.length;
  }
  t.ok(layer.some((e) => e.offset <= 2 * MIB && e.offset + e.length > 2 * MIB + 100 * 512), "written block is listed");
  t.same(await image.allocationMap(3 * MIB, 2 * MIB), [], "empty range");
  const info = await image.info();
  t.equal(info.allocatedBytes, layer.reduce((s, e) => s + e.length, 0));
  await image.close();
});

t.test("detection, read-only contract, log size option", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "log.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "log_size=4M", path, String(4 * MIB));
  qemuIo(path, ["write -P 0x33 0 65536"]);
  const image = await openImage(path, { readOnly: false });
  t.ok(image instanceof VhdxImage);
  t.equal(image.format, "vhdx");
  t.equal(image.readOnly, true);
  await t.rejects(image.write(new Uint8Array(512), 0), { code: "VHDSYNC_UNSUPPORTED" });
  await t.rejects(image.writeZeros(0, 512), { code: "VHDSYNC_UNSUPPORTED" });
  await t.rejects(image.read(new Uint8Array(512), image.virtualSize), { code: "VHDSYNC_INVALID_ARGUMENT" });
  const buffer = new Uint8Array(512);
  await image.read(buffer, 0);
  t.ok(buffer.every((b) => b === 0x33));
  t.same((await image.info()).chain, [{ path, format: "vhdx", type: "dynamic", uniqueId: (await image.info()).uniqueId }]);
  await image.close();
  await t.rejects(image.read(buffer, 0), { code: "VHDSYNC_INVALID_ARGUMENT" });
});

t.test("every fixed/dynamic block state reads like qemu reads it (builder-made image)", async (t) => {
  // qemu 7.2 refuses 4096-byte logical sectors ("Operation not supported"); those are checked
  // against the model in vhdx-diff.test.ts.
  const dir = tempDir(t);
  const prng = new Prng(seed + 5);
  const states = [STATE.NOT_PRESENT, STATE.UNDEFINED, STATE.ZERO, STATE.UNMAPPED, STATE.FULLY_PRESENT, 5];
  for (const logicalSectorSize of [512]) {
    const blocks = new Map(states.map((state, block) => [block, { state, data: prng.bytes(MIB) }]));
    const path = join(dir, `states-${logicalSectorSize}.vhdx`);
    writeFileSync(path, buildVhdx({ virtualSize: states.length * MIB - logicalSectorSize, blockSize: MIB, logicalSectorSize, blocks }));
    const ours = await readWholeImage(path);
    t.equal(sha256(ours), sha256(qemuRaw(path, dir)), `sector size ${logicalSectorSize} (seed ${seed})`);
    t.ok(Buffer.from(ours.subarray(4 * MIB, 5 * MIB)).equals(blocks.get(4)!.data!), "the FULLY_PRESENT block holds its data");
  }
});

t.test("qemu's own images contain the ZERO state that the matrix above reads", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "zero.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", path, String(4 * MIB));
  qemuIo(path, ["write -P 1 0 1M"]);
  const file = new Uint8Array(readFileSync(path));
  const view = new DataView(file.buffer);
  const { bat } = regionOffsets(file);
  const statesSeen = new Set([0, 1, 2, 3].map((block) => Number(view.getBigUint64(bat + 8 * block, true) & 7n)));
  t.ok(statesSeen.has(6), "FULLY_PRESENT");
  t.ok(statesSeen.has(2) || statesSeen.has(0), "ZERO or NOT_PRESENT for unwritten blocks");
  t.ok((await readWholeImage(path)).subarray(MIB).every((b) => b === 0));
});
