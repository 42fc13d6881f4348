// The addon's block hasher (hashBlocksNonZero: XXH3 with AVX-512, AVX2 or portable code,
// XXH64, SHA-256 with SHA-NI or portable code) against what it stands in for (the WASM
// kernels; node:crypto for SHA-256): same zero flags, same digests, untouched slots for zero
// blocks, for all four digests, block sizes from 256 bytes to 1 MiB and last blocks either
// side of XXH3's 240-byte limit (hashNonZeroBlocksAt hands those to WASM); one digest each
// against xxhsum and sha256sum; bad arguments refused. The portable kernels are checked in a
// child process (VHDSYNC_NATIVE_HASH_KERNEL=portable). Skipped with the reason when the addon
// is not loaded.
import t from "tap";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { addonLoadState, nativeAddon } from "../dist/io/native-addon.js";
import { hashNonZeroBlocksAt } from "../dist/hash/index.js";
import { WasmInstance, compiledModule, selectedVariant, getWasm } from "../dist/wasm/driver.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const addon = nativeAddon();
const skip = addon ? false : `native addon not loaded: ${addonLoadState().reason}`;
const seed = testSeed();
const ALGORITHMS = [
  { name: "xxh3-128", id: 2, digestBytes: 16 },
  { name: "xxh3-64", id: 3, digestBytes: 8 },
  { name: "xxh64", id: 1, digestBytes: 8 },
  { name: "sha256", id: 4, digestBytes: 32 },
] as const;

/**
 * The reference frame of [data, +length): the WASM kernel's for the xxHash digests, zero
 * flags and node:crypto digests (slot i for block i, zero blocks' slots untouched) for SHA-256.
 */
function referenceBlocks(algorithm: (typeof ALGORITHMS)[number], data: number, length: number, blockSize: number, digests: number, zeroFlags: number): number {
  const wasm = getWasm();
  if (algorithm.name !== "sha256") return wasm.exports.hash_blocks_nonzero(algorithm.id, data, length, blockSize, 0n, digests, zeroFlags);
  for (let block = 0; block * blockSize < length; block++) {
    const bytes = wasm.view(data + block * blockSize, Math.min(blockSize, length - block * blockSize));
    const zero = bytes.every((byte) => byte === 0);
    wasm.bytes[zeroFlags + block] = zero ? 1 : 0;
    if (!zero) wasm.bytes.set(createHash("sha256").update(bytes).digest(), digests + block * 32);
  }
  return 0;
}

/** Random data with some all-zero blocks and some blocks zero but for one byte. */
function fill(bytes: Uint8Array, blockSize: number, prng: Prng): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = prng.int(256);
  for (let start = 0; start < bytes.length; start += blockSize) {
    const end = Math.min(bytes.length, start + blockSize);
    const kind = prng.int(4);
    if (kind === 0) bytes.fill(0, start, end);
    if (kind === 1) {
      bytes.fill(0, start, end);
      bytes[start + prng.int(end - start)] = 1 + prng.int(255);
    }
  }
}

