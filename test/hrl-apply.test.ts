// applyLog and friends, as properties over seeded random write streams: log(writes) applied
// to the original == the writes replayed directly; undo(apply(x)) == x; chains in order,
// out of order and re-applied; compaction changes nothing but the size; the CLI.
import t from "tap";
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compactLog } from "../dist/hrl/compact-log.js";
import { openLog } from "../dist/hrl/hrl-log.js";
import { readApplyState } from "../dist/hrl/apply-state.js";
import { buildHeader, parseHeader } from "../dist/hrl/header.js";
import { applyToFile, fileHash, makeImage, randomWrites, setup, trackWrites } from "./helpers/hrl-fixtures.js";
import { CLI_PATH, runCli } from "./helpers/cli.js";
import { execFile } from "node:child_process";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const DISK_BYTES = 1024 * 1024;

/** Runs the CLI without blocking the event loop. */
function runCliAsync(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ status: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

t.test("apply(log of writes) == writes replayed; undo restores; log read back == writes", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  for (let round = 0; round < 6; round++) {
    const base = join(dir, `base${round}.raw`);
    makeImage(base, prng, DISK_BYTES);
    const maxWriteBytes = [512, 5000, 70000, DISK_BYTES][round % 4];
    const writes = randomWrites(prng, DISK_BYTES, 1 + prng.int(maxWriteBytes > 70000 ? 8 : 200), maxWriteBytes);
    const batchBytes = [4096, 65536, 1 << 20][round % 3];
    const metadataSizeBytes = [4096, 512, 65536][(round >> 1) % 3];
    const tracked = await trackWrites(dir, `src${round}`, base, writes, { batchBytes, metadataSizeBytes });
    const log = await openLog(tracked.log, { inMemoryMaxBytes: round % 2 ? 0 : undefined }); // both traversals
    const maxEntryBytes = Math.min(1 << 20, batchBytes);
    t.equal(log.entryCount, writes.reduce((n, w) => n + Math.ceil(w.data.length / maxEntryBytes), 0), `seed ${seed} round ${round}: entries`);
    const readBack = new Map<number, Uint8Array[]>();
    for await (const piece of log.pieces({ verify: true, chunkBytes: 300000 })) {
      const parts = readBack.get(piece.entryIndex) ?? [];
      parts.push(piece.data.slice());
      readBack.set(piece.entryIndex, parts);
    }
    const entryData = [...readBack.values()].map((parts) => Buffer.concat(parts));
    t.ok(Buffer.concat(entryData).equals(Buffer.concat(writes.map((w) => w.data))), `seed ${seed} round ${round}: log data read back == writes`);
    await log.close();

    const target = join(dir, `dst${round}.raw`);
    copyFileSync(base, target);
    const undo = join(dir, `undo${round}.hrl`);
    await applyToFile(target, tracked.log, { undoPath: undo });
    t.equal(fileHash(target), fileHash(tracked.image), `seed ${seed} round ${round}: apply == replay`);
    await applyToFile(target, undo);
    t.equal(fileHash(target), fileHash(base), `seed ${seed} round ${round}: undo(apply(x)) == x`);
    await applyToFile(target, tracked.log);
    t.equal(fileHash(target), fileHash(tracked.image), `seed ${seed} round ${round}: re-apply after undo`);
    if (round === 0) {
      const before = fileHash(target);
      const baseHash = fileHash(base);
      await t.rejects(applyToFile(target, undo, { undoPath: base }), { code: "VHDSYNC_INVALID_ARGUMENT" }, "never overwrites another file with an undo log");
      t.equal(fileHash(base), baseHash);
      t.equal(fileHash(target), before);
    }
  }
});

t.test("chains: in order, out of order, already applied, expected id", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const first = await trackWrites(dir, "a", base, randomWrites(prng, DISK_BYTES, 40));
  const second = await trackWrites(dir, "b", first.image, randomWrites(prng, DISK_BYTES, 40), { previousUniqueId: first.uniqueId });
  const third = await trackWrites(dir, "c", second.image, randomWrites(prng, DISK_BYTES, 40), { previousUniqueId: second.uniqueId });
  const replica = join(dir, "replica.raw");
  copyFileSync(base, replica);
  await applyToFile(replica, first.log);
  await t.rejects(applyToFile(replica, third.log), { code: "VHDSYNC_HRL_OUT_OF_SEQUENCE" }, `seed ${seed}: skipping a log`);
  await t.rejects(applyToFile(replica, first.log), { code: "VHDSYNC_HRL_OUT_OF_SEQUENCE" }, "applying the same log twice");
  t.equal(fileHash(replica), fileHash(first.image), "refused applies wrote nothing");
  await applyToFile(replica, second.log);
  await applyToFile(replica, third.log);
  t.equal(fileHash(replica), fileHash(third.image), `seed ${seed}: chain applied in order`);
  const state = await readApplyState(`${replica}.hrl-state.json`);
  t.equal(state.lastAppliedUniqueId, third.uniqueId);
  t.equal(state.appliedCount, 3);
  t.equal(state.applying, null);

  const other = join(dir, "other.raw");
  copyFileSync(first.image, other);
  await t.rejects(applyToFile(other, third.log, { expectedPreviousUniqueId: first.uniqueId }), { code: "VHDSYNC_HRL_OUT_OF_SEQUENCE" });
  await applyToFile(other, second.log, { expectedPreviousUniqueId: first.uniqueId });
  t.equal(fileHash(other), fileHash(second.image));
});

