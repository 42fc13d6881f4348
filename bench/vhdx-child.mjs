// A differencing VHDX source (what a Hyper-V checkpoint, an .avhdx child, is): a child whose
// own data is 0.9% of the 4 KiB pages of the disk (in partially present 1 MiB blocks, so every
// read of it consults sector bitmaps) over a dynamic VHDX parent that qemu-img makes from the
// pair's source (bench/resync-fixtures.mjs). `resync --dry-run` of the child against the
// pair's target and `checksum` of the child, by the CLI, in alternating rounds:
// - gathered: the native jobs pread the pieces from the child's and the parent's files;
// - memory: VHDSYNC_NO_GATHER=1, the chain read through its format into 4 MiB chunks;
// - wasm: VHDSYNC_NO_NATIVE_SCAN=1, the WASM scanners on worker threads;
// - raw: the child's content as a raw file (the same scans without a format: the floor).
// No peer tool reads differencing VHDX files (qemu cannot open one with its parent: "Backing
// file not supported for file format 'vhdx'"), so the raw file is the reference. qemu-img
// cannot write such a child and the library writes no VHDX: the test builder
// (test/helpers/vhdx-builder.ts, written from [MS-VHDX]) is transpiled here with TypeScript.
// Checks: the three paths write byte-identical digest files, and every dry run counts the
// changed blocks the raw content does. Medians; peak RSS of each dry run. VHDSYNC_BENCH_TINY=1
// runs at 8 MiB; without qemu-img it says so and exits 0. Writes bench/results/vhdx-child.json
// at full size.
import { spawnSync } from "node:child_process";
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { changedBlockOffsets, makePair } from "./resync-fixtures.mjs";

