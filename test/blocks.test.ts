// Block kernels against straightforward JS reference implementations (seeded).
import t from "tap";
import { isZero, isZeroAt, zeroBlocksAt, compareBuffers, diffDigests, flagsToRanges, type BlockRange } from "../dist/blocks/index.js";
import { getWasm } from "../dist/wasm/driver.js";
import { Prng, testSeed } from "./helpers/prng.js";

function referenceRanges(flags: boolean[]): BlockRange[] {
  const ranges: BlockRange[] = [];
  flags.forEach((set, i) => {
    const last = ranges[ranges.length - 1];
    if (!set) return;
    if (last && last.firstBlock + last.blockCount === i) last.blockCount++;
    else ranges.push({ firstBlock: i, blockCount: 1 });
  });
  return ranges;
}

t.test("a block that is zero except one byte anywhere is not zero", async (t) => {
  for (const size of [1, 15, 16, 17, 127, 128, 129, 4096, 65536 + 3]) {
    const block = new Uint8Array(size);
    t.equal(isZero(block), true, `all-zero ${size}`);
    for (const position of new Set([0, size >> 1, size - 1])) {
      block[position] = 1;
      t.equal(isZero(block), false, `size ${size}, byte ${position} set`);
      block[position] = 0;
    }
  }
  t.equal(isZero(new Uint8Array(0)), true);
});

t.test("zero-block flags match the reference (last block partial)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const wasm = getWasm();
  for (let round = 0; round < 20; round++) {
    const blockSize = 512 << prng.int(5);
    const length = blockSize * (1 + prng.int(40)) - prng.int(blockSize);
    const data = new Uint8Array(length);
    const expected: boolean[] = [];
    for (let b = 0; b * blockSize < length; b++) {
      const zero = prng.int(2) === 0;
      const end = Math.min(length, (b + 1) * blockSize);
      if (!zero) data[b * blockSize + prng.int(end - b * blockSize)] = 1 + prng.int(255);
      expected.push(zero);
    }
    const blocks = expected.length;
    const count = wasm.withCopy(data, (address) =>
      wasm.withScratch(blocks, (flagsAddress, flags) => {
        const zeros = zeroBlocksAt(address, length, blockSize, flagsAddress);
        t.same(Array.from(flags, (f) => f === 1), expected, `flags, seed ${seed} round ${round}`);
        return zeros;
      }),
    );
    t.equal(count, expected.filter(Boolean).length, `zero count, seed ${seed}`);
  }
});

t.test("compareBuffers finds exactly the differing blocks", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  for (let round = 0; round < 20; round++) {
    const blockSize = 256 << prng.int(6);
    const length = blockSize * (1 + prng.int(50)) - prng.int(blockSize);
    const a = prng.bytes(length);
    const b = a.slice();
    const flags: boolean[] = [];
    for (let block = 0; block * blockSize < length; block++) {
      const differs = prng.int(3) === 0;
      if (differs) {
        // Flip one byte at a block edge or inside.
        const end = Math.min(length, (block + 1) * blockSize) - 1;
        const position = [block * blockSize, end, block * blockSize + prng.int(end - block * blockSize + 1)][prng.int(3)];
        b[position] ^= 1 + prng.int(255);
      }
      flags.push(differs);
    }
    t.same(compareBuffers(a, b, blockSize), referenceRanges(flags), `seed ${seed} round ${round}`);
  }
  t.throws(() => compareBuffers(new Uint8Array(4), new Uint8Array(5), 4), { code: "VHDSYNC_SIZE_MISMATCH" });
  t.throws(() => compareBuffers(new Uint8Array(4), new Uint8Array(4), 3), { code: "VHDSYNC_INVALID_ARGUMENT" });
});

