// `vhdsync snapshot ...` through the CLI: JSON contract, exit codes, a broken chain
// (missing or replaced layer) refused with VHDSYNC_CHAIN_BROKEN and nothing modified, raw
// images refused with how to convert them, deletion of a layer with two children.
import t from "tap";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { createVhd } from "../dist/formats/vhd/index.js";
import { createSnapshot, deleteSnapshot, listSnapshots, mergeSnapshots, revertSnapshot } from "../dist/snapshot/index.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { SnapshotModel, chainFixture, modelMismatches, randomWrites } from "./helpers/snapshot-model.js";
import { tempDir } from "./helpers/tmp.js";

/** Content hash and mtime of every file in a directory. */
function snapshotOfDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    out[name] = `${createHash("sha256").update(readFileSync(path)).digest("hex")} ${statSync(path).mtimeMs}`;
  }
  return out;
}

function json(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

t.test("JSON contract of create, list, revert, delete, merge", async (t) => {
  const { seed, prng, dir, model, disk, ids } = await chainFixture(t, 2, 512 * 1024, 16 * 1024);

  const created = runCli(["snapshot", "create", disk, "--name", "cli-made", "--json"]);
  t.equal(created.status, 0, created.stderr);
  const snapshot = json(created.stdout).snapshot as { id: string; name: string; layer: string };
  t.equal(snapshot.name, "cli-made");
  t.match(snapshot.layer, /^disk-[0-9a-f]{8}\.vhd$/);
  model.snapshots.set(snapshot.id, Buffer.from(model.active));

  const duplicate = runCli(["snapshot", "create", disk, "--name", "cli-made"]);
  t.equal(duplicate.status, 2, "a used name is a usage error");

  const listed = runCli(["snapshot", "list", disk, "--json"]);
  t.equal(listed.status, 0, listed.stderr);
  const listing = json(listed.stdout) as { layers: { kind: string; id?: string; allocatedBytes: number; createdAt?: string }[]; pending: unknown };
  t.same(listing.layers.map((layer) => layer.kind), ["snapshot", "snapshot", "snapshot", "active"]);
  t.same(listing.layers.slice(0, 3).map((layer) => layer.id), [...ids, snapshot.id]);
  t.equal(listing.pending, null);
  t.ok(listing.layers[0].allocatedBytes > 0 && listing.layers[0].createdAt);
  const human = runCli(["snapshot", "list", disk]);
  t.match(human.stdout, /cli-made/);

  await randomWrites(prng, disk, model, 4);
  const reverted = runCli(["snapshot", "revert", disk, "level-1", "--json"]);
  t.equal(reverted.status, 0, reverted.stderr);
  model.active = Buffer.from(model.snapshots.get(ids[1])!);
  t.same(await modelMismatches(disk, model), [], `after revert (seed ${seed})`);

  // ids[1] now has two children: the cli-made snapshot and the active disk.
  await randomWrites(prng, disk, model, 4);
  const deleted = runCli(["snapshot", "delete", disk, ids[1], "--json"]);
  t.equal(deleted.status, 0, deleted.stderr);
  t.equal(json(deleted.stdout).deleted, ids[1]);
  model.snapshots.delete(ids[1]);
  t.same(await modelMismatches(disk, model), [], `after deleting a layer with two children (seed ${seed})`);

  // Both children now hang below ids[0]: merging the active disk into it is refused untouched.
  const refused = runCli(["snapshot", "merge", disk, "--json"]);
  t.equal(refused.status, 3);
  t.equal((json(refused.stdout).error as { code: string }).code, "VHDSYNC_UNSUPPORTED");
  t.same(await modelMismatches(disk, model), [], `refused merge changed nothing (seed ${seed})`);
  t.equal(runCli(["snapshot", "delete", disk, "cli-made"]).status, 0);
  model.snapshots.delete(snapshot.id);
  const merged = runCli(["snapshot", "merge", disk, "--json"]);
  t.equal(merged.status, 0, merged.stderr);
  t.same(json(merged.stdout).merged, [ids[0]]);
  model.snapshots.delete(ids[0]);
  t.same(await modelMismatches(disk, model, { strays: true }), [], `after merge (seed ${seed})`);

  const nothing = runCli(["snapshot", "merge", disk]);
  t.equal(nothing.status, 2, "merging a disk without a parent is a usage error");
  await t.rejects(deleteSnapshot(disk, "nope"), { code: "VHDSYNC_USAGE" });
  const resume = runCli(["snapshot", "resume", disk, "--json"]);
  t.same(json(resume.stdout).resumed, null);
  // Named relative to another directory, the disk is reported by its absolute path, as the other commands do.
  const relative = runCli(["snapshot", "resume", `./${basename(disk)}`, "--json"], { cwd: dir });
  t.equal(json(relative.stdout).disk, disk, "resume reports the disk's absolute path");
});

t.test("broken chain: VHDSYNC_CHAIN_BROKEN with the paths, nothing modified", async (t) => {
  const { dir, model, disk, ids } = await chainFixture(t, 3, 256 * 1024, 16 * 1024);
  const middle = join(dir, `disk-${ids[1]}.vhd`);

  renameSync(middle, join(dir, "moved-away.vhd"));
  let before = snapshotOfDir(dir);
  const attempts: [string, () => Promise<unknown>][] = [
    ["create", () => createSnapshot(disk)],
    ["delete", () => deleteSnapshot(disk, ids[2])],
    ["merge", () => mergeSnapshots(disk)],
    ["revert", () => revertSnapshot(disk, ids[0])],
    ["list", () => listSnapshots(disk)],
  ];
  for (const [name, attempt] of attempts) {
    await t.rejects(attempt(), { code: "VHDSYNC_CHAIN_BROKEN", message: new RegExp(middle) }, `${name}: chain broken, naming ${middle}`);
    t.same(snapshotOfDir(dir), before, `${name} modified nothing`);
  }
  const cli = runCli(["snapshot", "merge", disk]);
  t.equal(cli.status, 3, "the CLI exits 3");
  t.match(cli.stderr, /^vhdsync: VHDSYNC_CHAIN_BROKEN: .*moved|^vhdsync: VHDSYNC_CHAIN_BROKEN: /);
  t.same(snapshotOfDir(dir), before, "the CLI modified nothing");

  // A different VHD under the expected name (unique id mismatch).
  await (await createVhd(middle, { type: "dynamic", sizeBytes: model.diskBytes, blockSizeBytes: 16 * 1024 })).close();
  before = snapshotOfDir(dir);
  const result = runCli(["snapshot", "delete", disk, ids[0], "--json"]);
  t.equal(result.status, 3);
  t.equal((json(result.stdout).error as { code: string }).code, "VHDSYNC_CHAIN_BROKEN");
  t.same(snapshotOfDir(dir), before, "nothing modified");
});

t.test("raw images are refused with how to convert them", async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, "disk.img");
  writeFileSync(raw, Buffer.alloc(1024 * 1024, 7));
  const before = snapshotOfDir(dir);
  const result = runCli(["snapshot", "create", raw]);
  t.equal(result.status, 3);
  t.match(result.stderr, /VHDSYNC_UNSUPPORTED: .*raw image.*vhdsync convert/);
  t.same(snapshotOfDir(dir), before, "nothing written");

  // Following the advice works: a fixed VHD snapshots, and deleting that fixed base leaves a standalone dynamic disk.
  const vhd = join(dir, "disk.vhd");
  t.equal(runCli(["convert", raw, vhd, "--to", "vhd-fixed"]).status, 0);
  const model = new SnapshotModel(1024 * 1024);
  model.active.fill(7);
  const { snapshot } = await createSnapshot(vhd, { name: "converted" });
  model.snapshots.set(snapshot.id, Buffer.from(model.active));
  await randomWrites(new Prng(testSeed()), vhd, model, 8);
  t.same(await modelMismatches(vhd, model), []);
  await deleteSnapshot(vhd, "converted");
  model.snapshots.delete(snapshot.id);
  t.same(await modelMismatches(vhd, model, { strays: false }), []);
  t.equal((await listSnapshots(vhd)).layers[0].type, "dynamic");
});
