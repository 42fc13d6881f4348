// Snapshot chains against an in-memory model: a 10-layer chain with random writes at every
// level, then seeded creates, reverts, deletes and merges; after every operation every
// snapshot and the active disk read like the model and `vhdsync check` passes on every layer.
import t from "tap";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { createSnapshot, deleteSnapshot, listSnapshots, mergeSnapshots, resumeSnapshotOperation, revertSnapshot } from "../dist/snapshot/index.js";
import { resync } from "../dist/sync/resync.js";
import { openImage } from "../dist/formats/open-image.js";
import { createVhd } from "../dist/formats/vhd/index.js";
import { VhdDynamicImage } from "../dist/formats/vhd/vhd-dynamic-image.js";
import { runCli } from "./helpers/cli.js";
import { Prng } from "./helpers/prng.js";
import { SnapshotModel, chainFixture, modelMismatches, randomWrites, strayFiles } from "./helpers/snapshot-model.js";
import { tempDir } from "./helpers/tmp.js";

/** vhdiinfo's "Parent filename" line for a layer. */
function vhdiinfoParent(path: string): string | undefined {
  const result = spawnSync("vhdiinfo", [path], { encoding: "utf8" });
  return /Parent filename\s*:\s*(.+)/.exec(result.stdout)?.[1]?.trim();
}

/** A random ancestor snapshot of the active disk that no other snapshot depends on down the way (or undefined). */
async function mergeableTarget(prng: Prng, disk: string): Promise<string | undefined> {
  const { layers } = await listSnapshots(disk);
  const children = new Map<string, number>();
  for (const layer of layers) if (layer.parentPath) children.set(layer.parentPath, (children.get(layer.parentPath) ?? 0) + 1);
  const chain = layers.filter((layer) => layer.onActiveChain && layer.kind !== "active").reverse();
  const valid: string[] = [];
  for (const layer of chain) {
    if (layer.kind !== "snapshot" || children.get(layer.path) !== 1) break;
    valid.push(layer.id!);
  }
  return valid.length > 0 ? valid[prng.int(valid.length)] : undefined;
}

type Op = "create" | "revert" | "delete" | "merge" | "merge-into" | "write";

async function runOp(op: Op, prng: Prng, disk: string, model: SnapshotModel, ids: string[]): Promise<string> {
  const pick = () => ids[prng.int(ids.length)];
  switch (op) {
    case "write":
      await randomWrites(prng, disk, model, 4);
      return "write";
    case "create": {
      const { snapshot } = await createSnapshot(disk);
      model.snapshots.set(snapshot.id, Buffer.from(model.active));
      ids.push(snapshot.id);
      return `create ${snapshot.id}`;
    }
    case "revert": {
      const id = pick();
      await revertSnapshot(disk, id);
      model.active = Buffer.from(model.snapshots.get(id)!);
      return `revert ${id}`;
    }
    case "delete": {
      const id = pick();
      await deleteSnapshot(disk, id);
      model.snapshots.delete(id);
      ids.splice(ids.indexOf(id), 1);
      return `delete ${id}`;
    }
    case "merge":
    case "merge-into": {
      const into = op === "merge-into" ? await mergeableTarget(prng, disk) : undefined;
      try {
        const { merged } = await mergeSnapshots(disk, { into });
        for (const id of merged) {
          model.snapshots.delete(id);
          ids.splice(ids.indexOf(id), 1);
        }
        return `merge into ${into ?? "parent"}: consumed ${merged}`;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === "VHDSYNC_UNSUPPORTED" || code === "VHDSYNC_USAGE") return `merge into ${into ?? "parent"} refused (${code})`;
        throw error;
      }
    }
  }
}

