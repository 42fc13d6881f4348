// Merge speed: a dynamic base with a differencing child holding 30% of its 2 MiB blocks
// (1 GiB virtual; VHDSYNC_BENCH_TINY=1: 32 MiB) is merged with `mergeSnapshots` (the child
// into its parent snapshot), and the same number of bytes is copied file to file with
// sequential 8 MiB reads/writes + fdatasync in the same run. Target: merge >= 0.5x the
// copy speed. Best of REPEATS runs each (a busy machine makes single runs noisy).
// Results: bench/results/snapshot-merge.json (tiny: bench/results/tmp/).
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { createSnapshot, createVhd, listSnapshots, mergeSnapshots, openImage } from "../dist/index.js";
import { MiB, round, writeResults } from "./hash-common.mjs";

const tiny = Boolean(process.env.VHDSYNC_BENCH_TINY);
const DISK_BYTES = tiny ? 32 * MiB : 1024 * MiB;
const BLOCK_BYTES = 2 * MiB;
const ALLOCATED_FRACTION = 0.3;
const COPY_CHUNK_BYTES = 8 * MiB;
const REPEATS = tiny ? 1 : 3;

/** Deterministic block content (xorshift), distinct per block. */
function blockContent(block) {
  const bytes = new Uint8Array(BLOCK_BYTES);
  const words = new Uint32Array(bytes.buffer);
  let x = (block * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    words[i] = x;
  }
  return bytes;
}

/** Every ~1/fraction-th block, spread over the disk. */
function chosenBlocks() {
  const blocks = DISK_BYTES / BLOCK_BYTES;
  const count = Math.round(blocks * ALLOCATED_FRACTION);
  return Array.from({ length: count }, (_, i) => Math.floor((i * blocks) / count));
}

/** Base (empty dynamic) → snapshot → child with 30% of the blocks written. */
async function buildChain(dir) {
  const disk = join(dir, "disk.vhd");
  await (await createVhd(disk, { type: "dynamic", sizeBytes: DISK_BYTES, blockSizeBytes: BLOCK_BYTES })).close();
  await createSnapshot(disk, { name: "base" });
  const image = await openImage(disk, { readOnly: false });
  for (const block of chosenBlocks()) await image.write(blockContent(block), block * BLOCK_BYTES);
  await image.close();
  const active = (await listSnapshots(disk)).layers.find((layer) => layer.kind === "active");
  return { disk, allocatedBytes: active.allocatedBytes };
}

async function timeMerge(dir) {
  const { disk, allocatedBytes } = await buildChain(dir);
  const started = performance.now();
  await mergeSnapshots(disk);
  const seconds = (performance.now() - started) / 1000;
  return { allocatedBytes, seconds };
}

/** Sequential file-to-file copy of `bytes` (source freshly written, as the child is). */
async function timeCopy(dir, bytes) {
  const source = join(dir, "copy-source.bin");
  const handle = await open(source, "w");
  for (let done = 0; done < bytes; done += BLOCK_BYTES) await handle.write(blockContent(done / BLOCK_BYTES), 0, Math.min(BLOCK_BYTES, bytes - done));
  await handle.close();
  const buffer = Buffer.alloc(COPY_CHUNK_BYTES);
  const started = performance.now();
  const input = await open(source, "r");
  const output = await open(join(dir, "copy-target.bin"), "w");
  for (let done = 0; done < bytes; ) {
    const { bytesRead } = await input.read(buffer, 0, Math.min(COPY_CHUNK_BYTES, bytes - done), done);
    await output.write(buffer, 0, bytesRead, done);
    done += bytesRead;
  }
  await output.datasync();
  await input.close();
  await output.close();
  return (performance.now() - started) / 1000;
}

const merges = [];
const copies = [];
for (let run = 0; run < REPEATS; run++) {
  const dir = mkdtempSync(join(tmpdir(), "vhdsync-bench-merge-"));
  try {
    const merge = await timeMerge(dir);
    merges.push(merge);
    copies.push(await timeCopy(dir, merge.allocatedBytes));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const allocatedBytes = merges[0].allocatedBytes;
const mergeSeconds = Math.min(...merges.map((merge) => merge.seconds));
const copySeconds = Math.min(...copies);
const mergeMiBps = allocatedBytes / MiB / mergeSeconds;
const copyMiBps = allocatedBytes / MiB / copySeconds;
const result = {
  diskBytes: DISK_BYTES,
  blockBytes: BLOCK_BYTES,
  allocatedBytes,
  repeats: REPEATS,
  mergeSeconds: round(mergeSeconds),
  copySeconds: round(copySeconds),
  mergeMiBps: round(mergeMiBps, 1),
  copyMiBps: round(copyMiBps, 1),
  ratio: round(mergeMiBps / copyMiBps),
  target: 0.5,
  loadAverage: loadavg().map((value) => round(value, 2)),
  runs: { mergeSeconds: merges.map((merge) => round(merge.seconds)), copySeconds: copies.map((value) => round(value)) },
};
const path = writeResults("snapshot-merge", tiny, result);
console.log(`merge ${result.mergeMiBps} MiB/s, copy ${result.copyMiBps} MiB/s of ${(allocatedBytes / MiB).toFixed(0)} MiB: ratio ${result.ratio} (target >= 0.5) -> ${path}`);
