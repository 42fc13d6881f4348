// Writing to a VHD that differencing disks depend on would change what they read: resync,
// copy and log apply refuse it (VHDSYNC_UNSUPPORTED, exit 3) before writing anything, as resize
// does; dry runs and the leaf of the chain are fine.
import t from "tap";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createVhd } from "../dist/formats/vhd/index.js";
import { openImage } from "../dist/formats/open-image.js";
import { resync } from "../dist/sync/resync.js";
import { copy } from "../dist/sync/copy.js";
import { applyLog } from "../dist/hrl/apply-log.js";
import { runCli } from "./helpers/cli.js";
import { fileHash, makeImage, randomWrites, trackWrites } from "./helpers/hrl-fixtures.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const MIB = 1024 * 1024;

/** A random raw source and an empty dynamic base.vhd with a differencing child.vhd, in a temp dir. */
async function chain(t: Parameters<typeof tempDir>[0]) {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const source = join(dir, "source.raw");
  makeImage(source, prng, 4 * MIB);
  const base = join(dir, "base.vhd");
  await (await createVhd(base, { type: "dynamic", sizeBytes: 4 * MIB, blockSizeBytes: 64 * 1024 })).close();
  const child = join(dir, "child.vhd");
  await (await createVhd(child, { type: "differencing", parentPath: base })).close();
  return { dir, source, base, child };
}

t.test("resync, copy and log apply refuse a disk that differencing disks depend on; its leaf takes them", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const source = join(dir, "source.raw");
  makeImage(source, prng, 4 * MIB);
  const parent = join(dir, "parent.vhd");
  const image = await createVhd(parent, { type: "dynamic", sizeBytes: 4 * MIB, blockSizeBytes: 64 * 1024 });
  await image.write(prng.bytes(MIB), MIB);
  await image.close();
  // The child is not named *.vhd: every file in the directory is looked at.
  const child = join(dir, "child.disk");
  await (await createVhd(child, { type: "differencing", parentPath: parent })).close();
  const { log } = await trackWrites(dir, "tracked", source, randomWrites(prng, 4 * MIB, 5));
  const before = [fileHash(parent), fileHash(child)];

  for (const [what, args] of [
    ["resync", ["resync", source, parent]],
    ["copy", ["copy", source, parent]],
    ["log apply", ["log", "apply", log, parent]],
  ] as const) {
    const run = runCli([...args, "--json"]);
    t.equal(run.status, 3, `${what}: exit 3 (seed ${seed})`);
    t.match(JSON.parse(run.stdout).error, { code: "VHDSYNC_UNSUPPORTED", details: { dependents: [child] } }, what);
    t.match(run.stderr, /differencing disks depend on .*child\.disk.*what they read would change/, what);
  }
  await t.rejects(resync(source, parent), { code: "VHDSYNC_UNSUPPORTED", details: { dependents: [child] } }, "resync (library)");
  await t.rejects(copy(source, parent), { code: "VHDSYNC_UNSUPPORTED" }, "copy (library)");
  const writable = await openImage(parent, { readOnly: false });
  await t.rejects(applyLog(writable, log), { code: "VHDSYNC_UNSUPPORTED" }, "applyLog (library)");
  await writable.close();
  // Through a symlink from another directory, the real file's directory is searched.
  mkdirSync(join(dir, "elsewhere"));
  symlinkSync(parent, join(dir, "elsewhere", "link.vhd"));
  t.equal(runCli(["resync", source, join(dir, "elsewhere", "link.vhd")]).status, 3, "through a symlink: refused");
  t.same([fileHash(parent), fileHash(child)], before, "nothing written to the parent or the child");
  // A child whose footer copy at 0 is damaged (its cookie too) is still found (by the footer at its end).
  for (const at of [100, 0]) {
    const damaged = readFileSync(child);
    damaged[at] ^= 0xff;
    writeFileSync(child, damaged);
    await t.rejects(resync(source, parent), { code: "VHDSYNC_UNSUPPORTED", details: { dependents: [child] } }, `a child whose footer copy is damaged at byte ${at}`);
    damaged[at] ^= 0xff;
    writeFileSync(child, damaged);
  }

  // A dry run writes nothing: allowed. The leaf of the chain takes the resync.
  t.equal(runCli(["resync", source, parent, "--dry-run"]).status, 0, "a dry run of the parent");
  t.equal(runCli(["resync", source, child]).status, 0, "resync into the leaf");
  t.equal(runCli(["compare", source, child]).status, 0, "the leaf equals the source");
  t.equal(fileHash(parent), before[0], "the parent unchanged");

  // Without dependents the parent is an ordinary target again.
  rmSync(child);
  t.equal(runCli(["resync", source, parent]).status, 0, "resync once the child is gone");
  t.equal(runCli(["compare", source, parent]).status, 0);
});

t.test("a copy of a parent (same unique id) beside it is not depended on: its child reads the original", async (t) => {
  const { dir, source, base, child } = await chain(t);
  // `cp base.vhd backup.vhd`: the same unique id, but the child's locators name base.vhd.
  const backup = join(dir, "backup.vhd");
  writeFileSync(backup, readFileSync(base));
  const before = [fileHash(base), fileHash(child)];
  t.equal(runCli(["resync", source, backup]).status, 0, "resync into the copy");
  t.equal(runCli(["compare", source, backup]).status, 0, "the copy equals the source");
  t.same([fileHash(base), fileHash(child)], before, "the parent and its child unchanged");
  // The parent itself is still refused.
  await t.rejects(resync(source, base), { code: "VHDSYNC_UNSUPPORTED", details: { dependents: [child] } }, "the real parent");
});

t.test("convert --force does not replace a disk that differencing disks depend on", async (t) => {
  const { dir, source, base, child } = await chain(t);
  const before = fileHash(base);
  // The replacement would get a new unique id: the child's chain would be broken.
  const run = runCli(["convert", source, base, "--to", "vhd-dynamic", "--force", "--json"]);
  t.equal(run.status, 3, "refused");
  t.match(JSON.parse(run.stdout).error, { code: "VHDSYNC_UNSUPPORTED", details: { dependents: [child] } });
  t.equal(runCli(["convert", base, base, "--to", "vhd-fixed", "--force"]).status, 3, "in place too");
  t.equal(fileHash(base), before, "the parent unchanged");
  t.equal(runCli(["check", child]).status, 0, "the child's chain intact");
  // The leaf, and an output that is no image, are replaced as before.
  t.equal(runCli(["convert", source, child, "--to", "vhd-dynamic", "--force"]).status, 0, "the leaf");
  const junk = join(dir, "junk.vhd");
  writeFileSync(junk, "junk");
  t.equal(runCli(["convert", source, junk, "--to", "raw", "--force"]).status, 0, "a file that is no image");
});
