// Arguments and paths that would destroy something are refused before anything is opened,
// created, resized or written (found by an adversarial review in the twelfth session):
// bad --block-size and --workers values are usage errors (exit 2) in every resync command,
// for the library VHDSYNC_INVALID_ARGUMENT; a digest, target or checkpoint that is one of
// the inputs, and a checkpoint path naming some other file, are refused; a copy that fails
// leaves no target it created, and one that fails does not hang on its scan workers;
// and --resume does not trust a checkpoint whose target was replaced or changed since.
import t from "tap";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync, writeSync, closeSync, copyFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { tmpdir } from "node:os";
import { createVhd } from "../dist/formats/vhd/index.js";
import { openImage } from "../dist/formats/open-image.js";
import { checksum } from "../dist/sync/checksum.js";
import { copy } from "../dist/sync/copy.js";
import { diff } from "../dist/sync/diff.js";
import { resync } from "../dist/sync/resync.js";
import { verify } from "../dist/sync/verify.js";
import { nativeAddon } from "../dist/io/native-addon.js";
import { CLI_PATH, runCli, runNodeWithoutTap } from "./helpers/cli.js";
import { fileSha, pairSetup, writeRandomImage } from "./helpers/resync-images.js";
import { TEMP_HOST, deadPid } from "./helpers/tmp.js";
import { sealedCheckpoint } from "./helpers/checkpoint.js";

const MIB = 1024 * 1024;

/** A random source and a target differing from it in `changes` random 4 KiB blocks. */
function pair(t: Parameters<typeof pairSetup>[0], sizeBytes: number, changes: number) {
  const setup = pairSetup(t);
  writeRandomImage(setup.source, sizeBytes, setup.prng);
  copyFileSync(setup.source, setup.target);
  const fd = openSync(setup.target, "r+");
  for (let i = 0; i < changes; i++) writeSync(fd, setup.prng.bytes(64), 0, 64, setup.prng.int(sizeBytes / 4096) * 4096);
  closeSync(fd);
  return setup;
}

