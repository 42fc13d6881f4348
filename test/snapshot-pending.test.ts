// What an unfinished snapshot operation (a crash left its state file) protects, and what a
// damaged catalogue may not do:
// - writers (resync, copy, convert --force; also resize and log apply) refuse the disk until it is
//   finished: finishing it renamed the merged layer over the disk, and what resync had written
//   meanwhile was lost;
// - the state file of a copied directory is not resumed in the copy: it names the original's
//   files, and resuming there finished the original's merge into the copy and broke the
//   original's chain;
// - a catalogue entry naming the active disk (or another entry's layer) is refused: deleting
//   that "snapshot" removed the active disk.
import t from "tap";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setFaultHook } from "../dist/snapshot/fault-injection.js";
import { deleteSnapshot, listSnapshots, mergeSnapshots, resumeSnapshotOperation } from "../dist/snapshot/index.js";
import { resync } from "../dist/sync/resync.js";
import { copy } from "../dist/sync/copy.js";
import { convertImage } from "../dist/sync/convert.js";
import { chainFixture, modelMismatches } from "./helpers/snapshot-model.js";
import { fileHash } from "./helpers/hrl-fixtures.js";
import { runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const DISK_BYTES = 2 * 1024 * 1024;
const BLOCK_BYTES = 64 * 1024;

class InjectedCrash extends Error {}

/** A merge of the active disk into its parent, stopped (as by a crash) at the first fault point whose label `at` matches. */
async function crashedMerge(disk: string, at: RegExp): Promise<void> {
  setFaultHook((_index, label) => {
    if (at.test(label)) throw new InjectedCrash(`fault point ${label}`);
  });
  try {
    await mergeSnapshots(disk, { batchBytes: BLOCK_BYTES });
    throw new Error("the merge was not stopped");
  } catch (error) {
    if (!(error instanceof InjectedCrash)) throw error;
  } finally {
    setFaultHook(undefined);
  }
}

/** Every file of `dir` with its SHA-256. */
function filesOf(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).map((name) => [name, fileHash(join(dir, name))]));
}

t.test("writers refuse a disk whose snapshot operation is unfinished; after resume the merge is whole", async (t) => {
  // Stopped mid-copy and at the swap (the step after the copy, which renames the merged layer over the disk).
  for (const at of [/^merge:copied /, /^merge:swap$/]) {
    await t.test(`stopped at ${at}`, async (t) => {
      const { seed, prng, dir, model, disk, ids } = await chainFixture(t, 2, DISK_BYTES, BLOCK_BYTES);
      await crashedMerge(disk, at);
      const source = join(tempDir(t), "source.raw");
      writeFileSync(source, prng.bytes(DISK_BYTES));
      const before = filesOf(dir);
      const refusal = { code: "VHDSYNC_BUSY", message: /snapshot operation is running or was left unfinished.*vhdsync snapshot resume/ };
      await t.rejects(resync(source, disk), refusal, `seed ${seed}: resync`);
      await t.rejects(copy(source, disk), refusal, "copy into it");
      await t.rejects(convertImage(source, disk, { to: "vhd-dynamic", overwrite: true }), refusal, "convert over it");
      const cli = runCli(["resync", source, disk]);
      t.equal(cli.status, 4, cli.stderr);
      t.match(cli.stderr, /^vhdsync: VHDSYNC_BUSY: .*snapshot operation is running or was left unfinished/m);
      // Through a symbolic link in another directory: the state file is beside the file the link names.
      const link = join(tempDir(t), "link.vhd");
      symlinkSync(disk, link);
      await t.rejects(resync(source, link), refusal, "resync through a link to the disk");
      t.same(filesOf(dir), before, "no file changed");
      t.equal((await resumeSnapshotOperation(disk))?.op, "merge");
      model.snapshots.delete(ids[1]);
      t.same(await modelMismatches(disk, model, { strays: true }), [], `seed ${seed}: the disk reads what it did before the merge`);
      t.equal((await resync(source, disk)).blocksChanged > 0, true, "once finished, the disk takes writes again");
    });
  }
});

t.test("the state file of a copied directory is not resumed in the copy; the original resumes, also through a symbolic link", async (t) => {
  const { seed, dir, model, disk, ids } = await chainFixture(t, 2, DISK_BYTES, BLOCK_BYTES);
  await crashedMerge(disk, /^merge:copied /);
  const clone = join(tempDir(t), "clone");
  spawnSync("cp", ["-a", dir, clone]);
  const [original, copied] = [filesOf(dir), filesOf(clone)];
  await t.rejects(resumeSnapshotOperation(join(clone, "disk.vhd")), { code: "VHDSYNC_BAD_STATE", message: /records is of .*disk\.vhd, not of .*clone.*disk\.vhd/ }, `seed ${seed}`);
  const cli = runCli(["snapshot", "merge", join(clone, "disk.vhd")]);
  t.equal(cli.status, 3, `any snapshot command refuses it: ${cli.stderr}`);
  t.same([filesOf(dir), filesOf(clone)], [original, copied], "neither directory changed");
  const link = join(tempDir(t), "link");
  symlinkSync(dir, link);
  t.equal((await resumeSnapshotOperation(join(link, "disk.vhd")))?.op, "merge", "the original's directory through a link is the same directory");
  model.snapshots.delete(ids[1]);
  t.same(await modelMismatches(disk, model, { strays: true }), [], `seed ${seed}: the original is whole`);
});

t.test("a catalogue entry naming the active disk or another entry's layer is refused; nothing is deleted", async (t) => {
  for (const bad of ["active", "duplicate"] as const) {
    await t.test(bad, async (t) => {
      const { seed, dir, disk, ids } = await chainFixture(t, 2, DISK_BYTES, BLOCK_BYTES);
      const cataloguePath = `${disk}.snapshots.json`;
      const catalogue = JSON.parse(readFileSync(cataloguePath, "utf8"));
      const listing = await listSnapshots(disk);
      const target = bad === "active" ? listing.layers.find((layer) => layer.kind === "active")! : listing.layers.find((layer) => layer.id === ids[0])!;
      const layer = bad === "active" ? "disk.vhd" : catalogue.snapshots[0].layer;
      catalogue.snapshots.push({ id: "00000001", name: "evil", createdAt: "2026-01-01T00:00:00.000Z", layer, uniqueId: target.uniqueId });
      writeFileSync(cataloguePath, JSON.stringify(catalogue));
      const before = filesOf(dir);
      const refusal = { code: "VHDSYNC_BAD_STATE", message: /snapshot 00000001 names .* the catalogue is damaged/ };
      await t.rejects(deleteSnapshot(disk, "evil"), refusal, `seed ${seed}: delete`);
      await t.rejects(listSnapshots(disk), refusal, "list");
      const cli = runCli(["snapshot", "delete", disk, "evil"]);
      t.equal(cli.status, 3, cli.stderr);
      t.same(filesOf(dir), before, "nothing changed, the active disk is there");
    });
  }
});