t.test("compact: same result, each range once", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const writes = randomWrites(prng, 64 * 1024, 400, 9000); // many rewrites of a small area
  const tracked = await trackWrites(dir, "a", base, writes);
  const compacted = join(dir, "compact.hrl");
  const result = await compactLog(tracked.log, compacted);
  t.ok(result.output.dataBytes < result.input.dataBytes, `seed ${seed}: fewer bytes (${result.output.dataBytes} < ${result.input.dataBytes})`);
  const log = await openLog(compacted);
  const extents = [...log.extents()];
  t.equal(log.dataBytes, extents.reduce((n, e) => n + e.length, 0), "no byte written twice");
  t.equal(log.header.uniqueId, tracked.uniqueId, "keeps the chain identity");
  await log.close();
  const target = join(dir, "t.raw");
  copyFileSync(base, target);
  await applyToFile(target, compacted);
  t.equal(fileHash(target), fileHash(tracked.image), `seed ${seed}: apply(compact(log)) == apply(log)`);
  await t.rejects(compactLog(compacted, compacted), { code: "VHDSYNC_INVALID_ARGUMENT" });
});

t.test("CLI: info, extents, apply with undo, refusal, compact", async (t) => {
  const { prng, dir, base } = setup(t, DISK_BYTES);
  const tracked = await trackWrites(dir, "a", base, randomWrites(prng, DISK_BYTES, 30));
  // Independent commands run side by side (each CLI start costs a second or more on a busy machine).
  const truncated = join(dir, "truncated.hrl");
  writeFileSync(truncated, readFileSync(tracked.log).subarray(0, 6000));
  const unclean = join(dir, "unclean.hrl");
  const uncleanBytes = new Uint8Array(readFileSync(tracked.log));
  const header = parseHeader(uncleanBytes, true);
  uncleanBytes.set(buildHeader({ ...header, eolLocation: 0 }), 0);
  writeFileSync(unclean, uncleanBytes);
  const [info, extentsRun, compacted, verifyBad, recovered] = await Promise.all([
    runCliAsync(["log", "info", tracked.log, "--json"]),
    runCliAsync(["log", "extents", tracked.log, "--json"]),
    runCliAsync(["log", "compact", tracked.log, join(dir, "c.hrl")]),
    runCliAsync(["log", "verify", truncated]),
    runCliAsync(["log", "recover", unclean, join(dir, "r.hrl"), "--json"]),
  ]);
  t.equal(verifyBad.status, 3);
  t.match(verifyBad.stderr, /^vhdsync: VHDSYNC_TRUNCATED: /);
  t.equal(recovered.status, 0, recovered.stderr);
  t.match(JSON.parse(recovered.stdout), { ok: true, wasClean: false, output: { entryCount: 30 } });
  t.equal(info.status, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  t.match(parsed, { ok: true, clean: true, version: "2.0", uniqueId: tracked.uniqueId, entries: 30 });
  // --json: a line per extent, then the totals.
  const extentLines = extentsRun.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  const extents = extentLines.slice(0, -1);
  t.ok(extents.every((e) => e.type === "extent"), "extent lines first");
  t.equal(extents.reduce((n: number, e: { length: number }) => n + e.length, 0), parsed.bytesTouched);
  t.same(extentLines.at(-1), { ok: true, type: "report", path: tracked.log, extents: parsed.extents, bytesTouched: parsed.bytesTouched });
  t.equal(compacted.status, 0, compacted.stderr);
  t.ok(existsSync(join(dir, "c.hrl")), "compacted");
  t.same(readdirSync(dir).filter((name) => name.includes("c.hrl") && name !== "c.hrl"), [], "no temp file left");
  const target = join(dir, "t.raw");
  copyFileSync(base, target);
  // A malformed --expect-previous is a usage error, before anything is opened.
  const badGuid = runCli(["log", "apply", tracked.log, target, "--expect-previous", "not-a-guid"]);
  t.equal(badGuid.status, 2, badGuid.stderr);
  t.match(badGuid.stderr, /^vhdsync: VHDSYNC_USAGE: --expect-previous: not a GUID/m);
  t.notOk(existsSync(`${target}.hrl-state.json`), "no state written");
  const applied = runCli(["log", "apply", tracked.log, target, "--undo", join(dir, "u.hrl"), "--json"]);
  t.equal(applied.status, 0, applied.stderr);
  t.equal(fileHash(target), fileHash(tracked.image));
  const again = runCli(["log", "apply", tracked.log, target]);
  t.equal(again.status, 3);
  t.match(again.stderr, /^vhdsync: VHDSYNC_HRL_OUT_OF_SEQUENCE: /);
  t.ok(readFileSync(target).length === DISK_BYTES);
});

t.test("log apply takes the image's write lock: refused (VHDSYNC_BUSY, exit 4) while a resync writes it, nothing applied", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const base = join(dir, "base.raw");
  makeImage(base, prng, DISK_BYTES);
  const tracked = await trackWrites(dir, "src", base, randomWrites(prng, DISK_BYTES, 20, 5000), {});
  const target = join(dir, "dst.raw");
  copyFileSync(base, target);
  const { acquireWriteLock } = await import("../dist/io/write-lock.js");
  const lock = await acquireWriteLock(target, "resync");
  try {
    await t.rejects(applyToFile(target, tracked.log), { code: "VHDSYNC_BUSY", recoverable: true }, `seed ${seed}: the library refuses`);
    const cli = await runCliAsync(["log", "apply", tracked.log, target]);
    t.equal(cli.status, 4, cli.stderr);
    t.match(cli.stderr, /VHDSYNC_BUSY: .* is being written by process \d+/);
    t.equal(fileHash(target), fileHash(base), "nothing applied");
    t.notOk(existsSync(`${target}.hrl-state.json`), "no apply state written");
  } finally {
    await lock.release();
  }
  await applyToFile(target, tracked.log);
  t.equal(fileHash(target), fileHash(tracked.image), "applied once the lock is free");
});
