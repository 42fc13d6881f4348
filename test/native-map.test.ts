// File pages mapped into WASM memory (native mapFile/unmapFile and PageMapper): the mapped
// bytes equal the file and feed the WASM kernels, release() puts zeros back, bad arguments are
// refused before any mapping, and a mapped file that shrinks ends the process with the coded
// SIGBUS message and exit status 4 instead of a crash with no word of why. Mapping is asked for
// with VHDSYNC_SCAN_MMAP=1 (set here for the whole file and its child processes; without it,
// and with VHDSYNC_NO_MMAP=1, PageMapper.for gives null). Skipped with the reason when the
// addon is not loaded.
import t from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { addonLoadState, nativeAddon } from "../dist/io/native-addon.js";
import { PageMapper } from "../dist/io/file-map.js";
import { WasmInstance, compiledModule, selectedVariant } from "../dist/wasm/driver.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

process.env.VHDSYNC_SCAN_MMAP = "1";
const addon = nativeAddon();
const skip = addon ? false : `native addon not loaded: ${addonLoadState().reason}`;
const seed = testSeed();
const PAGE = addon?.pageSize ?? 4096;

function freshWasm(): WasmInstance {
  return new WasmInstance(compiledModule(), selectedVariant(), 16 * 1024 * 1024);
}

t.test("mapped pages equal the file at random page-aligned places; release gives zeros", { skip }, async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(seed);
  const fileBytes = randomBytes(64 * PAGE + 123);
  const path = join(dir, "data.bin");
  writeFileSync(path, fileBytes);
  const wasm = freshWasm();
  const mapper = PageMapper.for(wasm.memory)!;
  t.ok(mapper, "a mapper when the addon is loaded");
  const buffer = wasm.alloc(32 * PAGE, PAGE);
  const fd = openSync(path, "r");
  t.teardown(() => closeSync(fd));
  for (let round = 0; round < 20; round++) {
    const fileOffset = prng.int(40) * PAGE;
    const length = 1 + prng.int(24 * PAGE);
    const mapped = mapper.map(buffer, fd, fileOffset, length);
    t.equal(mapped, Math.floor(length / PAGE) * PAGE, `seed ${seed} round ${round}: whole pages mapped`);
    t.ok(Buffer.from(wasm.view(buffer, mapped)).equals(fileBytes.subarray(fileOffset, fileOffset + mapped)), `seed ${seed} round ${round}: bytes equal the file`);
    mapper.release(buffer, mapped);
    t.ok(wasm.view(buffer, 32 * PAGE).every((byte) => byte === 0), `seed ${seed} round ${round}: zeros after release`);
  }
  // The last, partial page of the file maps; bytes past the end read as zeros.
  const tailOffset = 64 * PAGE;
  t.equal(mapper.map(buffer, fd, tailOffset, PAGE), PAGE);
  t.ok(Buffer.from(wasm.view(buffer, 123)).equals(fileBytes.subarray(tailOffset)), "tail page content");
  t.ok(wasm.view(buffer + 123, PAGE - 123).every((byte) => byte === 0), "past EOF reads zeros");
  mapper.release(buffer, PAGE);
});

t.test("WASM kernels read mapped pages, and writes to them never reach the file", { skip }, async (t) => {
  const dir = tempDir(t);
  const a = randomBytes(16 * PAGE);
  const b = Buffer.from(a);
  b[5 * PAGE + 7] ^= 0xff;
  writeFileSync(join(dir, "a"), a);
  writeFileSync(join(dir, "b"), b);
  const wasm = freshWasm();
  const mapper = PageMapper.for(wasm.memory)!;
  const [bufA, bufB, flags, count] = [wasm.alloc(16 * PAGE, PAGE), wasm.alloc(16 * PAGE, PAGE), wasm.alloc(64), wasm.alloc(8)];
  const fdA = openSync(join(dir, "a"), "r+");
  const fdB = openSync(join(dir, "b"), "r");
  t.teardown(() => (closeSync(fdA), closeSync(fdB)));
  mapper.map(bufA, fdA, 0, 16 * PAGE);
  mapper.map(bufB, fdB, 0, 16 * PAGE);
  t.equal(wasm.exports.compareBlocks(bufA, bufB, 16 * PAGE, PAGE, flags, count), 0);
  t.same([...wasm.view(flags, 16)], Array.from({ length: 16 }, (_, i) => (i === 5 ? 1 : 0)), "the one differing page is found");
  wasm.view(bufA, PAGE).fill(0xaa);
  mapper.release(bufA, 16 * PAGE);
  mapper.release(bufB, 16 * PAGE);
  t.ok(readFileSync(join(dir, "a")).equals(a), "private mapping: the file is unchanged");
});

