// Clean stops of the long operations other than resync/copy/convert/checksum: an aborted
// signal (the CLI's Ctrl-C) stops `log apply` after a flushed entry with its resume point
// recorded, stops a snapshot merge or delete after a flushed copy checkpoint (the state file
// left for `snapshot resume`), and stops `hash` and `compare` between reads. Each is
// VHDSYNC_INTERRUPTED (exit 4 from the CLI), and finishing afterwards gives the content an
// uninterrupted run would.
import t from "tap";
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyToFile, fileHash, randomWrites as logWrites, setup, trackWrites } from "./helpers/hrl-fixtures.js";
import { chainFixture, modelMismatches } from "./helpers/snapshot-model.js";
import { runCli } from "./helpers/cli.js";
import { deleteSnapshot, mergeSnapshots, resumeSnapshotOperation } from "../dist/snapshot/index.js";
import { hashFile, hashImage } from "../dist/hash/hash-image.js";
import { compareImages } from "../dist/formats/compare-images.js";
import { openImage } from "../dist/formats/open-image.js";
import type { ProgressEvent } from "../dist/progress.js";

const DISK_BYTES = 24 * 1024 * 1024;

/** A raw base, the log of random writes over it (larger than the 8 MiB kept in memory, so it is read in windows) and the image the writes made. */
async function logFixture(t: Tap.Test) {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const { image: after, log } = await trackWrites(dir, "after", base, logWrites(prng, DISK_BYTES, 400, 70000));
  const target = join(dir, "target.raw");
  copyFileSync(base, target);
  return { seed, dir, base, after, log, target, statePath: `${target}.hrl-state.json` };
}

/** An AbortController aborted by the first progress event (and the listener that does it). */
function abortOnFirstProgress(): { signal: AbortSignal; onProgress: (event: ProgressEvent) => void; events: ProgressEvent[] } {
  const controller = new AbortController();
  const events: ProgressEvent[] = [];
  return {
    signal: controller.signal,
    events,
    onProgress: (event) => {
      events.push(event);
      controller.abort();
    },
  };
}

t.test("applyLog: an abort stops after a flushed entry with the resume point recorded; the same call resumes", async (t) => {
  const { seed, after, log, target, statePath } = await logFixture(t);
  const stop = abortOnFirstProgress();
  await t.rejects(applyToFile(target, log, { signal: stop.signal, onProgress: stop.onProgress }), { code: "VHDSYNC_INTERRUPTED", recoverable: true, details: { nextEntry: 1 } }, `seed ${seed}`);
  const state = JSON.parse(readFileSync(statePath, "utf8"));
  t.equal(state.applying.nextEntry, 1, "the sidecar resumes after the first entry, the one written when the abort came");
  t.not(fileHash(target), fileHash(after), "the log is not all applied");
  const resumed = await applyToFile(target, log);
  t.equal(resumed.resumedFromEntry, 1, "the next call resumes there");
  t.equal(fileHash(target), fileHash(after), `seed ${seed}: the image is what the writes made`);
});

