// Digest files: round trips against a plain-JS oracle, corrupt / truncated files refused with
// coded errors (and nothing written by a resync that was given one), diff between digests.
import t from "tap";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync, truncateSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { checksum } from "../dist/sync/checksum.js";
import { DigestReader } from "../dist/sync/digest-reader.js";
import { DigestWriter } from "../dist/sync/digest-writer.js";
import { diff } from "../dist/sync/diff.js";
import { verify } from "../dist/sync/verify.js";
import { resync } from "../dist/sync/resync.js";
import { hashBytes } from "../dist/hash/index.js";
import { fileExtents } from "../dist/io/native.js";
import { openSync, closeSync, writeSync } from "node:fs";
import { runCli } from "./helpers/cli.js";
import { withEnv } from "./helpers/env.js";
import { checkFrameFlags, countDataFlags, countDataFlagsPortable } from "../dist/sync/digest-format.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { pairSetup, applyPattern, fileSha, writeRandomImage } from "./helpers/resync-images.js";

const ALGOS = ["xxh3-128", "xxh3-64", "xxh64", "sha256"] as const;

async function holeMap(path: string, size: number): Promise<{ offset: number; length: number }[] | null> {
  const fd = openSync(path, "r");
  try {
    return await fileExtents(fd, 0, size);
  } finally {
    closeSync(fd);
  }
}

t.test("round trip: every block's state and digest match a plain oracle", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  for (const algo of ALGOS) {
    const blockSizeBytes = [4096, 8192, 65536][prng.int(3)];
    const size = 100_000 + prng.int(2_000_000);
    const image = join(dir, `${algo}.img`);
    const digest = join(dir, `${algo}.digest`);
    writeRandomImage(image, size, prng);
    const report = await checksum(image, digest, { algo, blockSizeBytes, workers: prng.int(2) * 2 });
    const bytes = readFileSync(image);
    const extents = await holeMap(image, size);
    const reader = await DigestReader.open(digest);
    t.equal(reader.header.algo, algo);
    t.equal(reader.header.virtualSizeBytes, size);
    let block = 0;
    let mismatches = 0;
    for await (const frame of reader.frames()) {
      let next = 0;
      for (let i = 0; i < frame.blockCount; i++, block++) {
        const start = block * blockSizeBytes;
        const content = bytes.subarray(start, Math.min(size, start + blockSizeBytes));
        const allocated = !extents || extents.some((e) => e.offset < start + content.length && e.offset + e.length > start);
        const zero = content.every((b) => b === 0);
        const expectedFlag = !allocated ? 0 : zero ? 1 : 2;
        if (frame.flags[i] !== expectedFlag) mismatches++;
        if (frame.flags[i] === 2) {
          const digestBytes = frame.digests.subarray(next * reader.header.digestLength, ++next * reader.header.digestLength);
          if (Buffer.compare(Buffer.from(digestBytes), Buffer.from(hashBytes(algo, content))) !== 0) mismatches++;
        }
      }
    }
    await reader.close();
    t.equal(block, report.blocksTotal, `seed ${seed} ${algo}`);
    t.equal(mismatches, 0, `seed ${seed} ${algo} block ${blockSizeBytes}: states and digests`);
  }
});