t.test("10-layer chain: every view keeps its content through random operations", async (t) => {
  const { seed, prng, dir, model, disk, ids } = await chainFixture(t, 10);
  t.same(await modelMismatches(disk, model), [], `after building the chain (seed ${seed})`);

  const listing = await listSnapshots(disk);
  t.equal(listing.layers.length, 11, `base + 9 snapshot layers + active (seed ${seed})`);
  for (const layer of listing.layers.filter((entry) => entry.parentPath)) {
    t.equal(vhdiinfoParent(layer.path), layer.parentPath, `vhdiinfo reports the parent of ${basename(layer.path)}`);
  }

  const ops: Op[] = ["delete", "merge-into", "write", "create", "merge", "revert", "write", "delete", "create", "merge-into", "delete", "revert", "merge", "delete", "write", "delete", "merge-into"];
  for (const op of ops) {
    if (ids.length === 0 && (op === "revert" || op === "delete")) continue;
    const done = await runOp(op, prng, disk, model, ids);
    t.same(await modelMismatches(disk, model), [], `after ${done} (seed ${seed})`);
  }
  t.same(strayFiles(dir, await listSnapshots(disk)), [], `no temp or state files left (seed ${seed})`);
  for (const layer of (await listSnapshots(disk)).layers.filter((entry) => entry.parentPath)) {
    t.equal(vhdiinfoParent(layer.path), layer.parentPath, `vhdiinfo reports the parent of ${basename(layer.path)} at the end`);
  }
});

t.test("deleting the base layer makes its child a standalone dynamic disk", async (t) => {
  const { seed, dir, model, disk, ids } = await chainFixture(t, 3);
  await deleteSnapshot(disk, ids[0]);
  model.snapshots.delete(ids[0]);
  t.same(await modelMismatches(disk, model), [], `seed ${seed}`);
  const base = (await listSnapshots(disk)).layers[0];
  t.equal(base.type, "dynamic", "the new base is dynamic");
  t.equal(base.id, ids[1]);
  t.equal(dirname(base.path), dir);
  t.equal(vhdiinfoParent(base.path), undefined, "vhdiinfo sees no parent");
});

t.test("revert keeps later snapshots as a branch; merge into a shared layer is refused untouched", async (t) => {
  const { seed, prng, dir, model, disk, ids } = await chainFixture(t, 3);
  await revertSnapshot(disk, "level-1");
  model.active = Buffer.from(model.snapshots.get(ids[1])!);
  t.same(await modelMismatches(disk, model), [], `seed ${seed}`);
  const listing = await listSnapshots(disk);
  const branch = listing.layers.find((layer) => layer.id === ids[2])!;
  t.equal(branch.onActiveChain, false, "the later snapshot is a branch");
  t.equal(branch.parentId, ids[1]);
  await t.rejects(mergeSnapshots(disk), { code: "VHDSYNC_UNSUPPORTED" }, "level-1 has another child");
  t.same(await modelMismatches(disk, model), [], `nothing changed (seed ${seed})`);
  await deleteSnapshot(disk, ids[2]);
  model.snapshots.delete(ids[2]);
  await randomWrites(prng, disk, model, 5);
  const { merged } = await mergeSnapshots(disk);
  t.same(merged, [ids[1]]);
  model.snapshots.delete(ids[1]);
  t.same(await modelMismatches(disk, model), [], `after merge (seed ${seed})`);
  t.equal(join(dir, "disk.vhd"), disk);
});

t.test("sector precision: a one-sector child write merges without touching the parent's other sectors", async (t) => {
  const dir = tempDir(t);
  const model = new SnapshotModel(256 * 1024, 64 * 1024);
  const disk = join(dir, "disk.vhd");
  await (await createVhd(disk, { type: "dynamic", sizeBytes: model.diskBytes, blockSizeBytes: model.blockBytes })).close();
  const image = await openImage(disk, { readOnly: false });
  const full = Buffer.alloc(model.blockBytes, 0xaa);
  await image.write(full, 0);
  await image.close();
  model.active.set(full, 0);
  const { snapshot } = await createSnapshot(disk);
  model.snapshots.set(snapshot.id, Buffer.from(model.active));
  const child = await openImage(disk, { readOnly: false });
  const sector = Buffer.alloc(512, 0x55);
  await child.write(sector, 4096);
  t.same(await child.allocationMap(0, model.diskBytes, "layer"), [{ offset: 4096, length: 512 }], "the child holds exactly the sector it wrote");
  await child.close();
  model.active.set(sector, 4096);
  const { merged } = await mergeSnapshots(disk);
  t.same(merged, [snapshot.id]);
  model.snapshots.delete(snapshot.id);
  t.same(await modelMismatches(disk, model), [], "the parent's other sectors of that block survive the merge");
});

