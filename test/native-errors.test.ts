// Bad arguments to the native addon throw (sync) or reject (async) coded errors and never
// crash the process: negative, fractional, NaN, infinite, huge and overflowing numbers, bad
// fds, wrong types, missing arguments, and deliberate panics (run in a child process too).
// errno codes map to VhdsyncErrors with the right recoverable flag on both paths.
import t from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { addonLoadState, fromNativeError, nativeAddon } from "../dist/io/native-addon.js";
import { copyFileRange, fadvise, fileExtents, punchHole } from "../dist/io/native.js";
import { tempDir } from "./helpers/tmp.js";

const addon = nativeAddon();
const skip = addon ? false : `native addon not loaded: ${addonLoadState().reason}`;
const NOT_OPEN_FD = 2 ** 30; // a valid fd number no process has open

/** [function name, arguments, expected code] with fd = FD placeholder. */
type Case = [string, unknown[], string];
const FD = Symbol("fd");

const CASES: Case[] = [
  ["extents", [-1, 0, 1], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, -1, 1], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, 0, -4096], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, 0, NaN], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, 0, Infinity], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, 0.5, 1], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, 0, 2 ** 60], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, 2 ** 52, 2 ** 52], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, "0", 1], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD, 0n, 1], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [FD], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [2 ** 31, 0, 1], "VHDSYNC_INVALID_ARGUMENT"],
  ["extents", [NOT_OPEN_FD, 0, 1], "EBADF"],
  ["punchHole", [FD, 0, Number.MAX_SAFE_INTEGER], "EFBIG"], // valid arguments the kernel refuses
  ["punchHole", [FD, -1, 4096], "VHDSYNC_INVALID_ARGUMENT"],
  ["punchHole", [NOT_OPEN_FD, 0, 4096], "EBADF"],
  ["zeroRange", [FD, 1, NaN], "VHDSYNC_INVALID_ARGUMENT"],
  ["reflink", [FD, -3], "VHDSYNC_INVALID_ARGUMENT"],
  ["reflink", [null, FD], "VHDSYNC_INVALID_ARGUMENT"],
  ["copyRange", [FD, 0, FD, 0, -1], "VHDSYNC_INVALID_ARGUMENT"],
  ["copyRange", [FD, Number.MAX_SAFE_INTEGER, FD, 0, 2], "VHDSYNC_INVALID_ARGUMENT"],
  ["copyRange", [FD, 0, FD, 2 ** 53, 1], "VHDSYNC_INVALID_ARGUMENT"],
  ["copyRange", [FD, 0, NOT_OPEN_FD, 0, 1], "EBADF"],
  ["blockDeviceInfo", [{}], "VHDSYNC_INVALID_ARGUMENT"],
  ["blockDeviceInfo", [NOT_OPEN_FD], "EBADF"],
  ["fdatasync", [-0.25], "VHDSYNC_INVALID_ARGUMENT"],
  ["fdatasync", [NOT_OPEN_FD], "EBADF"],
  ["fadvise", [FD, 0, 0, "fastest"], "VHDSYNC_INVALID_ARGUMENT"],
  ["fadvise", [FD, 0, 0, 2], "VHDSYNC_INVALID_ARGUMENT"],
  ["fadvise", [FD, 0, 0, "sequential".repeat(10)], "VHDSYNC_INVALID_ARGUMENT"],
  ["fadvise", [FD, -1, 0, "sequential"], "VHDSYNC_INVALID_ARGUMENT"],
];

t.test("bad arguments throw or reject with a code, sync and async", { skip }, async (t) => {
  const fd = openSync(join(tempDir(t), "f.img"), "w+");
  t.teardown(() => closeSync(fd));
  const functions = addon as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const [name, rawArgs, code] of CASES) {
    const args = rawArgs.map((value) => (value === FD ? fd : value));
    const label = `${name}(${args.map((value) => (typeof value === "bigint" ? `${value}n` : JSON.stringify(value) ?? String(value))).join(", ")})`;
    t.throws(() => functions[name](...args), { code }, `${label} throws ${code}`);
    await t.rejects(functions[`${name}Async`](...args) as Promise<unknown>, { code }, `${label}Async rejects ${code}`);
  }
});

t.test("a panic inside the addon becomes VHDSYNC_INTERNAL on both threads", { skip }, async (t) => {
  t.throws(() => addon!.panicForTest(), { code: "VHDSYNC_INTERNAL", message: /panic caught/ });
  await t.rejects(addon!.panicForTestAsync(), { code: "VHDSYNC_INTERNAL", message: /panic caught/ });
  // A real file (not fd 0: under a test runner stdin is a pipe and lseek fails with ESPIPE).
  const file = join(tempDir(t), "after-panic");
  writeFileSync(file, new Uint8Array(8192).fill(1));
  const fd = openSync(file, "r");
  t.teardown(() => closeSync(fd));
  t.same([...addon!.extents(fd, 0, 8192)], [0, 8192], "the addon still works afterwards");
});