t.test("corrupt or truncated digest files are refused; resync writes nothing", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  const good = join(dir, "good.digest");
  writeRandomImage(source, 1 << 20, prng);
  copyFileSync(source, target);
  applyPattern(target, 1 << 20, 4096, "whole-blocks", prng);
  await checksum(target, good, { blockSizeBytes: 4096 });
  const original = readFileSync(good);
  const cases: [string, (bytes: Buffer) => Buffer, RegExp][] = [
    ["truncated in the frames", (b) => b.subarray(0, 5000), /VHDSYNC_TRUNCATED/],
    ["truncated trailer", (b) => b.subarray(0, b.length - 1), /VHDSYNC_TRUNCATED/],
    ["cut header", (b) => b.subarray(0, 30), /VHDSYNC_TRUNCATED/],
    ["header byte flipped", (b) => flip(b, 21), /VHDSYNC_BAD_CHECKSUM/],
    ["identity byte flipped", (b) => flip(b, 60), /VHDSYNC_BAD_CHECKSUM|VHDSYNC_CORRUPT/],
    ["digest byte flipped", (b) => flip(b, b.length - 100), /VHDSYNC_BAD_CHECKSUM/],
    ["flag set to 7", (b) => setByte(b, 4096 + 24 + 3, 7), /VHDSYNC_CORRUPT/],
    ["bad magic", (b) => setByte(b, 0, 0x41), /VHDSYNC_CORRUPT/],
    // A later writer's: refused as unsupported, even with a header checksum that matches.
    ["a flag this version does not know", (b) => resealHeader(setByte(b, 10, 1)), /VHDSYNC_UNSUPPORTED/],
    ["version 2", (b) => resealHeader(setByte(b, 8, 2)), /VHDSYNC_UNSUPPORTED/],
    // Sealed, but its identity is a JSON array, not an object (diff took it).
    ["identity an array", (b) => resealHeader(setIdentityText(b, "[]")), /VHDSYNC_CORRUPT/],
    ["empty", () => Buffer.alloc(0), /VHDSYNC_TRUNCATED/],
  ];
  const targetBefore = fileSha(target);
  // Both ways of reading: the whole file at once (the default for a file this small) and in
  // chunks (what files over WHOLE_FILE_BYTES take).
  for (const whole of [undefined, "0"]) await withEnv("VHDSYNC_DIGEST_WHOLE_KIB", whole, async () => {
  for (const [index, [what0, damage, expected]] of cases.entries()) {
    const what = `${what0}${whole === undefined ? "" : " (read in chunks)"}`;
    const bad = join(dir, "bad.digest");
    writeFileSync(bad, damage(Buffer.from(original)));
    // The CLI path (exit code) for a few cases, the library for all of them.
    if (index % 4 === 0) {
      const result = runCli(["resync", source, target, "--target-digest", bad]);
      t.equal(result.status, 3, `${what}: exit 3 (${result.stderr.trim()})`);
      t.match(result.stderr, expected, what);
    }
    await t.rejects(resync(source, target, { targetDigestPath: bad }), { code: expected }, what);
    t.equal(fileSha(target), targetBefore, `${what}: target untouched`);
    // The digest's full pass runs after the scan threads have started: a worker changes nothing.
    await t.rejects(resync(source, target, { targetDigestPath: bad, workers: 2 }), { code: expected }, `${what} (2 threads)`);
    t.equal(fileSha(target), targetBefore, `${what}: target untouched (2 threads)`);
    // A diff of two digest files reads each once, without a validating pass: its end checks
    // each. A file without the magic is a digest file still when it ends with a digest's
    // trailer (bad magic: refused as corrupt, not compared as an image of its own size); an
    // empty file is an empty image.
    if (!/empty/.test(what0)) {
      await t.rejects(diff(good, bad), { code: expected }, `${what}: diff good bad`);
      await t.rejects(diff(bad, good), { code: expected }, `${what}: diff bad good`);
      await t.rejects(diff(target, bad), { code: expected }, `${what}: diff image bad`);
    }
  }
  });
  t.notOk(existsSync(`${target}.vhdsync-checkpoint`), "no checkpoint left behind");
});

function flip(bytes: Buffer, index: number): Buffer {
  bytes[index] ^= 0x40;
  return bytes;
}
/** Rewrites the header checksum (SHA-256 of the header before it) to match the header's bytes. */
function resealHeader(bytes: Buffer): Buffer {
  const end = 48 + bytes.readUInt32LE(44);
  createHash("sha256").update(bytes.subarray(0, end)).digest().copy(bytes, end);
  return bytes;
}
/** Replaces the identity JSON with `text`, padded with spaces to its length. */
function setIdentityText(bytes: Buffer, text: string): Buffer {
  const length = bytes.readUInt32LE(44);
  bytes.fill(0x20, 48, 48 + length);
  bytes.write(text, 48, "utf8");
  return bytes;
}
function setByte(bytes: Buffer, index: number, value: number): Buffer {
  bytes[index] = value;
  return bytes;
}