t.test("hashBlocksNonZero writes what the WASM kernel writes", { skip }, async (t) => {
  const prng = new Prng(seed);
  const wasm = getWasm();
  const capacity = 4 * 1024 * 1024 + 4096;
  const data = wasm.alloc(capacity, 4096);
  const blocksMax = capacity / 256 + 1;
  const [wasmDigests, nativeDigests] = [wasm.alloc(blocksMax * 32), wasm.alloc(blocksMax * 32)];
  const [wasmZero, nativeZero] = [wasm.alloc(blocksMax), wasm.alloc(blocksMax)];
  t.teardown(() => [data, wasmDigests, nativeDigests, wasmZero, nativeZero].forEach((address) => wasm.release(address)));
  let cases = 0;
  for (let round = 0; round < 40; round++) {
    const blockSize = 2 ** (8 + prng.int(13)); // 256 B .. 1 MiB
    const blocks = 1 + prng.int(Math.max(1, Math.min(64, Math.floor(capacity / blockSize) - 1)));
    // Last block: whole, or a tail either side of 240 bytes.
    const tails = [0, 1 + prng.int(240), 241 + prng.int(Math.max(1, blockSize - 241))].filter((tail) => tail < blockSize);
    const tail = tails[prng.int(tails.length)];
    const length = (blocks - (tail ? 1 : 0)) * blockSize + tail;
    fill(wasm.view(data, length), blockSize, prng);
    for (const algorithm of ALGORITHMS) {
      const count = Math.ceil(length / blockSize);
      wasm.bytes.fill(0xa5, wasmDigests, wasmDigests + count * algorithm.digestBytes);
      wasm.bytes.fill(0xa5, nativeDigests, nativeDigests + count * algorithm.digestBytes);
      t.equal(referenceBlocks(algorithm, data, length, blockSize, wasmDigests, wasmZero), 0);
      // Through the library entry point: the addon, but WASM for an XXH3 tail of 240 bytes or less.
      hashNonZeroBlocksAt(algorithm.name, data, length, blockSize, nativeDigests, nativeZero);
      const context = `${algorithm.name}, block ${blockSize}, length ${length} (seed ${seed})`;
      t.same(wasm.view(nativeZero, count), wasm.view(wasmZero, count), `zero flags: ${context}`);
      t.same(wasm.view(nativeDigests, count * algorithm.digestBytes), wasm.view(wasmDigests, count * algorithm.digestBytes), `digests: ${context}`);
      const xxh3 = algorithm.name.startsWith("xxh3-");
      if ((tail === 0 || tail > 240 || !xxh3) && (blockSize > 240 || !xxh3)) {
        const expected = wasm.view(wasmZero, count).filter((zero) => zero === 0).length;
        wasm.bytes.fill(0xa5, nativeDigests, nativeDigests + count * algorithm.digestBytes);
        t.equal(addon!.hashBlocksNonZero(wasm.memory.buffer, algorithm.id, data, length, blockSize, nativeDigests, nativeZero), expected, `non-zero count: ${context}`);
        t.same(wasm.view(nativeDigests, count * algorithm.digestBytes), wasm.view(wasmDigests, count * algorithm.digestBytes), `direct call: ${context}`);
      }
      cases++;
    }
  }
  t.ok(cases >= 160);
});

t.test("a native digest equals xxhsum's and sha256sum's", { skip }, async (t) => {
  const prng = new Prng(seed ^ 0x5a5a);
  const wasm = getWasm();
  const length = 4096 + 1000;
  const data = wasm.alloc(length, 4096);
  const out = wasm.alloc(32);
  const zero = wasm.alloc(2);
  t.teardown(() => [data, out, zero].forEach((address) => wasm.release(address)));
  const bytes = wasm.view(data, length);
  for (let i = 0; i < length; i++) bytes[i] = prng.int(256);
  const path = join(tempDir(t), "block.bin");
  writeFileSync(path, bytes);
  for (const [algorithm, command, ...flags] of [[ALGORITHMS[0], "xxhsum", "-H2"], [ALGORITHMS[1], "xxhsum", "-H3"], [ALGORITHMS[2], "xxhsum", "-H1"], [ALGORITHMS[3], "sha256sum"]] as const) {
    addon!.hashBlocksNonZero(wasm.memory.buffer, algorithm.id, data, length, 8192, out, zero);
    const xxhsum = spawnSync(command, [...flags, path], { encoding: "utf8" });
    t.equal(xxhsum.status, 0, xxhsum.stderr);
    // "HEX  path" (-H2) or "XXH3 (path) = HEX" (-H3).
    const line = xxhsum.stdout.trim();
    const expected = line.includes(" = ") ? line.slice(line.lastIndexOf(" = ") + 3) : line.split(/\s+/)[0];
    t.equal(Buffer.from(wasm.view(out, algorithm.digestBytes)).toString("hex"), expected, `${algorithm.name} (seed ${seed})`);
  }
});

t.test("bad arguments are refused before anything is written", { skip }, async (t) => {
  const wasm = new WasmInstance(compiledModule(), selectedVariant(), 1024 * 1024);
  const size = wasm.memory.buffer.byteLength;
  const data = wasm.alloc(8192);
  const out = wasm.alloc(64);
  const zero = wasm.alloc(4);
  wasm.bytes.fill(0x5a, out, out + 64);
  wasm.bytes.fill(0x5a, zero, zero + 4);
  wasm.view(data, 8192).fill(7);
  const call = (...args: [number, number, number, number, number, number]) => () => addon!.hashBlocksNonZero(wasm.memory.buffer, ...args);
  const invalid = { code: "VHDSYNC_INVALID_ARGUMENT" };
  t.throws(call(5, data, 8192, 4096, out, zero), invalid, "an unknown algorithm");
  t.throws(call(2, data, 8192, 3000, out, zero), invalid, "block size not a power of two");
  t.throws(call(2, data, 8192, 128, out, zero), invalid, "blocks of 240 bytes or less");
  t.throws(call(2, data, 4096 + 100, 4096, out, zero), invalid, "a last block of 240 bytes or less");
  t.throws(call(2, size - 4096, 8192, 4096, out, zero), invalid, "data past the end of the memory");
  t.throws(call(2, data, 8192, 4096, size - 8, zero), invalid, "digests past the end of the memory");
  t.throws(call(2, data, 8192, 4096, out, size - 1), invalid, "flags past the end of the memory");
  t.throws(call(2, data, 8192, 4096, data + 4096, zero), invalid, "digests overlapping the data");
  t.throws(call(2, data, 8192, 4096, out, out + 8), invalid, "flags overlapping the digests");
  t.throws(() => (addon!.hashBlocksNonZero as unknown as (...args: unknown[]) => number)(new Uint8Array(8), 2, 0, 0, 4096, 0, 0), invalid, "memory must be an ArrayBuffer");
  t.ok(wasm.view(out, 64).every((byte) => byte === 0x5a) && wasm.view(zero, 4).every((byte) => byte === 0x5a), "no digest or flag written");
  t.equal(call(4, data, 4096 + 100, 4096, out, zero)(), 2, "SHA-256 (and XXH64) take a last block of any length");
});

