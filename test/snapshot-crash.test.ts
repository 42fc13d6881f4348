// Crash safety of the snapshot step machines: every operation is stopped at EVERY fault point
// (each state-file step and each batch of the block copy), by an in-process hook that throws
// and, for merge and delete, by SIGKILL in a child process (`kill -9`). After each stop the
// remaining views must already read as the model says (never a mix), and a rerun must
// finish the operation with the chain valid, `vhdsync check` clean and no stray files.
import t from "tap";
import { cpSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { setFaultHook } from "../dist/snapshot/fault-injection.js";
import { createSnapshot, deleteSnapshot, listSnapshots, mergeSnapshots, revertSnapshot, snapshotPaths } from "../dist/snapshot/index.js";
import { CLI_PATH } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { SnapshotModel, buildChain, digestOf, modelMismatches } from "./helpers/snapshot-model.js";
import { tempDir } from "./helpers/tmp.js";
import { sha256 } from "./helpers/vhd.js";

/** Small pieces in process (many fault points inside the copy), larger ones for the slower kill -9 runs. */
const TUNING = { batchBytes: 48 * 1024, checkpointBytes: 96 * 1024, windowBytes: 64 * 1024 };
const KILL_TUNING = { batchBytes: 256 * 1024, checkpointBytes: 512 * 1024, windowBytes: 384 * 1024 };

class InjectedCrash extends Error {}

/** One operation to crash: how to run it (in-process and as CLI arguments) and the model afterwards. */
interface Scenario {
  name: string;
  /** The operation adds one snapshot (unknown id) that must read the active content. */
  addsSnapshot?: boolean;
  run: (disk: string) => Promise<unknown>;
  cli: (disk: string) => string[];
  after: SnapshotModel;
}

/** What must hold right after a crash, before any rerun: no view reads a mix. */
async function midCrashProblems(disk: string, before: SnapshotModel, scenario: Scenario): Promise<string[]> {
  const { after } = scenario;
  const problems: string[] = [];
  const active = await digestOf(disk);
  if (active !== sha256(after.active) && active !== sha256(before.active)) problems.push("active disk reads neither the old nor the new content");
  for (const layer of (await listSnapshots(disk)).layers) {
    if (layer.kind !== "snapshot") continue;
    const expected = after.snapshots.get(layer.id!) ?? (scenario.addsSnapshot ? before.active : undefined);
    if (!before.snapshots.has(layer.id!) && !expected) problems.push(`unknown snapshot ${layer.id} listed`);
    if (expected && (await digestOf(layer.path)) !== sha256(expected)) problems.push(`snapshot ${layer.id} reads a mix`);
  }
  return problems;
}

/** The model plus the one snapshot a create added (it must read what the active disk reads). */
async function adoptNewSnapshot(disk: string, model: SnapshotModel): Promise<SnapshotModel> {
  const next = model.clone();
  for (const layer of (await listSnapshots(disk)).layers) {
    if (layer.kind === "snapshot" && !model.snapshots.has(layer.id!)) next.snapshots.set(layer.id!, Buffer.from(model.active));
  }
  return next;
}

/** Copies the fixture into a fresh directory and returns the disk path there. */
function freshCopy(template: string, root: string, label: string): string {
  const dir = join(root, label);
  mkdirSync(dir);
  // Timestamps matter: a child records its parent's mtime.
  for (const name of readdirSync(template)) cpSync(join(template, name), join(dir, name), { preserveTimestamps: true });
  return join(dir, "disk.vhd");
}

/** Builds the fixture: base + 3 snapshots, then a revert to the second (a branch). */
async function fixture(prng: Prng, dir: string): Promise<{ disk: string; ids: string[]; model: SnapshotModel }> {
  const model = new SnapshotModel(512 * 1024, 16 * 1024);
  const { disk, ids } = await buildChain(prng, dir, model, 3);
  const extra = await createSnapshot(disk, { name: "top" });
  model.snapshots.set(extra.snapshot.id, Buffer.from(model.active));
  ids.push(extra.snapshot.id);
  return { disk, ids, model };
}

function scenarios(ids: string[], model: SnapshotModel): Scenario[] {
  const without = (...dropped: string[]) => {
    const next = model.clone();
    for (const id of dropped) next.snapshots.delete(id);
    return next;
  };
  const reverted = model.clone();
  reverted.active = Buffer.from(model.snapshots.get(ids[1])!);
  return [
    { name: "create", addsSnapshot: true, run: (disk) => createSnapshot(disk), cli: (disk) => ["snapshot", "create", disk], after: model.clone() },
    { name: "merge into parent", run: (disk) => mergeSnapshots(disk, TUNING), cli: (disk) => ["snapshot", "merge", disk], after: without(ids[3]) },
    { name: "merge --into the base", run: (disk) => mergeSnapshots(disk, { ...TUNING, into: ids[0] }), cli: (disk) => ["snapshot", "merge", disk, "--into", ids[0]], after: without(...ids) },
    { name: "delete a middle layer", run: (disk) => deleteSnapshot(disk, ids[1], TUNING), cli: (disk) => ["snapshot", "delete", disk, ids[1]], after: without(ids[1]) },
    { name: "delete the base", run: (disk) => deleteSnapshot(disk, ids[0], TUNING), cli: (disk) => ["snapshot", "delete", disk, ids[0]], after: without(ids[0]) },
    { name: "revert", run: (disk) => revertSnapshot(disk, ids[1]), cli: (disk) => ["snapshot", "revert", disk, ids[1]], after: reverted },
  ];
}

/** Runs `run` with a hook that throws at fault point `n`; true when it crashed there. */
async function crashInProcess(n: number, run: () => Promise<unknown>): Promise<boolean> {
  setFaultHook((index) => {
    if (index === n) throw new InjectedCrash(`fault point ${n}`);
  });
  try {
    await run();
    return false;
  } catch (error) {
    if (error instanceof InjectedCrash) return true;
    throw error;
  } finally {
    setFaultHook(undefined);
  }
}

/** Runs the CLI with VHDSYNC_FAULT_AT=n; true when it was killed there. */
function crashChild(n: number, args: string[]): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, VHDSYNC_FAULT_AT: String(n), VHDSYNC_SNAPSHOT_BATCH_BYTES: String(KILL_TUNING.batchBytes), VHDSYNC_SNAPSHOT_CHECKPOINT_BYTES: String(KILL_TUNING.checkpointBytes), VHDSYNC_SNAPSHOT_WINDOW_BYTES: String(KILL_TUNING.windowBytes) };
    const child = spawn(process.execPath, [CLI_PATH, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve(true);
      else if (code === 0) resolve(false);
      else reject(new Error(`vhdsync ${args.join(" ")} exited ${code}: ${stderr}`));
    });
  });
}