t.test("--target-digest: resync from a trusted digest, identity mismatch refused, digest updated", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  const digest = join(dir, "t.digest");
  const size = 2_000_000 + prng.int(100_000);
  writeRandomImage(source, size, prng);
  copyFileSync(source, target);
  applyPattern(target, size, 16384, "mixed", prng);
  // "mixed" may only zero blocks that were zero already; the stale-digest check below needs a real change.
  if (fileSha(target) === fileSha(source)) writeFileSync(target, Uint8Array.of(readFileSync(source)[0] ^ 0xff), { flag: "r+" });
  await checksum(target, digest, { blockSizeBytes: 16384, algo: "xxh3-128" });
  const stale = Buffer.from(readFileSync(digest));
  // A target changed after its digest was taken is refused.
  utimesSync(target, new Date(), new Date(Date.now() - 5000));
  const before = fileSha(target);
  const refused = runCli(["resync", source, target, "--target-digest", digest]);
  t.equal(refused.status, 3, refused.stderr);
  t.match(refused.stderr, /VHDSYNC_IDENTITY_MISMATCH/);
  t.equal(fileSha(target), before, "nothing written");
  await checksum(target, digest, { blockSizeBytes: 16384 });
  const report = await resync(source, target, { targetDigestPath: digest, updateTargetDigest: true, workers: prng.int(2) * 2 });
  t.equal(report.mode, "target-digest");
  t.equal(fileSha(target), fileSha(source), `seed ${seed}: identical`);
  t.equal(report.bytesRead <= size, true, "target not read");
  t.equal(report.digestUpdated, true);
  t.equal(runCli(["diff", source, digest]).status, 0, "updated digest describes the new target");
  const next = await resync(source, target, { targetDigestPath: digest });
  t.equal(next.blocksChanged, 0, "the updated digest is accepted and shows no change");
  // diff between two digests
  writeFileSync(join(dir, "stale.digest"), stale);
  const digestDiff = runCli(["diff", join(dir, "stale.digest"), digest, "--json"]);
  t.equal(digestDiff.status, 1, digestDiff.stderr);
  t.equal(JSON.parse(digestDiff.stdout).method, "digests");
  truncateSync(target, size - 1);
  t.equal(runCli(["diff", target, digest]).status, 3, "size mismatch");
});

t.test("validate() keeps a small file: frames() gives exactly the bytes it checked", async (t) => {
  const { seed, prng, dir, source } = pairSetup(t);
  const digest = join(dir, "kept.digest");
  writeRandomImage(source, 3 << 20, prng);
  await checksum(source, digest, { blockSizeBytes: 4096 });
  const original = readFileSync(digest);
  const framesOf = async (reader: DigestReader) => {
    const parts: Buffer[] = [];
    for await (const frame of reader.frames()) parts.push(Buffer.from(frame.flags), Buffer.from(frame.digests));
    return Buffer.concat(parts);
  };
  const reference = await DigestReader.open(digest);
  await reference.validate();
  const expected = await framesOf(reference);
  await reference.close();
  // A digest byte changes on disk after validate(): the kept copy is what was checked, while the
  // chunked reading reads the file again and refuses it at the end.
  for (const whole of [undefined, "0"]) {
    writeFileSync(digest, original);
    await withEnv("VHDSYNC_DIGEST_WHOLE_KIB", whole, async () => {
      const reader = await DigestReader.open(digest);
      await reader.validate();
      writeFileSync(digest, flip(Buffer.from(original), original.length - 100));
      if (whole === undefined) {
        const frames = await framesOf(reader);
        t.ok(frames.equals(expected), `seed ${seed}: the frames are the validated bytes`);
        const again = await framesOf(reader);
        t.ok(again.equals(expected), "and again: every pass gives fresh copies of them");
      } else {
        await t.rejects(framesOf(reader), { code: "VHDSYNC_BAD_CHECKSUM" }, "read in chunks: the change is found");
      }
      await reader.close();
    });
  }
  // Yielded arrays are the caller's to keep or transfer: changing them changes nothing else.
  writeFileSync(digest, original);
  const reader = await DigestReader.open(digest);
  await reader.validate();
  for await (const frame of reader.frames()) {
    frame.flags.fill(9);
    frame.digests.fill(0);
  }
  t.ok((await framesOf(reader)).equals(expected), "frames changed by a caller do not change the next pass");
  await reader.close();
});