t.test("a child process survives every bad call and panic and exits normally", { skip }, async (t) => {
  const addonModule = fileURLToPath(new URL("../dist/io/native-addon.js", import.meta.url));
  const script = `
    const { nativeAddon } = await import(${JSON.stringify(addonModule)});
    const addon = nativeAddon();
    const codes = [];
    const attempt = (fn) => { try { fn(); codes.push("none"); } catch (e) { codes.push(e.code); } };
    attempt(() => addon.panicForTest());
    attempt(() => addon.extents(-1, NaN, Infinity));
    attempt(() => addon.punchHole(1, 2 ** 53, 2 ** 53));
    attempt(() => addon.copyRange(2 ** 40, 0, 0, 0, 1));
    attempt(() => addon.fadvise());
    attempt(() => addon.nextData(1, -1));
    const settled = await Promise.allSettled([addon.panicForTestAsync(), addon.extentsAsync(1e300, 0, 0), addon.reflinkAsync(2 ** 30, 2 ** 30)]);
    for (const result of settled) codes.push(result.status === "rejected" ? result.reason.code : "none");
    console.log(JSON.stringify(codes));
  `;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, RUST_BACKTRACE: "0" } });
  t.equal(child.status, 0, `exit status (stderr: ${child.stderr.slice(0, 400)})`);
  t.equal(child.signal, null, "no signal (no abort, no segfault)");
  t.same(JSON.parse(child.stdout.trim().split("\n").pop() ?? "[]"), [
    "VHDSYNC_INTERNAL",
    "VHDSYNC_INVALID_ARGUMENT",
    "VHDSYNC_INVALID_ARGUMENT",
    "VHDSYNC_INVALID_ARGUMENT",
    "VHDSYNC_INVALID_ARGUMENT",
    "VHDSYNC_INVALID_ARGUMENT",
    "VHDSYNC_INTERNAL",
    "VHDSYNC_INVALID_ARGUMENT",
    "EBADF",
  ]);
});

t.test("errno codes become VhdsyncErrors with the recoverable flag", async (t) => {
  const expectations: Array<[string, string, boolean]> = [
    ["ENOSPC", "VHDSYNC_NO_SPACE", true],
    ["EIO", "VHDSYNC_IO", true],
    ["EAGAIN", "VHDSYNC_IO", true],
    ["EACCES", "VHDSYNC_ACCESS_DENIED", false],
    ["EINVAL", "VHDSYNC_INVALID_ARGUMENT", false],
    ["ENOTTY", "VHDSYNC_UNSUPPORTED", false],
    ["EOPNOTSUPP", "VHDSYNC_UNSUPPORTED", false],
    ["VHDSYNC_INVALID_ARGUMENT", "VHDSYNC_INVALID_ARGUMENT", false],
    ["VHDSYNC_INTERNAL", "VHDSYNC_INTERNAL", false],
  ];
  for (const [code, expected, recoverable] of expectations) {
    const error = Object.assign(new Error(`fallocate: ${code}`), { code, syscall: "fallocate(PUNCH_HOLE)" });
    const converted = fromNativeError(error, { offset: 4096 });
    t.equal(converted.code, expected, code);
    t.equal(converted.recoverable, recoverable, `${code} recoverable`);
    t.equal(converted.details.offset, 4096);
    t.equal(converted.details.syscall, "fallocate(PUNCH_HOLE)");
  }
  if (!addon) return;
  const realError = t.throws(() => addon.blockDeviceInfo(0 + NOT_OPEN_FD)) as unknown;
  t.equal(fromNativeError(realError).code, "VHDSYNC_INVALID_ARGUMENT", "EBADF from a real call");
});

t.test("the adapter validates the same way with and without the addon", async (t) => {
  const fd = openSync(join(tempDir(t), "f.img"), "w+");
  t.teardown(() => closeSync(fd));
  await t.rejects(copyFileRange(fd, -1, fd, 0, 1), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(copyFileRange(fd, 0, fd, 0, 2 ** 60), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(copyFileRange(fd, 0, 2 ** 31, 0, 1), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(fileExtents(fd, 0, NaN), { name: "VhdsyncError", code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(fileExtents(-1, 0, 1), { name: "VhdsyncError", code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(punchHole(fd, -5, 1), { name: "VhdsyncError", code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(punchHole(fd, 2 ** 52, 2 ** 52), { name: "VhdsyncError", code: "VHDSYNC_INVALID_ARGUMENT" });
  t.throws(() => fadvise(fd, 0, 0, "bogus" as "normal"), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.throws(() => fadvise(fd, 0.5, 0, "normal"), { code: "VHDSYNC_INVALID_ARGUMENT" });
  if (!addon) {
    t.equal(await fileExtents(fd, 0, 10), null, "fallback: unknown allocation");
    t.equal(await punchHole(fd, 0, 10), false, "fallback: caller writes zeros");
    t.equal(fadvise(fd, 0, 0, "sequential"), false, "fallback: no hint applied");
  }
});
