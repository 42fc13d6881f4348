// The native background appender (io/background-appender.ts) and the HRL writer's use of it:
// logs written through the idle-priority thread equal, byte for byte, the ones written on the
// libuv pool; a failed background write stops tracking with a coded error instead of losing
// entries silently.
import t from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BackgroundAppender } from "../dist/io/background-appender.js";
import { nativeAddon } from "../dist/io/native.js";
import { HrlWriter } from "../dist/hrl/hrl-writer.js";
import { openLog } from "../dist/hrl/hrl-log.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { randomWrites } from "./helpers/hrl-fixtures.js";
import { withEnv } from "./helpers/env.js";
import { tempDir } from "./helpers/tmp.js";

const native = nativeAddon() !== null && process.env.VHDSYNC_NO_NATIVE_LOG !== "1";

/** Runs `body` with VHDSYNC_NO_NATIVE_LOG set to `value` (read when a writer/appender opens). */
function withLogSwitch<T>(value: string | undefined, body: () => Promise<T>): Promise<T> {
  return withEnv("VHDSYNC_NO_NATIVE_LOG", value, body);
}

/** A fixed-size WebAssembly memory (never grows, so never moves): what the appender may borrow. */
function wasmBytes(bytes: number): Uint8Array {
  const pages = Math.ceil(bytes / 65536);
  return new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer, 0, bytes);
}

t.test("the appender writes every accepted buffer at its position, from its own thread", { skip: !native && "native log appender not in use" }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "out.bin");
  const fd = openSync(path, "w+");
  t.teardown(() => closeSync(fd));
  const seed = testSeed();
  const prng = new Prng(seed);
  const appender = BackgroundAppender.open(fd, path, 3);
  t.ok(appender, "opened");
  const expected = new Uint8Array(200 * 8192);
  const memory = wasmBytes(200 * 8192);
  let writtenHere = 0;
  const tokens: number[] = [];
  // 200 buffers at shuffled positions, at most 3 unfinished: submit refuses some, which the
  // caller then writes itself (as HrlWriter does on the libuv pool).
  const order = Array.from({ length: 200 }, (_, i) => i).sort(() => prng.int(3) - 1);
  for (const [round, index] of order.entries()) {
    const length = 1 + prng.int(8192);
    const bytes = memory.subarray(index * 8192, index * 8192 + length);
    bytes.set(prng.bytes(length));
    expected.set(bytes, index * 8192);
    const token = appender!.submit(bytes, index * 8192);
    if (token === 0) {
      writeSync(fd, bytes, 0, bytes.length, index * 8192);
      writtenHere++;
    } else {
      tokens.push(token);
    }
    if (round % 7 === 0 && tokens.length > 0) {
      const oldest = tokens.shift()!;
      await appender!.wait(oldest);
      t.equal(appender!.finished(oldest), true, "finished after wait");
    }
  }
  await appender!.drain();
  t.ok(tokens.every((token) => appender!.finished(token)), "every job finished after drain");
  const stats = await appender!.close();
  t.equal(stats.queued + stats.refused, 200, `seed ${seed}: every buffer accepted or refused`);
  t.equal(stats.refused, writtenHere);
  t.equal(stats.byThread + stats.byDrain, stats.queued, "every accepted buffer written once");
  t.equal(stats.idle, 1, "runs under SCHED_IDLE");
  const content = readFileSync(path);
  t.ok(content.length <= expected.length && expected.subarray(content.length).every((byte) => byte === 0));
  t.ok(content.equals(expected.subarray(0, content.length)), `seed ${seed}: the file holds the submitted buffers`);
  t.rejects(() => appender!.drain(), { code: "VHDSYNC_INVALID_ARGUMENT" }, "gone after close");
  t.same(await appender!.close(), stats, "close is idempotent");
});

t.test("the background thread writes without being drained", { skip: !native && "native log appender not in use" }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "one.bin");
  const fd = openSync(path, "w+");
  t.teardown(() => closeSync(fd));
  const appender = BackgroundAppender.open(fd, path)!;
  const bytes = wasmBytes(4096).fill(0x5a);
  const token = appender.submit(bytes, 4096);
  t.ok(token > 0);
  // SCHED_IDLE runs when a core is free; under a loaded test run that can take a while.
  const deadline = Date.now() + 20_000;
  while (!appender.finished(token) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  t.ok(readFileSync(path).subarray(4096).equals(bytes), "written by the thread");
  const stats = await appender.close();
  t.same({ queued: stats.queued, byThread: stats.byThread, byDrain: stats.byDrain }, { queued: 1, byThread: 1, byDrain: 0 });
});

