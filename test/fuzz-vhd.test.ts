// Seeded fuzzing of real VHD images: mutates footer, footer copy, dynamic header, BAT, sector
// bitmaps, parent locators (sometimes re-fixing checksums so deeper checks run) and asserts
// that opening, reading, mapping, info and check either succeed or fail with a coded
// VhdsyncError (never VHDSYNC_INTERNAL, never another exception, never a hang), and that
// the file is never modified. VHDSYNC_FUZZ_CASES sets the case count (scripts/fuzz-vhd.mjs).

import t from "tap";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VhdsyncError, checkImage, createVhd, openImage } from "../dist/index.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { fixChecksums, run, sha256 } from "./helpers/vhd.js";

const seed = testSeed();
const CASES = Number(process.env.VHDSYNC_FUZZ_CASES) || 240;
const CASE_TIMEOUT_MS = 20000;
const MAX_READ_BYTES = 8 << 20;

interface Seed {
  name: string;
  bytes: Buffer;
  /** [start, end) regions worth mutating, by structure. */
  regions: { kind: string; start: number; end: number }[];
}

function regionsOf(file: Buffer): Seed["regions"] {
  const regions = [{ kind: "footer", start: file.length - 512, end: file.length }];
  if (file.subarray(0, 8).toString("latin1") !== "conectix") return regions;
  regions.push({ kind: "footer copy", start: 0, end: 512 }, { kind: "header", start: 512, end: 1536 });
  const tableOffset = Number(file.readBigUInt64BE(512 + 16));
  const entries = file.readUInt32BE(512 + 28);
  regions.push({ kind: "bat", start: tableOffset, end: tableOffset + entries * 4 });
  for (let i = 0; i < entries; i++) {
    const sector = file.readUInt32BE(tableOffset + i * 4);
    if (sector !== 0xffffffff) regions.push({ kind: "bitmap", start: sector * 512, end: sector * 512 + 512 });
  }
  for (let i = 0; i < 8; i++) {
    const entry = 512 + 576 + i * 24;
    const length = file.readUInt32BE(entry + 8);
    if (file.readUInt32BE(entry) !== 0 && length > 0) {
      regions.push({ kind: "locator entry", start: entry, end: entry + 24 });
      const offset = Number(file.readBigUInt64BE(entry + 16));
      regions.push({ kind: "locator data", start: offset, end: offset + length });
    }
  }
  return regions;
}

