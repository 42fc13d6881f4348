// hashSegment's target frame, given as views into larger buffers (as NativeHashScanner's
// chunks give it), is copied into whole ArrayBuffers for the addon, which reads them by
// pointer on a pool thread: the copies must stay alive until the job settles. A garbage
// collection while a job waits at its gate, and new buffers of the same size taking the freed
// memory, made an unchanged block read as changed (test/native-hash-scan.test.ts, round 3).
import t from "tap";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { randomBytes } from "node:crypto";
import { nativeAddon } from "../dist/io/native-addon.js";
import { closeJobGate, hashSegment, openJobGate } from "../dist/io/native-compare.js";
import { tempDir } from "./helpers/tmp.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const skip = nativeAddon() ? false : "no native addon";

t.test("hashSegment keeps its copies of the target frame alive until the job settles", { skip }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "source.img");
  const length = 64 * 1024 * 1024;
  writeFileSync(path, randomBytes(length));
  const fd = openSync(path, "r");
  t.teardown(() => closeSync(fd));
  const request = { sourceFd: fd, targetFd: fd, algorithmId: 4, digestLength: 32, blockSizeBytes: 64 * 1024, startBytes: 0, lengthBytes: length, ranges: [[0, length]] as Array<[number, number]>, write: false };
  const own = await hashSegment(request);
  // The frame as parts of larger buffers (hashSegment copies such views).
  const flagsHost = new Uint8Array(own.flags.length + 16);
  flagsHost.set(own.flags, 8);
  const digestsHost = new Uint8Array(own.digests.length + 64);
  digestsHost.set(own.digests, 32);
  const target = { flags: flagsHost.subarray(8, 8 + own.flags.length), digests: digestsHost.subarray(32, 32 + own.digests.length) };
  const gate = openJobGate(1)!;
  t.teardown(() => closeJobGate(gate));
  let settled = 0;
  const jobs = Array.from({ length: 6 }, () => hashSegment({ ...request, target, gate }).finally(() => settled++));
  // While the jobs wait at the gate: collections, and new buffers of the copies' sizes
  // (filled with other bytes) where the freed copies were.
  const keep: Uint8Array[] = [];
  while (settled < jobs.length) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 2));
    for (let i = 0; i < 32; i++) keep.push(new Uint8Array(own.digests.length).fill(0xa5), new Uint8Array(own.flags.length).fill(0x5a));
    if (keep.length > 256) keep.splice(0, 128);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  for (const outcome of await Promise.all(jobs)) t.equal(outcome.changedBlocks, 0, "every block equals the target's frame");
});
