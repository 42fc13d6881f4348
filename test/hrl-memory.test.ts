// Memory and complexity of the `vhdsync log ...` commands over long logs: the sweeps that
// replaced an object per entry (union of the written ranges, last writer of each byte) against
// their references on seeded random input, compaction byte for byte against the old overlay,
// and the peak RSS of the commands on a log of 600k entries (an object per entry took 300-470
// MB at 1M).

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { unionExtents } from "../dist/formats/extents.js";
import { compactLog } from "../dist/hrl/compact-log.js";
import { lastWriterSegments } from "../dist/hrl/extent-map.js";
import { orderByKey, unionOfRanges } from "../dist/hrl/range-sweep.js";
import { parseHeader } from "../dist/hrl/header.js";
import { openLog } from "../dist/hrl/hrl-log.js";
import { HrlWriter } from "../dist/hrl/hrl-writer.js";
import { sameIdentity } from "../dist/hrl/log-output.js";
import { CLI_PATH } from "./helpers/cli.js";
import { ReferenceOverlay } from "./helpers/overlay-reference.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

/** Random ranges: dense and overlapping around `base`, some empty, some touching. */
function randomRanges(prng: Prng, count: number, base: number, spanBytes: number): { offsets: Float64Array; lengths: Uint32Array } {
  const offsets = new Float64Array(count);
  const lengths = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const touching = i > 0 && prng.int(8) === 0;
    offsets[i] = touching ? offsets[i - 1] + lengths[i - 1] : base + prng.int(spanBytes);
    lengths[i] = prng.int(10) === 0 ? 0 : 1 + prng.int(spanBytes / 6);
  }
  return { offsets, lengths };
}

t.test("orderByKey, unionOfRanges and lastWriterSegments equal their references (seeded)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  // Offsets near 0 (one or two radix passes) and near 2^52 (four).
  for (const base of [0, 3 * 2 ** 32 + 512, 2 ** 52]) {
    for (let round = 0; round < 60; round++) {
      const count = prng.int(300);
      const { offsets, lengths } = randomRanges(prng, count, base, 1 + prng.int(6000));
      const label = `seed ${seed}, base ${base}, round ${round}, ${count} ranges`;
      const expectedOrder = [...Array(count).keys()].sort((a, b) => offsets[a] - offsets[b] || a - b);
      t.same([...orderByKey(offsets, count)], expectedOrder, `${label}: order`);
      const ranges = [...Array(count).keys()].map((i) => ({ offset: offsets[i], length: lengths[i] }));
      t.same([...unionOfRanges(offsets, lengths, count)], unionExtents(ranges, []), `${label}: union`);
      const overlay = new ReferenceOverlay();
      for (let i = 0; i < count; i++) overlay.insert(offsets[i], lengths[i], i);
      t.same([...lastWriterSegments(offsets, lengths, count)], overlay.list(), `${label}: last writers`);
    }
  }
  t.same([...unionOfRanges(new Float64Array(0), new Uint32Array(0), 0)], [], "no ranges");
});

/** Compaction as it was before the sweep: the reference overlay, then disk-contiguous runs of up to 1 MiB. */
async function referenceCompaction(inputPath: string, outputPath: string): Promise<void> {
  const runBytes = 1024 * 1024;
  const log = await openLog(inputPath);
  const overlay = new ReferenceOverlay();
  for (const entry of log.entries()) overlay.insert(entry.byteOffset, entry.dataLength, entry.index);
  const writer = await HrlWriter.create(outputPath, sameIdentity(log.header));
  const run = new Uint8Array(runBytes);
  let runOffset = 0;
  let used = 0;
  let timestamp = 0;
  const flush = async () => {
    if (used > 0) await writer.append(runOffset, run.slice(0, used), timestamp);
    used = 0;
    timestamp = 0;
  };
  for (const segment of overlay.list()) {
    for (let done = 0; done < segment.length; ) {
      if (used > 0 && (runOffset + used !== segment.offset + done || used === runBytes)) await flush();
      if (used === 0) runOffset = segment.offset + done;
      const pieceBytes = Math.min(segment.length - done, runBytes - used);
      await log.readEntryData(segment.entryIndex, segment.entryDelta + done, run.subarray(used, used + pieceBytes));
      timestamp = Math.max(timestamp, log.entry(segment.entryIndex).timestamp);
      used += pieceBytes;
      done += pieceBytes;
    }
  }
  await flush();
  await writer.close();
  await log.close();
}

