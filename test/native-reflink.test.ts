// Reflinks where they really work: a small XFS filesystem (reflink=1) on a loop mount. Checks
// that FICLONE clones with copy-on-write, that cloneFile takes the reflink path, and that a
// clone across filesystems falls back (EXDEV) with the reason. Needs root, mkfs.xfs
// (xfsprogs) and loop mounts; skipped with the reason otherwise or without the addon.
import t from "tap";
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { addonLoadState, nativeAddon } from "../dist/io/native-addon.js";
import { cloneFile } from "../dist/io/native.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";
import { UNIT_BYTES, writeSparseFile } from "./helpers/native-sparse.js";

const seed = testSeed();
const addon = nativeAddon();

function run(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.status === 0) return undefined;
  return `${command} ${args.join(" ")}: ${(result.stderr || result.error?.message || `status ${result.status}`).trim()}`;
}

/** Mounts a fresh 320 MiB XFS with reflinks; returns the mount point or why that is impossible. */
function mountXfs(t: { teardown: (fn: () => void) => void }): { mountPoint?: string; reason?: string } {
  if (!addon) return { reason: `native addon not loaded: ${addonLoadState().reason}` };
  if (process.getuid?.() !== 0) return { reason: "mounting a test filesystem needs root" };
  if (spawnSync("mkfs.xfs", ["-V"]).status !== 0) return { reason: "mkfs.xfs not installed (apt-get install xfsprogs)" };
  const dir = tempDir(t);
  const image = join(dir, "xfs.img");
  const mountPoint = join(dir, "mnt");
  closeSync(openSync(image, "w"));
  truncateSync(image, 320 * 1024 * 1024);
  mkdirSync(mountPoint);
  const failure = run("mkfs.xfs", ["-q", "-m", "reflink=1", image]) ?? run("mount", ["-o", "loop", image, mountPoint]);
  if (failure) return { reason: `cannot make an XFS loop mount here: ${failure}` };
  t.teardown(() => {
    run("umount", ["--lazy", mountPoint]);
  });
  return { mountPoint };
}

t.test("FICLONE and cloneFile on XFS with reflink=1; fallback across filesystems", async (t) => {
  const { mountPoint, reason } = mountXfs(t);
  if (!mountPoint) return t.plan(0, reason);
  const src = join(mountPoint, "src.img");
  writeSparseFile(src, [true, false, true, true, false, false, true, false], new Prng(seed));

  const dstFd = openSync(join(mountPoint, "ficlone.img"), "w+");
  const srcFd = openSync(src, "r");
  await addon!.reflinkAsync(srcFd, dstFd);
  t.ok(readFileSync(join(mountPoint, "ficlone.img")).equals(readFileSync(src)), `seed ${seed}: clone is identical`);
  writeSync(dstFd, Buffer.alloc(UNIT_BYTES, 0xee), 0, UNIT_BYTES, 0);
  t.notOk(readFileSync(src).subarray(0, UNIT_BYTES).equals(Buffer.alloc(UNIT_BYTES, 0xee)), "writing the clone leaves the source alone (copy-on-write)");
  closeSync(srcFd);
  closeSync(dstFd);

  const cloned = await cloneFile(src, join(mountPoint, "clone.img"));
  t.same([cloned.method, cloned.reason, cloned.bytesCopied, cloned.sizeBytes], ["reflink", undefined, 0, 8 * UNIT_BYTES]);
  t.ok(readFileSync(join(mountPoint, "clone.img")).equals(readFileSync(src)), "cloneFile result is identical");

  const elsewhere = join(tempDir(t), "cross.img");
  const crossed = await cloneFile(src, elsewhere);
  t.not(crossed.method, "reflink", `across filesystems: ${crossed.method}`);
  t.match(crossed.reason, /reflink unsupported here \(EXDEV/, `reason: ${crossed.reason}`);
  t.ok(readFileSync(elsewhere).equals(readFileSync(src)), "the fallback copy is identical");
  t.ok(statSync(elsewhere).blocks < (8 * UNIT_BYTES) / 512, "and keeps the holes");
  rmSync(elsewhere);
});
