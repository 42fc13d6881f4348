// blocksCompared counts every block a compare read any part of, with both scanners: a block
// whose data (on either side) starts after its first 4 KiB piece (a resync that writes compares
// in 4 KiB pieces; a dynamic VHD's own blocks may be smaller than --block-size) was counted as
// unallocated, so a run could report blocksChanged > blocksCompared (verify: blocksDiffering 1,
// blocksCompared 0). Found by differential fuzzing.
import t from "tap";
import { closeSync, openSync, writeSync, ftruncateSync } from "node:fs";
import { join } from "node:path";
import { createVhd } from "../dist/formats/vhd/index.js";
import { resync } from "../dist/sync/resync.js";
import { verify } from "../dist/sync/verify.js";
import { withEnv } from "./helpers/env.js";
import { tempDir } from "./helpers/tmp.js";
import { nativeAddon } from "../dist/io/native-addon.js";

const KiB = 1024;

function sparseRaw(path: string, size: number, dataAt: number[]): void {
  const fd = openSync(path, "w");
  ftruncateSync(fd, size);
  for (const at of dataAt) writeSync(fd, Buffer.alloc(4 * KiB, 0x61), 0, 4 * KiB, at);
  closeSync(fd);
}

async function dynamicVhd(path: string, size: number, dataAt: number[]): Promise<void> {
  const image = await createVhd(path, { type: "dynamic", sizeBytes: size, blockSizeBytes: 4 * KiB });
  for (const at of dataAt) await image.write(Buffer.alloc(4 * KiB, 0x61), at);
  await image.close();
}

for (const scanner of ["native", "wasm"] as const) {
  const skip = scanner === "native" && !nativeAddon() ? "no native addon" : false;
  t.test(`blocksCompared counts partly allocated blocks (${scanner})`, { skip }, async (t) => {
    const dir = tempDir(t, "vhdsync-compared-");
    await withEnv("VHDSYNC_NO_NATIVE_SCAN", scanner === "wasm" ? "1" : undefined, async () => {
      // Sources: data at 8 KiB (inside block 0 of 64 KiB) and at 200 KiB (block 3); the
      // targets: empty dynamic VHDs of 4 KiB blocks, so both sides have allocation maps.
      const size = 1024 * KiB;
      const source = join(dir, "s.vhd");
      await dynamicVhd(source, size, [8 * KiB, 200 * KiB]);
      for (const dryRun of [false, true]) {
        const target = join(dir, `t-${dryRun}.vhd`);
        await (await createVhd(target, { type: "dynamic", sizeBytes: size, blockSizeBytes: 4 * KiB })).close();
        const report = await resync(source, target, { blockSizeBytes: 64 * KiB, dryRun });
        t.equal(report.scanner, scanner);
        t.equal(report.blocksChanged, 2, `changed (dryRun ${dryRun})`);
        t.equal(report.blocksCompared, 2, `compared (dryRun ${dryRun})`);
        t.equal(report.blocksUnallocated, 14, `unallocated (dryRun ${dryRun})`);
      }
      const empty = join(dir, "e.vhd");
      await (await createVhd(empty, { type: "dynamic", sizeBytes: size, blockSizeBytes: 4 * KiB })).close();
      const found = await verify(source, empty, { blockSizeBytes: 64 * KiB });
      t.equal(found.blocksDiffering, 2);
      t.equal(found.blocksCompared, 2);
      // A block larger than the 4 MiB compare parts: data in its second part only.
      const big = join(dir, "big.vhd");
      await dynamicVhd(big, 16 * 1024 * KiB, [9 * 1024 * KiB]);
      const bigEmpty = join(dir, "big-e.vhd");
      await (await createVhd(bigEmpty, { type: "dynamic", sizeBytes: 16 * 1024 * KiB, blockSizeBytes: 4 * KiB })).close();
      const whole = await verify(big, bigEmpty, { blockSizeBytes: 16 * 1024 * KiB });
      t.equal(whole.blocksDiffering, 1);
      t.equal(whole.blocksCompared, 1);
    });
    if (scanner === "native") {
      // Raw pair (file holes): a resync that writes, source data inside block 0 only.
      const s = join(dir, "s.raw");
      const tg = join(dir, "t.raw");
      sparseRaw(s, 1024 * KiB, [8 * KiB]);
      sparseRaw(tg, 1024 * KiB, []);
      const report = await resync(s, tg, { blockSizeBytes: 64 * KiB });
      t.equal(report.blocksChanged, 1);
      t.ok(report.blocksCompared >= report.blocksChanged, `compared ${report.blocksCompared} >= changed`);
      t.equal(report.blocksCompared + report.blocksUnallocated, report.blocksTotal);
    }
  });
}