t.test("compact of a seeded random log: the same bytes as the overlay compaction it replaced", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const input = join(dir, "in.hrl");
  let clock = 1000;
  const writer = await HrlWriter.create(input, { now: () => clock, batchBytes: 64 * 1024 });
  for (let i = 0; i < 3000; i++) {
    clock += prng.int(3); // timestamps vary, so a run's timestamp (the latest of its pieces) is checked
    const hot = prng.int(4) === 0; // a quarter rewrite one small area again and again
    const length = 1 + prng.int(hot ? 3000 : 3 * 1024 * 1024);
    const offset = hot ? 5 * 2 ** 20 + prng.int(20000) : prng.int(64 * 2 ** 20);
    await writer.append(offset, prng.bytes(length));
  }
  await writer.close();
  await compactLog(input, join(dir, "new.hrl"));
  await referenceCompaction(input, join(dir, "old.hrl"));
  const [actual, expected] = [readFileSync(join(dir, "new.hrl")), readFileSync(join(dir, "old.hrl"))];
  t.equal(actual.length, expected.length, `seed ${seed}: same size`);
  t.ok(actual.subarray(4096).equals(expected.subarray(4096)), `seed ${seed}: same metadata and data`);
  // The headers differ only in LastModifiedTimeStamp (the time of writing) and so the checksum.
  const header = (bytes: Buffer) => ({ ...parseHeader(new Uint8Array(bytes.subarray(0, 4096)), true), lastModifiedTimestamp: 0, checksum: 0 });
  t.same(header(actual), header(expected), `seed ${seed}: same header fields`);
});

// The log commands' memory does not depend on the addon: the second CI pass (no addon) skips
// this ~45 s test.
const rssSkip = !existsSync("/usr/bin/time") ? "no /usr/bin/time" : process.env.VHDSYNC_NO_NATIVE === "1" ? "measured in the pass with the addon" : false;

t.test("log info, extents, extents --json, apply --undo and compact of 600k entries stay under 200 MiB", { skip: rssSkip }, async (t) => {
  // With an object per entry (or per extent) these took 300, 428, 390, 324 and 246 MB at 1M
  // entries (133, 168, 157, 157 and 136 MB at 250k); now 140-168 MB at 1M, 80-101 MB at 250k.
  const entries = 600_000;
  const diskBytes = 256 * 2 ** 20;
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const log = join(dir, "long.hrl");
  const writer = await HrlWriter.create(log, { metadataSizeBytes: 64 * 1024 });
  const data = new Uint8Array(1);
  // One byte at a random multiple of 4: nearly every entry is an extent of its own, and a few
  // land on the same byte (compaction keeps the last).
  for (let i = 0; i < entries; i++) {
    data[0] = i;
    await writer.append(4 * prng.int(diskBytes / 4), data);
  }
  await writer.close();
  const image = join(dir, "image.raw");
  writeFileSync(image, "");
  truncateSync(image, diskBytes);
  const peakRun = (args: string[]) => {
    const run = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, CLI_PATH, ...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
    t.equal(run.status, 0, `${args.join(" ")}: ${run.stderr}`);
    const peakKib = Number(run.stderr.trim().split("\n").pop());
    t.ok(peakKib < 200 * 1024, `seed ${seed}: ${args.slice(0, 2).join(" ")}${args.includes("--json") ? " --json" : ""}: peak RSS ${Math.round(peakKib / 1024)} MiB`);
    return run.stdout;
  };
  const info = JSON.parse(peakRun(["log", "info", "--json", log]));
  t.equal(info.entries, entries);
  t.ok(info.extents > 0.95 * entries, `${info.extents} extents`);
  const text = peakRun(["log", "extents", log]).trimEnd().split("\n");
  t.equal(text.length, info.extents, "a text line per extent");
  const json = peakRun(["log", "extents", "--json", log]).trimEnd().split("\n");
  t.equal(json.length, info.extents + 1, "a JSON line per extent, then the totals");
  t.same(JSON.parse(json[0]), { type: "extent", offset: Number(text[0].split(" ")[0]), length: 1 });
  t.same(JSON.parse(json.at(-1)!), { ok: true, type: "report", path: log, extents: info.extents, bytesTouched: info.bytesTouched });
  const undo = join(dir, "undo.hrl");
  JSON.parse(peakRun(["log", "apply", "--json", log, image, "--undo", undo]));
  const undoInfo = JSON.parse(peakRun(["log", "info", "--json", undo]));
  t.equal(undoInfo.entries, info.extents, "an undo entry per extent");
  const compacted = join(dir, "compact.hrl");
  const result = JSON.parse(peakRun(["log", "compact", "--json", log, compacted]));
  t.equal(result.output.dataBytes, info.bytesTouched, "compaction keeps each byte once");
});
