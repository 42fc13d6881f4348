import t from "tap";
import { Arena } from "../dist/wasm/arena.js";
import { getWasm } from "../dist/wasm/driver.js";
import { Prng, testSeed } from "./helpers/prng.js";

t.test("alloc aligns, release coalesces", async (t) => {
  const arena = new Arena(1000, 1 << 20);
  const a = arena.alloc(100, 4096);
  t.equal(a % 4096, 0);
  const b = arena.alloc(5000);
  const c = arena.alloc(64);
  t.not(a, b);
  arena.release(b);
  arena.release(a);
  arena.release(c);
  t.equal(arena.freeBytes, 1 << 20);
  t.equal(arena.alloc((1 << 20) - 64 * 16, 1), 1000, "whole range free again after coalescing");
});

t.test("fits() says whether alloc() would succeed", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const arena = new Arena(prng.int(5000), 1 << 16);
  const held: number[] = [];
  let agreed = 0;
  let attempts = 0;
  const outcomes = new Set<boolean>();
  for (let step = 0; step < 3000; step++) {
    if (held.length > 0 && prng.int(3) === 0) {
      arena.release(held.splice(prng.int(held.length), 1)[0]);
      continue;
    }
    const size = prng.int(prng.int(2) ? 256 : 20000);
    const align = [1, 8, 64, 4096][prng.int(4)];
    const fits = arena.fits(size, align);
    attempts++;
    outcomes.add(fits);
    let allocated = true;
    try {
      held.push(arena.alloc(size, align));
    } catch (error) {
      allocated = false;
      if ((error as { code?: string }).code !== "VHDSYNC_NO_MEMORY") throw error;
    }
    if (fits !== allocated) t.fail(`seed ${seed} step ${step}: fits(${size}, ${align}) = ${fits}, alloc ${allocated ? "succeeded" : "failed"}`);
    else agreed++;
  }
  t.equal(agreed, attempts, `seed ${seed}: fits() agreed with every alloc()`);
  t.same([...outcomes].sort(), [false, true], "both outcomes were exercised");
});

t.test("exhaustion is a coded error", async (t) => {
  const arena = new Arena(0, 4096);
  t.throws(() => arena.alloc(8192), { code: "VHDSYNC_NO_MEMORY" });
  t.throws(() => arena.release(12345), { code: "VHDSYNC_INTERNAL" });
});

t.test("the shared instance has a fixed memory above static data", async (t) => {
  const wasm = getWasm();
  t.ok(wasm.arena.start >= wasm.exports.heapBase());
  const before = wasm.memory.buffer.byteLength;
  const address = wasm.alloc(1 << 20);
  wasm.view(address, 16).fill(7);
  t.equal(wasm.bytes[address + 15], 7);
  wasm.release(address);
  t.equal(wasm.memory.buffer.byteLength, before);
  t.throws(() => wasm.memory.grow(1), "memory has a maximum and cannot grow");
});
