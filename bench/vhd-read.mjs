// Sequential read throughput of VHD vs raw (docs/vhd.md, "Speed"): the same random content
// read through vhdsync from a raw file and from a fully allocated dynamic VHD (target: VHD
// time <= 1.25x raw), and a sparse dynamic VHD with 1 block in 8 allocated (target: time in
// proportion to its allocated blocks). Reads go into a WASM memory view, 4 MiB at a time,
// page cache warm; runs alternate and the median of several is kept (wall and CPU time).
// VHDSYNC_BENCH_TINY=1: 32 MiB, 3 runs. Results: bench/results/vhd-read.json.
//   node bench/vhd-read.mjs            (needs `npm run build`)
import { randomFillSync } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { MiB, median, round, writeResults } from "./hash-common.mjs";

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const SIZE_BYTES = tiny ? 32 * MiB : 1024 * MiB;
const RUNS = tiny ? 3 : 7;
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

/** Reads a whole image sequentially into WASM memory; returns wall and CPU seconds. */
async function readAll(path) {
  const image = await openImage(path, { readOnly: true });
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let offset = 0; offset < image.virtualSize; offset += CHUNK_BYTES) {
    const length = Math.min(CHUNK_BYTES, image.virtualSize - offset);
    await image.read(length === CHUNK_BYTES ? view : view.subarray(0, length), offset);
  }
  const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  await image.close();
  return { wallSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

try {
  const paths = await prepare();
  const samples = { raw: [], full: [], sparse: [] };
  for (const kind of Object.keys(samples)) await readAll(paths[kind]); // warm the page cache
  for (let run = 0; run < RUNS; run++) for (const kind of Object.keys(samples)) samples[kind].push(await readAll(paths[kind]));
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
    fullVsRaw: { wallRatio: round(summary.full.wallSeconds / summary.raw.wallSeconds), cpuRatio: round(summary.full.cpuSeconds / summary.raw.cpuSeconds), target: 1.25 },
    sparse: {
      allocatedFraction,
      wallRatioToFull: round(summary.sparse.wallSeconds / summary.full.wallSeconds),
      cpuRatioToFull: round(summary.sparse.cpuSeconds / summary.full.cpuSeconds),
      note: "ratio of sparse to full read time; proportional cost means close to allocatedFraction (plus zero-filling the unallocated part of the caller's buffer)",
    },
  };
  const out = writeResults("vhd-read", tiny, result);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\nwritten to ${out}\n`);
} finally {
  wasm.release(address);
  rmSync(dir, { recursive: true, force: true });
}
