import t from "tap";
import { Arena } from "../dist/wasm/arena.js";
import { getWasm } from "../dist/wasm/driver.js";

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
