// Seeded VHDX fuzz test (CI size; scripts/fuzz-vhdx.mjs runs many more cases): qemu images,
// a dirty-log image and a differencing child are mutated; only coded errors or correct reads.
// VHDSYNC_FUZZ_CASES sets the case count, VHDSYNC_SEED the seed.

import t from "tap";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { STATE, buildVhdx, dataWriteGuidOf, regionOffsets } from "./helpers/vhdx-builder.js";
import { fuzzVhdx, type FuzzSeed } from "./helpers/vhdx-fuzz.js";
import { writeLogEntries } from "./helpers/vhdx-log-builder.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuImg, qemuIo, qemuRaw } from "./helpers/vhdx-qemu.js";

const MIB = 1024 * 1024;
const seed = testSeed();
const cases = Number(process.env.VHDSYNC_FUZZ_CASES) || 300;

function seeds(dir: string, prng: Prng): FuzzSeed[] {
  const dynamic = join(dir, "parent.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", dynamic, String(6 * MIB));
  qemuIo(dynamic, ["write -P 0x71 0 1M", `write -P 0x72 ${3 * MIB + 4096} 8192`, `write -z ${5 * MIB} 1M`]);
  const fixed = join(dir, "fixed.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "subformat=fixed,block_size=1M", fixed, String(3 * MIB));
  qemuIo(fixed, ["write -P 0x73 4096 1M"]);
  const dynamicBytes = new Uint8Array(readFileSync(dynamic));
  const dynamicContent = qemuRaw(dynamic, dir);
  const dirty = dynamicBytes.slice();
  const { bat } = regionOffsets(dirty);
  const sector = dirty.slice(bat, bat + 4096);
  new DataView(sector.buffer).setBigUint64(0, 2n, true); // block 0 → ZERO through the log
  writeLogEntries(dirty, [{ sequence: 9n, descriptors: [{ kind: "data", fileOffset: bat, data: sector }] }], 0);
  const dirtyContent = new Uint8Array(dynamicContent); // a copy (Buffer.slice would share memory)
  dirtyContent.fill(0, 0, MIB);
  const blocks = new Map([
    [0, { state: STATE.PARTIALLY_PRESENT, data: prng.bytes(MIB), present: (s: number) => s % 3 === 0 }],
    [2, { state: STATE.FULLY_PRESENT, data: prng.bytes(MIB) }],
    [4, { state: STATE.ZERO }],
  ]);
  const child = buildVhdx({ virtualSize: 6 * MIB, blockSize: MIB, hasParent: true, blocks, locator: { parent_linkage: `{${dataWriteGuidOf(dynamicBytes)}}`, relative_path: "parent.vhdx" } });
  const childPath = join(dir, "child-seed.vhdx");
  writeFileSync(childPath, child);
  return [
    { name: "dynamic", bytes: dynamicBytes, content: dynamicContent },
    { name: "fixed", bytes: new Uint8Array(readFileSync(fixed)), content: qemuRaw(fixed, dir) },
    { name: "dirty", bytes: dirty, content: dirtyContent, logOffset: MIB },
    { name: "child", bytes: child, content: new Uint8Array(0) },
  ];
}

t.test(`fuzzing ${cases} mutated VHDX images`, async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed);
  const list = seeds(dir, prng);
  // The child's expected content is whatever the unmutated child reads (checked elsewhere against a model).
  const { openImage } = await import("../dist/index.js");
  const childImage = await openImage(join(dir, "child-seed.vhdx"));
  list[3].content = new Uint8Array(childImage.virtualSize);
  await childImage.read(list[3].content, 0);
  await childImage.close();
  const started = Date.now();
  const outcome = await fuzzVhdx(list, cases, seed, dir);
  t.comment(`seed ${seed}: ${outcome.opened}/${cases} opened, errors ${JSON.stringify(outcome.errors)}, ${Date.now() - started} ms`);
  t.same(outcome.failures.slice(0, 10), [], `no uncoded errors, wrong reads or writes (seed ${seed})`);
  t.ok(outcome.opened > 0 && Object.keys(outcome.errors).length > 1, "the mutations reach both outcomes");
});
