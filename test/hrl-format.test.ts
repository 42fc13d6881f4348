// [MS-HRL] structures: the spec's example log rebuilt and traversed, header parse/build round
// trips, version 1 headers, the 2.6 checksum against a JS reference.
import t from "tap";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { getWasm } from "../dist/wasm/driver.js";
import { buildHeader, parseHeader } from "../dist/hrl/header.js";
import { openLog } from "../dist/hrl/hrl-log.js";
import { HrlWriter } from "../dist/hrl/hrl-writer.js";
import { HRL_STATUS, guidFromString, guidToString } from "../dist/hrl/layout.js";
import { STATUS_TABLE } from "../dist/wasm/status.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

// [MS-HRL] section 3, metadata #2, entries 1..58: DataLength, ByteOffset, TimeStamp, Checksum.
const EXAMPLE_ENTRIES: [number, number, number, number][] = [
  [4096, 3626348544, 539842381, 4294966608], [4096, 8026886144, 539842381, 4294966558], [4096, 3699798016, 539842381, 4294966571],
  [4096, 3700805632, 539842381, 4294966460], [4096, 4111884288, 539842381, 4294966674], [2048, 139466752, 539842381, 4294966933],
  [2048, 147937280, 539842381, 4294966740], [4096, 7792644096, 539842381, 4294966626], [4096, 3699830784, 539842381, 4294966443],
  [4096, 3709980672, 539842381, 4294966575], [4096, 3722543104, 539842381, 4294966463], [4096, 3626344448, 539842381, 4294966624],
  [4096, 7792652288, 539842381, 4294966594], [4096, 3699900416, 539842381, 4294966681], [4096, 3734429696, 539842381, 4294966441],
  [12288, 3699957760, 539842381, 4294966425], [4096, 3737313280, 539842381, 4294966397], [4096, 3743948800, 539842381, 4294966742],
  [512, 138656768, 539842381, 4294966788], [512, 139058688, 539842381, 4294966748], [8192, 3757490176, 539842381, 4294966360],
  [4096, 3760070656, 539842381, 4294966751], [1024, 135266304, 539842382, 4294967024], [8192, 3771551744, 539842382, 4294966511],
  [4096, 3771564032, 539842382, 4294966479], [512, 138656768, 539842382, 4294966787], [512, 139058688, 539842382, 4294966747],
  [16384, 3774267392, 539842382, 4294966326], [4096, 3774308352, 539842382, 4294966469], [4096, 3774361600, 539842382, 4294966516],
  [8192, 3626414080, 539842382, 4294966590], [4096, 3777036288, 539842382, 4294966778], [8192, 3792945152, 539842382, 4294966583],
  [4096, 3626352640, 539842382, 4294966591], [8192, 3793145856, 539842382, 4294966564], [4096, 3793178624, 539842382, 4294966707],
  [512, 3676929536, 539842382, 4294966664], [4096, 3793252352, 539842382, 4294966674], [4096, 3794485248, 539842382, 4294966703],
  [31232, 3673733120, 539842382, 4294966280], [4096, 3626418176, 539842382, 4294966590], [31232, 3673764352, 539842382, 4294966413],
  [4096, 3626352640, 539842382, 4294966591], [4096, 3626418176, 539842382, 4294966590], [4096, 3694907392, 539842382, 4294966549],
  [8192, 3700453376, 539842382, 4294966544], [4096, 3626352640, 539842382, 4294966591], [4096, 3704586240, 539842382, 4294966481],
  [8192, 3737305088, 539842382, 4294966412], [4096, 3793489920, 539842382, 4294966766], [4096, 10188185600, 539842382, 4294966776],
  [4096, 3628867584, 539842382, 4294966712], [4096, 3626414080, 539842382, 4294966606], [4096, 3626340352, 539842382, 4294966639],
  [4096, 3628871680, 539842382, 4294966696], [8192, 3626348544, 539842382, 4294966591], [4096, 3626344448, 539842382, 4294966623],
  [4096, 3626340352, 539842382, 4294966639],
];