t.test("merge and delete list the layers' ranges a window at a time (never the whole map), and read right", async (t) => {
  // They took each layer's whole allocation map: 262,144 runs of a differencing layer held
  // 148 MB of RSS. Every map call must now stay inside one window.
  const { seed, model, disk, ids } = await chainFixture(t, 4);
  const windowBytes = 96 * 1024; // not a multiple of the 16 KiB blocks' 48 KiB batches: runs cross windows
  const calls: { offset: number; length: number }[] = [];
  const original = VhdDynamicImage.prototype.allocationMap;
  VhdDynamicImage.prototype.allocationMap = function (this: InstanceType<typeof VhdDynamicImage>, offset?: number, length?: number, scope?: "layer" | "chain") {
    if (scope === "layer") calls.push({ offset: offset ?? 0, length: length ?? this.virtualSize - (offset ?? 0) });
    return original.call(this, offset, length, scope);
  };
  t.teardown(() => {
    VhdDynamicImage.prototype.allocationMap = original;
  });
  const tuning = { windowBytes, batchBytes: 48 * 1024, checkpointBytes: 64 * 1024 };
  await deleteSnapshot(disk, ids[1], tuning);
  model.snapshots.delete(ids[1]);
  const windowsAfterDelete = calls.length;
  const { merged } = await mergeSnapshots(disk, { ...tuning, into: ids[2] });
  t.same(merged.sort(), [ids[2], ids[3]].sort());
  for (const id of merged) model.snapshots.delete(id);
  t.same(await modelMismatches(disk, model, { check: true }), [], `seed ${seed}`);
  t.ok(windowsAfterDelete >= model.diskBytes / windowBytes, `delete listed ${windowsAfterDelete} windows`);
  t.ok(calls.length > windowsAfterDelete, "merge listed windows too");
  const outside = calls.filter(({ offset, length }) => length > windowBytes || Math.floor(offset / windowBytes) !== Math.floor((offset + length - 1) / windowBytes));
  t.same(outside, [], "every map call inside one window");
  await t.rejects(deleteSnapshot(disk, ids[0], { windowBytes: 1000 }), { code: "VHDSYNC_USAGE" }, "a window that is not a multiple of 512 is refused");
});

const DIST = (module: string) => new URL(`../dist/${module}`, import.meta.url).href;

/**
 * A process holding a lock on `disk` until its stdin closes: the snapshot lock (with the disk's
 * write lock, as an operation holds them) or only the disk's write lock (as a resync does).
 * Resolves once it holds it.
 */
