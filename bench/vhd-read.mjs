// Sequential read throughput of VHD vs raw (docs/vhd.md, "Speed"): the same random content
// read through vhdsync from a raw file and from a fully allocated dynamic VHD (target: VHD
// time <= 1.25x raw), and a sparse dynamic VHD with 1 block in 8 allocated (target: time in
// proportion to its allocated blocks; measured both as a whole-disk read and as a read of
// its allocation map's ranges). Reads go into a WASM memory view, 4 MiB at a time,
// page cache warm; runs alternate and the median of several is kept (wall and CPU time),
// plus the median of per-run full/raw ratios (steadier on a busy machine).
// VHDSYNC_BENCH_TINY=1: 32 MiB, 3 runs (else 1 GiB, 11 runs). Results: bench/results/vhd-read.json.
//   node bench/vhd-read.mjs            (needs `npm run build`)
import { randomFillSync } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { MiB, median, round, writeResults } from "./hash-common.mjs";

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const SIZE_BYTES = tiny ? 32 * MiB : 1024 * MiB;
const RUNS = tiny ? 3 : 11;
const CHUNK_BYTES = 4 * MiB;
const BLOCK_BYTES = 2 * MiB;
const SPARSE_EVERY = 8;

const { createVhd, openImage, getWasm } = await import(new URL("../dist/index.js", import.meta.url).href);

const dir = mkdtempSync(join(tmpdir(), "vhdsync-bench-vhd-"));
const wasm = getWasm();
const address = wasm.alloc(CHUNK_BYTES);
const view = wasm.view(address, CHUNK_BYTES);

/** Writes the same random content to a raw file, a full dynamic VHD and a sparse one. */
async function prepare() {
  const rawPath = join(dir, "content.raw");
  const fd = openSync(rawPath, "w");
  const full = await createVhd(join(dir, "full.vhd"), { type: "dynamic", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
  const sparse = await createVhd(join(dir, "sparse.vhd"), { type: "dynamic", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES });
  const block = new Uint8Array(BLOCK_BYTES);
  for (let offset = 0; offset < SIZE_BYTES; offset += BLOCK_BYTES) {
    randomFillSync(block);
    writeSync(fd, block, 0, block.length, offset);
    await full.write(block, offset);
    if ((offset / BLOCK_BYTES) % SPARSE_EVERY === 0) await sparse.write(block, offset);
  }
  closeSync(fd);
  await full.close();
  await sparse.close();
  return { raw: rawPath, full: full.path, sparse: sparse.path };
}

/**
 * Reads a whole image sequentially into WASM memory (or, with `allocatedOnly`, only the
 * ranges its allocation map lists, as resync does); returns wall and CPU seconds.
 */
async function readAll(path, allocatedOnly = false) {
  const image = await openImage(path, { readOnly: true });
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  const extents = allocatedOnly ? await image.allocationMap(0, image.virtualSize, "chain") : [{ offset: 0, length: image.virtualSize }];
  for (const extent of extents) {
    for (let offset = extent.offset; offset < extent.offset + extent.length; offset += CHUNK_BYTES) {
      const length = Math.min(CHUNK_BYTES, extent.offset + extent.length - offset);
      await image.read(length === CHUNK_BYTES ? view : view.subarray(0, length), offset);
    }
  }
  const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  await image.close();
  return { wallSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

try {
  const paths = await prepare();
  const samples = { raw: [], full: [], sparse: [], sparseAllocatedOnly: [] };
  const pathOf = (kind) => paths[kind === "sparseAllocatedOnly" ? "sparse" : kind];
  for (const kind of Object.keys(samples)) await readAll(pathOf(kind)); // warm the page cache
  for (let run = 0; run < RUNS; run++) {
    for (const kind of Object.keys(samples)) samples[kind].push(await readAll(pathOf(kind), kind === "sparseAllocatedOnly"));
  }
  const summary = {};
  for (const [kind, list] of Object.entries(samples)) {
    const wall = median(list.map((s) => s.wallSeconds));
    const cpu = median(list.map((s) => s.cpuSeconds));
    summary[kind] = { wallSeconds: round(wall, 4), cpuSeconds: round(cpu, 4), GBps: round(SIZE_BYTES / wall / 1e9, 3) };
  }
  const allocatedFraction = 1 / SPARSE_EVERY;
  const result = {
    sizeBytes: SIZE_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    chunkBytes: CHUNK_BYTES,
    runs: RUNS,
    loadAverage: loadavg().map((value) => round(value, 2)),
    results: summary,
    fullVsRaw: {
      wallRatio: round(summary.full.wallSeconds / summary.raw.wallSeconds),
      cpuRatio: round(summary.full.cpuSeconds / summary.raw.cpuSeconds),
      medianPairWallRatio: round(median(samples.full.map((s, i) => s.wallSeconds / samples.raw[i].wallSeconds))),
      medianPairCpuRatio: round(median(samples.full.map((s, i) => s.cpuSeconds / samples.raw[i].cpuSeconds))),
      target: 1.25,
    },
    sparse: {
      allocatedFraction,
      wallRatioToFull: round(summary.sparse.wallSeconds / summary.full.wallSeconds),
      cpuRatioToFull: round(summary.sparse.cpuSeconds / summary.full.cpuSeconds),
      allocatedOnlyWallRatioToFull: round(summary.sparseAllocatedOnly.wallSeconds / summary.full.wallSeconds),
      allocatedOnlyCpuRatioToFull: round(summary.sparseAllocatedOnly.cpuSeconds / summary.full.cpuSeconds),
      note: "sparse: whole disk read, so the unallocated 7/8 are zero-filled into the caller's buffer (memset cost); sparseAllocatedOnly: only the allocation map's ranges are read, as resync does; proportional cost means a ratio near allocatedFraction",
    },
  };
  const out = writeResults("vhd-read", tiny, result);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\nwritten to ${out}\n`);
} finally {
  wasm.release(address);
  rmSync(dir, { recursive: true, force: true });
}