/** sha256 of the log the stability test writes (vhdsync HRL writer, format 2.0). */
const STABLE_LOG_SHA256 = "1eb703f30c1e5ccab38769bfdc5394c592a013ffffba0aedf6d873c9af640e59";

function exampleHeader(eolLocation: number) {
  return {
    version: 0x20000, timestamp: 539842380, creatorApplication: "ct", creatorVersion: 0xa0000,
    originalSizeBytes: 0, currentSizeBytes: 332288, eolLocation, errorCode: 0, metadataSizeBytes: 4096,
    uniqueId: "572fc7ff-1f03-49ab-b3c5-30a665b8e20c", previousUniqueId: "a8ae4b46-f7ad-4402-87aa-5b33e9f89c77",
    vhd2DataWriteGuid: "b9be5c57-f8be-5503-98bb-6c44faf9ac87", totalMetadataEntries: 58, lastModifiedTimestamp: 539842384,
    fileType: 0, flags: 0, checksum: 0,
  };
}

/** Builds a metadata block with the WASM builders; DataChecksum 0 ("not recorded") as in the example. */
function metadataBlock(previousRelative: number, entries: [number, number, number, number][]): Uint8Array {
  const wasm = getWasm();
  return wasm.withScratch(4096, (address, view) => {
    entries.forEach(([length, offset, timestamp], i) => {
      if (wasm.exports.hrlEntryBuild(address, 4096, i, offset, length, timestamp, 0) !== 0) throw new Error("entry build");
    });
    if (wasm.exports.hrlMetadataHeaderBuild(address, 4096, previousRelative, entries.length) !== 0) throw new Error("header build");
    return view.slice();
  });
}

t.test("the spec's example log: layout, checksums and traversal", async (t) => {
  t.equal(EXAMPLE_ENTRIES.reduce((sum, e) => sum + e[0], 0), 320000, "example data lengths add up to 320,000");
  const file = new Uint8Array(332288);
  file.set(buildHeader(exampleHeader(332288)), 0);
  const first = metadataBlock(0, []);
  const second = metadataBlock(324096, EXAMPLE_ENTRIES);
  const view = (block: Uint8Array) => new DataView(block.buffer, block.byteOffset);
  t.equal(view(first).getUint32(12, true), 4294967295, "metadata #1 checksum as in the spec");
  t.equal(view(second).getUint32(12, true), 4294966991, "metadata #2 checksum as in the spec");
  EXAMPLE_ENTRIES.forEach(([, , , checksum], i) => t.equal(view(second).getUint32(32 + 32 * i + 8, true), checksum, `entry ${i + 1} checksum as in the spec`));
  file.set(first, 4096);
  new Prng(1).fill(file.subarray(8192, 328192));
  file.set(second, 328192);
  const path = join(tempDir(t), "example.hrl");
  writeFileSync(path, file);
  const blockwise = await openLog(path, { inMemoryMaxBytes: 0 });
  t.same(blockwise.metadataLocations, [4096, 328192], "block-by-block traversal");
  t.equal(blockwise.entryCount, 58);
  await blockwise.close();
  const log = await openLog(path);
  t.teardown(() => log.close());
  t.same(log.metadataLocations, [4096, 328192]);
  t.equal(log.entryCount, 58);
  t.equal(log.dataBytes, 320000);
  t.equal(log.header.uniqueId, "572fc7ff-1f03-49ab-b3c5-30a665b8e20c");
  let position = 8192;
  for (const [i, [length, offset, timestamp]] of EXAMPLE_ENTRIES.entries()) {
    const entry = log.entry(i);
    t.same([entry.dataLength, entry.byteOffset, entry.timestamp, entry.logPosition], [length, offset, timestamp, position], `entry ${i + 1}`);
    position += length;
  }
  await log.verifyData();
});

function randomGuid(prng: Prng): string {
  return guidToString(prng.bytes(16));
}

