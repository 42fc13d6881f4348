// Seeded VHDX fuzzing: mutates real images (headers, region tables, metadata, BAT, log,
// sector bitmaps, truncation), then opens, reads, maps, describes and checks each one. Every
// outcome must be a success or a coded, non-internal VhdsyncError; mutations of a redundant
// copy (the second region table) must still read the original content; files never change.

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ERROR_CODES, checkImage, openImage } from "../../dist/index.js";
import { Prng } from "./prng.js";
import { currentHeaderOffset, regionOffsets, setChecksum } from "./vhdx-builder.js";

const KIB = 1024;
const MIB = 1024 * KIB;

/** An image to mutate; `content` is its expected virtual disk content. */
export interface FuzzSeed {
  name: string;
  bytes: Uint8Array;
  content: Uint8Array;
  logOffset?: number;
}

export interface FuzzOutcome {
  cases: number;
  opened: number;
  errors: Record<string, number>;
  failures: string[];
}

const INTERESTING = [0, 1, 0xff, 0x7f, 0x80, 0x100000, 0xffffffff, 0x7fffffff, 4096, 512, 0x10000000];

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Recomputes the checksum of [at, at+length) if the (maybe truncated) file still holds it. */
function fixChecksum(file: Uint8Array, at: number, length: number): void {
  if (at + length <= file.length) setChecksum(file.subarray(at, at + length));
}

/** Overwrites 1-4 bytes (or an interesting u32) at `offset`. */
function poke(prng: Prng, file: Uint8Array, offset: number): void {
  if (offset < 0 || offset + 4 > file.length) return;
  const view = new DataView(file.buffer, file.byteOffset);
  if (prng.int(2) === 0) view.setUint32(offset, INTERESTING[prng.int(INTERESTING.length)], true);
  else for (let i = 0, n = 1 + prng.int(4); i < n; i++) file[offset + i] = prng.u32() & 0xff;
}

/** Applies one targeted mutation; returns whether content must stay as it was, and the (maybe truncated) file. */
function mutate(prng: Prng, seed: FuzzSeed, file: Uint8Array): { file: Uint8Array; contentKept: boolean; what: string } {
  const view = new DataView(file.buffer, file.byteOffset);
  const { bat, metadata } = regionOffsets(seed.bytes);
  const target = prng.int(9);
  const fix = prng.int(2) === 0; // recompute the checksum so the damage reaches deeper checks
  switch (target) {
    case 0: {
      const header = prng.int(2) ? 64 * KIB : 128 * KIB;
      poke(prng, file, header + prng.int(80));
      if (fix) fixChecksum(file, header, 4 * KIB);
      // A damaged (checksum left bad) non-current header never changes what is read.
      return { file, contentKept: !fix && header !== currentHeaderOffset(seed.bytes), what: `header ${header}` };
    }
    case 1: {
      const second = prng.int(2) === 1;
      const table = second ? 256 * KIB : 192 * KIB;
      poke(prng, file, table + prng.int(16 + 3 * 32));
      if (fix) fixChecksum(file, table, 64 * KIB);
      // A damaged second copy (checksum left bad) never changes what is read.
      return { file, contentKept: second && !fix, what: `region table ${table}` };
    }
    case 2:
      poke(prng, file, metadata + (prng.int(2) ? prng.int(32 + 6 * 32) : 64 * KIB + prng.int(256)));
      return { file, contentKept: false, what: "metadata" };
    case 3: {
      const entry = bat + 8 * prng.int(16);
      const value = prng.int(3) === 0 ? prng.u64() : BigInt(prng.int(8)) | (BigInt(prng.int(64)) << 20n);
      if (entry + 8 <= file.length) view.setBigUint64(entry, value, true);
      return { file, contentKept: false, what: `BAT entry ${(entry - bat) / 8}` };
    }
    case 4:
      if (seed.logOffset === undefined) return mutate(prng, seed, file);
      poke(prng, file, seed.logOffset + prng.int(2 * 4096));
      if (fix) fixChecksum(file, seed.logOffset, 4096 * (1 + prng.int(2)));
      return { file, contentKept: false, what: "log" };
    case 5:
      return { file: file.subarray(0, prng.int(file.length)), contentKept: false, what: "truncation" };
    case 6:
      poke(prng, file, prng.int(Math.min(file.length, 8 * MIB)));
      return { file, contentKept: false, what: "random byte" };
    case 7:
      poke(prng, file, 64 * KIB + 48 + prng.int(16)); // LogGuid: makes a clean image look dirty
      fixChecksum(file, 64 * KIB, 4 * KIB);
      fixChecksum(file, 128 * KIB, 4 * KIB);
      return { file, contentKept: false, what: "log GUID" };
    default:
      poke(prng, file, 0);
      return { file, contentKept: false, what: "identifier" };
  }
}