t.test("diffDigests coalesces differing runs (8, 16, 32-byte digests)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  for (const digestLength of [8, 16, 32]) {
    for (let round = 0; round < 10; round++) {
      const count = prng.int(300);
      const a = prng.bytes(count * digestLength);
      const b = a.slice();
      const flags: boolean[] = [];
      for (let i = 0; i < count; i++) {
        const differs = prng.int(4) === 0;
        if (differs) b[i * digestLength + prng.int(digestLength)] ^= 0x80;
        flags.push(differs);
      }
      t.same(diffDigests(a, b, digestLength), referenceRanges(flags), `seed ${seed}, ${digestLength}-byte digests`);
    }
  }
  // Worst case: every other block differs.
  const count = 1001;
  const a = new Uint8Array(count * 8);
  const b = a.slice();
  for (let i = 0; i < count; i += 2) b[i * 8] = 1;
  t.equal(diffDigests(a, b, 8).length, 501);
  t.throws(() => diffDigests(a, b.subarray(8), 8), { code: "VHDSYNC_SIZE_MISMATCH" });
  t.throws(() => diffDigests(a, b, 12), { code: "VHDSYNC_INVALID_ARGUMENT" });
});

t.test("flagsToRanges numbers from firstBlock", async (t) => {
  t.same(flagsToRanges(Uint8Array.from([1, 1, 0, 1, 0, 0, 1]), 100), [
    { firstBlock: 100, blockCount: 2 },
    { firstBlock: 103, blockCount: 1 },
    { firstBlock: 106, blockCount: 1 },
  ]);
  t.same(flagsToRanges(new Uint8Array(10)), []);
});

t.test("kernels never grow memory and leave the arena as they found it", async (t) => {
  const wasm = getWasm();
  const free = wasm.arena.freeBytes;
  const bytes = wasm.memory.buffer.byteLength;
  compareBuffers(new Uint8Array(1 << 20), new Uint8Array(1 << 20), 4096);
  isZeroAt(wasm.arena.start, 1 << 20);
  t.equal(wasm.arena.freeBytes, free);
  t.equal(wasm.memory.buffer.byteLength, bytes);
});

/** assembly/status.ts STATUS_BAD_ARGUMENT (src/wasm/status.ts: "bad argument passed to a WASM kernel"). */
const STATUS_BAD_ARGUMENT = 1;