t.test("every kernel (forced in a child process: portable, avx2, the widest) agrees with WASM", { skip }, async (t) => {
  const script = `
    import { getWasm } from ${JSON.stringify(new URL("../dist/wasm/driver.js", import.meta.url).href)};
    import { nativeAddon } from ${JSON.stringify(new URL("../dist/io/native-addon.js", import.meta.url).href)};
    import { createHash } from "node:crypto";
    const addon = nativeAddon(); const wasm = getWasm();
    let x = ${seed} | 1; const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 0);
    const failures = [];
    for (const blockSize of [256, 1024, 4096, 65536]) for (const length of [blockSize * 5, blockSize * 4 + 241, blockSize * 3 + blockSize - 1]) for (const [id, size] of [[2, 16], [3, 8], [1, 8], [4, 32]]) {
      const data = wasm.alloc(length, 64), a = wasm.alloc(8 * size), b = wasm.alloc(8 * size), za = wasm.alloc(8), zb = wasm.alloc(8);
      const view = wasm.view(data, length); for (let i = 0; i < length; i++) view[i] = next() & 255;
      view.fill(0, blockSize, Math.min(length, 2 * blockSize));
      if (id !== 4) wasm.exports.hash_blocks_nonzero(id, data, length, blockSize, 0n, a, za);
      else for (let i = 0; i * blockSize < length; i++) {
        const bytes = view.subarray(i * blockSize, Math.min(length, (i + 1) * blockSize));
        const zero = bytes.every((byte) => byte === 0);
        wasm.bytes[za + i] = zero ? 1 : 0;
        if (!zero) wasm.bytes.set(createHash("sha256").update(bytes).digest(), a + i * size);
      }
      addon.hashBlocksNonZero(wasm.memory.buffer, id, data, length, blockSize, b, zb);
      const n = Math.ceil(length / blockSize);
      const same = (p, q, k) => Buffer.from(wasm.view(p, k)).equals(Buffer.from(wasm.view(q, k)));
      if (!same(za, zb, n)) failures.push("flags " + id + "/" + blockSize + "/" + length);
      for (let i = 0; i < n; i++) if (!wasm.bytes[za + i] && !same(a + i * size, b + i * size, size)) failures.push("digest " + id + "/" + blockSize + "/" + length + "#" + i);
      [data, a, b, za, zb].forEach((address) => wasm.release(address));
    }
    console.log(JSON.stringify({ kernel: addon.hashKernel, sha: addon.shaEngine, failures }));
  `;
  // A kernel the CPU lacks is never picked: asking for avx2 gives portable there.
  for (const [asked, allowed] of [["portable", ["portable"]], ["avx2", ["avx2", "portable"]], ["", ["avx512", "avx2", "portable"]]] as const) {
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, VHDSYNC_NATIVE_HASH_KERNEL: asked } });
    t.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout);
    t.ok((allowed as readonly string[]).includes(result.kernel), `asked "${asked}", ran ${result.kernel}`);
    if (asked === "portable") t.equal(result.sha, "portable", "SHA-256 runs its portable code too");
    t.same(result.failures, [], `${result.kernel} kernel, seed ${seed}`);
  }
});

// The whole-input stream (xxh3StreamReset/Update/Digest) that hashFile/hashImage use for XXH3.
const STREAM_LENGTHS = [241, 255, 256, 257, 1023, 1024, 1025, 1088, 1089, 65536, 65537, 1048576 + 63, 1048576 + 64, 1048576 + 65, 3 * 1048576 + 7];