t.test("validate() of a digest file of several MiB: read and hashed a piece at a time, any changed byte found", async (t) => {
  // 100,000 SHA-256 data blocks: 3.2 MB of frames, four of validate()'s 1 MiB pieces.
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const digest = join(dir, "big.digest");
  const blockCount = 100_000;
  const frameBlocks = 8192;
  const identity = { format: "raw", path: join(dir, "image.raw"), virtualSizeBytes: blockCount * 4096, fileSizeBytes: String(blockCount * 4096), mtimeNs: "1", ctimeNs: "1", inode: "1", device: "1" };
  const writer = await DigestWriter.create(digest, { algo: "sha256", blockSizeBytes: 4096, virtualSizeBytes: blockCount * 4096, blockCount, frameBlocks, identity });
  for (let first = 0; first < blockCount; first += frameBlocks) {
    const count = Math.min(frameBlocks, blockCount - first);
    await writer.writeFrame({ firstBlock: first, blockCount: count, flags: new Uint8Array(count).fill(2), digests: prng.bytes(count * 32) });
  }
  await writer.finish();
  const original = readFileSync(digest);
  t.ok(original.length > 3 * 1024 * 1024, `${original.length} bytes`);
  const reader = await DigestReader.open(digest);
  await reader.validate();
  let blocks = 0;
  for await (const frame of reader.frames()) blocks += frame.blockCount;
  t.equal(blocks, blockCount, "validated: every block");
  await reader.close();
  const headerLength = reader.header.headerLength;
  // A byte in each piece, at the pieces' edges, and the frames' last byte.
  const mib = 1024 * 1024;
  const places = [headerLength, headerLength + mib - 1, headerLength + mib, headerLength + 2 * mib + prng.int(mib), headerLength + 3 * mib, original.length - 41];
  for (const place of places) {
    writeFileSync(digest, flip(Buffer.from(original), place));
    const changed = await DigestReader.open(digest);
    await t.rejects(changed.validate(), { code: /^VHDSYNC_(BAD_CHECKSUM|CORRUPT)$/ }, `seed ${seed}: byte ${place} changed: refused`);
    await changed.close();
  }
});

t.test("checkFrameFlags counts data blocks and finds unknown states at any offset (addon and portable counts)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const naive = (flags: Uint8Array) => {
    let data = 0;
    for (let i = 0; i < flags.length; i++) {
      if (flags[i] > 2) return { bad: i };
      if (flags[i] === 2) data++;
    }
    return { data };
  };
  let checked = 0;
  for (let round = 0; round < 400; round++) {
    const buffer = new Uint8Array(64 + prng.int(9000));
    for (let i = 0; i < buffer.length; i++) buffer[i] = prng.int(3);
    const from = prng.int(8);
    const flags = buffer.subarray(from, from + prng.int(buffer.length - from + 1));
    // A third of the rounds carry an unknown state somewhere, sometimes two: half of them 3
    // (both low bits, the one a mask of the high bits misses), the others 4..255.
    if (round % 3 === 0 && flags.length > 0) for (let k = 0; k <= prng.int(2); k++) flags[prng.int(flags.length)] = prng.int(2) ? 3 : 4 + prng.int(252);
    const expected = naive(flags);
    const count = "data" in expected ? expected.data : -1;
    // countDataFlags asks the addon (when loaded) for 512 flags or more; the portable loop must agree.
    t.equal(countDataFlags(flags), count, `seed ${seed} round ${round}: ${flags.length} flags at offset ${from}`);
    t.equal(countDataFlagsPortable(flags), count, `seed ${seed} round ${round}: portable`);
    const declared = "data" in expected ? expected.data : prng.int(flags.length + 1);
    if ("bad" in expected) {
      t.throws(() => checkFrameFlags(flags, declared, 100, "x.digest"), { code: "VHDSYNC_CORRUPT", message: new RegExp(`bad block state ${flags[expected.bad!]} at block ${100 + expected.bad!}$`) }, `seed ${seed} round ${round}`);
    } else {
      t.doesNotThrow(() => checkFrameFlags(flags, declared, 100, "x.digest"), `seed ${seed} round ${round}`);
      if (expected.data! > 0) t.throws(() => checkFrameFlags(flags, expected.data! - 1, 100, "x.digest"), { code: "VHDSYNC_CORRUPT" }, `seed ${seed} round ${round}: one digest too few`);
      t.throws(() => checkFrameFlags(flags, expected.data! + 1, 100, "x.digest"), { code: "VHDSYNC_CORRUPT" }, `seed ${seed} round ${round}: one too many`);
    }
    checked++;
  }
  t.equal(checked, 400);
});

