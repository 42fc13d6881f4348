// Crash safety: the CLI is killed with SIGKILL at random moments during a resync and rerun
// with --resume; the target must end identical to the source. Also Ctrl-C (SIGINT) stops
// cleanly with a checkpoint (exit 4, VHDSYNC_INTERRUPTED) and --resume finishes the job.
import t from "tap";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createVhd } from "../dist/formats/vhd/index.js";
import { CLI_PATH, runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { pairSetup, applyPattern, fileSha, writeRandomImage } from "./helpers/resync-images.js";

const SIZE_BYTES = 192 * 1024 * 1024;
// Frequent checkpoints and one worker so a kill lands between checkpoints of a run in progress.
const ENV = { ...process.env, VHDSYNC_CHECKPOINT_MS: "10", VHDSYNC_WORKERS: "1" };

function startResync(source: string, target: string, extra: string[] = []) {
  const child = spawn(process.execPath, [CLI_PATH, "resync", source, target, "--block-size", "4K", "--resume", "--json", ...extra], { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  child.stdout.on("data", (chunk) => (stdout += chunk));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stderr, stdout })),
  );
  return { child, done };
}

t.test("kill -9 at random moments, then --resume: target identical", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, SIZE_BYTES, prng, 4 * 1024 * 1024);
  copyFileSync(source, target);
  applyPattern(target, SIZE_BYTES, 4096, "whole-blocks", prng);
  applyPattern(target, SIZE_BYTES, 4096, "zeroed-blocks", prng);
  let killed = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const run = startResync(source, target);
    await new Promise((resolve) => setTimeout(resolve, 150 + prng.int(600)));
    run.child.kill("SIGKILL");
    const result = await run.done;
    if (result.signal === "SIGKILL") killed++;
  }
  const checkpoint = `${target}.vhdsync-checkpoint`;
  const resumedFrom = existsSync(checkpoint) ? JSON.parse(readFileSync(checkpoint, "utf8")).nextBlock : 0;
  const final = runCli(["resync", source, target, "--block-size", "4K", "--resume", "--json"], { env: ENV });
  t.equal(final.status, 0, final.stderr);
  t.equal(JSON.parse(final.stdout).resumedFromBlock, resumedFrom, `seed ${seed}: resumed from the checkpoint`);
  t.equal(fileSha(target), fileSha(source), `seed ${seed}: identical after ${killed} kills`);
  t.notOk(existsSync(checkpoint), "checkpoint removed after success");
});

t.test("kill -9 during resync --resize into a dynamic VHD (resized, then written), then --resize --resume: identical", async (t) => {
  const { seed, prng, dir, source } = pairSetup(t);
  const sourceBytes = SIZE_BYTES / 2 + 4096;
  writeRandomImage(source, sourceBytes, prng, 4 * 1024 * 1024);
  const target = join(dir, "t.vhd");
  // A smaller dynamic disk holding data of its own, with 64 KiB blocks (its BAT must move).
  const vhd = await createVhd(target, { type: "dynamic", sizeBytes: SIZE_BYTES / 8, blockSizeBytes: 64 * 1024 });
  await vhd.write(prng.bytes(SIZE_BYTES / 16), 0);
  await vhd.close();
  let killed = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const run = startResync(source, target, ["--resize"]);
    // The first kill lands early (around the resize), the others in the scan.
    await new Promise((resolve) => setTimeout(resolve, attempt === 0 ? 30 + prng.int(60) : 80 + prng.int(120)));
    run.child.kill("SIGKILL");
    if ((await run.done).signal === "SIGKILL") killed++;
  }
  const final = runCli(["resync", source, target, "--block-size", "4K", "--resize", "--resume", "--json"], { env: ENV });
  t.equal(final.status, 0, final.stderr);
  const compare = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "vpc", source, target], { encoding: "utf8" });
  t.equal(compare.status, 0, `seed ${seed}: qemu-img compare: identical after ${killed} kills ${compare.stdout}`);
  t.equal(runCli(["check", target]).status, 0, "vhdsync check clean");
  t.match(spawnSync("vhdiinfo", [target], { encoding: "utf8" }).stdout, new RegExp(`\\(${sourceBytes} bytes\\)`), "vhdiinfo: the source's size");
});