t.test("bad arguments are refused with VHDSYNC_INVALID_ARGUMENT", { skip }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "f"), randomBytes(8 * PAGE));
  const wasm = freshWasm();
  const buffer = wasm.alloc(8 * PAGE, PAGE);
  const fd = openSync(join(dir, "f"), "r");
  t.teardown(() => closeSync(fd));
  const memory = wasm.memory.buffer;
  const invalid = { code: "VHDSYNC_INVALID_ARGUMENT" };
  t.throws(() => addon!.mapFile(memory, buffer + 1, fd, 0, PAGE), invalid, "unaligned memory offset");
  t.throws(() => addon!.mapFile(memory, buffer, fd, 1, PAGE), invalid, "unaligned file offset");
  t.throws(() => addon!.mapFile(memory, buffer, fd, 0, PAGE + 1), invalid, "length not whole pages");
  t.throws(() => addon!.mapFile(memory, buffer, fd, 0, 0), invalid, "empty");
  t.throws(() => addon!.mapFile(memory, buffer, fd, 4 * PAGE, 8 * PAGE), { code: "ENXIO" }, "past the end of the file: ENXIO (not the caller's mistake)");
  t.throws(() => addon!.mapFile(memory, memory.byteLength - PAGE, fd, 0, 2 * PAGE), invalid, "outside the memory");
  t.throws(() => addon!.mapFile(new Uint8Array(PAGE) as unknown as ArrayBuffer, 0, fd, 0, PAGE), invalid, "not an ArrayBuffer");
  t.throws(() => addon!.unmapFile(memory, buffer + 1, PAGE), invalid, "unaligned unmap");
  const mapper = PageMapper.for(wasm.memory)!;
  t.equal(mapper.map(buffer + 1, fd, 0, PAGE), 0, "PageMapper maps nothing when unaligned (the caller reads)");
  t.equal(mapper.map(buffer, fd, 0, PAGE - 1), 0, "nor less than a page");
  t.equal(mapper.map(buffer, fd, 4 * PAGE, 8 * PAGE), 0, "nor past the end of the file (the caller's read reports VHDSYNC_TRUNCATED)");
  t.ok(wasm.view(buffer, 8 * PAGE).every((byte) => byte === 0), "nothing was mapped");
});

t.test("mapping is off unless VHDSYNC_SCAN_MMAP=1 asks for it", { skip }, async (t) => {
  delete process.env.VHDSYNC_SCAN_MMAP;
  t.teardown(() => void (process.env.VHDSYNC_SCAN_MMAP = "1"));
  t.equal(PageMapper.for(freshWasm().memory), null, "unset: positional reads");
  process.env.VHDSYNC_SCAN_MMAP = "0";
  t.equal(PageMapper.for(freshWasm().memory), null, "0: positional reads");
});

t.test("VHDSYNC_NO_MMAP=1 turns mapping off", { skip }, async (t) => {
  const saved = process.env.VHDSYNC_NO_MMAP;
  process.env.VHDSYNC_NO_MMAP = "1";
  t.teardown(() => (saved === undefined ? delete process.env.VHDSYNC_NO_MMAP : (process.env.VHDSYNC_NO_MMAP = saved)));
  t.equal(PageMapper.for(freshWasm().memory), null);
});

t.test("a mapped file that shrinks ends the process with the coded SIGBUS message, exit 4", { skip }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "shrinks.img");
  writeFileSync(path, randomBytes(16 * PAGE));
  const script = `
    import { openSync, ftruncateSync } from "node:fs";
    import { PageMapper } from ${JSON.stringify(new URL("../dist/io/file-map.js", import.meta.url).href)};
    import { WasmInstance, compiledModule, selectedVariant } from ${JSON.stringify(new URL("../dist/wasm/driver.js", import.meta.url).href)};
    const wasm = new WasmInstance(compiledModule(), selectedVariant(), 16 * 1024 * 1024);
    const mapper = PageMapper.for(wasm.memory);
    const buffer = wasm.alloc(16 * ${PAGE}, ${PAGE});
    const fd = openSync(${JSON.stringify(path)}, "r+");
    mapper.map(buffer, fd, 0, 16 * ${PAGE});
    ftruncateSync(fd, ${PAGE});
    const flags = wasm.alloc(16), count = wasm.alloc(8);
    wasm.exports.zeroBlocks(buffer, 16 * ${PAGE}, ${PAGE}, flags, count);
    console.log("not reached");
  `;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  t.equal(child.status, 4, `exit status 4 (signal ${child.signal}; stderr ${child.stderr})`);
  t.match(child.stderr, /^vhdsync: VHDSYNC_IO: .*SIGBUS/m);
  t.notMatch(child.stdout, /not reached/);
});

t.test("a SIGBUS outside mapped buffers is left to the default action", { skip }, async (t) => {
  const file = join(tempDir(t), "f");
  const script = `
    import { PageMapper } from ${JSON.stringify(new URL("../dist/io/file-map.js", import.meta.url).href)};
    import { WasmInstance, compiledModule, selectedVariant } from ${JSON.stringify(new URL("../dist/wasm/driver.js", import.meta.url).href)};
    import { writeFileSync, openSync } from "node:fs";
    writeFileSync(${JSON.stringify(file)}, Buffer.alloc(${PAGE}, 1));
    const wasm = new WasmInstance(compiledModule(), selectedVariant(), 16 * 1024 * 1024);
    const buffer = wasm.alloc(${PAGE}, ${PAGE});
    PageMapper.for(wasm.memory).map(buffer, openSync(${JSON.stringify(file)}, "r"), 0, ${PAGE});
    process.kill(process.pid, "SIGBUS");
  `;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  t.equal(child.signal, "SIGBUS", `killed by SIGBUS (status ${child.status}, stderr ${child.stderr})`);
  t.notMatch(child.stderr, /VHDSYNC_IO/);
});