t.test("diff of two digest files: every differing block against a plain oracle, frames of any sizes", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const identity = { format: "raw", path: "/x.img", virtualSizeBytes: 0, fileSizeBytes: "0", mtimeNs: "0", ctimeNs: "0", inode: "0", device: "0" };
  // A digest file from per-block states (0 unallocated, 1 zero, 2 data) and data digests.
  const write = async (path: string, states: Uint8Array, digests: Uint8Array[], frameBlocks: number, blockSizeBytes: number, virtualSizeBytes: number) => {
    const writer = await DigestWriter.create(path, { algo: "xxh3-64", blockSizeBytes, virtualSizeBytes, blockCount: states.length, frameBlocks, identity: { ...identity, virtualSizeBytes } });
    for (let first = 0; first < states.length; first += frameBlocks) {
      const flags = states.slice(first, Math.min(states.length, first + frameBlocks));
      const packed = [...flags.keys()].filter((i) => flags[i] === 2).map((i) => digests[first + i]);
      await writer.writeFrame({ firstBlock: first, blockCount: flags.length, flags, digests: new Uint8Array(Buffer.concat(packed)) });
    }
    await writer.finish();
  };
  for (let round = 0; round < 24; round++) {
    const blockSizeBytes = 4096;
    const blocks = 1 + prng.int(3000);
    const virtualSizeBytes = (blocks - 1) * blockSizeBytes + 1 + prng.int(blockSizeBytes);
    const statesA = new Uint8Array(blocks).map(() => prng.int(3));
    const digestsA = [...Array(blocks)].map(() => prng.bytes(8));
    const statesB = statesA.slice();
    const digestsB = digestsA.map((d) => d.slice());
    // B: some rounds the same, others changed here and there (zero <-> unallocated is no
    // change). Some rounds only change what a frame's states or its packed digests alone
    // would not show: a digest's bytes, or a data block moved to the next block.
    const changes = round % 4 === 0 ? 0 : 1 + prng.int(40);
    const kinds = round % 6 === 3 ? [1, 4] : [0, 1, 2, 3, 4];
    for (let k = 0; k < changes; k++) {
      const i = prng.int(blocks);
      const what = kinds[prng.int(kinds.length)];
      if (what === 0) statesB[i] = prng.int(3);
      else if (what === 1) digestsB[i][prng.int(8)] ^= 1 + prng.int(255);
      else if (what === 2) statesB[i] = statesB[i] === 2 ? 2 : 1 - statesB[i];
      else if (what === 3) for (let j = i; j < Math.min(blocks, i + prng.int(600)); j++) statesB[j] = 0;
      else if (i + 1 < blocks && statesB[i] === 2 && statesB[i + 1] !== 2) {
        [statesB[i], statesB[i + 1], digestsB[i + 1]] = [statesB[i + 1], 2, digestsB[i]];
      }
    }
    const expected: number[] = [];
    for (let i = 0; i < blocks; i++) {
      const [a, b] = [statesA[i] === 2, statesB[i] === 2];
      if (a !== b || (a && b && !Buffer.from(digestsA[i]).equals(digestsB[i]))) expected.push(i);
    }
    // Frames of different sizes on each side (a reader takes any consistent frameBlocks).
    const [framesA, framesB] = round % 3 === 0 ? [1024, 1024] : [1 + prng.int(700), 1 + prng.int(700)];
    const [pathA, pathB] = [join(dir, `a${round}.digest`), join(dir, `b${round}.digest`)];
    await write(pathA, statesA, digestsA, framesA, blockSizeBytes, virtualSizeBytes);
    await write(pathB, statesB, digestsB, framesB, blockSizeBytes, virtualSizeBytes);
    const whole = round % 2 === 0 ? undefined : "0";
    const report = await withEnv("VHDSYNC_DIGEST_WHOLE_KIB", whole, () => diff(pathA, pathB, { maxExtents: 1 << 20 }));
    const label = `seed ${seed} round ${round} (${blocks} blocks, frames ${framesA}/${framesB}, ${whole ? "chunked" : "whole"})`;
    t.equal(report.method, "digests", label);
    t.equal(report.blocksDiffering, expected.length, `${label}: count`);
    t.equal(report.equal, expected.length === 0, label);
    const differing: number[] = [];
    for (const extent of report.extents) for (let at = extent.offset; at < extent.offset + extent.length; at += blockSizeBytes) differing.push(at / blockSizeBytes);
    t.same(differing, expected, `${label}: the differing blocks`);
    const last = report.extents.at(-1);
    if (last && expected.at(-1) === blocks - 1) t.equal(last.offset + last.length, virtualSizeBytes, `${label}: the last block ends at the virtual size`);
  }
  // The writer counts a frame's data blocks itself and refuses a state it does not know.
  const writer = await DigestWriter.create(join(dir, "bad.digest"), { algo: "xxh3-64", blockSizeBytes: 4096, virtualSizeBytes: 3 * 4096, blockCount: 3, frameBlocks: 3, identity });
  await t.rejects(writer.writeFrame({ firstBlock: 0, blockCount: 3, flags: Uint8Array.of(2, 3, 0), digests: new Uint8Array(8) }), { code: "VHDSYNC_INTERNAL" });
  await writer.abort();
  t.equal(existsSync(join(dir, "bad.digest")), false, "nothing left behind");
});