t.test("header: parse(build(x)) == x for random fields", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  for (let i = 0; i < 200; i++) {
    const metadataSizeBytes = 32 * (2 + prng.int(1000));
    const header = {
      version: 0x20000 + prng.int(3), timestamp: prng.u32(), creatorApplication: ["ct", "vhds", "ab", "x"][prng.int(4)],
      creatorVersion: prng.u32(), originalSizeBytes: prng.int(2 ** 40), currentSizeBytes: prng.int(2 ** 40),
      eolLocation: prng.int(2) ? 0 : 4096 + metadataSizeBytes + prng.int(2 ** 40), errorCode: 0, metadataSizeBytes,
      uniqueId: randomGuid(prng), previousUniqueId: randomGuid(prng), vhd2DataWriteGuid: randomGuid(prng),
      totalMetadataEntries: prng.int(2 ** 40), lastModifiedTimestamp: prng.u32(), fileType: 0, flags: 0, checksum: 0,
    };
    const bytes = buildHeader(header);
    const parsed = parseHeader(bytes, false);
    t.same({ ...parsed, checksum: 0 }, header, `seed ${seed} case ${i}`);
  }
});

t.test("version 1 header: read, Vhd2DataWriteGuid absent", async (t) => {
  const header = { ...exampleHeader(332288), version: 0x10000 };
  const bytes = buildHeader(header);
  t.equal(bytes.subarray(110, 126).every((b) => b === 0), true, "no Vhd2DataWriteGuid written in version 1");
  const parsed = parseHeader(bytes, true);
  t.equal(parsed.version, 0x10000);
  t.equal(parsed.vhd2DataWriteGuid, "00000000-0000-0000-0000-000000000000");
  const v3 = buildHeader(header);
  v3[10] = 3; // major 3
  t.throws(() => parseHeader(v3, false), { code: "VHDSYNC_BAD_CHECKSUM" }, "checksum still guards the version");
});

t.test("header checksum skips exactly its own 4 bytes; unclean / error code", async (t) => {
  const bytes = buildHeader(exampleHeader(332288));
  let sum = 0;
  bytes.forEach((b, i) => { if (i < 40 || i >= 44) sum += b; });
  t.equal(new DataView(bytes.buffer).getUint32(40, true), ~sum >>> 0);
  t.throws(() => parseHeader(buildHeader(exampleHeader(0)), true), { code: "VHDSYNC_HRL_UNCLEAN" });
  t.equal(parseHeader(buildHeader(exampleHeader(0)), false).eolLocation, 0);
  t.throws(() => parseHeader(buildHeader({ ...exampleHeader(332288), errorCode: 5 }), true), { code: "VHDSYNC_HRL_UNCLEAN" });
  const cookie = bytes.slice();
  cookie[0] = 0x4e;
  t.throws(() => parseHeader(cookie, false), { code: "VHDSYNC_CORRUPT" });
  t.throws(() => parseHeader(bytes.subarray(0, 4095), false), { code: "VHDSYNC_TRUNCATED" });
});

t.test("byte-sum checksum: WASM == JS reference, any chunking", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const wasm = getWasm();
  for (let i = 0; i < 100; i++) {
    const data = prng.bytes(prng.int(70000));
    if (i % 10 === 0) data.fill(255);
    let reference = 0;
    for (const b of data) reference = (reference + b) >>> 0;
    const whole = wasm.withCopy(data, (address, length) => wasm.exports.hrlDataChecksum(address, length) >>> 0);
    t.equal(whole, ~reference >>> 0, `seed ${seed} case ${i}`);
    const split = prng.int(data.length + 1);
    const chunked = wasm.withCopy(data, (address) => {
      const a = wasm.exports.hrlByteSum(address, split, 0);
      return ~wasm.exports.hrlByteSum(address + split, data.length - split, a) >>> 0;
    });
    t.equal(chunked, whole, `seed ${seed} case ${i} split ${split}`);
  }
});

