// A really full filesystem (ENOSPC from the kernel, not simulated): every writing command run
// into a small tmpfs that fills part-way exits 4 with one line `vhdsync: VHDSYNC_NO_SPACE: ...`
// on stderr (no stack trace), leaves no half-written new output or temp file behind, leaves an
// existing VHD checking clean, and a rerun (resync: --resume; snapshot: resume) after making
// room finishes with the source's content. Needs root (mount); skipped with the reason
// otherwise. Each filesystem is unmounted (lazily) when its test ends.
import t, { type Test } from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli as runCliWithTap } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { trackWrites, type Write } from "./helpers/hrl-fixtures.js";

const MIB = 1024 * 1024;
const seed = testSeed();
const qemuImg = spawnSync("qemu-img", ["--version"]).status === 0;

/** The CLI without tap's loaders in NODE_OPTIONS (they double each run's start-up). */
function runCli(args: string[]) {
  return runCliWithTap(args, { env: { ...process.env, NODE_OPTIONS: "" } });
}

type Teardown = { teardown: (fn: () => void) => void };

/** Mounts a fresh tmpfs of `sizeMiB`; its path, or why that is impossible here. */
function mountTmpfs(t: Teardown, sizeMiB = 24): { dir?: string; reason?: string } {
  if (process.getuid?.() !== 0) return { reason: "mounting a small filesystem needs root" };
  const dir = mkdtempSync(join(tmpdir(), "vhdsync-nospace-"));
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m`, "tmpfs", dir], { encoding: "utf8" });
  if (mounted.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { reason: `cannot mount a tmpfs here: ${(mounted.stderr || mounted.error?.message || "").trim()}` };
  }
  // One teardown, in this order: a removal reaching into the still mounted tmpfs would fail.
  t.teardown(() => {
    spawnSync("umount", ["--lazy", dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir };
}

/** Fills `dir`'s filesystem with `dir/filler` so that about `freeBytes` stay free. */
function fill(dir: string, freeBytes: number): void {
  const filler = join(dir, "filler");
  rmSync(filler, { force: true });
  const stats = statfsSync(dir);
  let left = Math.max(0, stats.bavail * stats.bsize - freeBytes);
  const chunk = Buffer.alloc(MIB, 1);
  const fd = openSync(filler, "w");
  try {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      writeSync(fd, chunk, 0, n);
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}

/** Makes room again. */
function unfill(dir: string): void {
  rmSync(join(dir, "filler"), { force: true });
}

/** The names in `dir` but the filler (hidden temp files included). */
function leftIn(dir: string): string[] {
  return readdirSync(dir).filter((name) => name !== "filler").sort();
}

function writeRandom(path: string, bytes: number, prng: Prng): void {
  writeFileSync(path, prng.bytes(bytes));
}

/** A sparse raw file of `bytes` with random data in its first `dataBytes`. */
function writeSparse(path: string, bytes: number, dataBytes: number, prng: Prng): void {
  writeFileSync(path, prng.bytes(dataBytes));
  truncateSync(path, bytes);
}

/** The last lines of a stderr that went wrong (a crash prints the minified bundle's line first). */
function tail(stderr: string): string {
  return stderr.trim().split("\n").slice(-12).join("\n").slice(-1500);
}

/** Checks a run that met a full filesystem: exit 4, one line of VHDSYNC_NO_SPACE, no stack. */
function expectNoSpace(t: Test, result: { status: number; stderr: string }, what: string): void {
  t.equal(result.status, 4, `seed ${seed}: ${what}: exit 4 (${tail(result.stderr)})`);
  t.match(result.stderr, /^vhdsync: VHDSYNC_NO_SPACE: [^\n]+\n$/, `${what}: one line, VHDSYNC_NO_SPACE`);
  t.notMatch(result.stderr, /\n\s+at /, `${what}: no stack trace`);
}

function expectOk(t: Test, result: { status: number; stderr: string }, what: string): void {
  t.equal(result.status, 0, `${what}: exit 0 ${tail(result.stderr)}`);
}

/** vhdsync compare (and qemu-img compare for VHDs, when installed) say `a` and `b` hold the same. */
function expectSame(t: Test, a: string, b: string, what: string, withQemu = true): void {
  const compared = runCli(["compare", "--strict", a, b]);
  t.equal(compared.status, 0, `${what}: vhdsync compare: ${compared.stdout.trim()}${compared.stderr.trim()}`);
  // (qemu's vpc driver reads no differencing disks: not for those)
  if (withQemu && qemuImg && b.endsWith(".vhd")) {
    const q = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "vpc", a, b], { encoding: "utf8" });
    t.equal(q.status, 0, `${what}: qemu-img compare: ${q.stdout.trim()}${q.stderr.trim()}`);
  }
}

function expectChecksClean(t: Test, path: string, what: string): void {
  const checked = runCli(["check", path]);
  t.equal(checked.status, 0, `${what}: ${checked.stdout.trim()}${checked.stderr.trim()}`);
}

t.test("copy, resync, convert, checksum, create and resize on a full tmpfs", async (t) => {
  const { dir: full, reason } = mountTmpfs(t);
  if (!full) return t.plan(0, reason);
  const prng = new Prng(seed);
  const work = tempDir(t);
  const source = join(work, "source.raw");
  writeRandom(source, 16 * MIB, prng);

  // copy into a new target: nothing at its name, no temp file.
  fill(full, 4 * MIB);
  const target = join(full, "copy.raw");
  expectNoSpace(t, runCli(["copy", source, target]), "copy into a new target");
  t.same(leftIn(full), [], "the new target and its temp file are gone");
  unfill(full);
  expectOk(t, runCli(["copy", source, target]), "copy rerun with room");
  expectSame(t, source, target, "copy rerun");
  rmSync(target);

  // copy into an existing (sparse) target: written in place; a rerun finishes it.
  writeFileSync(join(full, "existing.raw"), "");
  truncateSync(join(full, "existing.raw"), 16 * MIB);
  fill(full, 4 * MIB);
  expectNoSpace(t, runCli(["copy", source, join(full, "existing.raw")]), "copy into an existing target");
  t.same(leftIn(full), ["existing.raw"], "the existing target stays, nothing beside it");
  unfill(full);
  expectOk(t, runCli(["copy", source, join(full, "existing.raw")]), "copy rerun into the existing target");
  expectSame(t, source, join(full, "existing.raw"), "copy rerun into the existing target");
  rmSync(join(full, "existing.raw"));

  // resync into a sparse raw target that must allocate (checkpoint beside it, on the full fs).
  const raw = join(full, "sparse.raw");
  writeFileSync(raw, "");
  truncateSync(raw, 16 * MIB);
  fill(full, 4 * MIB);
  expectNoSpace(t, runCli(["resync", source, raw]), "resync into a sparse raw target");
  t.same(leftIn(full), ["sparse.raw"], "no checkpoint temp file left");
  unfill(full);
  expectOk(t, runCli(["resync", "--resume", source, raw]), "resync --resume with room");
  expectSame(t, source, raw, "resync into raw");
  t.same(leftIn(full), ["sparse.raw"], "the checkpoint is removed after success");
  rmSync(raw);

  // resync into a dynamic VHD that must allocate blocks, 32 MiB into 24 MiB, the checkpoint
  // elsewhere (with room): the first segments are written and checkpointed, the resume
  // continues from there once the filesystem has grown.
  const large = join(work, "large.raw");
  writeRandom(large, 32 * MIB, prng);
  const vhd = join(full, "dynamic.vhd");
  expectOk(t, runCli(["create", "--type", "dynamic", "--size", "32M", vhd]), "create the dynamic target");
  const checkpoint = join(work, "dynamic.checkpoint");
  expectNoSpace(t, runCli(["resync", "--checkpoint", checkpoint, large, vhd]), "resync into a dynamic VHD");
  expectChecksClean(t, vhd, "the half-written dynamic VHD checks clean");
  t.ok(existsSync(checkpoint), "a checkpoint was saved");
  t.equal(spawnSync("mount", ["-o", "remount,size=48m", full]).status, 0, "the tmpfs grown to 48 MiB");
  const resumed = runCli(["resync", "--json", "--resume", "--checkpoint", checkpoint, large, vhd]);
  expectOk(t, resumed, "resync --resume into the VHD");
  t.ok(JSON.parse(resumed.stdout || "{}").resumedFromBlock > 0, "continued from the checkpoint");
  expectChecksClean(t, vhd, "the finished VHD checks clean");
  expectSame(t, large, vhd, "resync into a dynamic VHD");
  rmSync(vhd);
  t.equal(spawnSync("mount", ["-o", "remount,size=24m", full]).status, 0, "the tmpfs back at 24 MiB");

  // convert: the output appears only complete.
  for (const to of ["raw", "vhd-fixed", "vhd-dynamic"]) {
    const out = join(full, `converted.${to}`);
    fill(full, 4 * MIB);
    expectNoSpace(t, runCli(["convert", source, out, "--to", to]), `convert --to ${to}`);
    t.same(leftIn(full), [], `convert --to ${to}: no output, no temp file`);
    unfill(full);
    expectOk(t, runCli(["convert", source, out, "--to", to]), `convert --to ${to} rerun`);
    expectSame(t, source, out, `convert --to ${to}`);
    rmSync(out);
  }

  // checksum -o: a new digest never appears half-written; an existing one is kept.
  const digest = join(full, "source.digest");
  fill(full, 64 * 1024);
  expectNoSpace(t, runCli(["checksum", source, "-o", digest]), "checksum -o");
  t.same(leftIn(full), [], "no digest, no temp file");
  unfill(full);
  expectOk(t, runCli(["checksum", source, "-o", digest]), "checksum rerun");
  const before = readFileSync(digest);
  const other = join(work, "other.raw");
  writeRandom(other, 16 * MIB, prng);
  fill(full, 64 * 1024);
  expectNoSpace(t, runCli(["checksum", other, "-o", digest]), "checksum -o over an existing digest");
  t.ok(readFileSync(digest).equals(before), "the existing digest is unchanged");
  t.same(leftIn(full), ["source.digest"], "no temp file beside it");
  unfill(full);
  rmSync(digest);

  // create: a half-written new VHD is removed, so the rerun is not refused as existing.
  for (const type of ["fixed", "dynamic"]) {
    const created = join(full, `created-${type}.vhd`);
    fill(full, 0);
    expectNoSpace(t, runCli(["create", "--type", type, "--size", "8M", created]), `create --type ${type}`);
    t.same(leftIn(full), [], `create --type ${type}: no half-written file`);
    unfill(full);
    expectOk(t, runCli(["create", "--type", type, "--size", "8M", created]), `create --type ${type} rerun`);
    expectChecksClean(t, created, `created ${type}`);
    rmSync(created);
  }
  const parent = join(work, "parent.vhd");
  expectOk(t, runCli(["convert", source, parent, "--to", "vhd-dynamic"]), "a parent");
  fill(full, 0);
  expectNoSpace(t, runCli(["create", "--type", "differencing", "--parent", parent, join(full, "child.vhd")]), "create --type differencing");
  t.same(leftIn(full), [], "create --type differencing: no half-written file");
  unfill(full);

  // resize: growing a dynamic VHD with small blocks needs a larger BAT (blocks move); growing a
  // fixed VHD writes the footer further on. Both unchanged and clean when that fails.
  const small = join(work, "small.raw");
  writeRandom(small, 4 * MIB, prng);
  const dynamic = join(full, "resize-dynamic.vhd");
  expectOk(t, runCli(["convert", small, dynamic, "--to", "vhd-dynamic", "--block-size", "4K"]), "a dynamic VHD with 4 KiB blocks");
  // The 8 MiB BAT does not fit in 6 MiB; the failed grow leaves its footer moved and ~6 MiB
  // of BAT written. The rerun, with 4 MiB free, puts the BAT where that one began (it needed
  // 8 MiB more behind the moved footer, again on every retry).
  fill(full, 6 * MIB);
  expectNoSpace(t, runCli(["resize", dynamic, "8G"]), "resize (grow) a dynamic VHD");
  expectChecksClean(t, dynamic, "after the failed resize");
  t.match(runCli(["info", "--json", dynamic]).stdout, /"virtualSize":4194304\b/, "still its old size");
  expectSame(t, small, dynamic, "the failed resize");
  fill(full, 4 * MIB);
  expectOk(t, runCli(["resize", dynamic, "8G"]), "resize rerun in the room the failed one took");
  unfill(full);
  expectChecksClean(t, dynamic, "after the resize");
  rmSync(dynamic);
  const fixed = join(full, "resize-fixed.vhd");
  expectOk(t, runCli(["convert", small, fixed, "--to", "vhd-fixed"]), "a fixed VHD");
  fill(full, 0);
  expectNoSpace(t, runCli(["resize", fixed, "8M"]), "resize (grow) a fixed VHD");
  expectChecksClean(t, fixed, "after the failed resize");
  expectSame(t, small, fixed, "the failed fixed resize");
  unfill(full);
  expectOk(t, runCli(["resize", fixed, "8M"]), "fixed resize rerun");
  expectChecksClean(t, fixed, "after the fixed resize");
});

t.test("resync --update-digest whose digest's filesystem fills at the end: --resume finishes, the stale digest is said", async (t) => {
  const { dir: full, reason } = mountTmpfs(t);
  if (!full) return t.plan(0, reason);
  const prng = new Prng(seed + 1);
  const work = tempDir(t);
  const [source, target] = [join(work, "source.raw"), join(work, "target.raw")];
  const bytes = prng.bytes(16 * MIB);
  writeFileSync(source, bytes);
  const changed = Buffer.from(bytes);
  for (let i = 0; i < 20; i++) changed[prng.int(changed.length)] ^= 0x5a;
  writeFileSync(target, changed);
  const digest = join(full, "target.digest");
  expectOk(t, runCli(["checksum", target, "-o", digest]), "the target's digest");
  const before = readFileSync(digest);
  // Room for the new digest's start, not for all of it (64 KiB of digests): the target is
  // written in full, then committing its new digest fails.
  fill(full, 16 * 1024);
  expectNoSpace(t, runCli(["resync", "--target-digest", digest, "--update-digest", source, target]), "resync --update-digest");
  t.ok(readFileSync(digest).equals(before), "the old digest is unchanged");
  t.same(leftIn(full), ["target.digest"], "no temp file beside it");
  t.ok(existsSync(`${target}.vhdsync-checkpoint`), "a checkpoint says the run can be finished");
  unfill(full);
  const again = runCli(["resync", "--target-digest", digest, source, target]);
  t.equal(again.status, 3, "without --resume the stale digest is refused");
  t.match(again.stderr, /VHDSYNC_IDENTITY_MISMATCH: .*--resume/, "and the refusal names --resume");
  const resumed = runCli(["resync", "--json", "--resume", "--target-digest", digest, "--update-digest", source, target]);
  expectOk(t, resumed, "resync --resume");
  const report = JSON.parse(resumed.stdout || "{}");
  t.equal(report.digestUpdated, false, "the resumed run did not rewrite the digest");
  t.match(report.digestNotUpdated, /vhdsync checksum/, "and says how to make a new one");
  expectSame(t, source, target, "the resumed resync");
  t.notOk(existsSync(`${target}.vhdsync-checkpoint`), "the checkpoint is removed");
});

t.test("snapshot create and merge on a full tmpfs resume after making room", async (t) => {
  const { dir: full, reason } = mountTmpfs(t, 48);
  if (!full) return t.plan(0, reason);
  const prng = new Prng(seed + 1);
  const work = tempDir(t);
  const base = join(work, "base.raw");
  writeSparse(base, 16 * MIB, 1 * MIB, prng);
  const changed = join(work, "changed.raw");
  writeRandom(changed, 16 * MIB, prng);
  const disk = join(full, "disk.vhd");

  // create, stopped at its first or second step: `snapshot resume` finishes it.
  for (const freeBytes of [4096, 8192]) {
    for (const name of readdirSync(full)) rmSync(join(full, name), { force: true });
    expectOk(t, runCli(["convert", base, disk, "--to", "vhd-dynamic"]), "the disk");
    fill(full, freeBytes);
    expectNoSpace(t, runCli(["snapshot", "create", "--name", "s1", disk]), `snapshot create with ${freeBytes} bytes free`);
    expectSame(t, base, disk, "the disk reads as before", false);
    unfill(full);
    expectOk(t, runCli(["snapshot", "resume", disk]), "snapshot resume");
    t.notOk(existsSync(`${disk}.snapshot-op.json`), "no operation pending");
    t.equal(leftIn(full).filter((name) => name.endsWith(".vhd")).length, 2, "the snapshot's layer and the disk");
    expectChecksClean(t, disk, "the disk after the resumed create");
    expectSame(t, base, disk, "the disk after the resumed create", false);
    for (const name of leftIn(full)) if (name !== "disk.vhd" && name.endsWith(".vhd")) rmSync(join(full, name));
    rmSync(disk);
    rmSync(`${disk}.snapshots.json`, { force: true });
  }

  // merge into a parent with holes: the copy allocates blocks in it and runs out part-way.
  expectOk(t, runCli(["convert", base, disk, "--to", "vhd-dynamic"]), "the disk");
  expectOk(t, runCli(["snapshot", "create", disk]), "a snapshot");
  expectOk(t, runCli(["resync", changed, disk]), "new content in the active disk");
  fill(full, 4 * MIB);
  // Rerun while still full (each run re-enters the copy step): a write failing while the next
  // piece was read was an unhandled rejection in about one run of six (exit 1, stack trace).
  for (let run = 0; run < 4; run++) expectNoSpace(t, runCli(["snapshot", "merge", disk]), `snapshot merge, run ${run + 1}`);
  expectChecksClean(t, disk, "the disk mid-merge");
  expectSame(t, changed, disk, "the disk reads the same mid-merge", false);
  unfill(full);
  expectOk(t, runCli(["snapshot", "resume", disk]), "merge resumed");
  t.same(leftIn(full), ["disk.vhd", "disk.vhd.snapshots.json"], "the merged layers are gone, no op state");
  expectChecksClean(t, disk, "the merged disk");
  expectSame(t, changed, disk, "the merged disk");
});

t.test("log apply, its undo log and log compact on a full tmpfs", async (t) => {
  const { dir: full, reason } = mountTmpfs(t, 48);
  if (!full) return t.plan(0, reason);
  const prng = new Prng(seed + 2);
  const work = tempDir(t);
  const base = join(work, "base.raw");
  writeRandom(base, 16 * MIB, prng);
  const writes: Write[] = [];
  for (let i = 0; i < 12; i++) writes.push({ offset: i * MIB, data: prng.bytes(MIB) });
  const { image: written, log } = await trackWrites(work, "tracked", base, writes);
  const image = join(full, "image.raw");
  const undo = join(full, "undo.hrl");

  // The undo log (12 MiB) cannot be written whole: nothing applied, no temp file left; with
  // 4 KiB free, its first write (the header) fails already.
  for (const freeBytes of [4096, 6 * MIB]) {
    rmSync(image, { force: true });
    copyFileSync(base, image);
    fill(full, freeBytes);
    expectNoSpace(t, runCli(["log", "apply", log, image, "--undo", undo]), `log apply --undo with ${freeBytes} bytes free`);
    t.same(leftIn(full).filter((name) => name.includes("undo.hrl")), [], "no undo log, no temp file of it");
    expectSame(t, base, image, "the image is untouched");
    unfill(full);
  }
  expectOk(t, runCli(["log", "apply", log, image, "--undo", undo]), "log apply --undo with room");
  expectSame(t, written, image, "the log applied");
  expectOk(t, runCli(["log", "apply", undo, image]), "the undo log applied");
  expectSame(t, base, image, "the undo restored the image");
  rmSync(image);
  rmSync(undo);
  rmSync(`${image}.hrl-state.json`, { force: true });

  // Applying into a sparse image that must allocate: stops part-way, the rerun finishes.
  const sparse = join(full, "sparse.raw");
  writeSparse(sparse, 16 * MIB, 0, prng);
  const expected = join(work, "expected-sparse.raw");
  writeSparse(expected, 16 * MIB, 0, prng);
  for (const w of writes) {
    const fd = openSync(expected, "r+");
    writeSync(fd, w.data, 0, w.data.length, w.offset);
    closeSync(fd);
  }
  fill(full, 4 * MIB);
  expectNoSpace(t, runCli(["log", "apply", log, sparse]), "log apply into a sparse image");
  unfill(full);
  expectOk(t, runCli(["log", "apply", log, sparse]), "log apply rerun");
  expectSame(t, expected, sparse, "log applied after making room");
  rmSync(sparse);
  rmSync(`${sparse}.hrl-state.json`, { force: true });

  // log compact writes OUT through a temp file beside it: removed when its close fails.
  const compacted = join(full, "compacted.hrl");
  fill(full, 64 * 1024);
  expectNoSpace(t, runCli(["log", "compact", log, compacted]), "log compact");
  t.same(leftIn(full), [], "no compacted log, no temp file of it");
  unfill(full);
  expectOk(t, runCli(["log", "compact", log, compacted]), "log compact rerun");
});
