// Digest files: round trips against a plain-JS oracle, corrupt / truncated files refused with
// coded errors (and nothing written by a resync that was given one), diff between digests.
import t from "tap";
import { copyFileSync, existsSync, readFileSync, writeFileSync, truncateSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { checksum } from "../dist/sync/checksum.js";
import { DigestReader } from "../dist/sync/digest-reader.js";
import { resync } from "../dist/sync/resync.js";
import { hashBytes } from "../dist/hash/index.js";
import { fileExtents } from "../dist/io/native.js";
import { openSync, closeSync } from "node:fs";
import { runCli } from "./helpers/cli.js";
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
    ["empty", () => Buffer.alloc(0), /VHDSYNC_TRUNCATED/],
  ];
  const targetBefore = fileSha(target);
  for (const [index, [what, damage, expected]] of cases.entries()) {
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
  }
  t.notOk(existsSync(`${target}.vhdsync-checkpoint`), "no checkpoint left behind");
});

function flip(bytes: Buffer, index: number): Buffer {
  bytes[index] ^= 0x40;
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