t.test("applyLog: an abort before the first write leaves nothing behind: no state, no undo log, the image unchanged", async (t) => {
  const { seed, dir, base, log, target, statePath } = await logFixture(t);
  const undoPath = join(dir, "undo.hrl");
  const controller = new AbortController();
  controller.abort();
  await t.rejects(applyToFile(target, log, { signal: controller.signal }), { code: "VHDSYNC_INTERRUPTED" }, `seed ${seed}: while the log's data is checked`);
  await t.rejects(applyToFile(target, log, { signal: controller.signal, undoPath }), { code: "VHDSYNC_INTERRUPTED" }, "with an undo log");
  t.equal(fileHash(target), fileHash(base), "the image is untouched");
  t.notOk(existsSync(statePath), "no state sidecar");
  t.same(readdirSync(dir).filter((name) => name.includes("undo")), [], "no undo log nor its temporary file");
  await t.rejects(applyToFile(target, log, { signal: "stop" as unknown as AbortSignal }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "a signal that is not an AbortSignal");
});

t.test("log apply: Ctrl-C (SIGINT) mid-apply exits 4 with VHDSYNC_INTERRUPTED; running it again finishes", async (t) => {
  const { seed, after, log, target, statePath } = await logFixture(t);
  // The signal arrives when the third entry is on the image; the apply stops at the end of an entry.
  const stopped = runCli(["log", "apply", log, target], { env: { ...process.env, VHDSYNC_HRL_CRASH_AT: "entry:3:SIGINT" } });
  t.equal(stopped.status, 4, `seed ${seed}: ${stopped.stderr}`);
  t.match(stopped.stderr, /stopping after flushing/);
  t.match(stopped.stderr, /vhdsync: VHDSYNC_INTERRUPTED: apply of .* interrupted after entry \d+ of \d+; run it again to resume/);
  const nextEntry = JSON.parse(readFileSync(statePath, "utf8")).applying.nextEntry;
  t.ok(nextEntry >= 3 && nextEntry < 400, `the resume point (${nextEntry}) is past the third entry and before the end`);
  const finished = runCli(["log", "apply", log, target, "--json"]);
  t.equal(finished.status, 0, finished.stderr);
  t.equal(JSON.parse(finished.stdout).resumedFromEntry, nextEntry, "resumed at the recorded entry");
  t.equal(fileHash(target), fileHash(after), `seed ${seed}: the image is what the writes made`);
});

t.test("mergeSnapshots and deleteSnapshot: an abort stops after a flushed checkpoint; resuming gives what an uninterrupted run would", async (t) => {
  for (const op of ["merge", "delete"] as const) {
    await t.test(op, async (t) => {
      const { seed, dir, model, disk, ids } = await chainFixture(t, 3, 4 * 1024 * 1024, 64 * 1024);
      const stop = abortOnFirstProgress();
      const tuning = { batchBytes: 64 * 1024, signal: stop.signal, onProgress: stop.onProgress };
      const running = op === "merge" ? mergeSnapshots(disk, tuning) : deleteSnapshot(disk, ids[1], tuning);
      const error = await running.then(
        () => undefined,
        (thrown: unknown) => thrown as { code: string; message: string; details: { cursorBytes: number } },
      );
      t.equal(error?.code, "VHDSYNC_INTERRUPTED", `seed ${seed}: ${error?.message}`);
      t.match(error?.message ?? "", /snapshot resume/, "the message says how to finish");
      t.ok((error?.details.cursorBytes ?? 0) > 0, "stopped after copying some data");
      t.ok(existsSync(join(dir, "disk.vhd.snapshot-op.json")), "the operation's state file is left");
      const resumed = await resumeSnapshotOperation(disk);
      t.equal(resumed?.op, op, "resume finishes the interrupted operation");
      // The active disk merges into its parent, the last snapshot.
      model.snapshots.delete(op === "merge" ? ids[2] : ids[1]);
      t.same(await modelMismatches(disk, model, { strays: true }), [], `seed ${seed}: every layer reads as the model says`);
    });
  }
});

t.test("snapshot merge: Ctrl-C (SIGINT) mid-copy exits 4; `snapshot resume` finishes it", async (t) => {
  const { seed, prng, model, disk, ids } = await chainFixture(t, 2, 48 * 1024 * 1024, 64 * 1024);
  // Data all over the active disk: 768 pieces of 64 KiB to copy, which take longer than the
  // 20 ms after which the copy lets the event loop turn and the signal handler run.
  const whole = prng.bytes(model.diskBytes);
  const image = await openImage(disk, { readOnly: false });
  await image.write(whole, 0);
  await image.close();
  model.active.set(whole, 0);
  // Fault point 5 is the second piece of the copy (begin, catalogued, copy, piece, piece).
  const env = { ...process.env, VHDSYNC_SNAPSHOT_BATCH_BYTES: String(64 * 1024), VHDSYNC_FAULT_AT: "5", VHDSYNC_FAULT_SIGNAL: "SIGINT" };
  const stopped = runCli(["snapshot", "merge", disk, "--json"], { env });
  t.equal(stopped.status, 4, `seed ${seed}: ${stopped.stderr}`);
  t.match(JSON.parse(stopped.stdout).error, { code: "VHDSYNC_INTERRUPTED", recoverable: true, details: { operation: "merge" } });
  t.match(runCli(["snapshot", "list", disk]).stdout, /pending: merge at step copy/, "the listing shows the pending merge");
  const finished = runCli(["snapshot", "resume", disk, "--json"]);
  t.equal(finished.status, 0, finished.stderr);
  t.same(JSON.parse(finished.stdout).resumed, { op: "merge", step: "copy" });
  model.snapshots.delete(ids[1]);
  t.same(await modelMismatches(disk, model, { strays: true }), [], `seed ${seed}: every layer reads as the model says`);
});

t.test("hashImage, hashFile and compareImages: an aborted signal stops them", async (t) => {
  const { dir, base, target } = await logFixture(t);
  const other = join(dir, "other.raw");
  writeFileSync(other, readFileSync(base));
  const controller = new AbortController();
  controller.abort();
  await t.rejects(hashFile(base, { signal: controller.signal }), { code: "VHDSYNC_INTERRUPTED" }, "hashFile");
  const [a, b] = [await openImage(target, { readOnly: true }), await openImage(other, { readOnly: true })];
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await t.rejects(hashImage(a, { signal: controller.signal, blockSizeBytes: 4096 }), { code: "VHDSYNC_INTERRUPTED" }, "hashImage, per block");
  await t.rejects(compareImages(a, b, { signal: controller.signal }), { code: "VHDSYNC_INTERRUPTED" }, "compareImages");
  // Aborted mid-run: the first progress event aborts; the next chunk or piece is not read.
  const stop = abortOnFirstProgress();
  await t.rejects(hashImage(a, { chunkBytes: 1024 * 1024, signal: stop.signal, onProgress: stop.onProgress }), { code: "VHDSYNC_INTERRUPTED" }, "hashImage mid-run");
  t.equal(stop.events.length, 1, "stopped at the chunk after the first event");
  t.same(await compareImages(a, b), { identical: true, sizeA: DISK_BYTES, sizeB: DISK_BYTES, bytesCompared: DISK_BYTES }, "without a signal: the whole compare");
});