async function lockHolder(t: Parameters<typeof tempDir>[0], disk: string, kind: "snapshot" | "write"): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", `
    const { withDiskLock } = await import(${JSON.stringify(DIST("snapshot/disk-lock.js"))});
    const { snapshotPaths } = await import(${JSON.stringify(DIST("snapshot/snapshot-paths.js"))});
    const { acquireWriteLock } = await import(${JSON.stringify(DIST("io/write-lock.js"))});
    const until = () => new Promise((resolve) => { process.stdout.write("held\\n"); process.stdin.resume(); process.stdin.on("end", resolve); });
    if (process.argv[2] === "snapshot") await withDiskLock(snapshotPaths(process.argv[1]), until);
    else { const lock = await acquireWriteLock(process.argv[1], "resync"); await until(); await lock.release(); }
  `, disk, kind], { stdio: ["pipe", "pipe", "inherit"] });
  t.teardown(() => child.kill("SIGKILL"));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk) => String(chunk).includes("held") && resolve());
    child.on("exit", (code) => reject(new Error(`lock holder exited (${code})`)));
  });
  return child;
}

t.test("one operation at a time per disk, in one process or across processes; none while another run writes the disk", async (t) => {
  const { seed, dir, model, disk } = await chainFixture(t, 1, 256 * 1024, 16 * 1024);
  // In one process: two creates at once. One wins; the other is refused, and the catalogue
  // holds exactly the winner's snapshot (before the lock was a socket both won, and one
  // snapshot was lost).
  const runs = await Promise.allSettled([createSnapshot(disk, { name: "a" }), createSnapshot(disk, { name: "b" })]);
  const won = runs.flatMap((run) => (run.status === "fulfilled" ? [run.value.snapshot] : []));
  t.equal(won.length, 1, `one create wins (seed ${seed})`);
  t.match(runs.find((run) => run.status === "rejected"), { reason: { code: "VHDSYNC_BUSY", recoverable: true, message: /in this process/ } });
  model.snapshots.set(won[0].id, Buffer.from(model.active));
  t.same(await modelMismatches(disk, model, { strays: true }), [], "the catalogue holds the winner's snapshot; nothing stray");

  // Another process runs an operation: refused, naming it; so is a resync into the disk.
  const holder = await lockHolder(t, disk, "snapshot");
  await t.rejects(createSnapshot(disk), { code: "VHDSYNC_BUSY", recoverable: true, details: { pid: holder.pid } });
  await t.rejects(revertSnapshot(disk, won[0].id), { code: "VHDSYNC_BUSY" });
  const source = join(tempDir(t), "source.img");
  writeFileSync(source, Buffer.alloc(model.diskBytes, 7));
  await t.rejects(resync(source, disk), { code: "VHDSYNC_BUSY", details: { pid: holder.pid } }, "a resync into the disk waits for the operation");
  const cli = runCli(["snapshot", "create", disk]);
  t.equal(cli.status, 4, "the CLI exits 4 (recoverable)");
  t.match(cli.stderr, /^vhdsync: VHDSYNC_BUSY: another vhdsync snapshot operation \(process \d+\)/);
  t.same(await modelMismatches(disk, model, { strays: true }), [], "nothing changed");
  // Killed (kill -9): the kernel frees the lock; nothing to take over, no file left.
  holder.kill("SIGKILL");
  await new Promise((resolve) => holder.once("exit", resolve));
  const { snapshot } = await createSnapshot(disk);
  model.snapshots.set(snapshot.id, Buffer.from(model.active));

  // A resync (another process) writes the disk: no operation starts on it.
  const writer = await lockHolder(t, disk, "write");
  await t.rejects(createSnapshot(disk), { code: "VHDSYNC_BUSY", message: /being written by process \d+/, details: { pid: writer.pid } });
  await t.rejects(mergeSnapshots(disk), { code: "VHDSYNC_BUSY" });
  writer.stdin!.end();
  await new Promise((resolve) => writer.once("exit", resolve));
  t.same(await modelMismatches(disk, model, { strays: true }), [], `stale-free after both (seed ${seed})`);
  t.same(readdirSync(dir).filter((name) => name.endsWith(".lock")), [], "no lock files");
});

t.test("a disk in a missing directory: every operation fails with VHDSYNC_NOT_FOUND", async (t) => {
  const disk = join(tempDir(t), "gone", "disk.vhd");
  for (const [name, run] of [
    ["create", () => createSnapshot(disk)],
    ["revert", () => revertSnapshot(disk, "s")],
    ["delete", () => deleteSnapshot(disk, "s")],
    ["merge", () => mergeSnapshots(disk)],
    ["resume", () => resumeSnapshotOperation(disk)],
    ["resume, the directory there", () => resumeSnapshotOperation(join(dirname(dirname(disk)), "gone.vhd"))],
  ] as const) {
    await t.rejects(run(), { name: "VhdsyncError", code: "VHDSYNC_NOT_FOUND" }, name);
  }
});

t.test("differencing disks vhdsync does not manage protect the layers they depend on", async (t) => {
  const { seed, dir, model, disk, ids } = await chainFixture(t, 2, 256 * 1024, 16 * 1024);
  const onLayer = join(dir, "by-hand.vhd");
  await (await createVhd(onLayer, { type: "differencing", parentPath: join(dir, `disk-${ids[0]}.vhd`) })).close();
  await t.rejects(deleteSnapshot(disk, ids[0]), { code: "VHDSYNC_UNSUPPORTED" }, "delete refused");
  await t.rejects(mergeSnapshots(disk, { into: ids[0] }), { code: "VHDSYNC_UNSUPPORTED" }, "merge into it refused");
  const onActive = join(dir, "on-active.vhd");
  await (await createVhd(onActive, { type: "differencing", parentPath: disk })).close();
  await t.rejects(createSnapshot(disk), { code: "VHDSYNC_UNSUPPORTED" }, "snapshot of a parent refused");
  await t.rejects(revertSnapshot(disk, ids[1]), { code: "VHDSYNC_UNSUPPORTED" }, "revert of a parent refused");
  t.same(await modelMismatches(disk, model), [], `nothing changed (seed ${seed})`);
  for (const path of [onLayer, onActive]) await (await openImage(path)).close();
  t.pass("the unmanaged children still open");
});