t.test("DigestWriter.finish restates zero and unallocated blocks in place and hashes the frames again; it refuses to touch data blocks", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const blockCount = 3000 + prng.int(20_000);
  const frameBlocks = 1 << (6 + prng.int(6)); // at most 2048: two frames or more
  const identity = { format: "raw", path: join(dir, "image.raw"), virtualSizeBytes: blockCount * 4096, fileSizeBytes: String(blockCount * 4096), mtimeNs: "1", ctimeNs: "1", inode: "1", device: "1" };
  const header = { algo: "xxh3-64" as const, blockSizeBytes: 4096, virtualSizeBytes: blockCount * 4096, blockCount, frameBlocks, identity };
  // A random layout of states (some frames all data: the writer must find the others in the file).
  const states = Uint8Array.from({ length: blockCount }, (_, i) => (Math.floor(i / frameBlocks) % 3 === 0 ? 2 : prng.int(3)));
  states[blockCount - 1] = 0; // the last frame (never the first) holds one at least
  const digests = prng.bytes(blockCount * 8);
  const write = async (path: string, flagsOf: (first: number, count: number) => Uint8Array) => {
    const writer = await DigestWriter.create(path, header);
    for (let first = 0, data = 0; first < blockCount; first += frameBlocks) {
      const flags = flagsOf(first, Math.min(frameBlocks, blockCount - first));
      const count = countDataFlags(flags);
      await writer.writeFrame({ firstBlock: first, blockCount: flags.length, flags, digests: digests.subarray(data * 8, (data + count) * 8) });
      data += count;
    }
    return writer;
  };
  // The restated states: zero and unallocated swapped where the seeded PRNG says so.
  const flipped = Uint8Array.from(states, (state) => (state !== 2 && prng.int(2) === 0 ? 1 - state : state));
  const restated = join(dir, "restated.digest");
  const calls: number[] = [];
  const writer = await write(restated, (first, count) => states.slice(first, first + count));
  await writer.finish(undefined, async (first, flags) => {
    calls.push(first);
    for (let i = 0; i < flags.length; i++) if (flags[i] !== 2) flags[i] = flipped[first + i];
  });
  const expected = join(dir, "expected.digest");
  await (await write(expected, (first, count) => flipped.slice(first, first + count))).finish();
  t.ok(readFileSync(restated).equals(readFileSync(expected)), `seed ${seed}: restated in place = written with those states from the start`);
  const reader = await DigestReader.open(restated);
  await reader.validate();
  await reader.close();
  const sparseFrames = [];
  for (let first = 0; first < blockCount; first += frameBlocks) if (states.subarray(first, first + frameBlocks).some((state) => state !== 2)) sparseFrames.push(first);
  t.same(calls, sparseFrames, "restate is asked about the frames holding zero or unallocated blocks only");

  const refused = join(dir, "refused.digest");
  const bad = await write(refused, (first, count) => states.slice(first, first + count));
  await t.rejects(bad.finish(undefined, async (_first, flags) => void flags.fill(2)), { code: "VHDSYNC_INTERNAL" }, "a restate that makes a data block refused");
  t.equal(existsSync(refused), false, "nothing left at the path");
  t.same(readdirSync(dir).filter((name) => name.includes("refused")), [], "nor a temp file");
});

