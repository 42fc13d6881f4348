// Per-block hashing with blocks larger than the arena allows in chunks of whole blocks
// (`vhdsync hash --block-size` takes powers of two up to 1 GiB; the arena is 128 MiB): such
// blocks are hashed as streams and equal the one-shot digest of each block. Before, 128M and
// larger failed on any file, and 64M on files over 64 MiB, with VHDSYNC_NO_MEMORY (exit 4).

import { openSync, closeSync, writeSync, writeFileSync, truncateSync, readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { hashBytes, hashFile, toHex, type HashAlgorithm } from "../dist/index.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const ALGORITHMS: HashAlgorithm[] = ["xxh3-128", "xxh3-64", "xxh64", "sha256"];
const MiB = 1024 * 1024;

/** A sparse file of `sizeBytes` with random runs at a few places (also across block ends). */
function makeFile(path: string, sizeBytes: number, prng: Prng): void {
  writeFileSync(path, "");
  truncateSync(path, sizeBytes);
  const fd = openSync(path, "r+");
  for (const at of [0, 16 * MiB - 100, 33 * MiB + 5, sizeBytes - 3000]) if (at >= 0 && at < sizeBytes) writeSync(fd, prng.bytes(Math.min(5000, sizeBytes - at)), 0, Math.min(5000, sizeBytes - at), at);
  closeSync(fd);
}

function expectedDigests(bytes: Uint8Array, blockSizeBytes: number, algorithm: HashAlgorithm): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += blockSizeBytes) out.push(toHex(hashBytes(algorithm, bytes.subarray(offset, offset + blockSizeBytes))));
  return out;
}

t.test("hashFile: blocks of 16 MiB to 1 GiB equal one-shot digests per block", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "image.raw");
  const sizeBytes = 40 * MiB + 7;
  makeFile(path, sizeBytes, new Prng(testSeed()));
  const bytes = new Uint8Array(readFileSync(path));
  for (const blockSizeBytes of [16 * MiB, 64 * MiB, 256 * MiB, 1024 * MiB]) {
    for (const algorithm of ALGORITHMS) {
      const result = await hashFile(path, { algo: algorithm, blockSizeBytes });
      const digests: string[] = [];
      const length = result.blockDigests!.length / Math.ceil(sizeBytes / blockSizeBytes);
      for (let i = 0; i < result.blockDigests!.length; i += length) digests.push(toHex(result.blockDigests!.subarray(i, i + length)));
      t.same(digests, expectedDigests(bytes, blockSizeBytes, algorithm), `${algorithm}, ${blockSizeBytes / MiB} MiB blocks`);
    }
    // Streamed to a listener: offsets are the blocks' own.
    const seen: number[] = [];
    await hashFile(path, { blockSizeBytes, onBlockDigests: (offset) => void seen.push(offset) });
    t.same(seen, expectedDigests(bytes, blockSizeBytes, "xxh3-128").map((_, i) => i * blockSizeBytes), `listener offsets, ${blockSizeBytes / MiB} MiB blocks`);
  }
});

t.test("vhdsync hash --block-size 64M on 130 MiB and 1G on a small file exit 0", async (t) => {
  const dir = tempDir(t);
  const large = join(dir, "large.raw");
  makeFile(large, 130 * MiB, new Prng(testSeed()));
  const result = runCli(["hash", "--block-size", "64M", "--json", large]);
  t.equal(result.status, 0, result.stderr);
  const lines = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
  const expected = expectedDigests(new Uint8Array(readFileSync(large)), 64 * MiB, "xxh3-128");
  t.same(lines.slice(0, -1).map((line) => [line.offset, line.length, line.digest]), expected.map((digest, i) => [i * 64 * MiB, Math.min(64 * MiB, 130 * MiB - i * 64 * MiB), digest]));
  const small = join(dir, "small.raw");
  writeFileSync(small, new Prng(testSeed()).bytes(10000));
  const one = runCli(["hash", "--block-size", "1G", small]);
  t.equal(one.status, 0, one.stderr);
  t.equal(one.stdout, `${toHex(hashBytes("xxh3-128", readFileSync(small)))}  ${small} [0+10000]\n`);
});
