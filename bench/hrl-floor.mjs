// How cheap can a tracked write be in Node? bench/hrl.mjs measures TrackedDisk against bare
// RawImage writes; this script measures plain-Node designs of "the same write to the disk and
// appended to a log", without HRL metadata or checksums, so that TrackedDisk can be judged
// against the floor of its design rather than against zero:
//   untracked  one positional write per 64 KiB, awaited (what RawImage.write does);
//   batch      the disk write, plus a copy into a 1 MiB batch written on the thread pool while
//              the next fills (TrackedDisk's design, minus metadata and byte sums);
//   parallel   the disk write and the log write of the same buffer, both on the thread pool;
//   ring       the log written by a worker thread from a SharedArrayBuffer ring of batches.
// All on one file system (/dev/shm and the temp dir), alternating, medians.
// VHDSYNC_BENCH_TINY=1: tiny sizes, results in bench/results/tmp/.
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { MiB, median, round, writeResults } from "./hash-common.mjs";
import { workload, writeBaseImage } from "./hrl-workload.mjs";

const tiny = Boolean(process.env.VHDSYNC_BENCH_TINY);
const WRITE_BYTES = 64 * 1024;
const BATCH_BYTES = 1024 * 1024;
const RING_SLOTS = 8;
const diskBytes = tiny ? 16 * MiB : 1024 * MiB;
const writeCount = tiny ? 128 : 8192;
const rounds = tiny ? 1 : 6;
const RING_WRITER = fileURLToPath(new URL("./hrl-floor-writer.cjs", import.meta.url));

const designs = {
  async untracked(disk, _log, writes) {
    for (const write of writes) await disk.write(write.data, 0, WRITE_BYTES, write.offset);
  },
  async batch(disk, log, writes) {
    const batches = [new Uint8Array(BATCH_BYTES), new Uint8Array(BATCH_BYTES)];
    const writing = [Promise.resolve(), Promise.resolve()];
    let current = 0;
    let used = 0;
    let position = 4096;
    for (const write of writes) {
      const diskWrite = disk.write(write.data, 0, WRITE_BYTES, write.offset);
      batches[current].set(write.data, used);
      used += WRITE_BYTES;
      if (used === BATCH_BYTES) {
        writing[current] = log.write(batches[current], 0, BATCH_BYTES, position).then(() => undefined);
        position += BATCH_BYTES;
        current ^= 1;
        await writing[current];
        used = 0;
      }
      await diskWrite;
    }
    await Promise.all(writing);
  },
  async parallel(disk, log, writes) {
    let position = 4096;
    for (const write of writes) {
      await Promise.all([disk.write(write.data, 0, WRITE_BYTES, write.offset), log.write(write.data, 0, WRITE_BYTES, position)]);
      position += WRITE_BYTES;
    }
  },
  async ring(disk, log, writes, logPath) {
    const ring = new SharedArrayBuffer(BATCH_BYTES * RING_SLOTS);
    const control = new Int32Array(new SharedArrayBuffer(16)); // [produced, consumed, stop, failed]
    const bytes = new Uint8Array(ring);
    const worker = new Worker(RING_WRITER, { workerData: { ring, control: control.buffer, batchBytes: BATCH_BYTES, slots: RING_SLOTS, path: logPath } });
    const exited = new Promise((resolve) => worker.once("exit", resolve));
    await new Promise((resolve) => worker.once("online", resolve));
    const started = performance.now();
    let produced = 0;
    let used = 0;
    for (const write of writes) {
      const diskWrite = disk.write(write.data, 0, WRITE_BYTES, write.offset);
      while (produced - Atomics.load(control, 1) >= RING_SLOTS) await Atomics.waitAsync(control, 1, Atomics.load(control, 1)).value;
      bytes.set(write.data, (produced % RING_SLOTS) * BATCH_BYTES + used);
      used += WRITE_BYTES;
      if (used === BATCH_BYTES) {
        used = 0;
        Atomics.store(control, 0, ++produced);
        Atomics.notify(control, 0);
      }
      await diskWrite;
    }
    while (Atomics.load(control, 1) < produced) await Atomics.waitAsync(control, 1, Atomics.load(control, 1)).value;
    const ms = performance.now() - started;
    Atomics.store(control, 2, 1);
    Atomics.notify(control, 0);
    await exited;
    if (Atomics.load(control, 3) !== 0) throw new Error("ring writer failed");
    return ms;
  },
};

const dirs = { disk: mkdtempSync(join(tmpdir(), "vhdsync-bench-floor-")), memory: existsSync("/dev/shm") ? mkdtempSync("/dev/shm/vhdsync-bench-floor-") : undefined };
try {
  const writes = workload(1234, { diskBytes, writeCount, writeBytes: WRITE_BYTES });
  const results = {};
  for (const [where, dir] of Object.entries(dirs)) {
    if (!dir) continue;
    const base = join(dir, "base.raw");
    writeBaseImage(base, diskBytes);
    const names = Object.keys(designs);
    const times = Object.fromEntries(names.map((name) => [name, []]));
    for (let r = 0; r < rounds; r++) {
      for (const name of r % 2 ? [...names].reverse() : names) {
        const image = join(dir, "image.raw");
        const logPath = join(dir, "log.bin");
        copyFileSync(base, image);
        rmSync(logPath, { force: true });
        spawnSync("sync");
        const disk = await open(image, "r+");
        const log = await open(logPath, "w+");
        try {
          const started = performance.now();
          const inner = await designs[name](disk, log, writes, `${logPath}.ring`);
          times[name].push(typeof inner === "number" ? inner : performance.now() - started);
        } finally {
          await disk.close();
          await log.close();
          rmSync(`${logPath}.ring`, { force: true });
        }
      }
    }
    const untracked = median(times.untracked);
    results[where] = Object.fromEntries(names.map((name) => [name, { medianMs: round(median(times[name]), 1), overUntracked: round(median(times[name]) / untracked, 2), runsMs: times[name].map((ms) => round(ms, 1)) }]));
  }
  console.log("tracked-write floor:", JSON.stringify(results, null, 1));
  const path = writeResults("hrl-floor", tiny, {
    command: `${tiny ? "VHDSYNC_BENCH_TINY=1 " : ""}node bench/hrl-floor.mjs`,
    writes: writeCount,
    writeBytes: WRITE_BYTES,
    diskBytes,
    results,
    notes: "Plain-Node designs of a write that also goes to an appended log (no HRL metadata, no checksums): the floor for TrackedDisk (bench/hrl.mjs). Times cover the writes only (no fsync).",
  });
  console.log(`results: ${path}`);
} finally {
  for (const dir of Object.values(dirs)) if (dir) rmSync(dir, { recursive: true, force: true });
}