t.test("frameWindow builds frame entries and diffs them against a target frame like a JS reference", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const wasm = getWasm();
  for (let round = 0; round < 40; round++) {
    const blocks = 1 + prng.int(300);
    const length = [8, 16, 32][prng.int(3)];
    const allocated = Uint8Array.from({ length: blocks }, () => (prng.int(5) === 0 ? 0 : 1));
    const zero = Uint8Array.from({ length: blocks }, () => (prng.int(4) === 0 ? 1 : 0));
    const digests = prng.bytes(blocks * length);
    const state = (i: number) => (allocated[i] === 0 ? 0 : zero[i] ? 1 : 2);
    // Target frame: random states; data digests equal the source's half of the time.
    const targetFlags = Uint8Array.from({ length: blocks }, () => prng.int(3));
    const packedTarget: number[] = [];
    const expectedChanged: number[] = [];
    for (let i = 0; i < blocks; i++) {
      const sourceDigest = [...digests.subarray(i * length, (i + 1) * length)];
      let same = state(i) !== 2 && targetFlags[i] !== 2;
      if (targetFlags[i] === 2) {
        const equal = state(i) === 2 && prng.int(2) === 0;
        packedTarget.push(...(equal ? sourceDigest : [...prng.bytes(length)]));
        same = equal;
      }
      expectedChanged.push(same ? 0 : 1);
    }
    const expectedPacked = [...Array(blocks).keys()].filter((i) => state(i) === 2).flatMap((i) => [...digests.subarray(i * length, (i + 1) * length)]);
    const at = (bytes: Uint8Array) => {
      const address = wasm.alloc(Math.max(8, bytes.length));
      wasm.bytes.set(bytes, address);
      return address;
    };
    const [a, z, d, tf, tp] = [at(allocated), at(zero), at(digests), at(targetFlags), at(Uint8Array.from(packedTarget))];
    const [flagsOut, packedOut, changedOut, counts] = [wasm.alloc(blocks), wasm.alloc(blocks * length), wasm.alloc(blocks), wasm.alloc(16)];
    const targetCount = packedTarget.length / length;
    t.equal(wasm.exports.frameWindow(a, z, d, blocks, length, flagsOut, packedOut, tf, tp, targetCount, changedOut, counts), 0, `seed ${seed} round ${round}`);
    t.same([...wasm.view(flagsOut, blocks)], [...Array(blocks).keys()].map(state), `seed ${seed} round ${round}: states`);
    t.same([...wasm.view(packedOut, expectedPacked.length)], expectedPacked, `seed ${seed} round ${round}: packed digests`);
    t.same([...wasm.view(changedOut, blocks)], expectedChanged, `seed ${seed} round ${round}: changed`);
    const [dataBlocks, unallocatedBlocks, consumed, changed] = new Uint32Array(wasm.memory.buffer, counts, 4);
    t.same(
      [dataBlocks, unallocatedBlocks, consumed, changed],
      [expectedPacked.length / length, allocated.filter((x) => x === 0).length, targetCount, expectedChanged.filter((x) => x).length],
      `seed ${seed} round ${round}: counts`,
    );
    if (targetCount > 0) {
      t.equal(wasm.exports.frameWindow(a, z, d, blocks, length, flagsOut, packedOut, tf, tp, targetCount - 1, changedOut, counts), STATUS_BAD_ARGUMENT, "a target frame short of digests is refused, not read past");
    }
    t.equal(wasm.exports.frameWindow(a, z, d, blocks, 12, flagsOut, packedOut, 0, 0, 0, changedOut, counts), STATUS_BAD_ARGUMENT, "digest length must be a multiple of 8");
    for (const address of [a, z, d, tf, tp, flagsOut, packedOut, changedOut, counts]) wasm.release(address);
  }
});

t.test("compareZeroBlocks equals compareBlocks plus zeroBlocks of the first buffer", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const wasm = getWasm();
  for (let round = 0; round < 30; round++) {
    const blockSize = [512, 4096, 65536][prng.int(3)];
    const length = 1 + prng.int(blockSize * 12);
    const a = prng.bytes(length);
    for (let start = 0; start < length; start += blockSize) if (prng.int(3) === 0) a.fill(0, start, start + blockSize);
    const b = Uint8Array.from(a);
    for (let start = 0; start < length; start += blockSize) if (prng.int(3) === 0) b[Math.min(length - 1, start + prng.int(blockSize))] ^= 1 + prng.int(255);
    const blocks = Math.ceil(length / blockSize);
    const [pa, pb, diff, zero, counts] = [wasm.alloc(length), wasm.alloc(length), wasm.alloc(blocks), wasm.alloc(blocks), wasm.alloc(8)];
    wasm.bytes.set(a, pa);
    wasm.bytes.set(b, pb);
    t.equal(wasm.exports.compareZeroBlocks(pa, pb, length, blockSize, diff, zero, counts), 0);
    const expectDiff = [...Array(blocks).keys()].map((i) => (a.subarray(i * blockSize, (i + 1) * blockSize).every((x, k) => x === b[i * blockSize + k]) ? 0 : 1));
    const expectZero = [...Array(blocks).keys()].map((i) => (a.subarray(i * blockSize, (i + 1) * blockSize).every((x) => x === 0) ? 1 : 0));
    t.same([...wasm.view(diff, blocks)], expectDiff, `seed ${seed} round ${round}: differs`);
    t.same([...wasm.view(zero, blocks)], expectZero, `seed ${seed} round ${round}: zero`);
    t.same([...new Uint32Array(wasm.memory.buffer, counts, 2)], [expectDiff.filter((x) => x).length, expectZero.filter((x) => x).length], `seed ${seed} round ${round}: counts`);
    for (const address of [pa, pb, diff, zero, counts]) wasm.release(address);
  }
});