/** Crashes the scenario at every `stride`-th fault point from `first` on; checks mid-crash state and the rerun. Returns the last point reached. */
async function crashEverywhere(t: Tap.Test, scenario: Scenario, template: string, before: SnapshotModel, root: string, seed: number, mode: "hook" | "kill", first = 1, stride = 1): Promise<number> {
  for (let n = first; ; n += stride) {
    const disk = freshCopy(template, root, `${scenario.name.replace(/\W+/g, "-")}-${mode}-${n}`);
    const crashed = mode === "hook" ? await crashInProcess(n, () => scenario.run(disk)) : await crashChild(n, scenario.cli(disk));
    if (crashed) {
      const midway = await midCrashProblems(disk, before, scenario);
      if (midway.length) t.fail(`${scenario.name}, ${mode} at point ${n}: ${midway.join("; ")} (seed ${seed})`);
      // Rerun when the operation is still pending (a crash after its last step left nothing to do).
      if (existsSync(snapshotPaths(disk).state)) await scenario.run(disk);
    }
    const expected = scenario.addsSnapshot ? await adoptNewSnapshot(disk, scenario.after) : scenario.after;
    const problems = await modelMismatches(disk, expected, { strays: true });
    if (problems.length) t.fail(`${scenario.name}, ${mode} at point ${n}, after rerun: ${problems.join("; ")} (seed ${seed})`);
    if (!crashed) return n - stride;
  }
}

t.test("crash at every fault point, in process, then rerun", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const root = tempDir(t);
  const template = join(root, "template");
  mkdirSync(template);
  const { ids, model } = await fixture(prng, template);
  for (const scenario of scenarios(ids, model)) {
    const points = await crashEverywhere(t, scenario, template, model, root, seed, "hook");
    t.ok(points >= 4, `${scenario.name}: crashed and recovered at each of its ${points} fault points (seed ${seed})`);
  }
});

// kill -9 costs a process per point: every point of the merge --into the base (the longest
// machine: catalogue, multi-layer copy, swap, cleanup), every third point (seed-rotated) of
// a delete unless VHDSYNC_SNAPSHOT_KILL_ALL=1. The in-process test covers every point of all.
t.test("kill -9 at every fault point of merge (and of delete), then rerun", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const root = tempDir(t);
  const template = join(root, "template");
  mkdirSync(template);
  const { ids, model } = await fixture(prng, template);
  const all = Boolean(process.env.VHDSYNC_SNAPSHOT_KILL_ALL);
  for (const scenario of scenarios(ids, model).filter((candidate) => ["merge --into the base", "delete a middle layer"].includes(candidate.name))) {
    const stride = scenario.name.startsWith("merge") || all ? 1 : 3;
    const first = 1 + (seed % stride);
    const last = await crashEverywhere(t, scenario, template, model, root, seed, "kill", first, stride);
    t.ok(last >= 4, `${scenario.name}: killed and recovered at every ${stride === 1 ? "" : `${stride}rd `}fault point from ${first} to ${last} (seed ${seed})`);
  }
});
