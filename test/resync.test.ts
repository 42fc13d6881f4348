// resync(): seeded property tests over random raw images and change patterns (content equal
// afterwards, bytes written bounded by the changed blocks), dry run, size mismatch/resize,
// worker and inline paths.
import t from "tap";
import { copyFileSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { resync } from "../dist/sync/resync.js";
import { verify } from "../dist/sync/verify.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { PATTERNS, applyPattern, differingBlocks, fileSha, pairSetup, writeRandomImage } from "./helpers/resync-images.js";

const BLOCK_SIZES = [4096, 16384, 65536];

t.test("property: after resync the target equals the source; writes bounded by changed blocks", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  let round = 0;
  for (const pattern of PATTERNS) {
    // Workers cost a start-up per run: most rounds scan inline, every third uses two workers.
    for (const workers of round % 3 === 0 ? [0, 2] : [0]) {
      const blockSizeBytes = BLOCK_SIZES[prng.int(BLOCK_SIZES.length)];
      const sizeBytes = 256 * 1024 + prng.int(3 * 1024 * 1024);
      const source = join(dir, `s${round}.img`);
      const target = join(dir, `t${round}.img`);
      round++;
      writeRandomImage(source, sizeBytes, prng);
      copyFileSync(source, target);
      applyPattern(target, sizeBytes, blockSizeBytes, pattern, prng);
      const changed = differingBlocks(source, target, blockSizeBytes);
      const what = `seed ${seed} pattern ${pattern} workers ${workers} size ${sizeBytes} block ${blockSizeBytes}`;
      const report = await resync(source, target, { blockSizeBytes, workers });
      t.equal(fileSha(target), fileSha(source), `content equal (${what})`);
      t.equal(report.blocksChanged, changed, `changed blocks counted (${what})`);
      t.ok(report.bytesWritten + report.bytesZeroed <= changed * blockSizeBytes, `writes bounded (${what}): ${report.bytesWritten}+${report.bytesZeroed}`);
      t.equal(statSync(target).size, sizeBytes, `size kept (${what})`);
      const again = await resync(source, target, { blockSizeBytes, workers });
      t.equal(again.bytesWritten + again.bytesZeroed, 0, `second run writes nothing (${what})`);
    }
  }
});

t.test("dry run reports the differences and writes nothing", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, 1 << 20, prng);
  copyFileSync(source, target);
  applyPattern(target, 1 << 20, 4096, "mixed", prng);
  const before = fileSha(target);
  const changed = differingBlocks(source, target, 4096);
  const report = await resync(source, target, { blockSizeBytes: 4096, dryRun: true });
  t.equal(fileSha(target), before, `target untouched (seed ${seed})`);
  t.equal(report.blocksChanged, changed, `seed ${seed}`);
  t.equal(report.bytesWritten, 0);
  const cli = runCli(["resync", source, target, "--dry-run", "--json", "--block-size", "4K"]);
  t.equal(cli.status, 0, cli.stderr);
  t.equal(JSON.parse(cli.stdout.trim().split("\n").pop()!).blocksChanged, changed);
  const human = runCli(["resync", source, target, "--dry-run", "--block-size", "4K"]);
  t.match(human.stdout, new RegExp(`^${changed} of 256 blocks differed; nothing written \\(dry run\\);`), "the summary says nothing was written");
  t.equal(fileSha(target), before);
});

t.test("size mismatch is refused (exit 3); --resize grows and shrinks the target", async (t) => {
  const prng = new Prng(testSeed());
  const dir = tempDir(t);
  const source = join(dir, "s.img");
  const target = join(dir, "t.img");
  writeRandomImage(source, 3 * 65536 + 123, prng);
  for (const targetSize of [65536, 5 * 65536]) {
    writeRandomImage(target, targetSize, prng);
    const before = fileSha(target);
    const refused = runCli(["resync", source, target]);
    t.equal(refused.status, 3, refused.stderr);
    t.match(refused.stderr, /VHDSYNC_SIZE_MISMATCH/);
    t.equal(fileSha(target), before, "nothing written");
    const preview = runCli(["resync", source, target, "--resize", "--dry-run", "--json"]);
    t.equal(preview.status, 3, "a dry run cannot preview a resize");
    t.equal(JSON.parse(preview.stdout).error.code, "VHDSYNC_UNSUPPORTED");
    t.match(preview.stderr, /vhdsync compare/, "the refusal names what can");
    t.equal(fileSha(target), before, "nothing written");
    const json = targetSize === 65536;
    const resized = runCli(["resync", source, target, "--resize", ...(json ? ["--json"] : [])]);
    t.equal(resized.status, 0, resized.stderr);
    if (json) t.equal(JSON.parse(resized.stdout).resized, true);
    else t.match(resized.stdout, new RegExp(`^resized the target to ${3 * 65536 + 123} bytes`), "the summary says the target was resized");
    t.equal(fileSha(target), fileSha(source));
  }
});

t.test("verify and diff exit codes", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const a = join(dir, "a.img");
  const b = join(dir, "b.img");
  writeRandomImage(a, 1 << 20, prng);
  copyFileSync(a, b);
  for (const command of ["verify", "diff"]) {
    t.equal(runCli([command, a, b]).status, 0, `${command} equal`);
  }
  applyPattern(b, 1 << 20, 65536, "edge-bytes", prng);
  const changed = differingBlocks(a, b, 65536);
  for (const command of ["verify", "diff"]) {
    const result = runCli([command, a, b, "--json", "--block-size", "64K"]);
    t.equal(result.status, 1, `${command} different (seed ${seed})`);
    const report = JSON.parse(result.stdout);
    t.equal(report.blocksDiffering, changed, `seed ${seed}`);
    t.equal(report.extents.reduce((sum: number, e: { length: number }) => sum + e.length, 0), report.bytesDiffering);
  }
  const report = await verify(a, b, { blockSizeBytes: 4096, workers: 0 });
  t.equal(report.blocksDiffering, differingBlocks(a, b, 4096));
  truncateSync(b, 1 << 19);
  t.equal(runCli(["verify", a, b]).status, 3, "size mismatch is exit 3");
});
