// HRL benchmarks: (1) 64 KiB random writes through a TrackedDisk (disk + log) against the same
// writes to the bare image (target: tracked ≤ 1.4× untracked), (2) applyLog of a log that is in
// the page cache, to an image in memory (/dev/shm) and on the disk's temp dir (target ≥ 1 GB/s).
// VHDSYNC_BENCH_TINY=1 runs tiny sizes (results in bench/results/tmp/). Full size writes
// bench/results/hrl.json.
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { RawImage } from "../dist/formats/raw.js";
import { TrackedDisk } from "../dist/hrl/tracked-disk.js";
import { applyLog } from "../dist/hrl/apply-log.js";
import { MiB, median, round, writeResults } from "./hash-common.mjs";
import { workload, writeBaseImage } from "./hrl-workload.mjs";

const tiny = Boolean(process.env.VHDSYNC_BENCH_TINY);
const WRITE_BYTES = 64 * 1024;
const diskBytes = tiny ? 16 * MiB : 1024 * MiB;
const writeCount = tiny ? 128 : 8192; // 512 MiB of writes at full size
const repeats = tiny ? 1 : 3; // apply runs
const writeRounds = tiny ? 1 : 5; // tracked/untracked pairs: this machine's write timings swing ±15% between runs

async function timeWrites(imagePath, writes, tracked, logPath) {
  const raw = await RawImage.open(imagePath, false);
  const disk = tracked ? await TrackedDisk.open(raw, { logPath: () => logPath }) : raw;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (const write of writes) await disk.write(write.data, write.offset);
  const writesMs = performance.now() - started;
  await disk.close(); // flush: image datasync (+ log close with fsync)
  const cpu = process.cpuUsage(cpuBefore);
  return { writesMs, totalMs: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** Flushes every dirty page first: the setup's writes (image copies, the last run's log) must not be written back during a timed run. */
function settle() {
  spawnSync("sync");
}

function cacheFile(path) {
  const fd = openSync(path, "r");
  const buffer = Buffer.alloc(16 * MiB);
  let position = 0;
  let n;
  while ((n = readSync(fd, buffer, 0, buffer.length, position)) > 0) position += n;
  closeSync(fd);
}

async function timeApply(imagePath, logPath, statePath) {
  cacheFile(logPath);
  const image = await RawImage.open(imagePath, false);
  const started = performance.now();
  const result = await applyLog(image, logPath, { statePath, checkSequence: false });
  await image.close();
  return { ms: performance.now() - started, dataBytes: result.dataBytes };
}

const dirs = { disk: mkdtempSync(join(tmpdir(), "vhdsync-bench-hrl-")), memory: existsSync("/dev/shm") ? mkdtempSync("/dev/shm/vhdsync-bench-hrl-") : undefined };
try {
  const writes = workload(1234, { diskBytes, writeCount, writeBytes: WRITE_BYTES });
  const base = join(dirs.disk, "base.raw");
  writeBaseImage(base, diskBytes);
  const writeMiB = (writeCount * WRITE_BYTES) / MiB;
  const summary = (list) => ({
    writesMs: round(median(list.map((x) => x.writesMs)), 1),
    totalMs: round(median(list.map((x) => x.totalMs)), 1),
    cpuMs: round(median(list.map((x) => x.cpuMs)), 1),
  });
  const trackedWrites = {};
  for (const [where, dir] of Object.entries(dirs)) {
    if (!dir) continue;
    const runs = { untracked: [], tracked: [] };
    for (let r = 0; r < writeRounds; r++) {
      for (const mode of r % 2 ? ["tracked", "untracked"] : ["untracked", "tracked"]) {
        const image = join(dir, `${mode}.raw`);
        copyFileSync(base, image);
        const log = join(dir, `${mode}.hrl`);
        rmSync(log, { force: true }); // a TrackedDisk never replaces an existing log
        settle();
        runs[mode].push(await timeWrites(image, writes, mode === "tracked", log));
      }
      rmSync(join(dir, "untracked.raw"), { force: true });
    }
    rmSync(join(dir, "tracked.raw"), { force: true });
    const untracked = summary(runs.untracked);
    const tracked = summary(runs.tracked);
    trackedWrites[where] = {
      dir, writeBytes: WRITE_BYTES, writes: writeCount, diskBytes, untracked, tracked,
      ratioWritesOnly: round(tracked.writesMs / untracked.writesMs, 2),
      ratioWithClose: round(tracked.totalMs / untracked.totalMs, 2),
      ratioCpu: round(tracked.cpuMs / untracked.cpuMs, 2),
      untrackedMiBps: round(writeMiB / (untracked.totalMs / 1000), 1),
      trackedMiBps: round(writeMiB / (tracked.totalMs / 1000), 1),
    };
  }
  const trackedLog = join(dirs.disk, "tracked.hrl");
  console.log("tracked writes:", trackedWrites);

  const apply = {};
  for (const [where, dir] of Object.entries(dirs)) {
    if (!dir) continue;
    const times = [];
    let dataBytes = 0;
    for (let r = 0; r < repeats; r++) {
      const image = join(dir, "apply.raw");
      copyFileSync(base, image);
      settle();
      const result = await timeApply(image, trackedLog, join(dir, `state-${r}.json`));
      times.push(result.ms);
      dataBytes = result.dataBytes;
      rmSync(image);
    }
    const ms = median(times);
    apply[where] = { image: dir, logDataBytes: dataBytes, ms: round(ms, 1), GBps: round(dataBytes / 1e9 / (ms / 1000), 2), runsMs: times.map((x) => round(x, 1)) };
  }
  console.log("apply (cached log):", apply);
  const path = writeResults("hrl", tiny, {
    command: `${tiny ? "VHDSYNC_BENCH_TINY=1 " : ""}node bench/hrl.mjs`,
    targets: { trackedOverUntracked: "<= 1.4", applyCachedLogGBps: ">= 1" },
    trackedWrites,
    apply,
    loadAverageAtEnd: loadavg().map((x) => round(x, 1)),
    notes:
      "Times are medians of the runs; 'withClose' includes the image datasync and, for tracked, the log close with fsync. " +
      "ratioCpu compares the process CPU time (user + system) of the two runs. Apply = full validation pass (read + data checksums) + write pass + image flush + state file writes.",
  });
  console.log(`results: ${path}`);
} finally {
  for (const dir of Object.values(dirs)) if (dir) rmSync(dir, { recursive: true, force: true });
}
