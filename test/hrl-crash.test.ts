// Crashes: a child process applying a log is killed (SIGKILL via VHDSYNC_HRL_CRASH_AT) at
// random points, then the apply is resumed → the same image and a usable undo log. Logs left
// unclean by a tracking process that died are refused (VHDSYNC_HRL_UNCLEAN) and salvaged by
// recoverLog up to the last intact metadata block.
import t from "tap";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openLog } from "../dist/hrl/hrl-log.js";
import { readApplyState } from "../dist/hrl/apply-state.js";
import { recoverLog } from "../dist/hrl/recover-log.js";
import { applyToFile, fileHash, randomWrites, setup, trackWrites, type Write } from "./helpers/hrl-fixtures.js";

const DISK_BYTES = 1024 * 1024;
const DIST = fileURLToPath(new URL("../dist/", import.meta.url));

/** Runs `code` (an ES module body with `dist` bound to the build's URL) in a child process. */
function child(code: string, env: Record<string, string> = {}) {
  const prelude = `const dist = ${JSON.stringify("file://" + DIST)};\n`;
  return spawnSync(process.execPath, ["--input-type=module", "-e", prelude + code], { encoding: "utf8", env: { ...process.env, ...env } });
}

t.test("kill -9 during apply, then resume: same image, undo still exact", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const tracked = await trackWrites(dir, "src", base, randomWrites(prng, DISK_BYTES, 120, 40000));
  const points = ["undo:1", "commit:1", `entry:${1 + prng.int(119)}`, `checkpoint:${1 + prng.int(4)}`];
  for (const [i, point] of points.entries()) {
    const target = join(dir, `t${i}.raw`);
    const undo = join(dir, `u${i}.hrl`);
    copyFileSync(base, target);
    const code = `
      const { RawImage } = await import(dist + "formats/raw.js");
      const { applyLog } = await import(dist + "hrl/apply-log.js");
      const image = await RawImage.open(${JSON.stringify(target)}, false);
      await applyLog(image, ${JSON.stringify(tracked.log)}, { undoPath: ${JSON.stringify(undo)}, checkpointBytes: 200000 });
      await image.close();`;
    const run = child(code, { VHDSYNC_HRL_CRASH_AT: point });
    t.equal(run.signal, "SIGKILL", `seed ${seed} ${point}: child killed (${run.stderr})`);
    const state = await readApplyState(`${target}.hrl-state.json`);
    t.not(state.lastAppliedUniqueId, tracked.uniqueId, `${point}: not marked applied`);
    await applyToFile(target, tracked.log, { undoPath: undo });
    t.equal(fileHash(target), fileHash(tracked.image), `seed ${seed} ${point}: resumed apply == uninterrupted`);
    const after = await readApplyState(`${target}.hrl-state.json`);
    t.equal(after.lastAppliedUniqueId, tracked.uniqueId);
    t.equal(after.applying, null);
    await applyToFile(target, undo);
    t.equal(fileHash(target), fileHash(base), `seed ${seed} ${point}: undo restores the original`);
  }
});

t.test("an unfinished apply blocks other logs and a different undo path", async (t) => {
  const { prng, dir, base } = setup(t, DISK_BYTES);
  const a = await trackWrites(dir, "a", base, randomWrites(prng, DISK_BYTES, 40));
  const b = await trackWrites(dir, "b", base, randomWrites(prng, DISK_BYTES, 40));
  const target = join(dir, "t.raw");
  copyFileSync(base, target);
  const code = `
    const { RawImage } = await import(dist + "formats/raw.js");
    const { applyLog } = await import(dist + "hrl/apply-log.js");
    const image = await RawImage.open(${JSON.stringify(target)}, false);
    await applyLog(image, ${JSON.stringify(a.log)}, { checkpointBytes: 1 });`;
  t.equal(child(code, { VHDSYNC_HRL_CRASH_AT: "checkpoint:3" }).signal, "SIGKILL");
  await t.rejects(applyToFile(target, b.log, { checkSequence: false }), { code: "VHDSYNC_BAD_STATE" });
  await t.rejects(applyToFile(target, a.log, { undoPath: join(dir, "u.hrl") }), { code: "VHDSYNC_BAD_STATE" });
  const result = await applyToFile(target, a.log);
  t.ok(result.resumedFromEntry > 0, `resumed at entry ${result.resumedFromEntry}`);
  t.equal(fileHash(target), fileHash(a.image));
});

/** Replays writes on a copy of base. */
function replay(base: string, path: string, writes: Write[]): void {
  const bytes = new Uint8Array(readFileSync(base));
  for (const write of writes) bytes.set(write.data, write.offset);
  writeFileSync(path, bytes);
}

