// Bad logs: every flipped byte of the header, of each metadata header and entry, random data
// bytes, truncation anywhere, and consistent-checksum lies (EOL, totals, entries past the
// disk) give a coded error from applyLog, and the image, state sidecar and undo path stay
// untouched.
import t from "tap";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { RawImage } from "../dist/formats/raw.js";
import { applyLog } from "../dist/hrl/apply-log.js";
import { buildHeader, parseHeader } from "../dist/hrl/header.js";
import { openLog } from "../dist/hrl/hrl-log.js";
import { HrlWriter } from "../dist/hrl/hrl-writer.js";
import { fileHash, makeImage, randomWrites, setup, trackWrites } from "./helpers/hrl-fixtures.js";
import { tempDir } from "./helpers/tmp.js";

const DISK_BYTES = 256 * 1024;
const CODES = ["VHDSYNC_CORRUPT", "VHDSYNC_BAD_CHECKSUM", "VHDSYNC_TRUNCATED", "VHDSYNC_UNSUPPORTED", "VHDSYNC_HRL_UNCLEAN", "VHDSYNC_SIZE_MISMATCH"];

t.test("every corruption is a coded error and writes nothing", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const tracked = await trackWrites(dir, "src", base, randomWrites(prng, DISK_BYTES, 30, 3000), { batchBytes: 16384 });
  const good = new Uint8Array(readFileSync(tracked.log)); // a copy: Buffer.slice would alias
  const log = await openLog(tracked.log);
  const blocks = log.metadataLocations.map((location, i) => ({ location, entries: log.blockFirstEntry[i + 1] - log.blockFirstEntry[i] }));
  const dataRanges = [...log.entries()].map((e) => [e.logPosition, e.dataLength]);
  await log.close();
  t.ok(blocks.length >= 3, `several metadata blocks (${blocks.length})`);

  const target = join(dir, "target.raw");
  writeFileSync(target, readFileSync(base));
  const targetHash = fileHash(target);
  const bad = join(dir, "bad.hrl");
  const undo = join(dir, "undo.hrl");
  const state = join(dir, "state.json");
  const failures: string[] = [];
  const expectRejected = async (bytes: Uint8Array, what: string) => {
    writeFileSync(bad, bytes);
    // The block-by-block traversal (large logs) must reject it too, before any apply.
    try {
      const log = await openLog(bad, { inMemoryMaxBytes: 0 });
      try {
        await log.verifyData();
        failures.push(`${what}: accepted by the block-by-block traversal`);
      } finally {
        await log.close();
      }
    } catch (error) {
      const code = (error as { code?: string }).code ?? "";
      if (!CODES.includes(code)) failures.push(`${what}: block-by-block ${code} ${(error as Error).message}`);
    }
    const image = await RawImage.open(target, false);
    try {
      await applyLog(image, bad, { undoPath: undo, statePath: state });
      failures.push(`${what}: accepted`);
    } catch (error) {
      const code = (error as { code?: string }).code ?? "";
      if (!CODES.includes(code)) failures.push(`${what}: ${code} ${(error as Error).message}`);
    } finally {
      await image.close();
    }
  };
  const flipped = (position: number) => {
    const copy = good.slice();
    copy[position] ^= 1 + prng.int(255);
    return copy;
  };

  for (let i = 0; i < 126; i++) await expectRejected(flipped(i), `header byte ${i}`);
  for (let i = 0; i < 40; i++) await expectRejected(flipped(126 + prng.int(4096 - 126)), "header reserved byte");
  for (const block of blocks) {
    for (let i = 0; i < 32 + 32 * block.entries; i++) await expectRejected(flipped(block.location + i), `metadata at ${block.location} byte ${i}`);
  }
  for (let i = 0; i < 60; i++) {
    const [position, length] = dataRanges[prng.int(dataRanges.length)];
    await expectRejected(flipped(position + prng.int(length)), "data byte");
  }
  const cuts = [0, 100, 4095, 4096, 8191, ...blocks.flatMap((b) => [b.location, b.location + 1, b.location + 4095]), good.length - 1];
  for (let i = 0; i < 20; i++) cuts.push(prng.int(good.length));
  for (const cut of cuts) await expectRejected(good.subarray(0, cut), `truncated at ${cut}`);

  const header = parseHeader(good, true);
  const relabel = (fields: Partial<typeof header>) => {
    const copy = good.slice();
    copy.set(buildHeader({ ...header, ...fields }), 0);
    return copy;
  };
  await expectRejected(relabel({ eolLocation: header.eolLocation - 1 }), "EOL one byte short");
  await expectRejected(relabel({ eolLocation: blocks[1].location + 100 }), "EOL inside data");
  await expectRejected(relabel({ eolLocation: header.eolLocation + 4096 }), "EOL past the end");
  await expectRejected(relabel({ totalMetadataEntries: header.totalMetadataEntries + 1 }), "TotalMetadataEntries off by one");
  await expectRejected(relabel({ metadataSizeBytes: 512 }), "MetadataSize changed");
  await expectRejected(relabel({ eolLocation: 0 }), "unclean log");

  t.same(failures, [], `seed ${seed}: all rejected with a coded error`);
  t.equal(fileHash(target), targetHash, "image untouched");
  t.notOk(existsSync(state), "no state written");
  t.notOk(existsSync(undo), "no undo log written");
  t.same(readdirSync(dirname(undo)).filter((name) => name.includes(basename(undo))), [], "nor a temp file of it");
});

t.test("entries past the end of the disk: VHDSYNC_SIZE_MISMATCH, nothing written", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "big.hrl");
  const writer = await HrlWriter.create(path);
  await writer.append(0, new Uint8Array(512).fill(7));
  await writer.append(DISK_BYTES - 100, new Uint8Array(512).fill(9));
  await writer.close();
  const target = join(dir, "t.raw");
  makeImage(target, undefined, DISK_BYTES);
  const before = fileHash(target);
  const image = await RawImage.open(target, false);
  await t.rejects(applyLog(image, path), { code: "VHDSYNC_SIZE_MISMATCH" });
  await image.close();
  t.equal(fileHash(target), before);
});