t.test("GUIDs use the Windows byte order", async (t) => {
  const bytes = guidFromString("{572fc7ff-1f03-49ab-b3c5-30a665b8e20c}")!;
  t.same(Array.from(bytes.subarray(0, 8)), [0xff, 0xc7, 0x2f, 0x57, 0x03, 0x1f, 0xab, 0x49]);
  t.equal(guidToString(bytes), "572fc7ff-1f03-49ab-b3c5-30a665b8e20c");
});

t.test("a version 1 log opens and verifies like a version 2 one", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "v1.hrl");
  const writer = await HrlWriter.create(path, { batchBytes: 8192 });
  const prng = new Prng(7);
  for (let i = 0; i < 20; i++) await writer.append(i * 4096, prng.bytes(3000));
  await writer.close();
  const bytes = new Uint8Array(readFileSync(path));
  const header = parseHeader(bytes, true);
  bytes.set(buildHeader({ ...header, version: 0x10000 }), 0);
  writeFileSync(path, bytes);
  const log = await openLog(path);
  t.equal(log.header.version, 0x10000);
  t.equal(log.entryCount, 20);
  await log.verifyData();
  await log.close();
});

t.test("the HRL status range is the same in assembly/status.ts and src/wasm/status.ts", async (t) => {
  const source = readFileSync(new URL("../assembly/status.ts", import.meta.url), "utf8");
  const assembly = new Map([...source.matchAll(/export const (STATUS_HRL_\w+): i32 = (\d+);/g)].map((m) => [m[1], Number(m[2])]));
  const mapped = Object.keys(STATUS_TABLE).map(Number).filter((status) => status >= 300 && status < 400);
  t.ok(assembly.size >= 17);
  t.same(mapped.sort((a, b) => a - b), [...assembly.values()].sort((a, b) => a - b));
  t.equal(assembly.get("STATUS_HRL_UNCLEAN"), HRL_STATUS.unclean);
  t.equal(assembly.get("STATUS_HRL_ERROR_RECORDED"), HRL_STATUS.errorRecorded);
  t.equal(assembly.get("STATUS_HRL_DATA_CHECKSUM"), HRL_STATUS.dataChecksum);
});

t.test("stability: a fixed log is byte-for-byte the same (on-disk compatibility)", async (t) => {
  const path = join(tempDir(t), "fixed.hrl");
  const writer = await HrlWriter.create(path, {
    uniqueId: "572fc7ff-1f03-49ab-b3c5-30a665b8e20c",
    previousUniqueId: "a8ae4b46-f7ad-4402-87aa-5b33e9f89c77",
    vhd2DataWriteGuid: "b9be5c57-f8be-5503-98bb-6c44faf9ac87",
    batchBytes: 20000,
    now: () => 539842380,
  });
  const prng = new Prng(2024);
  for (let i = 0; i < 40; i++) await writer.append(prng.int(1 << 30), prng.bytes(1 + prng.int(3000)));
  await writer.close();
  const digest = createHash("sha256").update(readFileSync(path)).digest("hex");
  // If this changes, logs written by this version differ from earlier ones: check on purpose.
  t.equal(digest, STABLE_LOG_SHA256);
});

t.test("writer arguments: bad offsets are coded errors, never a trap or a silent entry", async (t) => {
  const writer = await HrlWriter.create(join(tempDir(t), "args.hrl"));
  for (const offset of [-1, NaN, 1.5, 2 ** 60]) {
    await t.rejects(writer.append(offset, new Uint8Array(10)), { code: "VHDSYNC_INVALID_ARGUMENT" }, `offset ${offset}`);
  }
  const wasm = getWasm();
  t.equal(wasm.withScratch(4096, (address) => wasm.exports.hrlEntryBuild(address, 4096, 0, NaN, 1, 0, 0)), 1, "NaN offset: STATUS_BAD_ARGUMENT");
  t.equal(wasm.withScratch(4096, (address) => wasm.exports.hrlMetadataParse(address, 4096, NaN, -1, address, address)), 1);
  const summary = await writer.close();
  t.equal(summary.entryCount, 0);
});