t.test("CLI: resync --update-digest leaves the digest a fresh checksum would write (raw and dynamic VHD targets, zero runs and holes)", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  const size = (2 + prng.int(6)) * 1024 * 1024;
  writeRandomImage(source, size, prng, 64 * 1024);
  writeRandomImage(target, size, prng, 64 * 1024);
  // Zero runs written into the source (a whole 512 KiB VHD block, single 4 KiB blocks) and the
  // target, beside writeRandomImage's holes and allocated zeros.
  const zero = (path: string, at: number, length: number) => {
    const fd = openSync(path, "r+");
    writeSync(fd, new Uint8Array(length), 0, length, at);
    closeSync(fd);
  };
  zero(source, 512 * 1024, 512 * 1024);
  for (let i = 0; i < 40; i++) zero(source, prng.int(size / 4096) * 4096, 4096);
  zero(target, 1024 * 1024, 512 * 1024);
  const vhd = join(dir, "target.vhd");
  t.equal(runCli(["convert", target, vhd, "--to", "vhd-dynamic", "--block-size", "512K"]).status, 0);
  for (const image of [target, vhd]) {
    const digest = `${image}.digest`;
    t.equal(runCli(["checksum", image, "-o", digest]).status, 0);
    const run = runCli(["resync", source, image, "--target-digest", digest, "--update-digest", "--json"]);
    t.equal(run.status, 0, run.stderr);
    t.equal(JSON.parse(run.stdout.trim().split("\n").pop()!).digestUpdated, true);
    t.equal(runCli(["checksum", image, "-o", join(dir, "fresh.digest")]).status, 0);
    t.ok(readFileSync(digest).equals(readFileSync(join(dir, "fresh.digest"))), `seed ${seed}: ${image}: the updated digest is byte for byte a fresh checksum`);
  }
});

t.test("header length: a multiple of 4096 with 64 bytes of padding to spare, however long the image's path; --update-digest rewrites it in place", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  // Image paths from short to near PATH_MAX, so the identity JSON crosses the 4096-byte header's room.
  for (const extra of [0, 3500 + prng.int(300), 3800 + prng.int(150), 3900 + prng.int(60)]) {
    let deep = dir;
    for (let left = extra; left > 0; left -= 201) {
      deep = join(deep, "d".repeat(Math.min(200, left)));
      mkdirSync(deep, { recursive: true });
    }
    const image = join(deep, "i.img");
    writeRandomImage(image, 1 << 20, prng);
    const digest = join(dir, "long.digest");
    await checksum(image, digest, { blockSizeBytes: 4096 });
    const bytes = readFileSync(digest);
    const headerLength = bytes.readUInt32LE(12);
    const identityLength = bytes.readUInt32LE(44);
    const json = bytes.subarray(48, 48 + identityLength).toString("utf8").trimEnd();
    t.equal(JSON.parse(json).path, image, `seed ${seed}: path of ${image.length} characters`);
    t.equal(headerLength % 4096, 0, `header ${headerLength} bytes: a multiple of 4096 (path of ${image.length} characters)`);
    t.ok(identityLength - Buffer.byteLength(json) >= 64, `${identityLength - Buffer.byteLength(json)} bytes to spare`);
    const source = join(dir, "source.img");
    writeRandomImage(source, 1 << 20, prng);
    const report = await resync(source, image, { targetDigestPath: digest, updateTargetDigest: true });
    t.equal(report.digestUpdated, true);
    t.equal(readFileSync(digest).readUInt32LE(12), headerLength, "rewritten in place, same length");
    t.equal((await resync(source, image, { targetDigestPath: digest, dryRun: true })).blocksChanged, 0, "the updated digest describes the target");
  }
});

t.test("image compares at blocks larger than the compare unit report whole blocks, as the digest diff does", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  for (const blockSizeBytes of [8 << 20, 16 << 20, 64 << 20]) {
    const size = 2 * blockSizeBytes + 3 * 4096 + prng.int(4096);
    const [a, b] = [join(dir, "a.img"), join(dir, "b.img")];
    const bytes = prng.bytes(size);
    writeFileSync(a, bytes);
    // Single bytes in several 4 MiB parts of block 0, one in the partial last block.
    const places = [prng.int(4 << 20), (4 << 20) + prng.int(4 << 20), blockSizeBytes - 1, 2 * blockSizeBytes + prng.int(size - 2 * blockSizeBytes)];
    for (const place of places) bytes[place] ^= 0xff;
    writeFileSync(b, bytes);
    const expected = [{ offset: 0, length: blockSizeBytes }, { offset: 2 * blockSizeBytes, length: size - 2 * blockSizeBytes }];
    const label = `seed ${seed}, ${blockSizeBytes >> 20} MiB blocks`;
    for (const noNative of [undefined, "1"]) {
      await withEnv("VHDSYNC_NO_NATIVE_SCAN", noNative, async () => {
        for (const report of [await verify(a, b, { blockSizeBytes }), await diff(a, b, { blockSizeBytes })]) {
          t.same(report.extents, expected, `${label}, ${report.scanner}: the differing blocks, whole`);
          t.equal(report.bytesDiffering, blockSizeBytes + size - 2 * blockSizeBytes, `${label}: bytes of the differing blocks`);
          t.equal(report.blocksDiffering, 2);
        }
      });
    }
    await checksum(b, join(dir, "b.digest"), { blockSizeBytes });
    const viaDigest = await diff(a, join(dir, "b.digest"), { blockSizeBytes });
    t.same(viaDigest.extents, expected, `${label}: the digest diff agrees`);
  }
});