t.test("a failed background write is reported by wait, drain, later submits and close", { skip: !native && "native log appender not in use" }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "ro.bin");
  writeFileSync(path, "");
  const fd = openSync(path, "r"); // pwrite fails with EBADF
  t.teardown(() => closeSync(fd));
  const appender = BackgroundAppender.open(fd, path)!;
  const token = appender.submit(wasmBytes(100), 0);
  t.ok(token > 0);
  await t.rejects(appender.wait(token), { code: "VHDSYNC_INVALID_ARGUMENT", details: { errno: "EBADF", path } });
  t.equal(appender.finished(token), true, "a failed job is finished (its memory is free again)");
  await t.rejects(appender.drain(), { details: { errno: "EBADF" } });
  t.throws(() => appender.submit(wasmBytes(1), 0), { code: "VHDSYNC_INVALID_ARGUMENT", details: { errno: "EBADF" } });
  await t.rejects(appender.close(), { details: { errno: "EBADF" } });
  t.throws(() => BackgroundAppender.open(fd, path, 0), { code: "VHDSYNC_INVALID_ARGUMENT" }, "limit checked");
});

t.test("logs written through the appender equal logs written on the libuv pool", async (t) => {
  const dir = tempDir(t);
  const seed = testSeed();
  const prng = new Prng(seed);
  const writes = randomWrites(prng, 4 * 1024 * 1024, 300, 200_000);
  const write = (path: string, off: string | undefined) =>
    withLogSwitch(off, async () => {
      let clock = 1000;
      const writer = await HrlWriter.create(path, { uniqueId: "11111111-2222-3333-4444-555555555555", timestamp: 1, now: () => clock++, batchBytes: 64 * 1024 });
      for (const [index, w] of writes.entries()) {
        await writer.append(w.offset, w.data);
        if (index % 97 === 0) await writer.flush();
      }
      return writer.close();
    });
  const viaAppender = await write(join(dir, "appender.hrl"), undefined);
  const viaPool = await write(join(dir, "pool.hrl"), "1");
  t.same({ ...viaAppender, path: "" }, { ...viaPool, path: "" }, "same summary");
  t.ok(readFileSync(join(dir, "appender.hrl")).equals(readFileSync(join(dir, "pool.hrl"))), `seed ${seed}: identical bytes`);
  const log = await openLog(join(dir, "appender.hrl"));
  t.equal(log.entryCount, viaAppender.entryCount);
  await log.close();
});

const dist = (path: string) => fileURLToPath(new URL(`../dist/${path}`, import.meta.url));

/** Child: tracks 40 writes of 16 KiB on a 64 KiB disk (the log outgrows the file size limit), prints what happened. */
const CHILD = `
import { readFileSync, writeFileSync } from "node:fs";
import { RawImage } from ${JSON.stringify(dist("formats/raw.js"))};
import { TrackedDisk } from ${JSON.stringify(dist("hrl/tracked-disk.js"))};
import { openLog } from ${JSON.stringify(dist("hrl/hrl-log.js"))};
process.on("SIGXFSZ", () => {}); // Node resets an inherited SIG_IGN: catch it so writes fail with EFBIG
const dir = process.argv[1];
const code = async (promise) => { try { await promise; return "ok"; } catch (error) { return error.code; } };
writeFileSync(dir + "/disk.raw", new Uint8Array(65536));
const disk = await TrackedDisk.open(await RawImage.open(dir + "/disk.raw", false), { logPath: (n) => dir + "/log-" + n + ".hrl" });
const expected = new Uint8Array(65536);
for (let i = 0; i < 40; i++) {
  const data = new Uint8Array(16384).fill(i + 1);
  const offset = (i % 4) * 16384;
  expected.set(data, offset);
  await disk.write(data, offset);
}
await code(disk.flush());
const report = { trackingError: disk.trackingError?.code, switchLog: await code(disk.switchLog()) };
await disk.close();
report.diskMatches = Buffer.compare(readFileSync(dir + "/disk.raw"), expected) === 0;
report.openLog = await code(openLog(dir + "/log-1.hrl"));
console.log(JSON.stringify(report));
`;

for (const off of ["", "1"]) {
  t.test(`a log that cannot grow (EFBIG) stops tracking, coded, ${off ? "libuv pool" : "appender"}`, async (t) => {
    const dir = tempDir(t);
    // 256 KiB file size limit: the 64 KiB disk fits, the log outgrows it (EFBIG).
    const run = spawnSync("bash", ["-c", 'ulimit -f 256; exec "$0" --input-type=module -e "$1" "$2"', process.execPath, CHILD, dir], {
      encoding: "utf8",
      env: { ...process.env, VHDSYNC_NO_NATIVE_LOG: off },
    });
    t.equal(run.status, 0, `${run.signal ?? ""} ${run.stderr}`);
    const report = JSON.parse(run.stdout);
    t.equal(report.trackingError, "VHDSYNC_NO_SPACE", "tracking stopped with the write's code");
    t.equal(report.switchLog, "VHDSYNC_HRL_UNCLEAN", "the log is left unclean: resync required");
    t.equal(report.diskMatches, true, "the disk itself got every write");
    t.equal(report.openLog, "VHDSYNC_HRL_UNCLEAN", "the abandoned log reads as unclean");
  });
}