t.test("the XXH3 stream equals the WASM one-shot digest for any length and chunking", { skip }, async (t) => {
  const { NativeXxh3Stream } = await import("../dist/hash/hash-bytes.js");
  const { hashBytes } = await import("../dist/hash/index.js");
  const prng = new Prng(seed);
  const wasm = getWasm();
  for (const length of STREAM_LENGTHS) {
    const address = wasm.alloc(length, 64);
    const view = wasm.view(address, length);
    for (let i = 0; i < length; i++) view[i] = prng.int(256);
    for (const { name } of ALGORITHMS.slice(0, 2)) {
      const expected = Buffer.from(hashBytes(name, view)).toString("hex");
      for (const piece of [64, 1024 + 64 * prng.int(4), 65536, 4 * 1048576]) {
        const stream = NativeXxh3Stream.for(name, 0n, length)!;
        for (let at = 0; at < length; at += piece) stream.updateAt(address + at, Math.min(piece, length - at));
        t.equal(Buffer.from(stream.digest()).toString("hex"), expected, `seed ${seed}: ${name}, ${length} bytes in pieces of ${piece}`);
      }
    }
    wasm.release(address);
  }
  t.equal(NativeXxh3Stream.for("xxh3-128", 0n, 240), null, "240 bytes and less stay with WASM");
  t.equal(NativeXxh3Stream.for("xxh3-128", 5n, 1000), null, "seeded digests stay with WASM");
  t.equal(NativeXxh3Stream.for("xxh64", 0n, 1000), null, "XXH64 stays with WASM");
  t.equal(NativeXxh3Stream.for("sha256", 0n, 1000), null, "SHA-256 is no XXH3 stream");
});

t.test("the XXH3 stream refuses misuse", { skip }, async (t) => {
  const wasm = getWasm();
  const memory = wasm.memory.buffer;
  const address = wasm.alloc(4096, 64);
  const state = new ArrayBuffer(addon!.xxh3StreamStateBytes);
  const code = { code: "VHDSYNC_INVALID_ARGUMENT" };
  t.throws(() => addon!.xxh3StreamReset(state, 240), code, "inputs of 240 bytes or less");
  t.throws(() => addon!.xxh3StreamReset(new ArrayBuffer(16), 1000), code, "a state buffer too small");
  addon!.xxh3StreamReset(state, 1000);
  t.throws(() => addon!.xxh3StreamUpdate(memory, address, 100, state), code, "a piece before the last that is not whole stripes");
  t.throws(() => addon!.xxh3StreamUpdate(memory, address, 1024, state), code, "more than the total");
  t.throws(() => addon!.xxh3StreamUpdate(memory, memory.byteLength - 64, 128, state), code, "outside the memory");
  t.throws(() => addon!.xxh3StreamUpdate(memory, address, 64, memory), code, "the memory as its own state");
  addon!.xxh3StreamUpdate(memory, address, 960, state);
  t.throws(() => addon!.xxh3StreamDigest(state, 2), code, "a digest before the last byte");
  addon!.xxh3StreamUpdate(memory, address + 960, 40, state);
  addon!.xxh3StreamDigest(state, 2);
  const { hashBytes } = await import("../dist/hash/index.js");
  t.equal(Buffer.from(new Uint8Array(state, addon!.xxh3StreamDigestOffset, 16)).toString("hex"), Buffer.from(hashBytes("xxh3-128", wasm.view(address, 1000))).toString("hex"), "then the digest");
  wasm.release(address);
});

t.test("hashFile: native stream, portable kernel and WASM agree with xxhsum", { skip }, async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed);
  const file = join(dir, "data.bin");
  const bytes = new Uint8Array(9 * 1048576 + 4321);
  for (let i = 0; i < bytes.length; i += 4096) bytes.set(prng.bytes(Math.min(4096, bytes.length - i)), i);
  writeFileSync(file, bytes);
  const expected = spawnSync("xxhsum", ["-H2", file], { encoding: "utf8" }).stdout.split(/\s+/)[0];
  const script = `
    import { hashFile } from ${JSON.stringify(new URL("../dist/hash/index.js", import.meta.url).href)};
    const results = [];
    for (const chunkBytes of [undefined, 65536, 100000]) results.push(Buffer.from((await hashFile(${JSON.stringify(file)}, { chunkBytes })).digest).toString("hex"));
    console.log(JSON.stringify(results));
  `;
  for (const env of [{}, { VHDSYNC_NATIVE_HASH_KERNEL: "portable" }, { VHDSYNC_NO_NATIVE_HASH: "1" }]) {
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, ...env } });
    t.equal(child.status, 0, child.stderr);
    t.same(JSON.parse(child.stdout), [expected, expected, expected], `seed ${seed}, ${JSON.stringify(env)}: default, 64 KiB and 100,000-byte chunks`);
  }
});
