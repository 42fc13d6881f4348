// TrackedDisk: every write lands on the disk and in exactly one log of the chain, in the order
// the disk saw it, across switchLog() and with many writes in flight at once.
import t from "tap";
import { spawnSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { RawImage } from "../dist/formats/raw.js";
import { openImage } from "../dist/formats/open-image.js";
import { createVhd } from "../dist/formats/vhd/create-vhd.js";
import { applyLog } from "../dist/hrl/apply-log.js";
import { openLog } from "../dist/hrl/hrl-log.js";
import { TrackedDisk } from "../dist/hrl/tracked-disk.js";
import { fileHash, makeImage, randomWrites, setup } from "./helpers/hrl-fixtures.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const DISK_BYTES = 1024 * 1024;

t.test("concurrent writes and log switches: the chain replays to the same disk", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const source = join(dir, "source.raw");
  copyFileSync(base, source);
  const tracked = await TrackedDisk.open(await RawImage.open(source, false), {
    logPath: (sequence) => join(dir, `log-${sequence}.hrl`),
    writer: { batchBytes: 32768 },
  });
  const closed = [];
  let pending: Promise<void>[] = [];
  let expectedTracked = 0;
  for (let round = 0; round < 5; round++) {
    const writes = randomWrites(prng, 200 * 1024, 80, 9000); // overlapping, all in flight together
    pending = writes.map((w) => tracked.write(w.data, w.offset));
    expectedTracked = writes.reduce((n, w) => n + w.data.length, 0);
    if (round % 2 === 0) await tracked.writeZeros(prng.int(1000) * 512, 4096);
    if (round % 2 === 0) expectedTracked += 4096;
    const switched = tracked.switchLog(); // while writes are still queued
    await Promise.all(pending);
    closed.push(await switched);
    t.ok(tracked.trackedBytes <= expectedTracked, "new log starts empty-ish");
  }
  const last = tracked.currentLog;
  await tracked.close();
  t.same(closed.map((c) => c.sequence), [1, 2, 3, 4, 5]);
  for (let i = 1; i < closed.length; i++) t.equal(closed[i].previousUniqueId, closed[i - 1].uniqueId, "chained ids");
  t.equal(last.previousUniqueId, closed[4].uniqueId);
  const total = closed.reduce((n, c) => n + c.dataBytes, 0);
  t.ok(total > 0);

  const replica = join(dir, "replica.raw");
  copyFileSync(base, replica);
  const image = await RawImage.open(replica, false);
  for (const log of [...closed.map((c) => c.path), last.path]) await applyLog(image, log);
  await image.close();
  t.equal(fileHash(replica), fileHash(source), `seed ${seed}: applying the chain == the tracked disk`);
});

t.test("trackedBytes and trackedFraction follow the current log", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "d.raw");
  makeImage(path, undefined, DISK_BYTES);
  const tracked = await TrackedDisk.open(await RawImage.open(path, false));
  await tracked.write(new Uint8Array(300 * 1024).fill(1), 0);
  await tracked.write(new Uint8Array(300 * 1024).fill(2), 100 * 1024);
  t.equal(tracked.trackedBytes, 600 * 1024);
  t.ok(tracked.trackedFraction > 0.5, "past the 50% resync threshold");
  const closed = await tracked.switchLog();
  t.equal(closed.dataBytes, 600 * 1024);
  t.equal(tracked.trackedBytes, 0);
  t.equal(closed.path, `${path}.000001.hrl`);
  await tracked.close();
  const again = await RawImage.open(path, false);
  await t.rejects(TrackedDisk.open(again), { code: "VHDSYNC_INVALID_ARGUMENT" }, "an existing log is never replaced");
  await again.close();
  const log = await openLog(`${path}.000002.hrl`);
  t.equal(log.clean, true);
  t.equal(log.entryCount, 0, "an empty log is a valid clean log");
  await log.close();
});

t.test("dynamic VHD: a log tracked on one copy, applied to another, gives the same disk (qemu-img)", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const source = join(dir, "source.vhd");
  await (await createVhd(source, { type: "dynamic", sizeBytes: 8 * 1024 * 1024, blockSizeBytes: 512 * 1024 })).close();
  const replica = join(dir, "replica.vhd");
  copyFileSync(source, replica);
  const log = join(dir, "vhd.hrl");
  const tracked = await TrackedDisk.open(await openImage(source, { readOnly: false }), { logPath: () => log });
  for (const write of randomWrites(prng, 8 * 1024 * 1024, 60, 100000)) await tracked.write(write.data, write.offset);
  await tracked.close();
  const image = await openImage(replica, { readOnly: false });
  await applyLog(image, log);
  await image.close();
  const compare = spawnSync("qemu-img", ["compare", "-f", "vpc", "-F", "vpc", source, replica], { encoding: "utf8" });
  t.equal(compare.status, 0, `seed ${seed}: ${compare.stdout}${compare.stderr}`);
});