const TINY = process.env.VHDSYNC_BENCH_TINY === "1";
const MIB = 1024 * 1024;
const SIZE = TINY ? 8 * MIB : 2048 * MIB;
const ROUNDS = TINY ? 1 : Number(process.env.VHDSYNC_BENCH_ROUNDS ?? 5);
const FRACTION = 0.009;
const HAVE_TIME = existsSync("/usr/bin/time");
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "bin/vhdsync.cjs");
const dir = mkdtempSync(join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-vhdx-child-"));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
/** NODE_EXTRA_CA_CERTS costs every Node process start-up time (see bench/resync.mjs). */
const NODE_ENV = { ...process.env };
delete NODE_ENV.NODE_EXTRA_CA_CERTS;
const MODES = {
  gathered: {},
  memory: { VHDSYNC_NO_GATHER: "1" },
  wasm: { VHDSYNC_NO_NATIVE_SCAN: "1" },
  raw: {},
};

try {
  const qemu = spawnSync("qemu-img", ["--version"], { encoding: "utf8" });
  if (qemu.status !== 0) console.log(`vhdx-child: no qemu-img (${qemu.error?.code ?? qemu.stderr.trim()}); skipped`);
  else await measure();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/** The test builder, transpiled (it imports nothing). */
async function vhdxBuilder() {
  const source = readFileSync(join(ROOT, "test/helpers/vhdx-builder.ts"), "utf8");
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  const path = join(dir, "vhdx-builder.mjs");
  writeFileSync(path, outputText);
  return import(pathToFileURL(path).href);
}

/** The parent (qemu-img's VHDX of `source`), the child over it, and the child's content as a raw file. */
async function makeChain(source) {
  const { STATE, buildVhdx, dataWriteGuidOf } = await vhdxBuilder();
  const parent = join(dir, "parent.vhdx");
  const made = spawnSync("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=1M", source, parent], { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`qemu-img convert: ${made.stderr}`);
  const head = Buffer.alloc(320 * 1024);
  const fd = openSync(parent, "r");
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  // The child's pages, grouped by 1 MiB payload block; the same pages written into a copy of the source.
  const content = join(dir, "child.raw");
  copyFileSync(source, content);
  const contentFd = openSync(content, "r+");
  const blocks = new Map();
  changedBlockOffsets(SIZE, Math.round((SIZE / 4096) * FRACTION), 11, (page, offset) => {
    writeSync(contentFd, page, 0, page.length, offset);
    const index = Math.floor(offset / MIB);
    if (!blocks.has(index)) blocks.set(index, { data: new Uint8Array(MIB), pages: new Set() });
    blocks.get(index).data.set(page, offset % MIB);
    blocks.get(index).pages.add((offset % MIB) / 4096);
  });
  closeSync(contentFd);
  const built = new Map([...blocks].map(([index, { data, pages }]) => [index, { state: STATE.PARTIALLY_PRESENT, data, present: (sector) => pages.has(Math.floor(sector / 8)) }]));
  const child = join(dir, "child.vhdx");
  writeFileSync(child, buildVhdx({
    virtualSize: SIZE, blockSize: MIB, hasParent: true, blocks: built, dataWriteGuid: "c1c1c1c1-0000-0000-0000-000000000001",
    locator: { parent_linkage: `{${dataWriteGuidOf(head).toUpperCase()}}`, relative_path: "parent.vhdx" },
  }));
  return { parent, child, content, partialBlocks: blocks.size };
}

/** Runs the CLI; wall seconds, and its peak RSS through /usr/bin/time (null without it). */
function vhdsync(args, env) {
  const [file, argv] = HAVE_TIME ? ["/usr/bin/time", ["-f", "%M", process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]];
  const started = performance.now();
  const run = spawnSync(file, argv, { encoding: "utf8", env: { ...NODE_ENV, ...env } });
  const seconds = (performance.now() - started) / 1000;
  if (run.status !== 0) throw new Error(`vhdsync ${args.join(" ")} failed (${run.status}): ${run.stderr}`);
  return { seconds, peakRssKib: HAVE_TIME ? Number(run.stderr.trim().split("\n").pop()) : null, stdout: run.stdout };
}

async function measure() {
  const { source, target } = makePair(dir, SIZE, FRACTION, 7);
  const chain = await makeChain(source);
  for (const path of [chain.parent, chain.child, chain.content, target]) spawnSync("sh", ["-c", `cat '${path}' > /dev/null`]);
  const times = Object.fromEntries(Object.keys(MODES).map((mode) => [mode, { dryRun: [], checksum: [], peakRssKib: [] }]));
  const changed = new Set();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, env] of Object.entries(MODES)) {
      const image = mode === "raw" ? chain.content : chain.child;
      const dry = vhdsync(["resync", image, target, "--dry-run", "--json"], env);
      const report = JSON.parse(dry.stdout.trim().split("\n").pop());
      if (report.scanner !== (mode === "wasm" ? "wasm" : "native")) throw new Error(`${mode}: the ${report.scanner} scanner ran`);
      changed.add(report.blocksChanged);
      times[mode].dryRun.push(dry.seconds);
      times[mode].peakRssKib.push(dry.peakRssKib);
      times[mode].checksum.push(vhdsync(["checksum", image, "-o", join(dir, `${mode}.digest`)], env).seconds);
    }
  }
  if (changed.size !== 1) throw new Error(`the dry runs counted different changed blocks: ${[...changed].join(", ")}`);
  const digests = ["gathered", "memory", "wasm"].map((mode) => readFileSync(join(dir, `${mode}.digest`)));
  if (!digests.every((digest) => digest.equals(digests[0]))) throw new Error("the three paths wrote different digest files");
  const m = Object.fromEntries(Object.entries(times).map(([mode, values]) => [mode, { dryRun: median(values.dryRun), checksum: median(values.checksum), peakRssKib: HAVE_TIME ? Math.max(...values.peakRssKib) : null }]));
  const results = {
    benchmark: "vhdx-child",
    tiny: TINY,
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model, cpus: availableParallelism(), node: process.version },
    sizeBytes: SIZE,
    rounds: ROUNDS,
    partiallyPresentBlocks: chain.partialBlocks,
    blocksChanged: [...changed][0],
    median: m,
    // > 1: slower than the child's content as a raw file.
    gatheredOverRaw: { dryRun: m.gathered.dryRun / m.raw.dryRun, checksum: m.gathered.checksum / m.raw.checksum },
    // < 1: the gathered path is faster.
    gatheredOverMemory: { dryRun: m.gathered.dryRun / m.memory.dryRun, checksum: m.gathered.checksum / m.memory.checksum },
    gatheredOverWasm: { dryRun: m.gathered.dryRun / m.wasm.dryRun, checksum: m.gathered.checksum / m.wasm.checksum },
    allSeconds: times,
  };
  console.log(JSON.stringify(results, null, 2));
  if (!TINY) {
    mkdirSync(join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(join(ROOT, "bench/results/vhdx-child.json"), JSON.stringify(results, null, 2) + "\n");
  }
}