t.test("bad --block-size and --workers are usage errors (exit 2) in every command; nothing is touched", async (t) => {
  const { dir, source, target } = pair(t, 4 * MIB, 20);
  const small = join(dir, "small.img");
  writeFileSync(small, Buffer.alloc(3 * MIB, 1));
  const before = [fileSha(target), fileSha(small)];
  const digest = join(dir, "t.digest");
  const created = join(dir, "new.img");
  const commands: Array<[string, string[]]> = [
    ["resync", [source, target]],
    ["resync --resize", [source, small, "--resize"]],
    ["checksum", [source, "-o", digest]],
    ["diff", [source, target]],
    ["verify", [source, target]],
    ["copy (new target)", [source, created]],
    ["copy (existing target)", [source, target]],
  ];
  for (const [name, args] of commands) {
    const command = name.split(" ")[0];
    for (const bad of [["--block-size", "3K"], ["--block-size", "2K"], ["--block-size", "0"], ["--block-size", "128M"], ["--workers", "abc"], ["--workers", "1.5"], ["--workers", "1000"], ["--workers", "-1"]]) {
      const run = runCli([command, ...args, ...bad]);
      t.equal(run.status, 2, `${name} ${bad.join(" ")}: exit 2 (${run.stderr.trim()})`);
      t.match(run.stderr, /^vhdsync: VHDSYNC_USAGE: /, `${name} ${bad.join(" ")}: a usage error`);
    }
    // VHDSYNC_WORKERS is checked as --workers is, not ignored.
    for (const bad of ["abc", "1.5", "-1", "1000"]) {
      const run = runCli([command, ...args], { env: { ...process.env, VHDSYNC_WORKERS: bad } });
      t.equal(run.status, 2, `${name} with VHDSYNC_WORKERS=${bad}: exit 2 (${run.stderr.trim()})`);
      t.match(run.stderr, /^vhdsync: VHDSYNC_USAGE: environment: VHDSYNC_WORKERS must be/, `${name} with VHDSYNC_WORKERS=${bad}: a usage error naming it`);
    }
  }
  t.same([fileSha(target), fileSha(small)], before, "no target was written or resized");
  t.equal(statSync(small).size, 3 * MIB, "--resize did not run");
  t.notOk(existsSync(digest), "no digest file");
  t.notOk(existsSync(created), "no copy target created");
  // The library says VHDSYNC_INVALID_ARGUMENT, before it opens anything.
  await t.rejects(resync(source, small, { resize: true, workers: Number.NaN }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.equal(statSync(small).size, 3 * MIB, "the library did not resize either");
  await t.rejects(resync(source, target, { blockSizeBytes: 3072 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(copy(source, created, { blockSizeBytes: 3072 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(copy(source, created, { workers: 1.5 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.notOk(existsSync(created), "copy() created nothing");
  // A digest algorithm or --update-digest without a target digest would have no effect.
  for (const extra of [["--hash", "sha256"], ["--update-digest"]]) {
    const run = runCli(["resync", source, target, ...extra]);
    t.equal(run.status, 2, `resync ${extra.join(" ")} without --target-digest: exit 2`);
    t.match(run.stderr, /^vhdsync: VHDSYNC_USAGE: .* needs --target-digest/);
  }
  await t.rejects(resync(source, target, { algo: "sha256" }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.equal(fileSha(target), before[0], "the target is untouched");
  await t.rejects(checksum(source, digest, { workers: 257 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(verify(source, target, { workers: -1 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  await t.rejects(diff(source, target, { blockSizeBytes: 5000 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.equal(runCli(["verify", source, target, "--workers", "0"]).status, 1, "--workers 0 (this thread only) is valid");
  // The library refuses a bad VHDSYNC_WORKERS before it opens anything; --workers overrides it.
  const saved = process.env.VHDSYNC_WORKERS;
  process.env.VHDSYNC_WORKERS = "many";
  try {
    await t.rejects(resync(source, small, { resize: true }), { code: "VHDSYNC_INVALID_ARGUMENT", details: { variable: "VHDSYNC_WORKERS" } });
    t.equal(statSync(small).size, 3 * MIB, "the library did not resize for a bad VHDSYNC_WORKERS");
    await t.rejects(copy(source, created), { code: "VHDSYNC_INVALID_ARGUMENT" });
    t.notOk(existsSync(created), "copy() created nothing");
    t.equal((await verify(source, target, { workers: 1 })).equal, false, "an explicit workers option is used instead");
  } finally {
    if (saved === undefined) delete process.env.VHDSYNC_WORKERS;
    else process.env.VHDSYNC_WORKERS = saved;
  }
});

t.test("a digest, target or checkpoint that is an input is refused, the input kept", async (t) => {
  const { dir, source, target } = pair(t, 2 * MIB, 10);
  const sourceSha = fileSha(source);
  const targetSha = fileSha(target);
  const alias = join(dir, "alias.img");
  linkSync(source, alias);
  for (const out of [source, alias, `${dirname(source)}/./${basename(source)}`]) {
    const run = runCli(["checksum", source, "-o", out]);
    t.equal(run.status, 3, `checksum -o ${out}: exit 3`);
    t.match(run.stderr, /VHDSYNC_INVALID_ARGUMENT: the digest file .* is the same file as/);
  }
  t.equal(fileSha(source), sourceSha, "the image is intact");
  for (const args of [["resync", source, alias], ["copy", source, alias], ["resync", source, target, "--checkpoint", source], ["resync", source, target, "--checkpoint", target]]) {
    const run = runCli(args);
    t.equal(run.status, 3, `${args.join(" ")}: exit 3`);
    t.match(run.stderr, /VHDSYNC_INVALID_ARGUMENT: .* is the same file as/);
  }
  const digest = join(dir, "target.digest");
  t.equal(runCli(["checksum", target, "-o", digest]).status, 0);
  const digestSha = fileSha(digest);
  const viaDigest = runCli(["resync", source, target, "--target-digest", digest, "--checkpoint", digest]);
  t.equal(viaDigest.status, 3, "the target digest as the checkpoint: exit 3");
  t.same([fileSha(source), fileSha(target), fileSha(digest)], [sourceSha, targetSha, digestSha], "source, target and digest are intact");
});

t.test("a checkpoint path naming another file is refused; a checkpoint of any version is taken", async (t) => {
  const { dir, source, target } = pair(t, 2 * MIB, 10);
  const notes = join(dir, "notes.txt");
  writeFileSync(notes, "precious\n");
  const big = join(dir, "big.json");
  writeFileSync(big, JSON.stringify({ kind: "vhdsync-resync-checkpoint", pad: "x".repeat(2 * MIB) }));
  const defaultPath = `${target}.vhdsync-checkpoint`;
  for (const path of [notes, big, dir]) {
    const run = runCli(["resync", source, target, "--checkpoint", path]);
    t.equal(run.status, 3, `--checkpoint ${path}: exit 3`);
    t.match(run.stderr, /is not a vhdsync resync checkpoint/);
  }
  t.equal(readFileSync(notes, "utf8"), "precious\n", "the file named is intact");
  writeFileSync(defaultPath, "{ not json");
  t.equal(runCli(["resync", source, target]).status, 3, "a default checkpoint path holding something else is refused too");
  t.ok(existsSync(defaultPath));
  // A checkpoint of another version is vhdsync's own: replaced, and removed after success.
  writeFileSync(defaultPath, JSON.stringify({ kind: "vhdsync-resync-checkpoint", version: 1, nextBlock: 3 }));
  const run = runCli(["resync", source, target, "--resume", "--json"]);
  t.equal(run.status, 0, run.stderr);
  t.equal(JSON.parse(run.stdout).resumedFromBlock ?? 0, 0, "an old checkpoint is not resumed from");
  t.notOk(existsSync(defaultPath), "and is removed after success");
  t.equal(fileSha(target), fileSha(source));
});

t.test("a resume may name the target another way than the stopped run did (relative, from another directory)", async (t) => {
  const { dir, source, target } = pair(t, 256 * MIB, 200);
  const controller = new AbortController();
  await t.rejects(resync(source, target, { workers: 1, checkpointIntervalMs: 0, signal: controller.signal, onProgress: () => controller.abort() }), { code: "VHDSYNC_INTERRUPTED" });
  const saved = JSON.parse(readFileSync(`${target}.vhdsync-checkpoint`, "utf8"));
  t.ok(saved.nextBlock > 0);
  const run = runCli(["resync", basename(source), `./${basename(target)}`, "--resume", "--json"], { cwd: dir });
  t.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  t.equal(report.resumedFromBlock, saved.nextBlock, `resumed (${report.checkpointIgnored ?? "not ignored"})`);
  t.equal(fileSha(target), fileSha(source));
});

t.test("a checkpoint of this version with fields missing or of the wrong type is not resumed from", async (t) => {
  const { source, target } = pair(t, 256 * MIB, 200);
  const defaultPath = `${target}.vhdsync-checkpoint`;
  // A whole checkpoint to take apart: a run stopped by its signal after its first segment
  // (more segments than are in flight).
  const controller = new AbortController();
  await t.rejects(resync(source, target, { workers: 1, checkpointIntervalMs: 0, signal: controller.signal, onProgress: () => controller.abort() }), { code: "VHDSYNC_INTERRUPTED" });
  const whole = JSON.parse(readFileSync(defaultPath, "utf8"));
  t.ok(whole.nextBlock > 0, "the stopped run saved its progress");
  const broken: Record<string, unknown>[] = [
    { kind: whole.kind, version: whole.version, nextBlock: 5 },
    { ...whole, source: undefined },
    { ...whole, source: { ...whole.source, inode: 7 } },
    { ...whole, counters: { ...whole.counters, bytesWritten: "many" } },
    { ...whole, targetParents: [{}] },
    { ...whole, mode: "guess" },
    { ...whole, final: "yes" },
  ];
  for (const checkpoint of broken) {
    writeFileSync(defaultPath, JSON.stringify(sealedCheckpoint(checkpoint))); // sealed: refused for what is wrong in it, not for its checksum
    const run = runCli(["resync", source, target, "--resume", "--json"]);
    t.equal(run.status, 0, run.stderr);
    t.equal(JSON.parse(run.stdout).resumedFromBlock ?? 0, 0, `not resumed from: ${JSON.stringify(checkpoint).slice(0, 80)}`);
    t.equal(fileSha(target), fileSha(source));
    t.notOk(existsSync(defaultPath));
  }
});

t.test("a checkpoint changed where JSON cannot tell (a digit of nextBlock) is not resumed from; nor is one past the image's end", async (t) => {
  const cases: Array<[string, (whole: Record<string, unknown>) => Record<string, unknown>, RegExp | null]> = [
    ["nextBlock changed, checksum kept", (whole) => ({ ...whole, nextBlock: (whole.nextBlock as number) + 4096 }), /damaged: its checksum/],
    ["nextBlock past the end, checksum made again", (whole) => sealedCheckpoint({ ...whole, nextBlock: 999_999_999 }), /past the image's 65536 blocks/],
    ["nextBlock one past the end, checksum made again", (whole) => sealedCheckpoint({ ...whole, nextBlock: 65537 }), /past the image's 65536 blocks/],
    ["no checksum", (whole) => ({ ...whole, checksum: undefined }), /damaged/],
    // Whitespace is not part of the checksum: the same fields written compactly still resume.
    ["unchanged, written without indentation", (whole) => whole, null],
  ];
  for (const [name, change, ignored] of cases) {
    const { seed, source, target } = pair(t, 256 * MIB, 200);
    const checkpoint = `${target}.vhdsync-checkpoint`;
    const controller = new AbortController();
    await t.rejects(resync(source, target, { workers: 1, checkpointIntervalMs: 0, signal: controller.signal, onProgress: () => controller.abort() }), { code: "VHDSYNC_INTERRUPTED" });
    const whole = JSON.parse(readFileSync(checkpoint, "utf8"));
    t.ok(whole.final && whole.nextBlock > 0 && whole.nextBlock < 65536, `${name}: a final checkpoint mid-way (${whole.nextBlock})`);
    t.match(whole.checksum, /^[0-9a-f]{64}$/, "the checkpoint carries its checksum");
    t.equal(whole.checksum, sealedCheckpoint(whole).checksum, "as documented");
    writeFileSync(checkpoint, JSON.stringify(change(whole)));
    const run = runCli(["resync", source, target, "--resume", "--json"]);
    t.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    if (ignored) {
      t.equal(report.resumedFromBlock ?? 0, 0, `${name}: not resumed from`);
      t.match(report.checkpointIgnored, ignored, name);
      t.match(run.stderr, /^vhdsync: note: --resume: the checkpoint was not used \(/m, "the CLI says so");
    } else {
      t.equal(report.resumedFromBlock, whole.nextBlock, `${name}: resumed (${report.checkpointIgnored ?? "not ignored"})`);
    }
    t.equal(fileSha(target), fileSha(source), `seed ${seed} ${name}: identical`);
    t.notOk(existsSync(checkpoint));
  }
});

t.test("a copy that fails leaves no target it created; an existing target stays", async (t) => {
  const { dir, source } = pair(t, 64 * MIB, 0);
  const created = join(dir, "created.img");
  const stop = new AbortController();
  stop.abort();
  await t.rejects(copy(source, created, { signal: stop.signal }), { code: "VHDSYNC_INTERRUPTED" });
  t.notOk(existsSync(created), "an interrupted copy removed the target it created");
  const existing = join(dir, "existing.img");
  writeFileSync(existing, Buffer.alloc(64 * MIB, 7));
  await t.rejects(copy(source, existing, { signal: stop.signal }), { code: "VHDSYNC_INTERRUPTED" });
  t.ok(existsSync(existing), "an existing target is never removed");
  const done = await copy(source, created);
  t.ok(done.created && fileSha(created) === fileSha(source), "a complete copy stays");
});

t.test("a new target that appears during a copy or convert (another run writing it) is left as it is: VHDSYNC_BUSY, no temp file", async (t) => {
  const { convertImage } = await import("../dist/sync/convert.js");
  const { dir, source } = pair(t, 64 * MIB, 0);
  const runs: Array<[string, (path: string, onProgress: () => void) => Promise<unknown>]> = [
    ["copy", (path, onProgress) => copy(source, path, { onProgress })],
    ["convert to a dynamic VHD", (path, onProgress) => convertImage(source, path, { to: "vhd-dynamic", onProgress })],
    ["convert to raw, overwrite", (path, onProgress) => convertImage(source, path, { to: "raw", overwrite: true, onProgress })],
  ];
  for (const [name, run] of runs) {
    const path = join(dir, `${name.replace(/\W+/g, "-")}.out`);
    let appeared = false;
    const writeOther = () => {
      if (appeared) return;
      appeared = true;
      writeFileSync(path, "precious\n");
    };
    await t.rejects(run(path, writeOther), { code: "VHDSYNC_BUSY", recoverable: true }, name);
    t.ok(appeared, `${name}: the other file appeared mid-run`);
    t.equal(readFileSync(path, "utf8"), "precious\n", `${name}: left as it is`);
    t.same(readdirSync(dir).filter((entry) => entry.endsWith(".tmp")), [], `${name}: no temp file left`);
  }
  // With no one else, the output lands.
  const done = join(dir, "done.img");
  t.ok((await copy(source, done)).created && fileSha(done) === fileSha(source), "an undisturbed copy lands");
});

t.test("copy into an existing 64 MiB target with a bad --block-size exits (no hang on the scan workers)", async (t) => {
  const { source, target } = pair(t, 64 * MIB, 5);
  const before = fileSha(target);
  const run = spawnSync(process.execPath, [CLI_PATH, "copy", source, target, "--block-size", "3K"], { encoding: "utf8", timeout: 30_000, killSignal: "SIGKILL" });
  t.equal(run.signal, null, "not killed by the timeout");
  t.equal(run.status, 2, run.stderr);
  t.equal(fileSha(target), before, "the target is untouched");
});

t.test("--resume starts over when the target was replaced or changed since the checkpoint", async (t) => {
  const { dir, source, target } = pair(t, 256 * MIB, 30000);
  const original = join(dir, "original.img");
  copyFileSync(target, original);
  const checkpoint = `${target}.vhdsync-checkpoint`;
  // Stops at the first progress event: more segments (32 MiB) than are in flight, so mid-way.
  const stop = async () => {
    const controller = new AbortController();
    await t.rejects(resync(source, target, { workers: 1, checkpointIntervalMs: 0, signal: controller.signal, onProgress: () => controller.abort() }), { code: "VHDSYNC_INTERRUPTED" });
    const saved = JSON.parse(readFileSync(checkpoint, "utf8"));
    t.ok(saved.final && saved.nextBlock > 0, `a final checkpoint at block ${saved.nextBlock}`);
    return saved.nextBlock as number;
  };
  // Stopped cleanly, nothing touched since: resumed.
  let next = await stop();
  const stopped = JSON.parse(readFileSync(checkpoint, "utf8")).counters;
  let report = await resync(source, target, { resume: true });
  t.equal(report.resumedFromBlock, next, "an untouched target resumes");
  t.equal(fileSha(target), fileSha(source));
  // The resumed report: its own part, and the whole job's totals.
  const fresh = join(dir, "fresh.img");
  copyFileSync(original, fresh);
  const whole = await resync(source, fresh, {});
  t.equal(whole.jobTotals, undefined, "a run that did not resume has no job totals");
  const job = report.jobTotals!;
  t.equal(report.jobTotalsComplete, true, "after a clean stop the job totals are exact");
  const sum = Object.fromEntries(Object.keys(stopped).map((key) => [key, stopped[key] + report[key as keyof typeof job]]));
  t.same(job, sum, "job totals: the stopped run's plus this one's");
  t.equal(job.blocksCompared + job.blocksUnallocated, whole.blocksCompared + whole.blocksUnallocated, "every block counted once over both runs");
  t.equal(job.bytesRead, whole.bytesRead, "bytes read over both runs: as one run's");
  t.ok(job.blocksChanged > report.blocksChanged && job.blocksChanged <= whole.blocksChanged, `blocks changed over both runs (${job.blocksChanged}) cover the stopped run's; at most one run's (${whole.blocksChanged})`);
  t.equal(runCli(["resync", source, fresh]).stdout.includes("whole job"), false, "the CLI prints job totals only after a resume");
  copyFileSync(original, target);
  next = await stop();
  const cli = runCli(["resync", source, target, "--resume"]);
  t.match(cli.stdout, new RegExp(`resumed at block ${next}; the whole job: \\d+ blocks differed, wrote `), "and does after one");

  // Stopped cleanly, then one byte of the done part written: started over, and made right.
  copyFileSync(original, target);
  next = await stop();
  const fd = openSync(target, "r+");
  writeSync(fd, Buffer.from([0x5a]), 0, 1, 4096 * Math.floor(next / 2) + 17);
  closeSync(fd);
  report = await resync(source, target, { resume: true });
  t.equal(report.resumedFromBlock ?? 0, 0, "a target written after the stop starts over");
  t.match(report.checkpointIgnored, /written after the interrupted run stopped/);
  t.equal(fileSha(target), fileSha(source), "and ends equal to the source");

  // Replaced by another file (a new inode), or resized: started over.
  copyFileSync(original, target);
  await stop();
  const replacement = join(dir, "replacement.img");
  copyFileSync(original, replacement);
  spawnSync("mv", [replacement, target]);
  report = await resync(source, target, { resume: true });
  t.match(report.checkpointIgnored, /replaced/, "a replaced target starts over");
  t.equal(fileSha(target), fileSha(source));

  // A killed run's periodic checkpoint (final: false), then the target restored in place: the
  // sample of the done part finds it.
  copyFileSync(original, target);
  await stop();
  const saved = JSON.parse(readFileSync(checkpoint, "utf8"));
  writeFileSync(checkpoint, JSON.stringify(sealedCheckpoint({ ...saved, final: false })));
  copyFileSync(original, target); // in place: same inode and size
  report = await resync(source, target, { resume: true });
  t.equal(report.resumedFromBlock ?? 0, 0);
  t.match(report.checkpointIgnored, /differs from the source .* the part the checkpoint marks done/, "the sample catches a restored target");
  t.equal(fileSha(target), fileSha(source));
  truncateSync(original, 0);
});

t.test("a checkpoint that could not be written is refused before the target is touched", async (t) => {
  const { dir, source, target } = pair(t, 2 * MIB, 10);
  const targetSha = fileSha(target);
  const missing = join(dir, "no-such-dir", "x.ckpt");
  const run = runCli(["resync", source, target, "--checkpoint", missing, "--json"]);
  t.equal(run.status, 3, run.stderr);
  t.equal(JSON.parse(run.stdout).error.code, "VHDSYNC_NOT_FOUND");
  t.match(run.stderr, /cannot write the checkpoint .* \(ENOENT\); name another place with --checkpoint FILE/);
  await t.rejects(resync(source, target, { checkpointPath: missing }), { code: "VHDSYNC_NOT_FOUND" });
  t.equal(fileSha(target), targetSha, "the target is untouched");
  t.equal(runCli(["resync", source, target, "--checkpoint", missing, "--dry-run"]).status, 0, "a dry run writes no checkpoint: no directory needed");

  // A directory the user cannot write (the default checkpoint sits beside the target): as
  // another user when running as root, who may write anywhere.
  const root = process.getuid?.() === 0;
  const locked = join(dir, "locked");
  mkdirSync(locked);
  const [lockedSource, lockedTarget] = [join(locked, "s.img"), join(locked, "t.img")];
  copyFileSync(source, lockedSource);
  copyFileSync(target, lockedTarget);
  chmodSync(lockedTarget, 0o666);
  chmodSync(locked, 0o555);
  t.teardown(() => chmodSync(locked, 0o755));
  if (root) chmodSync(dir, 0o755);
  const asUser = root ? { uid: 65534, gid: 65534 } : {};
  const denied = runNodeWithoutTap([CLI_PATH, "resync", lockedSource, lockedTarget, "--json"], asUser);
  t.equal(denied.status, 3, denied.stderr);
  t.equal(JSON.parse(denied.stdout).error.code, "VHDSYNC_ACCESS_DENIED");
  t.match(denied.stderr, /cannot write the checkpoint .*t\.img\.vhdsync-checkpoint .*\(EACCES\)/);
  t.equal(fileSha(lockedTarget), targetSha, "the target in the locked directory is untouched");
  // An existing checkpoint there is no help: the next one replaces it by a rename.
  chmodSync(locked, 0o755);
  writeFileSync(join(locked, "t.img.vhdsync-checkpoint"), JSON.stringify({ kind: "vhdsync-resync-checkpoint", version: 1, nextBlock: 0 }));
  chmodSync(locked, 0o555);
  const withOld = runNodeWithoutTap([CLI_PATH, "resync", lockedSource, lockedTarget, "--resume", "--json"], asUser);
  t.equal(withOld.status, 3, withOld.stderr);
  t.match(withOld.stderr, /cannot write the checkpoint .*\(EACCES\)/);
  t.equal(fileSha(lockedTarget), targetSha, "still untouched");
  const elsewhere = runNodeWithoutTap([CLI_PATH, "resync", lockedSource, lockedTarget, "--checkpoint", join(tmpdir(), `vhdsync-ckpt-${process.pid}`)], asUser);
  t.equal(elsewhere.status, 0, `with --checkpoint elsewhere it runs: ${elsewhere.stderr}`);
  t.equal(fileSha(lockedTarget), fileSha(source));
});

t.test("a target that is a parent of the source is refused; the chain stays whole", async (t) => {
  const { dir } = pairSetup(t);
  const parent = join(dir, "parent.vhd");
  const child = join(dir, "child.vhd");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "16M", parent]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", parent, child]).status, 0);
  const before = fileSha(parent);
  for (const command of ["resync", "copy"]) {
    const run = runCli([command, child, parent]);
    t.equal(run.status, 3, `${command} child parent: exit 3`);
    t.match(run.stderr, /VHDSYNC_INVALID_ARGUMENT: the target .* is the same file as the source's parent/);
  }
  t.equal(fileSha(parent), before, "the parent is untouched");
  t.equal(runCli(["check", child]).status, 0, "the chain is whole");
});

t.test("checksum -o and convert --force refuse every parent of the image as output; the chain stays whole", async (t) => {
  const { dir } = pairSetup(t);
  const [base, middle, child] = ["base.vhd", "middle.vhd", "child.vhd"].map((name) => join(dir, name));
  t.equal(runCli(["create", "--type", "dynamic", "--size", "16M", base]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", base, middle]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", middle, child]).status, 0);
  const before = [fileSha(base), fileSha(middle)];
  for (const parent of [base, middle]) {
    const checksum = runCli(["checksum", child, "-o", parent]);
    t.equal(checksum.status, 3, "checksum -o PARENT: exit 3");
    t.match(checksum.stderr, /VHDSYNC_INVALID_ARGUMENT: the digest file .* is the same file as the image's parent/);
    const convert = runCli(["convert", child, parent, "--to", "raw", "--force"]);
    t.equal(convert.status, 3, "convert --force onto PARENT: exit 3");
    t.match(convert.stderr, /VHDSYNC_INVALID_ARGUMENT: the output .* is the same file as the input's parent/);
  }
  t.same([fileSha(base), fileSha(middle)], before, "the parents are untouched");
  t.equal(runCli(["check", child]).status, 0, "the chain is whole");
});

t.test("a reader that closes the pipe early ends the command quietly", async (t) => {
  // Per-block digests of 16 MiB: 4,096 lines, more than a pipe holds.
  const { source } = pair(t, 16 * MIB, 0);
  const run = spawnSync("sh", ["-c", `"${process.execPath}" "${CLI_PATH}" hash --block-size 4K "${source}" | head -c 1 > /dev/null`], { encoding: "utf8" });
  t.equal(run.status, 0, "the pipeline ends");
  t.notMatch(run.stderr, /EPIPE|Error|at /, `nothing on stderr: ${run.stderr}`);
});

t.test("--update-digest that a resumed or dry run cannot honour is reported, not silently skipped", async (t) => {
  const { dir, source, target } = pair(t, 256 * MIB, 20000);
  const digest = join(dir, "target.digest");
  await checksum(target, digest);
  const dry = await resync(source, target, { targetDigestPath: digest, updateTargetDigest: true, dryRun: true });
  t.match(dry.digestNotUpdated, /dry run/);
  const controller = new AbortController();
  await t.rejects(resync(source, target, { targetDigestPath: digest, workers: 1, checkpointIntervalMs: 0, signal: controller.signal, onProgress: () => controller.abort() }), { code: "VHDSYNC_INTERRUPTED" });
  const resumed = await resync(source, target, { targetDigestPath: digest, updateTargetDigest: true, resume: true });
  t.ok(resumed.resumedFromBlock > 0, "resumed");
  t.equal(resumed.digestUpdated, false);
  t.match(resumed.digestNotUpdated, /resumed run did not hash the blocks before block \d+/);
  t.equal(fileSha(target), fileSha(source));
  const whole = await resync(source, target, { targetDigestPath: (await checksum(target, digest)).digestPath, updateTargetDigest: true });
  t.ok(whole.digestUpdated && whole.digestNotUpdated === undefined, "a whole run updates it");
});

t.test("temp files that a killed run left behind are removed by the next write of that file", async (t) => {
  const { dir, source } = pair(t, 2 * MIB, 0);
  const digest = join(dir, "out.digest");
  const host = TEMP_HOST;
  const dead = deadPid();
  const stale = join(dir, `.out.digest.${host}-${dead}.tmp`);
  const live = join(dir, `.out.digest.${host}-${process.pid}.tmp`);
  const otherHost = join(dir, `.out.digest.another-host-${dead}.tmp`);
  // Host "<this host>-<dead>" (pid 5555): its names start with this host's prefix.
  const lookalikeHosts = [join(dir, `.out.digest.${host}-${dead}-5555.1.tmp`), join(dir, `.out.digest.${host}-${dead}-5555.tmp`)];
  const staleNew = join(dir, `.out.digest.${host}-${dead}.7.tmp`);
  for (const path of [stale, staleNew, live, otherHost, ...lookalikeHosts]) writeFileSync(path, "partial");
  t.equal(runCli(["checksum", source, "-o", digest]).status, 0);
  t.notOk(existsSync(stale), "a dead process's temp file is removed (an older vhdsync's name)");
  t.notOk(existsSync(staleNew), "and one named PID.N");
  t.ok(existsSync(live), "a running process's is kept");
  t.ok(existsSync(otherHost), "another host's is kept");
  for (const path of lookalikeHosts) t.ok(existsSync(path), `so is a host's whose name starts with this one's: ${path}`);
  // The checkpoint's temp file, after a kill -9 of a resync.
  const target = join(dir, "target.img");
  writeFileSync(target, Buffer.alloc(2 * MIB));
  const checkpointTemp = join(dir, `.target.img.vhdsync-checkpoint.${host}-${dead}.tmp`);
  writeFileSync(checkpointTemp, "{");
  const resynced = runCli(["resync", source, target], { env: { ...process.env, VHDSYNC_CHECKPOINT_MS: "0" } });
  t.equal(resynced.status, 0, resynced.stderr);
  t.notOk(existsSync(checkpointTemp), "and so is a checkpoint's");
  // A run too short to save any checkpoint sweeps it too, when it removes the checkpoint.
  writeFileSync(checkpointTemp, "{");
  writeFileSync(target, Buffer.alloc(2 * MIB));
  const short = runCli(["resync", source, target], { env: { ...process.env, VHDSYNC_CHECKPOINT_MS: "600000" } });
  t.equal(short.status, 0, short.stderr);
  t.notOk(existsSync(checkpointTemp), "a short run that saved no checkpoint removes it as well");
});


/** Starts `vhdsync resync source target --workers 1 [extra]` with a checkpoint after every segment, and kills it with SIGKILL once one exists (or when it ends). Returns its stdout. */
async function resyncKilledAtFirstCheckpoint(source: string, target: string, extra: string[] = []): Promise<string> {
  const checkpoint = `${target}.vhdsync-checkpoint`;
  const run = spawn(process.execPath, [CLI_PATH, "resync", source, target, "--workers", "1", ...extra], { env: { ...process.env, VHDSYNC_CHECKPOINT_MS: "0" } });
  let stdout = "";
  run.stdout.on("data", (chunk) => (stdout += chunk));
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(checkpoint) || run.exitCode !== null) {
        clearInterval(poll);
        run.kill("SIGKILL");
        resolve();
      }
    }, 2);
  });
  await new Promise((resolve) => run.on("exit", resolve));
  return stdout;
}

t.test("--resume after a kill -9 into a dynamic VHD that the killed run grew resumes", async (t) => {
  const { dir, source } = pair(t, 256 * MIB, 0);
  const target = join(dir, "target.vhd");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "256M", target]).status, 0);
  const checkpoint = `${target}.vhdsync-checkpoint`;
  // Kill as soon as a periodic checkpoint mid-way exists (the run keeps growing the VHD after it).
  await resyncKilledAtFirstCheckpoint(source, target);
  if (!existsSync(checkpoint)) return t.skip("the run ended before its first checkpoint");
  const saved = JSON.parse(readFileSync(checkpoint, "utf8"));
  t.equal(saved.final, false, "a periodic checkpoint");
  // A clean stop of the resumed run keeps the job's totals marked as a lower bound.
  const stop = new AbortController();
  const outcome = await resync(source, target, { resume: true, workers: 1, checkpointIntervalMs: 0, signal: stop.signal, onProgress: () => stop.abort() }).then(() => "done", (error) => error.code);
  if (outcome === "VHDSYNC_INTERRUPTED") t.equal(JSON.parse(readFileSync(checkpoint, "utf8")).countersComplete, false, "the stopped resumed run's checkpoint: counters incomplete");
  else {
    t.equal(outcome, "done", "(the resumed run had every segment in flight already and finished)");
    return t.equal((await verify(source, target)).equal, true, "the target equals the source");
  }
  const resumed = await resync(source, target, { resume: true });
  t.equal(resumed.checkpointIgnored, undefined, `not ignored (${resumed.checkpointIgnored})`);
  t.ok(resumed.resumedFromBlock >= saved.nextBlock && resumed.resumedFromBlock > 0, `resumed from ${resumed.resumedFromBlock}`);
  t.equal(resumed.jobTotalsComplete, false, "after a kill -9 the job totals are a lower bound, and say so");
  t.equal((await verify(source, target)).equal, true, "the target equals the source");
});

t.test("kill -9 of a resync into a differencing VHD (compared natively against the child read into memory), then --resume: equal, parent untouched", async (t) => {
  const { dir, source } = pair(t, 128 * MIB, 0);
  const parent = join(dir, "parent.vhd");
  const child = join(dir, "child.vhd");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "128M", parent]).status, 0);
  // The parent holds the first half of the source; the child gets the rest and every change.
  const half = join(dir, "half.raw");
  writeFileSync(half, readFileSync(source).subarray(0, 64 * MIB));
  truncateSync(half, 128 * MIB);
  t.equal(runCli(["resync", half, parent]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", parent, child]).status, 0);
  const parentSha = fileSha(parent);
  const checkpoint = `${child}.vhdsync-checkpoint`;
  const stdout = await resyncKilledAtFirstCheckpoint(source, child, ["--json"]);
  const killedMidway = existsSync(checkpoint);
  const resumed = await resync(source, child, { resume: true });
  const scanner = nativeAddon() ? "native" : "wasm";
  t.equal(resumed.scanner, scanner, `the resumed run scans the same way (${scanner})`);
  if (killedMidway) t.ok(resumed.resumedFromBlock > 0, `resumed from block ${resumed.resumedFromBlock}`);
  else t.match(stdout, new RegExp(`"scanner":"${scanner}"`), "(the first run ended before its first checkpoint)");
  t.equal((await verify(source, child)).equal, true, "the child equals the source (verify: the WASM scanners)");
  t.equal((await resync(source, child, { dryRun: true })).blocksChanged, 0, "nothing left to change");
  t.equal(fileSha(parent), parentSha, "the parent was never written");
});

t.test("a resumed run turns a clean stop's checkpoint into a running one before it writes", async (t) => {
  const { source, target } = pair(t, 256 * MIB, 30000);
  const checkpoint = `${target}.vhdsync-checkpoint`;
  const first = new AbortController();
  await t.rejects(resync(source, target, { workers: 1, checkpointIntervalMs: 0, signal: first.signal, onProgress: () => first.abort() }), { code: "VHDSYNC_INTERRUPTED" });
  t.equal(JSON.parse(readFileSync(checkpoint, "utf8")).final, true);
  let seenFinal: boolean | undefined;
  const second = new AbortController();
  const outcome = await resync(source, target, { resume: true, workers: 1, checkpointIntervalMs: 60_000, signal: second.signal, onProgress: () => {
    seenFinal ??= JSON.parse(readFileSync(checkpoint, "utf8")).final;
    second.abort();
  } }).then(() => "done", (error) => error.code);
  t.equal(seenFinal, false, "while the resumed run writes, its checkpoint says so (a kill then still resumes)");
  if (outcome === "VHDSYNC_INTERRUPTED") {
    const third = await resync(source, target, { resume: true });
    t.ok(third.resumedFromBlock > 0 && third.checkpointIgnored === undefined, `resumed from ${third.resumedFromBlock}`);
    t.equal(third.jobTotalsComplete, true, "two clean stops: the job totals are exact");
  } else t.equal(outcome, "done", "(the resumed run had every segment in flight already and finished)");
  t.equal(fileSha(target), fileSha(source));
});

t.test("--resume starts over when a parent of the target (or source) changed", async (t) => {
  const { dir, source } = pair(t, 64 * MIB, 0);
  const parent = join(dir, "parent.vhd");
  const child = join(dir, "child.vhd");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "64M", parent]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", parent, child]).status, 0);
  const stop = new AbortController();
  await t.rejects(resync(source, child, { workers: 1, checkpointIntervalMs: 0, signal: stop.signal, onProgress: () => stop.abort() }), { code: "VHDSYNC_INTERRUPTED" });
  // Another tool writes to the parent (vhdsync's own writers refuse a disk others depend on);
  // the child's own file is not touched.
  const written = await openImage(parent, { readOnly: false });
  await written.write(pairSetup(t).prng.bytes(MIB), 8 * MIB);
  await written.close();
  const report = await resync(source, child, { resume: true });
  t.match(report.checkpointIgnored, /a parent of the target changed/);
  t.equal((await verify(source, child)).equal, true, "the target equals the source");
});

t.test("a target that cannot grow (EFBIG under a file size limit, as ENOSPC on a full filesystem): exit 4, the VHD checks clean, --resume finishes", async (t) => {
  const { seed, prng, dir, source } = pairSetup(t);
  writeRandomImage(source, 64 * 1024 * 1024, prng, 4 * 1024 * 1024);
  const target = join(dir, "t.vhd");
  await (await createVhd(target, { type: "dynamic", sizeBytes: 64 * 1024 * 1024 })).close();
  // 20 MiB (ulimit -f counts KiB): the dynamic disk's blocks outgrow it a third of the way in.
  const run = spawnSync("bash", ["-c", 'ulimit -f 20480; exec "$0" "$1" resync "$2" "$3" --json', process.execPath, CLI_PATH, source, target], { encoding: "utf8" });
  t.equal(run.status, 4, `exit 4 (recoverable) ${run.signal ?? ""}`);
  t.match(run.stderr, /^vhdsync: VHDSYNC_NO_SPACE: /m);
  t.match(JSON.parse(run.stdout), { ok: false, error: { code: "VHDSYNC_NO_SPACE", recoverable: true } });
  t.ok(statSync(target).size <= 20 * 1024 * 1024, "the file stopped at the limit");
  t.equal(runCli(["check", target]).status, 0, "the VHD checks clean: every block it references is whole");
  t.ok(existsSync(`${target}.vhdsync-checkpoint`), "a checkpoint to resume from");
  const resumed = runCli(["resync", source, target, "--resume", "--json"]);
  t.equal(resumed.status, 0, resumed.stderr);
  t.ok(JSON.parse(resumed.stdout).resumedFromBlock > 0, "resumed, not started over");
  t.equal(JSON.parse(resumed.stdout).jobTotalsComplete, false, "the failed run's last writes are counted by no run: the job totals say they are a lower bound");
  const compare = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "vpc", source, target], { encoding: "utf8" });
  t.equal(compare.status, 0, `seed ${seed}: identical (${compare.stdout.trim()})`);
});

t.test("a raw target stopped by EFBIG: the checkpoint and the resumed run's job totals say they are a lower bound", async (t) => {
  const { seed, prng, dir, source } = pairSetup(t);
  writeRandomImage(source, 96 * 1024 * 1024, prng, 4 * 1024 * 1024);
  const target = join(dir, "t.raw");
  writeFileSync(target, "");
  truncateSync(target, 96 * 1024 * 1024);
  // The scan jobs write a segment's blocks themselves: the failed one wrote its first part,
  // and the segments in flight beside it theirs, none of which reaches the counters. 40 MiB:
  // past the first segment (32 MiB at most), so that there is a checkpoint to resume from.
  const run = spawnSync("bash", ["-c", 'ulimit -f 40960; exec "$0" "$1" resync "$2" "$3" --json', process.execPath, CLI_PATH, source, target], { encoding: "utf8" });
  t.equal(run.status, 4, `exit 4 (recoverable) ${run.signal ?? ""}`);
  t.match(run.stderr, /^vhdsync: VHDSYNC_NO_SPACE: /m);
  const saved = JSON.parse(readFileSync(`${target}.vhdsync-checkpoint`, "utf8"));
  t.equal(saved.countersComplete, false, "the checkpoint of a failed run says its counters are a lower bound");
  const resumed = JSON.parse(runCli(["resync", source, target, "--resume", "--json"]).stdout);
  t.ok(resumed.resumedFromBlock > 0, "resumed, not started over");
  t.equal(resumed.jobTotalsComplete, false, "job totals: a lower bound");
  t.ok(resumed.jobTotals.bytesWritten <= 96 * 1024 * 1024, "never more than the source");
  t.equal(fileSha(target), fileSha(source), `seed ${seed}: identical`);
});
