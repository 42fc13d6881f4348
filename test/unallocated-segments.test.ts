// Segments in which nothing is allocated in the images a scan reads are answered on the
// calling thread (answerUnallocated in src/sync/unallocated.ts), runs of them as one result
// (a frame each in the hash modes), and never reach a scanner. Seeded property test: over
// random layouts of sparse raw files and dynamic VHDs (whole segments empty, data in a
// segment's first or last 4 KiB, data across a boundary, a partial last block), runSegments
// with the answers must give what scanning every segment gives (the counters, the changes and
// the digest frames), with both scanners and in every mode that has answers; and exactly the
// segments with data reach a scanner.
import t from "tap";
import { closeSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { createVhd } from "../dist/formats/vhd/index.js";
import { openImage } from "../dist/formats/open-image.js";
import { SegmentPool, runSegments } from "../dist/sync/segment-pool.js";
import { UNALLOCATED_RUN_SEGMENTS } from "../dist/sync/unallocated.js";
import { CALLER_SEGMENT_BYTES, DEFAULT_WINDOW_BYTES, SEGMENT_BYTES, blockCountFor, segmentBlocks, segmentTasks } from "../dist/sync/segment-plan.js";
import { ChangeList, addCounters, emptyCounters, eachChange } from "../dist/sync/segment-task.js";
import { nativeAddon } from "../dist/io/native-addon.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { withEnv } from "./helpers/env.js";
import { tempDir } from "./helpers/tmp.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 4 * KiB;

type Layout = Array<{ offset: number; length: number }>;

/**
 * Data ranges over `segments` segments of `segmentBytes`: per segment nothing (half of them,
 * so runs of empty segments occur), its first 4 KiB, its last 4 KiB, a piece inside, or
 * 2 KiB on each side of its end; the size ends in a partial 4 KiB block.
 */
function randomLayout(prng: Prng, segments: number, segmentBytes: number): { size: number; layout: Layout } {
  const size = segments * segmentBytes + 3 * 512;
  const layout: Layout = [];
  for (let s = 0; s < segments; s++) {
    const start = s * segmentBytes;
    const kind = prng.int(8);
    if (kind === 0) layout.push({ offset: start, length: BLOCK });
    else if (kind === 1) layout.push({ offset: start + segmentBytes - BLOCK, length: BLOCK });
    else if (kind === 2) layout.push({ offset: start + 512 * (1 + prng.int(segmentBytes / 512 - 16)), length: 512 * (1 + prng.int(16)) });
    else if (kind === 3) layout.push({ offset: start + segmentBytes - 2 * KiB, length: Math.min(4 * KiB, size - start - segmentBytes + 2 * KiB) });
  }
  if (prng.int(2) === 0) layout.push({ offset: size - 512, length: 512 });
  return { size, layout };
}

async function writeImage(path: string, format: "raw" | "vhd", size: number, layout: Layout, prng: Prng): Promise<void> {
  if (format === "raw") {
    const fd = openSync(path, "w");
    try {
      ftruncateSync(fd, size);
      for (const { offset, length } of layout) writeSync(fd, prng.bytes(length), 0, length, offset);
    } finally {
      closeSync(fd);
    }
    return;
  }
  const image = await createVhd(path, { type: "dynamic", sizeBytes: size, blockSizeBytes: [512 * KiB, 2 * MiB][prng.int(2)] });
  try {
    for (const { offset, length } of layout) await image.write(prng.bytes(length), offset);
  } finally {
    await image.close();
  }
}

/** The (offset, length, zero) triples of a run's changes, neighbours of the same kind joined (as ChangeList joins them). */
function joinedChanges(lists: Float64Array[]): number[] {
  const joined = new ChangeList();
  for (const list of lists) for (const { offsetBytes, lengthBytes, zero } of eachChange(list)) joined.add(offsetBytes, lengthBytes, zero);
  return Array.from(joined.toArray());
}

/** Whether any range of `layout` overlaps [start, end). */
const overlaps = (layout: Layout, start: number, end: number) => layout.some(({ offset, length }) => offset < end && offset + length > start);

interface Case {
  name: string;
  mode: "compare" | "copy" | "hash" | "hash-compare";
  apply: "none" | "here" | "caller";
  targetFormat: "raw" | "vhd";
  targetFresh?: boolean;
  /** What of the target counts for emptiness: its data (a compare reads it), its digest frame's data blocks, or nothing. */
  targetBy: "image" | "frame" | "none";
}

const CASES: Case[] = [
  { name: "verify", mode: "compare", apply: "none", targetFormat: "raw", targetBy: "image" },
  { name: "verify of VHDs", mode: "compare", apply: "none", targetFormat: "vhd", targetBy: "image" },
  { name: "resync into a raw target", mode: "compare", apply: "here", targetFormat: "raw", targetBy: "image" },
  { name: "resync into a VHD", mode: "compare", apply: "caller", targetFormat: "vhd", targetBy: "image" },
  { name: "copy into an existing VHD", mode: "copy", apply: "caller", targetFormat: "vhd", targetFresh: false, targetBy: "none" },
  { name: "convert (copy into a fresh VHD)", mode: "copy", apply: "caller", targetFormat: "vhd", targetFresh: true, targetBy: "none" },
  { name: "copy into a new raw file", mode: "copy", apply: "here", targetFormat: "raw", targetFresh: true, targetBy: "none" },
  { name: "checksum", mode: "hash", apply: "none", targetFormat: "raw", targetBy: "none" },
  { name: "resync --target-digest into a raw target", mode: "hash-compare", apply: "here", targetFormat: "raw", targetBy: "frame" },
  { name: "resync --target-digest into a VHD", mode: "hash-compare", apply: "caller", targetFormat: "vhd", targetBy: "frame" },
  { name: "resync --target-digest --dry-run", mode: "hash-compare", apply: "none", targetFormat: "vhd", targetBy: "frame" },
];

const ALGO = "xxh3-128";

type Kept = { firstBlock: number; blockCount: number; counters: ReturnType<typeof emptyCounters>; changes: Float64Array; frameFlags?: Uint8Array; frameDigests?: Uint8Array };

/** The digest frames of `path`, one per segment (as a digest file's frames are), by a hash scan of every segment. */
async function framesOf(path: string, blocks: number, perSegment: number): Promise<Array<{ flags: Uint8Array; digests: Uint8Array }>> {
  const pool = await SegmentPool.start({ mode: "hash", sourcePath: path, blockSizeBytes: BLOCK, algo: ALGO, apply: "none", windowBytes: DEFAULT_WINDOW_BYTES }, 1);
  try {
    const frames = [];
    for (const task of segmentTasks(blocks, perSegment)) {
      const result = await pool.submit(task);
      frames.push({ flags: result.frameFlags!.slice(), digests: result.frameDigests!.slice() });
    }
    return frames;
  } finally {
    await pool.close();
  }
}

for (const scanner of ["native", "wasm"] as const) {
  const skip = scanner === "native" && !nativeAddon() ? "no native addon" : false;
  t.test(`segments with nothing allocated are answered as a scan would (${scanner} scanners)`, { skip }, async (t) => {
    const seed = testSeed();
    const prng = new Prng(seed);
    const dir = tempDir(t, "vhdsync-unallocated-");
    await withEnv("VHDSYNC_NO_NATIVE_SCAN", scanner === "wasm" ? "1" : undefined, async () => {
      for (let round = 0; round < 2; round++) {
        for (const [index, c] of CASES.entries()) {
          const hashing = c.mode === "hash" || c.mode === "hash-compare";
          // A digest's frames are segments of SEGMENT_BYTES whatever the target.
          const segmentBytes = c.apply === "caller" && !hashing ? CALLER_SEGMENT_BYTES : SEGMENT_BYTES;
          const segments = segmentBytes === CALLER_SEGMENT_BYTES ? 12 : 5;
          const { size, layout: sourceLayout } = randomLayout(prng, segments, segmentBytes);
          const targetLayout = c.targetFresh ? [] : randomLayout(prng, segments, segmentBytes).layout;
          const source = join(dir, `s${round}-${index}.${prng.int(2) === 0 ? "raw" : "vhd"}`);
          // Each pass writes its target afresh, with the same bytes (a copy of a sparse file may not keep its holes).
          const targetSeed = prng.u32();
          await writeImage(source, source.endsWith(".vhd") ? "vhd" : "raw", size, sourceLayout, prng);
          const blocks = blockCountFor(size, BLOCK);
          const perSegment = segmentBlocks(BLOCK, segmentBytes);
          const label = `${c.name}, round ${round}, source ${source.endsWith(".vhd") ? "VHD" : "raw"} (seed ${seed})`;

          /** One pass over a fresh copy of the target: every result, by runSegments or by scanning each segment. */
          const pass = async (answered: boolean) => {
            const target = join(dir, `t${round}-${index}-${answered}.${c.targetFormat}`);
            await writeImage(target, c.targetFormat, size, targetLayout, new Prng(targetSeed));
            const frames = c.mode === "hash-compare" ? await framesOf(target, blocks, perSegment) : undefined;
            const tasks = () => Array.from(segmentTasks(blocks, perSegment), (task, i) => (frames ? { ...task, targetFlags: frames[i].flags.slice(), targetDigests: frames[i].digests.slice() } : task));
            const config = { mode: c.mode, sourcePath: source, targetPath: c.mode === "hash" ? undefined : target, blockSizeBytes: BLOCK, algo: hashing ? ALGO : undefined, apply: c.apply, windowBytes: DEFAULT_WINDOW_BYTES, targetFresh: c.targetFresh } as const;
            const pool = await SegmentPool.start(config, 2);
            // Counts the segments that reach a scanner.
            const submit = pool.submit.bind(pool);
            let submitted = 0;
            pool.submit = (task) => {
              submitted++;
              return submit(task);
            };
            const results: Kept[] = [];
            try {
              const keep = (result: Kept) => void results.push({ ...result, changes: result.changes.slice(), frameFlags: result.frameFlags?.slice(), frameDigests: result.frameDigests?.slice() });
              if (answered) await runSegments(pool, tasks(), keep);
              else {
                for (const task of tasks()) {
                  const result = await pool.submit(task);
                  keep(result);
                  result.release?.();
                }
              }
              return { results, submitted, native: pool.native, answers: pool.unallocatedAnswerer() !== undefined };
            } finally {
              await pool.close();
            }
          };
          const scanned = await pass(false);
          const answered = await pass(true);
          t.equal(answered.native, scanner === "native" && (c.mode !== "copy" || c.apply === "here"), `the ${scanner} scanners ran: ${label}`);
          t.ok(answered.answers, `the pool answers empty segments: ${label}`);
          const sum = (run: typeof scanned) => run.results.reduce((total, result) => addCounters(total, result.counters), emptyCounters());
          t.same(sum(answered), sum(scanned), `counters: ${label}`);
          t.same(joinedChanges(answered.results.map((r) => r.changes)), joinedChanges(scanned.results.map((r) => r.changes)), `changes: ${label}`);
          if (hashing) {
            const frames = (run: typeof scanned) => run.results.map((r) => [r.firstBlock, r.blockCount, Buffer.from(r.frameFlags!).toString("hex"), Buffer.from(r.frameDigests!).toString("hex")]);
            t.same(frames(answered), frames(scanned), `digest frames: ${label}`);
          }
          // The results cover every block once, in order.
          let next = 0;
          for (const result of answered.results) {
            if (result.firstBlock !== next) t.fail(`result at block ${result.firstBlock}, expected ${next}: ${label}`);
            next = result.firstBlock + result.blockCount;
          }
          t.equal(next, blocks, `the results cover the image: ${label}`);
          // Expected: the segments with data (in the source, or the target as the mode sees it)
          // reach a scanner; the others are answered, one result per run of them (at most
          // UNALLOCATED_RUN_SEGMENTS long), or per segment when hashing (a frame each).
          let withData = 0;
          let expected = 0;
          let run = 0;
          for (let s = 0; s * perSegment < blocks; s++) {
            const [start, end] = [s * perSegment * BLOCK, Math.min(size, (s + 1) * perSegment * BLOCK)];
            // A raw file's holes are known through the addon only (SEEK_DATA): without it, all of it is data.
            const hasData = (layout: Layout, raw: boolean) => (raw && !nativeAddon()) || overlaps(layout, start, end);
            const targetData = c.targetBy === "image" ? hasData(targetLayout, c.targetFormat === "raw") : c.targetBy === "frame" && overlaps(targetLayout, start, end);
            const empty = !hasData(sourceLayout, !source.endsWith(".vhd")) && !targetData;
            if (!empty) withData++;
            if (!empty || hashing || run === UNALLOCATED_RUN_SEGMENTS) run = 0;
            if (!empty || run++ === 0) expected++;
          }
          t.equal(answered.submitted, withData, `exactly the segments with data are scanned: ${label}`);
          t.equal(answered.results.length, expected, `one result per segment with data and per empty run: ${label}`);
          if (c.apply === "here" || (c.mode === "copy" && c.apply === "caller")) {
            const [a, b] = await Promise.all([join(dir, `t${round}-${index}-true.${c.targetFormat}`), join(dir, `t${round}-${index}-false.${c.targetFormat}`)].map(async (path) => {
              const image = await openImage(path, { readOnly: true });
              try {
                return await image.allocationMap();
              } finally {
                await image.close();
              }
            }));
            t.same(a, b, `the targets' allocation maps agree: ${label}`);
          }
        }
      }
    });
  });
}

t.test("tasks that fail (an image's map, a digest frame): the segments in flight finish before runSegments throws", async (t) => {
  const finished: number[] = [];
  const delivered: number[] = [];
  // Only what runSegments uses of a pool: scans that take a while.
  const pool = {
    unallocatedAnswerer: () => undefined,
    defaultInFlight: 4,
    whenWorkersOpen: async () => {},
    inFlightFor: () => 4,
    submit: (task: { id: number; firstBlock: number; blockCount: number }) =>
      new Promise((resolve) =>
        setTimeout(() => {
          finished.push(task.id);
          resolve({ id: task.id, firstBlock: task.firstBlock, blockCount: task.blockCount, counters: emptyCounters(), changes: new Float64Array(0) });
        }, 30),
      ),
  };
  async function* failing() {
    yield { id: 0, firstBlock: 0, blockCount: 1 };
    yield { id: 1, firstBlock: 1, blockCount: 1 };
    throw new Error("the map could not be read");
  }
  await t.rejects(runSegments(pool as unknown as SegmentPool, failing(), (result) => void delivered.push(result.id)), /the map could not be read/);
  t.same(finished, [0, 1], "both scans had finished when it threw");
  t.same(delivered, [], "no result is handed on after the failure");
});
