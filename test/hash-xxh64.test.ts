// XXH64 against an independent implementation (xxhash-wasm's h64) for every length 0..4096
// with random data and random 64-bit seeds, one-shot and streaming.

import t from "tap";
import xxhash from "xxhash-wasm";
import { createHasher, hashBytes, toHex } from "../dist/index.js";
import { Prng, testSeed } from "./helpers/prng.js";

t.test("XXH64 equals xxhash-wasm h64 for lengths 0..4096", async (t) => {
  const { h64Raw } = await xxhash();
  const seed = testSeed();
  const prng = new Prng(seed);
  const data = prng.bytes(4096);
  let mismatches = 0;
  for (let length = 0; length <= 4096; length++) {
    const hashSeed = length % 3 === 0 ? 0n : prng.u64();
    const input = data.subarray(0, length);
    const expected = h64Raw(input, hashSeed).toString(16).padStart(16, "0");
    const actual = toHex(hashBytes("xxh64", input, hashSeed));
    if (actual !== expected) {
      mismatches++;
      if (mismatches <= 5) t.equal(actual, expected, `length ${length} hash seed ${hashSeed} (VHDSYNC_SEED=${seed})`);
    }
  }
  t.equal(mismatches, 0, `mismatching lengths (VHDSYNC_SEED=${seed})`);
});

t.test("XXH64 streaming equals h64 in random pieces", async (t) => {
  const { h64Raw } = await xxhash();
  const seed = testSeed();
  const prng = new Prng(seed);
  for (let round = 0; round < 200; round++) {
    const input = prng.bytes(prng.int(5000));
    const hashSeed = prng.u64();
    const hasher = createHasher("xxh64", hashSeed);
    for (let offset = 0; offset < input.length; ) {
      const piece = 1 + prng.int(prng.int(2) ? 40 : 700);
      hasher.update(input.subarray(offset, offset + piece));
      offset += piece;
    }
    const actual = toHex(hasher.digest());
    hasher.dispose();
    const expected = h64Raw(input, hashSeed).toString(16).padStart(16, "0");
    if (actual !== expected) t.fail(`length ${input.length} seed ${hashSeed}: ${actual} != ${expected} (VHDSYNC_SEED=${seed})`);
  }
  t.pass("200 random streams");
});
