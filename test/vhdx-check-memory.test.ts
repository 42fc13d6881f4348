// `vhdsync check` of a VHDX in bounded memory: the overlap test over a fully allocated 1 TiB
// disk in 1 MiB blocks (a million payload blocks) once built an object per block and sorted
// them, 267 MiB of RSS; findOverlaps sorts a Float64Array instead. Its messages are pinned to
// the plain algorithm's by a seeded differential test.

import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { findOverlaps, type FileExtentSource } from "../dist/formats/vhdx/file-overlaps.js";
import { CLI_PATH } from "./helpers/cli.js";
import { sparseUnsupportedReason } from "./helpers/native-sparse.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { regionOffsets } from "./helpers/vhdx-builder.js";
import { fullyAllocatedVhdx } from "./helpers/vhdx-qemu.js";

const MIB = 1024 * 1024;

interface Extent {
  name: string;
  offsetBytes: number;
  lengthBytes: number;
}

/** The plain algorithm (what vhdx-check did before): sort every extent, sweep. */
function plainOverlaps(extents: Extent[]): { message: string; offsetBytes: number }[] {
  const sorted = extents.filter((e) => e.lengthBytes > 0).sort((a, b) => a.offsetBytes - b.offsetBytes);
  const found = [];
  let furthest = sorted[0];
  for (const extent of sorted.slice(1)) {
    if (extent.offsetBytes < furthest.offsetBytes + furthest.lengthBytes) {
      found.push({ message: `${extent.name} at ${extent.offsetBytes} overlaps ${furthest.name} at ${furthest.offsetBytes}`, offsetBytes: extent.offsetBytes });
    }
    if (extent.offsetBytes + extent.lengthBytes > furthest.offsetBytes + furthest.lengthBytes) furthest = extent;
  }
  return found;
}

function sourceOf(extents: Extent[]): FileExtentSource {
  return {
    forEach: (visit) => extents.forEach((e, id) => e.lengthBytes > 0 && visit(id, e.offsetBytes, e.lengthBytes)),
    describe: (id) => extents[id],
  };
}

t.test("findOverlaps reports what the plain sort-and-sweep reports (seeded)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  for (let round = 0; round < 300; round++) {
    // MiB-aligned starts in a small file so that overlaps, ties and nesting are common;
    // lengths from a few classes, some not MiB multiples (a last partial block), some zero.
    const lengths = [MIB, 2 * MIB, 4 * MIB, MIB / 2, 3 * MIB + 512, 0];
    const spanMib = 1 + prng.int(200);
    const extents: Extent[] = Array.from({ length: prng.int(60) + 1 }, (_, i) => ({
      name: `extent ${i}`,
      offsetBytes: prng.int(spanMib) * MIB,
      lengthBytes: lengths[prng.int(lengths.length)],
    }));
    if (extents.every((e) => e.lengthBytes === 0)) extents[0].lengthBytes = MIB;
    const plain = plainOverlaps(extents);
    t.same(findOverlaps(sourceOf(extents)), { overlaps: plain, overlapsOmitted: 0 }, `round ${round} (VHDSYNC_SEED=${seed})`);
    const limit = prng.int(4);
    t.same(findOverlaps(sourceOf(extents), limit), { overlaps: plain.slice(0, limit), overlapsOmitted: Math.max(0, plain.length - limit) }, `round ${round}, limit ${limit}`);
  }
  const far = [{ name: "a", offsetBytes: 2 ** 43 * MIB, lengthBytes: MIB }, { name: "b", offsetBytes: 2 ** 43 * MIB, lengthBytes: 256 * MIB }];
  t.same(findOverlaps(sourceOf(far)).overlaps, plainOverlaps(far), "offsets near the BAT's 2^44 MiB limit");
});

t.test("check of a fully allocated 1 TiB VHDX (1 MiB blocks) stays in bounded memory", { skip: existsSync("/usr/bin/time") ? false : "no /usr/bin/time" }, async (t) => {
  const dir = tempDir(t);
  const reason = sparseUnsupportedReason(dir);
  if (reason) return t.skip(reason);
  const path = join(dir, "full.vhdx");
  fullyAllocatedVhdx(path, 2 ** 40);
  const check = () => spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, CLI_PATH, "check", "--json", path], { encoding: "utf8" });
  const clean = check();
  t.equal(clean.status, 0, clean.stderr);
  const peakKib = Number(clean.stderr.trim().split("\n").pop());
  // 267 MiB with an object per block; 85 MiB with the typed arrays (72 MiB for an empty disk).
  t.ok(peakKib < 150 * 1024, `peak RSS ${Math.round(peakKib / 1024)} MiB`);

  // Two blocks of the million moved onto others: exactly those two are reported.
  const fd = openSync(path, "r+");
  const head = Buffer.alloc(320 * 1024);
  readSync(fd, head, 0, head.length, 0);
  const { bat } = regionOffsets(head);
  const entry = (block: number) => bat + (block + Math.floor(block / 4096)) * 8;
  const read = (block: number) => {
    const bytes = Buffer.alloc(8);
    readSync(fd, bytes, 0, 8, entry(block));
    return bytes;
  };
  const offsetOf = (block: number) => Number(read(block).readBigUInt64LE() >> 20n) * MIB;
  const [at10, at999999] = [offsetOf(10), offsetOf(999999)];
  writeSync(fd, read(10), 0, 8, entry(700000));
  writeSync(fd, read(999999), 0, 8, entry(5));
  closeSync(fd);
  const damaged = check();
  t.equal(damaged.status, 3, damaged.stderr);
  const result = JSON.parse(damaged.stdout);
  t.same(result.problems, [
    { code: "VHDSYNC_CORRUPT", message: `payload block 700000 at ${at10} overlaps payload block 10 at ${at10}`, offset: at10 },
    { code: "VHDSYNC_CORRUPT", message: `payload block 999999 at ${at999999} overlaps payload block 5 at ${at999999}`, offset: at999999 },
  ]);
});
