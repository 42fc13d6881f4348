// Streaming, batch and file hashing properties: any chunking (seeded) equals one-shot;
// per-block digests (batch and zero-copy) equal one-shot per block including a last partial
// block; hashFile/hashImage equal hashBytes; bad input gives coded errors.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { createHasher, digestLength, getWasm, hashBlocks, hashBlocksAt, hashBytes, hashFile, hashImage, openImage, toHex, type HashAlgorithm } from "../dist/index.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const ALGORITHMS: HashAlgorithm[] = ["xxh3-128", "xxh3-64", "xxh64", "sha256"];

t.test("streaming in random chunkings equals one-shot (seeded)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  for (const algorithm of ALGORITHMS) {
    for (let round = 0; round < 60; round++) {
      const length = round < 20 ? prng.int(300) : prng.int(round < 50 ? 5000 : 300000);
      const input = prng.bytes(length);
      const hashSeed = round % 2 ? prng.u64() : 0n;
      const expected = toHex(hashBytes(algorithm, input, hashSeed));
      const hasher = createHasher(algorithm, hashSeed);
      const wasm = getWasm();
      const staging = wasm.alloc(Math.max(1, length));
      wasm.view(staging, length).set(input);
      for (let offset = 0; offset < length; ) {
        const piece = Math.min(length - offset, prng.int(prng.int(2) ? 70 : 3000));
        // Alternate copied updates and zero-copy updates from WASM memory.
        if (prng.int(2)) hasher.update(input.subarray(offset, offset + piece));
        else hasher.updateAt(staging + offset, piece);
        offset += piece;
        if (prng.int(8) === 0) hasher.digest(); // digest() must not disturb the stream
      }
      const actual = toHex(hasher.digest());
      hasher.dispose();
      wasm.release(staging);
      if (actual !== expected) t.fail(`${algorithm} length ${length} seed ${hashSeed}: ${actual} != ${expected} (VHDSYNC_SEED=${seed})`);
    }
  }
  t.pass("240 random streams");
});

t.test("per-block digests equal one-shot per block, last block partial", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  for (const algorithm of ALGORITHMS) {
    for (const blockSizeBytes of [1, 64, 256, 1024, 4096, 65536]) {
      const length = prng.int(8 * blockSizeBytes) + (blockSizeBytes > 1 ? 1 : 0);
      const input = prng.bytes(length);
      // All-zero blocks here and there, the partial last one at times: native SHA-256 leaves
      // them to the digest of zeros of their length.
      for (let offset = 0; offset < length; offset += blockSizeBytes) if (prng.int(3) === 0) input.fill(0, offset, offset + blockSizeBytes);
      const digestBytes = hashBytes(algorithm, new Uint8Array(0)).length;
      const expected: string[] = [];
      for (let offset = 0; offset < length; offset += blockSizeBytes) expected.push(toHex(hashBytes(algorithm, input.subarray(offset, offset + blockSizeBytes))));
      const batch = hashBlocks(input, blockSizeBytes, algorithm);
      const actual = Array.from({ length: batch.length / digestBytes }, (_, i) => toHex(batch.subarray(i * digestBytes, (i + 1) * digestBytes)));
      t.same(actual, expected, `${algorithm} block ${blockSizeBytes} length ${length} (VHDSYNC_SEED=${seed})`);
      // Zero-copy form inside WASM memory.
      const wasm = getWasm();
      const data = wasm.alloc(Math.max(1, length));
      const digests = wasm.alloc(Math.max(1, batch.length));
      wasm.view(data, length).set(input);
      hashBlocksAt(algorithm, data, length, blockSizeBytes, digests);
      t.equal(toHex(wasm.view(digests, batch.length)), toHex(batch), `${algorithm} hashBlocksAt block ${blockSizeBytes}`);
      wasm.release(data);
      wasm.release(digests);
    }
  }
});

