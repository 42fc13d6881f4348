// copy() keeps holes; resync into VHD targets (fixed and dynamic) checked with qemu-img
// compare; a dynamic VHD source with few allocated blocks reads only those blocks.
import t from "tap";
import { spawnSync } from "node:child_process";
import { statSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { copy } from "../dist/sync/copy.js";
import { resync } from "../dist/sync/resync.js";
import { createVhd } from "../dist/formats/vhd/index.js";
import { nativeStatus } from "../dist/io/native.js";
import { runCli } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { applyPattern, fileSha, writeRandomImage } from "./helpers/resync-images.js";

function qemuSame(a: string, b: string /* a VHD */): boolean {
  // Fixed VHDs look like raw files to qemu's probe: name the formats.
  const result = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "vpc", a, b]);
  if (result.status !== 0 && result.status !== 1) throw new Error(`qemu-img compare failed: ${result.stderr}`);
  return result.status === 0;
}

t.test("copy: content equal, zero and unallocated ranges stay holes", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const source = join(dir, "s.img");
  const target = join(dir, "copy.img");
  writeRandomImage(source, 4 * 1024 * 1024, prng);
  const report = await copy(source, target, { workers: prng.int(2) * 2 });
  t.equal(report.created, true);
  t.equal(fileSha(target), fileSha(source), `seed ${seed}`);
  const native = nativeStatus().loaded;
  if (native) t.ok(statSync(target).blocks * 512 <= statSync(source).blocks * 512, `target no less sparse than source (seed ${seed})`);
  else t.pass("native addon absent: sparseness not checked");
  // Copy over an existing, different image: same content afterwards.
  writeRandomImage(target, 4 * 1024 * 1024, prng);
  const cli = runCli(["copy", source, target, "--json"]);
  t.equal(cli.status, 0, cli.stderr);
  t.equal(fileSha(target), fileSha(source));
});

t.test("resync into VHD targets (fixed, dynamic): qemu-img compare agrees", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const size = 6 * 1024 * 1024;
  const source = join(dir, "s.img");
  writeRandomImage(source, size, prng);
  for (const type of ["dynamic", "fixed"] as const) {
    const target = join(dir, `t-${type}.vhd`);
    const vhd = await createVhd(target, { type, sizeBytes: size, blockSizeBytes: 512 * 1024 });
    await vhd.close();
    const first = await resync(source, target, { workers: prng.int(2) * 2 });
    t.ok(qemuSame(source, target), `${type}: equal after first resync (seed ${seed})`);
    t.ok(first.blocksChanged > 0);
    const changed = join(dir, "s2.img");
    copyFileSync(source, changed);
    applyPattern(changed, size, 65536, "mixed", prng);
    const second = await resync(changed, target, {});
    t.ok(qemuSame(changed, target), `${type}: equal after an incremental resync (seed ${seed})`);
    t.ok(second.bytesWritten + second.bytesZeroed <= second.blocksChanged * 65536);
    const check = runCli(["check", target]);
    t.equal(check.status, 0, `${type}: vhdsync check clean: ${check.stdout}`);
  }
});