t.test("SIGINT stops cleanly with a checkpoint; --resume completes", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, SIZE_BYTES / 2, prng, 4 * 1024 * 1024);
  copyFileSync(source, target);
  applyPattern(target, SIZE_BYTES / 2, 4096, "mixed", prng);
  const run = startResync(source, target, ["--progress"]);
  // Interrupt once the run is under way (first JSON progress line), after a random delay.
  await new Promise<void>((resolve) => run.child.stdout!.once("data", () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, prng.int(100)));
  run.child.kill("SIGINT");
  const result = await run.done;
  if (result.code === 4) {
    t.match(result.stderr, /VHDSYNC_INTERRUPTED/);
    t.ok(existsSync(`${target}.vhdsync-checkpoint`), "checkpoint written");
  } else if (result.signal === "SIGINT") {
    // The signal came after the run had finished and printed its report, while Node was
    // exiting (its own handlers are gone then, for ~10 ms): the work is done all the same.
    t.match(result.stdout, /"type":"report"/, `killed by the signal only after the report (seed ${seed})`);
  } else t.equal(result.code, 0, `finished before the signal (seed ${seed}, signal ${result.signal}): ${result.stderr}`);
  const final = runCli(["resync", source, target, "--block-size", "4K", "--resume"], { env: ENV });
  t.equal(final.status, 0, final.stderr);
  t.equal(fileSha(target), fileSha(source), `seed ${seed}: identical`);
});

t.test("target-digest mode: an aborted run resumes (identity check skipped for its own writes)", async (t) => {
  const { resync } = await import("../dist/sync/resync.js");
  const { checksum } = await import("../dist/sync/checksum.js");
  const { convertImage } = await import("../dist/sync/convert.js");
  // A raw and a dynamic VHD source: the native hash scan with the addon (the WASM scanners in
  // the suite's no-addon pass), which reads each through its own data locator.
  for (const kind of ["raw", "dynamic VHD"]) {
    await t.test(kind, async (t) => {
      const { seed, prng, dir, source: raw, target } = pairSetup(t);
      // More segments (32 MiB each) than a scanner keeps in flight, so an abort lands mid-way.
      const size = 256 * 1024 * 1024;
      writeRandomImage(raw, size, prng, 4 * 1024 * 1024);
      copyFileSync(raw, target);
      applyPattern(target, size, 4096, "mixed", prng);
      const source = kind === "raw" ? raw : join(dir, "source.vhd");
      if (source !== raw) await convertImage(raw, source, { to: "vhd-dynamic" });
      const digest = join(dir, "t.digest");
      await checksum(target, digest, { blockSizeBytes: 4096 });
      const controller = new AbortController();
      await t.rejects(
        resync(source, target, { targetDigestPath: digest, workers: 1, checkpointIntervalMs: 0, signal: controller.signal, onProgress: () => controller.abort() }),
        { code: "VHDSYNC_INTERRUPTED" },
        `seed ${seed}: interrupted`,
      );
      const checkpoint = JSON.parse(readFileSync(`${target}.vhdsync-checkpoint`, "utf8"));
      t.ok(checkpoint.nextBlock > 0 && checkpoint.nextBlock < size / 4096, `checkpoint mid-way (${checkpoint.nextBlock})`);
      const refused = resync(source, target, { targetDigestPath: digest, workers: 1 });
      await t.rejects(refused, { code: "VHDSYNC_IDENTITY_MISMATCH" }, "without --resume the changed target no longer matches its digest");
      const resumed = await resync(source, target, { targetDigestPath: digest, workers: 1, resume: true });
      t.equal(resumed.resumedFromBlock, checkpoint.nextBlock);
      t.equal(fileSha(target), fileSha(raw), `seed ${seed}: identical (${resumed.scanner} scanner)`);
    });
  }
});

t.test("copy into a new target killed with SIGKILL leaves no target; the rerun copies and sweeps the temp file", async (t) => {
  const { seed, prng, dir, source } = pairSetup(t);
  writeRandomImage(source, SIZE_BYTES, prng, 4 * 1024 * 1024);
  const target = join(dir, "new.raw");
  let killedMidway = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const child = spawn(process.execPath, [CLI_PATH, "copy", source, target], { env: ENV, stdio: "ignore" });
    const done = new Promise<NodeJS.Signals | null>((resolve) => child.on("close", (_code, signal) => resolve(signal)));
    // Kill it once the temp file beside the target exists (the copy is under way), or by chance.
    const started = Date.now();
    while (Date.now() - started < 5000 && !readdirSync(dir).some((name) => name.startsWith(".new.raw.")) && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 2));
    await new Promise((resolve) => setTimeout(resolve, prng.int(60)));
    child.kill("SIGKILL");
    if ((await done) !== "SIGKILL") {
      rmSync(target, { force: true }); // it finished first: start over
      continue;
    }
    killedMidway++;
    t.notOk(existsSync(target), `seed ${seed}: a killed copy leaves nothing under the target's name`);
  }
  t.ok(killedMidway > 0, `seed ${seed}: at least one copy was killed mid-way`);
  const rerun = runCli(["copy", source, target, "--json"]);
  t.equal(rerun.status, 0, rerun.stderr);
  t.equal(JSON.parse(rerun.stdout).created, true);
  t.equal(fileSha(target), fileSha(source), `seed ${seed}: the rerun's copy is whole`);
  t.same(readdirSync(dir).filter((name) => name.endsWith(".tmp")), [], "the killed copies' temp files are gone");
});