t.test("hashFile and hashImage stream to the one-shot digest", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  for (const length of [0, 1, 65535, 3 * 65536 + 17, 1048576 + 3]) {
    const input = prng.bytes(length);
    const path = join(dir, `file-${length}`);
    writeFileSync(path, input);
    for (const algorithm of ALGORITHMS) {
      const expected = toHex(hashBytes(algorithm, input));
      const events: number[] = [];
      const fromFile = await hashFile(path, { algo: algorithm, chunkBytes: 65536, onProgress: (event) => events.push(event.doneBytes) });
      t.equal(toHex(fromFile.digest!), expected, `hashFile ${algorithm} length ${length} (VHDSYNC_SEED=${seed})`);
      t.equal(fromFile.sizeBytes, length);
      const image = await openImage(path, { readOnly: true });
      try {
        const fromImage = await hashImage(image, { algo: algorithm, chunkBytes: 65536, buffers: 2 + (length % 3) });
        t.equal(toHex(fromImage.digest!), expected, `hashImage ${algorithm} length ${length}`);
        const blocks = await hashImage(image, { algo: algorithm, blockSizeBytes: 4096, chunkBytes: 65536 });
        t.equal(toHex(blocks.blockDigests!), toHex(hashBlocks(input, 4096, algorithm)), `hashImage blocks ${algorithm} length ${length}`);
        const streamed: string[] = [];
        let nextOffset = 0;
        const bounded = await hashImage(image, {
          algo: algorithm,
          blockSizeBytes: 4096,
          chunkBytes: 65536,
          onBlockDigests: (offsetBytes, digests) => {
            t.equal(offsetBytes, nextOffset, "chunks arrive in order");
            nextOffset += (digests.length / digestLength(algorithm)) * 4096;
            streamed.push(toHex(digests));
          },
        });
        t.equal(bounded.blockDigests, undefined, "nothing collected with onBlockDigests");
        t.equal(streamed.join(""), toHex(blocks.blockDigests!), `hashImage onBlockDigests ${algorithm} length ${length}`);
      } finally {
        await image.close();
      }
    }
  }
});

t.test("the arena is left as it was", async (t) => {
  const wasm = getWasm();
  const before = wasm.arena.freeBytes;
  const dir = tempDir(t);
  const path = join(dir, "file");
  writeFileSync(path, new Uint8Array(300000));
  await hashFile(path, { chunkBytes: 65536 });
  await t.rejects(hashFile(join(dir, "missing")), { code: "VHDSYNC_NOT_FOUND" });
  t.equal(wasm.arena.freeBytes, before, "every buffer released");
});

t.test("bad input gives coded errors", async (t) => {
  const bytes = new Uint8Array(100);
  t.throws(() => hashBytes("md5" as HashAlgorithm, bytes), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.throws(() => hashBlocks(bytes, 1000, "xxh64"), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.throws(() => hashBlocks(bytes, 0, "xxh64"), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.throws(() => createHasher("xxh64", 1.5), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.throws(() => hashBlocksAt("xxh3-128", 2 ** 32 - 64, 4096, 4096, 0), { code: "VHDSYNC_INTERNAL" }, "range outside WASM memory");
  const hasher = createHasher("xxh3-64");
  hasher.dispose();
  t.throws(() => hasher.digest(), { code: "VHDSYNC_INTERNAL" });
});

t.test("hashNonZeroBlocksAt flags zero blocks and hashes exactly the others, every algorithm", async (t) => {
  const { hashNonZeroBlocksAt } = await import("../dist/hash/index.js");
  const seed = testSeed();
  const prng = new Prng(seed);
  const wasm = getWasm();
  for (const algorithm of ["xxh3-128", "xxh3-64", "xxh64", "sha256"] as const) {
    for (let round = 0; round < 6; round++) {
      const blockSizeBytes = [512, 4096, 65536][prng.int(3)];
      const blocks = 1 + prng.int(40);
      const length = blocks * blockSizeBytes - (prng.int(2) ? prng.int(blockSizeBytes) : 0);
      const input = prng.bytes(length);
      for (let b = 0; b < blocks; b++) if (prng.int(3) === 0) input.fill(0, b * blockSizeBytes, Math.min(length, (b + 1) * blockSizeBytes));
      if (prng.int(2)) input[Math.min(length - 1, prng.int(blocks) * blockSizeBytes + blockSizeBytes - 1)] = 7; // a single byte at a block edge
      const count = Math.ceil(length / blockSizeBytes);
      const size = digestLength(algorithm);
      const data = wasm.alloc(length);
      const digests = wasm.alloc(count * size);
      const zeros = wasm.alloc(count);
      wasm.bytes.set(input, data);
      wasm.bytes.fill(0xee, digests, digests + count * size);
      hashNonZeroBlocksAt(algorithm, data, length, blockSizeBytes, digests, zeros);
      const reference = hashBlocks(input, blockSizeBytes, algorithm);
      for (let b = 0; b < count; b++) {
        const block = input.subarray(b * blockSizeBytes, Math.min(length, (b + 1) * blockSizeBytes));
        const isZero = block.every((byte) => byte === 0);
        const got = wasm.view(digests + b * size, size);
        t.equal(wasm.bytes[zeros + b], isZero ? 1 : 0, `seed ${seed} ${algorithm} round ${round} block ${b}: zero flag`);
        if (!isZero) t.equal(toHex(got), toHex(reference.subarray(b * size, (b + 1) * size)), `seed ${seed} ${algorithm} round ${round} block ${b}: digest`);
        else if (algorithm !== "sha256") t.ok(got.every((byte) => byte === 0xee), `seed ${seed} ${algorithm} round ${round} block ${b}: zero block not hashed`);
      }
      for (const address of [data, digests, zeros]) wasm.release(address);
    }
  }
});