t.test("--update-digest of a target named by a much longer path than its digest recorded: the frames move behind a longer header", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  let deep = dir;
  for (let left = 3700 + prng.int(200); left > 0; left -= 201) {
    deep = join(deep, "d".repeat(Math.min(200, left)));
    mkdirSync(deep, { recursive: true });
  }
  const image = join(deep, "i.img");
  writeRandomImage(image, 2 << 20, prng);
  const short = join(dir, "short");
  symlinkSync(deep, short);
  const digest = join(dir, "i.digest");
  await checksum(join(short, "i.img"), digest, { blockSizeBytes: 4096 });
  t.equal(readFileSync(digest).readUInt32LE(12), 4096, "begun under the short name: a 4096-byte header");
  const source = join(dir, "source.img");
  writeRandomImage(source, 2 << 20, prng);
  const report = await resync(source, image, { targetDigestPath: digest, updateTargetDigest: true });
  t.equal(report.digestUpdated, true, `seed ${seed}: updated under a ${image.length}-character path`);
  const updated = readFileSync(digest);
  t.equal(updated.readUInt32LE(12) % 4096, 0, `header ${updated.readUInt32LE(12)} bytes, a multiple of 4096`);
  await checksum(image, join(dir, "fresh.digest"), { blockSizeBytes: 4096 });
  t.ok(updated.equals(readFileSync(join(dir, "fresh.digest"))), "byte for byte a fresh checksum under the long name");
  t.same(readdirSync(dir).filter((name) => name.endsWith(".tmp")), [], "no temp file left");
});

t.test("--target-digest of a differencing target: a parent changed after the digest is refused, though the child's file is as it was", async (t) => {
  const { createVhd, openVhd } = await import("../dist/index.js");
  const { seed, prng, dir, source } = pairSetup(t);
  const size = 8 << 20;
  writeRandomImage(source, size, prng);
  const parentPath = join(dir, "parent.vhd");
  const childPath = join(dir, "child.vhd");
  const digest = join(dir, "child.digest");
  const parent = await createVhd(parentPath, { type: "dynamic", sizeBytes: size });
  await parent.write(readFileSync(source), 0);
  await parent.close();
  await (await createVhd(childPath, { type: "differencing", parentPath })).close();
  await checksum(childPath, digest);
  t.equal((await resync(source, childPath, { targetDigestPath: digest, dryRun: true })).blocksChanged, 0, "the digest describes the chain as it is");
  // Someone else writes the parent (vhdsync refuses to): what the child reads changes, its file does not.
  const childBefore = fileSha(childPath);
  const writable = await openVhd(parentPath, { readOnly: false });
  await writable.write(new Uint8Array(65536).fill(0x77), prng.int(size / 65536) * 65536);
  await writable.close();
  t.equal(fileSha(childPath), childBefore, "the child's file is unchanged");
  for (const extra of [[], ["--dry-run"]]) {
    const refused = runCli(["resync", source, childPath, "--target-digest", digest, ...extra]);
    t.equal(refused.status, 3, `seed ${seed} ${extra.join(" ")}: ${refused.stderr}`);
    t.match(refused.stderr, /^vhdsync: VHDSYNC_IDENTITY_MISMATCH: .*parentsState/m);
  }
  t.equal(fileSha(childPath), childBefore, "nothing written");
  t.equal(runCli(["verify", source, childPath]).status, 1, "the chain differs from the source now");
  // A fresh digest covers the parent's new state; an updated one keeps covering it.
  await checksum(childPath, digest);
  const report = await resync(source, childPath, { targetDigestPath: digest, updateTargetDigest: true });
  t.equal(report.blocksChanged, 16, "the parent's 64 KiB, in 4 KiB blocks");
  t.equal(report.digestUpdated, true);
  t.equal(runCli(["verify", source, childPath]).status, 0, `seed ${seed}: identical`);
  t.equal((await resync(source, childPath, { targetDigestPath: digest })).blocksChanged, 0, "the updated digest is accepted");
});