t.test("tracking process killed: unclean log refused, recover salvages a prefix", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const image = join(dir, "src.raw");
  copyFileSync(base, image);
  const log = join(dir, "src.hrl");
  const flushAfter = 20 + prng.int(40);
  const code = `
    const { RawImage } = await import(dist + "formats/raw.js");
    const { TrackedDisk } = await import(dist + "hrl/tracked-disk.js");
    const tracked = await TrackedDisk.open(await RawImage.open(${JSON.stringify(image)}, false), { logPath: () => ${JSON.stringify(log)}, writer: { batchBytes: 50000 } });
    const writes = JSON.parse(process.env.WRITES);
    for (const [i, [offset, length, fill]] of writes.entries()) {
      await tracked.write(new Uint8Array(length).fill(fill), offset);
      if (i + 1 === ${flushAfter}) await tracked.flush();
    }
    process.kill(process.pid, "SIGKILL");`;
  const specs = Array.from({ length: 100 }, () => {
    const length = 1 + prng.int(20000);
    return [prng.int(DISK_BYTES - length), length, prng.int(256)] as [number, number, number];
  });
  const run = child(code, { WRITES: JSON.stringify(specs) });
  t.equal(run.signal, "SIGKILL", run.stderr);
  await t.rejects(openLog(log), { code: "VHDSYNC_HRL_UNCLEAN" }, `seed ${seed}`);
  const target = join(dir, "t.raw");
  copyFileSync(base, target);
  await t.rejects(applyToFile(target, log), { code: "VHDSYNC_HRL_UNCLEAN" });
  t.equal(fileHash(target), fileHash(base), "nothing applied");
  t.notOk(existsSync(`${target}.hrl-state.json`));

  const recovered = join(dir, "recovered.hrl");
  const result = await recoverLog(log, recovered);
  const entries = result.output.entryCount;
  t.ok(entries >= flushAfter && entries <= specs.length, `seed ${seed}: ${entries} entries recovered, ≥ ${flushAfter} flushed`);
  const writes = specs.slice(0, entries).map(([offset, length, fill]) => ({ offset, data: new Uint8Array(length).fill(fill) }));
  const expected = join(dir, "expected.raw");
  replay(base, expected, writes);
  await applyToFile(target, recovered);
  t.equal(fileHash(target), fileHash(expected), `seed ${seed}: recovered log == the first ${entries} writes`);
});

t.test("recover stops before a block whose data is damaged", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const writes = randomWrites(prng, DISK_BYTES, 60, 5000);
  const tracked = await trackWrites(dir, "src", base, writes, { batchBytes: 20000 });
  const log = await openLog(tracked.log);
  const victim = log.entry(log.blockFirstEntry[2] + 1);
  const keptEntries = log.blockFirstEntry[2];
  await log.close();
  const bytes = new Uint8Array(readFileSync(tracked.log));
  bytes[victim.logPosition + prng.int(victim.dataLength)] ^= 0x5a;
  writeFileSync(tracked.log, bytes);
  const recovered = join(dir, "r.hrl");
  const result = await recoverLog(tracked.log, recovered);
  t.equal(result.output.entryCount, keptEntries, `seed ${seed}: entries before the damaged block`);
  const expected = join(dir, "expected.raw");
  replay(base, expected, writes.slice(0, keptEntries));
  const target = join(dir, "t.raw");
  copyFileSync(base, target);
  await applyToFile(target, recovered);
  t.equal(fileHash(target), fileHash(expected));
});

t.test("a sidecar changed where JSON cannot tell (nextEntry) is refused, not resumed from; an unsealed version 1 sidecar still resumes", async (t) => {
  const { seed, prng, dir, base } = setup(t, DISK_BYTES);
  const tracked = await trackWrites(dir, "src", base, randomWrites(prng, DISK_BYTES, 120, 40000));
  const crashed = (name: string) => {
    const target = join(dir, `${name}.raw`);
    copyFileSync(base, target);
    const code = `
      const { RawImage } = await import(dist + "formats/raw.js");
      const { applyLog } = await import(dist + "hrl/apply-log.js");
      const image = await RawImage.open(${JSON.stringify(target)}, false);
      await applyLog(image, ${JSON.stringify(tracked.log)}, { checkpointBytes: 100000 });`;
    t.equal(child(code, { VHDSYNC_HRL_CRASH_AT: "checkpoint:2" }).signal, "SIGKILL", `seed ${seed}: killed mid-apply`);
    const statePath = `${target}.hrl-state.json`;
    const saved = JSON.parse(readFileSync(statePath, "utf8"));
    t.equal(saved.version, 2);
    t.match(saved.checksum, /^[0-9a-f]{64}$/, "the sidecar is sealed");
    t.ok(saved.applying.nextEntry > 0 && saved.applying.nextEntry < 110, `mid-way (entry ${saved.applying.nextEntry})`);
    return { target, statePath, saved };
  };
  const damaged = crashed("damaged");
  writeFileSync(damaged.statePath, JSON.stringify({ ...damaged.saved, applying: { ...damaged.saved.applying, nextEntry: damaged.saved.applying.nextEntry + 10 } }));
  const before = fileHash(damaged.target);
  await t.rejects(applyToFile(damaged.target, tracked.log), { code: "VHDSYNC_BAD_STATE", message: /damaged/ }, "refused");
  t.equal(fileHash(damaged.target), before, "nothing written");
  // A sidecar written before the seal: version 1, no checksum.
  const legacy = crashed("legacy");
  const { checksum: _seal, ...fields } = legacy.saved;
  writeFileSync(legacy.statePath, JSON.stringify({ ...fields, version: 1 }));
  await applyToFile(legacy.target, tracked.log);
  t.equal(fileHash(legacy.target), fileHash(tracked.image), `seed ${seed}: resumed from the version 1 sidecar`);
  const after = JSON.parse(readFileSync(legacy.statePath, "utf8"));
  t.equal(after.version, 2, "and rewritten sealed");
  t.equal(after.lastAppliedUniqueId, tracked.uniqueId);
});
