// XXH3-64 and XXH3-128 against the reference xxhsum (-H3 / -H2) on random inputs of every
// length class: 0, 1-3, 4-8, 9-16, 17-128, 129-240, 241+, multi-stripe, multi-block and
// several KiB/MiB. All inputs go to one xxhsum invocation per algorithm to keep it fast.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { createHasher, hashBytes, toHex, type HashAlgorithm } from "../dist/index.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

/** Every length 0..300, then block and stripe boundaries, then random larger ones. */
function lengths(prng: Prng): number[] {
  const result = Array.from({ length: 301 }, (_, i) => i);
  for (const edge of [511, 512, 513, 1023, 1024, 1025, 1087, 1088, 2047, 2048, 2049, 2240, 2367, 4096, 65536, 1048576]) {
    result.push(edge - 1, edge, edge + 1);
  }
  for (let i = 0; i < 40; i++) result.push(301 + prng.int(20000));
  for (let i = 0; i < 4; i++) result.push(prng.int(3 * 1024 * 1024));
  return [...new Set(result)];
}

/** Parses xxhsum output lines (`hex  file` or `XXH3 (file) = hex`) into hex digests, in order. */
function parseXxhsum(output: string): string[] {
  return output.trim().split("\n").map((line) => {
    const match = /^XXH3 \(.*\) = ([0-9a-f]+)$/.exec(line) ?? /^([0-9a-f]+) {2}/.exec(line);
    if (!match) throw new Error(`unexpected xxhsum line: ${line}`);
    return match[1];
  });
}

t.test("XXH3-64 and XXH3-128 equal xxhsum -H3 / -H2", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const inputs = lengths(prng).map((length, index) => {
    const bytes = prng.bytes(length);
    const path = join(dir, `input-${index}`);
    writeFileSync(path, bytes);
    return { length, bytes, path };
  });
  const cases: [HashAlgorithm, string][] = [["xxh3-64", "-H3"], ["xxh3-128", "-H2"]];
  for (const [algorithm, flag] of cases) {
    const expected = parseXxhsum(execFileSync("xxhsum", [flag, ...inputs.map((input) => input.path)], { encoding: "utf8", maxBuffer: 1 << 26 }));
    t.equal(expected.length, inputs.length, "one xxhsum line per input");
    let mismatches = 0;
    inputs.forEach((input, index) => {
      const oneShot = toHex(hashBytes(algorithm, input.bytes));
      const hasher = createHasher(algorithm);
      for (let offset = 0; offset < input.length; ) {
        const piece = 1 + prng.int(prng.int(2) ? 100 : 5000);
        hasher.update(input.bytes.subarray(offset, offset + piece));
        offset += piece;
      }
      const streamed = toHex(hasher.digest());
      hasher.dispose();
      if (oneShot !== expected[index] || streamed !== expected[index]) {
        mismatches++;
        if (mismatches <= 5) {
          t.same({ oneShot, streamed }, { oneShot: expected[index], streamed: expected[index] }, `${algorithm} length ${input.length} (VHDSYNC_SEED=${seed})`);
        }
      }
    });
    t.equal(mismatches, 0, `${algorithm}: ${inputs.length} inputs match ${flag} (VHDSYNC_SEED=${seed})`);
  }
});
