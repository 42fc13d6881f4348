// Report counters of checksum, copy and resync against plain-JS oracles: blocksZero (source
// blocks that read as zeros, holes and a partial last block included), blocksData,
// blocksChanged, blocksTotal; inline and with scan workers, small and large blocks.
import t from "tap";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { checksum } from "../dist/sync/checksum.js";
import { copy } from "../dist/sync/copy.js";
import { resync } from "../dist/sync/resync.js";
import { applyPattern, differingBlocks, pairSetup, writeRandomImage, zeroBlocks } from "./helpers/resync-images.js";

/** Blocks of the file at `path` that are all zero bytes (the last one may be partial). */
for (const workers of [0, 2]) {
  for (const blockSizeBytes of [4096, 65536]) {
    t.test(`counters match the oracle: ${blockSizeBytes}-byte blocks, ${workers} workers`, async (t) => {
      const { seed, prng, dir, source, target } = pairSetup(t);
      const size = 3 * 1024 * 1024 + 1000 + prng.int(3000);
      writeRandomImage(source, size, prng, blockSizeBytes);
      copyFileSync(source, target);
      applyPattern(target, size, blockSizeBytes, "mixed", prng);
      const total = Math.ceil(size / blockSizeBytes);
      const zero = zeroBlocks(source, blockSizeBytes);
      const changed = differingBlocks(source, target, blockSizeBytes);
      const context = `seed ${seed}, ${zero} zero of ${total} blocks`;
      t.ok(zero > 0 && zero < total, `the image has zero and data blocks (${context})`);

      const digest = await checksum(source, join(dir, "s.digest"), { blockSizeBytes, workers });
      t.equal(digest.blocksZero, zero, `checksum blocksZero (${context})`);
      t.equal(digest.blocksData, total - zero, `checksum blocksData (${context})`);

      const copied = await copy(source, join(dir, "copy.img"), { blockSizeBytes, workers });
      t.equal(copied.blocksZero, zero, `copy blocksZero (${context})`);

      const dry = await resync(source, target, { blockSizeBytes, workers, dryRun: true });
      t.equal(dry.blocksTotal, total, `resync blocksTotal (${context})`);
      t.equal(dry.blocksZero, zero, `resync blocksZero (${context})`);
      t.equal(dry.blocksChanged, changed, `resync blocksChanged (${context})`);
    });
  }
}