/** Opens and exercises an image; throws what the library throws. */
async function exercise(path: string, prng: Prng): Promise<Uint8Array | undefined> {
  const image = await openImage(path, { format: "vhdx" });
  try {
    await image.info();
    await image.allocationMap();
    if (image.virtualSize <= 16 * MIB) {
      const all = new Uint8Array(image.virtualSize);
      await image.read(all, 0);
      return all;
    }
    for (let i = 0; i < 3; i++) {
      const offset = prng.int(image.virtualSize);
      await image.read(new Uint8Array(Math.min(MIB, image.virtualSize - offset)), offset);
    }
    return undefined;
  } finally {
    await image.close();
  }
}

function describe(error: unknown): string | undefined {
  const coded = error as { name?: string; code?: string };
  if (coded?.name === "VhdsyncError" && coded.code && coded.code in ERROR_CODES && coded.code !== "VHDSYNC_INTERNAL") return coded.code;
  return undefined;
}

/** Runs `cases` mutations over `seeds` in `dir`. */
export async function fuzzVhdx(seeds: FuzzSeed[], cases: number, seed: number, dir: string): Promise<FuzzOutcome> {
  const prng = new Prng(seed);
  const outcome: FuzzOutcome = { cases, opened: 0, errors: {}, failures: [] };
  for (let index = 0; index < cases; index++) {
    const base = seeds[prng.int(seeds.length)];
    let file: Uint8Array = base.bytes.slice();
    let contentKept = true;
    const what: string[] = [];
    for (let m = 0, n = 1 + prng.int(3); m < n; m++) {
      const step = mutate(prng, base, file);
      file = step.file;
      contentKept &&= step.contentKept;
      what.push(step.what);
    }
    const path = join(dir, `fuzz-${base.name}.vhdx`);
    writeFileSync(path, file);
    const label = `case ${index} (seed ${seed}, ${base.name}: ${what.join(", ")})`;
    try {
      const content = await exercise(path, prng);
      outcome.opened++;
      if (contentKept && content && sha(content) !== sha(base.content)) outcome.failures.push(`${label}: content changed (first difference at byte ${content.findIndex((b, i) => b !== base.content[i])}, length ${content.length} vs ${base.content.length})`);
    } catch (error) {
      const code = describe(error);
      if (!code) outcome.failures.push(`${label}: uncoded error ${(error as Error)?.stack ?? error}`);
      else outcome.errors[code] = (outcome.errors[code] ?? 0) + 1;
      if (contentKept) outcome.failures.push(`${label}: a redundant copy's damage made the open fail (${code})`);
    }
    try {
      await checkImage(path);
    } catch (error) {
      if (!describe(error)) outcome.failures.push(`${label}: check threw ${(error as Error)?.stack ?? error}`);
    }
    if (index % 10 === 0 && sha(readFileSync(path)) !== sha(file)) outcome.failures.push(`${label}: file modified`);
  }
  return outcome;
}