const INTERESTING = [0, 1, 0x1ff, 0x200, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutate(original: Buffer, regions: Seed["regions"], prng: Prng): { bytes: Buffer; what: string[] } {
  const bytes = Buffer.from(original);
  const what: string[] = [];
  const count = 1 + prng.int(4);
  for (let i = 0; i < count; i++) {
    const region = regions[prng.int(regions.length)];
    const span = Math.max(1, region.end - region.start);
    const offset = Math.min(bytes.length - 1, region.start + prng.int(span));
    const kind = prng.int(4);
    if (kind === 0) bytes[offset] ^= 1 << prng.int(8);
    else if (kind === 1) bytes[offset] = prng.int(256);
    else if (offset + 4 <= bytes.length) {
      const aligned = offset - (offset % 4);
      const value = kind === 2 ? INTERESTING[prng.int(INTERESTING.length)] : Math.floor(bytes.length / 512) + prng.int(16) - 8;
      bytes.writeUInt32BE(value >>> 0, Math.min(aligned, bytes.length - 4));
    }
    what.push(`${region.kind}@${offset}:${kind}`);
  }
  if (prng.int(2) === 0) {
    const isDynamic = bytes.length > 1536 && bytes.subarray(512, 520).toString("latin1") === "cxsparse";
    fixChecksums(bytes, bytes.subarray(0, 8).toString("latin1") === "conectix" ? [0, bytes.length - 512] : [bytes.length - 512], isDynamic ? 512 : undefined);
    what.push("checksums fixed");
  }
  if (prng.int(10) === 0) {
    const cut = prng.int(bytes.length);
    what.push(`truncated to ${cut}`);
    return { bytes: bytes.subarray(0, cut), what };
  }
  return { bytes, what };
}

/** Opens, reads, maps; writable opens also write a random range and read it back. */
async function exercise(path: string, prng: Prng, stage: { wrote: boolean }): Promise<string> {
  const image = await openImage(path, { readOnly: prng.int(2) === 0 });
  try {
    const readBytes = Math.min(image.virtualSize, MAX_READ_BYTES);
    const buffer = new Uint8Array(readBytes);
    await image.read(buffer, 0);
    await image.info();
    await image.allocationMap(0, readBytes, "chain");
    await image.allocationMap(0, readBytes, "layer");
    if (image.readOnly || readBytes === 0) return "opened and read";
    const length = Math.min(readBytes, 1 + prng.int(300000));
    const offset = prng.int(readBytes - length + 1);
    const data = prng.bytes(length);
    stage.wrote = true;
    await image.write(data, offset);
    const back = new Uint8Array(length);
    await image.read(back, offset);
    if (Buffer.compare(back, data) !== 0) throw new Error(`write at ${offset}+${length} did not read back`);
    return "opened, read, written";
  } finally {
    await image.close();
  }
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what} took over ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function makeSeeds(dir: string): Promise<Seed[]> {
  const dyn = join(dir, "seed-dyn.vhd");
  run("qemu-img", ["create", "-q", "-f", "vpc", "-o", "force_size=on", dyn, "4M"]);
  run("qemu-io", ["-f", "vpc", "-c", "write -P 0x33 0 1M", "-c", "write -P 0x44 3M 512k", dyn]);
  const fixed = join(dir, "seed-fixed.vhd");
  run("qemu-img", ["create", "-q", "-f", "vpc", "-o", "subformat=fixed", fixed, "2M"]);
  const parent = join(dir, "seed-parent.vhd");
  const base = await createVhd(parent, { type: "dynamic", sizeBytes: 4 << 20, blockSizeBytes: 512 * 1024 });
  await base.write(new Uint8Array(700000).fill(0x66), 100000);
  await base.close();
  const child = join(dir, "seed-child.vhd");
  const diff = await createVhd(child, { type: "differencing", parentPath: parent, blockSizeBytes: 512 * 1024 });
  await diff.write(new Uint8Array(300000).fill(0x77), 600000);
  await diff.close();
  return [dyn, fixed, child].map((path) => {
    const bytes = readFileSync(path);
    return { name: path, bytes, regions: regionsOf(bytes) };
  });
}

t.test(`fuzzed VHD images: coded errors or successful reads (${CASES} cases)`, async (t) => {
  const dir = tempDir(t);
  const seeds = await makeSeeds(dir);
  const prng = new Prng(seed);
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < CASES; i++) {
    const source = seeds[i % seeds.length];
    const { bytes, what } = mutate(source.bytes, source.regions, prng);
    const path = join(dir, `case-${i % seeds.length}.vhd`);
    writeFileSync(path, bytes);
    const before = sha256(bytes);
    const label = `case ${i} (seed ${seed}) ${source.name}: ${what.join(", ")}`;
    let outcome = "";
    const stage = { wrote: false };
    try {
      outcome = await withTimeout(exercise(path, prng, stage), label);
      const check = await withTimeout(checkImage(path), `check ${label}`);
      outcome += check.ok ? ", check clean" : ", check found problems";
    } catch (error) {
      if (!(error instanceof VhdsyncError) || error.code === "VHDSYNC_INTERNAL") {
        t.fail(`${label}: uncoded failure ${(error as Error)?.stack ?? error}`);
        continue;
      }
      outcome = `${outcome ? `${outcome}, then ` : stage.wrote ? "written, then " : ""}${error.code}`;
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    if (!stage.wrote && sha256(readFileSync(path)) !== before) t.fail(`${label}: file modified without a write`);
  }
  t.pass(`outcomes: ${JSON.stringify(outcomes)}`);
  t.ok(Object.keys(outcomes).length > 2, "mutations reach several outcomes");
});
