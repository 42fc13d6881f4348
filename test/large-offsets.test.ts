// Large offsets and huge virtual sizes: markers just below and above 2^31, 2^32 and 2^41 bytes
// and in the last (partial) block of sparse images of terabytes, through diff, resync and copy,
// on the addon's path (SEEK_DATA and the native scan), the WASM scanners
// (VHDSYNC_NO_NATIVE_SCAN=1) and the portable path (VHDSYNC_NO_NATIVE=1, a dynamic VHD at the
// format's 2040 GiB maximum). The bytes are checked by reading the files back at the marker
// offsets and, where qemu-img is installed, with `qemu-img compare`. Every file is sparse: a few
// KiB allocated each.

import t from "tap";
import { execFileSync } from "node:child_process";
import { closeSync, openSync, readSync, statSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { flagsToRanges } from "../dist/blocks/index.js";
import { runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const TiB = 2 ** 40;
const RAW_SIZE = 3 * TiB + 4097; // past 2^41, not a multiple of the block size
const VHD_MAX = 2040 * 2 ** 30; // dynamic VHD maximum (2,190,433,320,960 bytes)

function hasQemuImg(): boolean {
  try {
    execFileSync("qemu-img", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const QEMU = hasQemuImg();

// The sparse images are made and mapped with the addon (SEEK_DATA); without it every command
// here reads terabytes of holes (minutes each). The second CI pass (VHDSYNC_NO_NATIVE=1) skips
// the file: the first pass forces the WASM scanners and the portable path where they are tested.
const skip = process.env.VHDSYNC_NO_NATIVE === "1" ? "needs the addon to map terabytes of holes; the first pass forces the portable path where tested" : false;

function poke(path: string, offset: number, text: string): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, Buffer.from(text, "latin1"), 0, text.length, offset);
  } finally {
    closeSync(fd);
  }
}

function peek(path: string, offset: number, length: number): string {
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, offset);
    return buffer.toString("latin1");
  } finally {
    closeSync(fd);
  }
}

function sparse(path: string, size: number, markers: [number, string][]): void {
  closeSync(openSync(path, "w"));
  truncateSync(path, size);
  for (const [offset, text] of markers) poke(path, offset, text);
}

function json(args: string[], env: NodeJS.ProcessEnv = {}): { status: number; report: any; stderr: string } {
  const result = runCli([...args, "--json"], { env: { ...process.env, ...env } });
  let report: any = null;
  try {
    report = JSON.parse(result.stdout.trim().split("\n").pop()!);
  } catch {
    // left null: the assertions below say so
  }
  return { status: result.status, report, stderr: result.stderr };
}

function qemuSame(t: Tap.Test, a: string, b: string, formats: [string, string]): void {
  if (!QEMU) return;
  const out = execFileSync("qemu-img", ["compare", "-f", formats[0], "-F", formats[1], a, b], { encoding: "utf8" });
  t.match(out, /identical/, `qemu-img compare ${a} ${b}`);
}

// Markers: each MARK crosses or touches a power-of-two boundary; the last byte is the file's.
const MARKERS: [number, string][] = [
  [2 ** 31 - 3, "MARK"],
  [2 ** 32 - 2, "MARK"],
  [2 ** 32 + 7, "MARK"],
  [2 ** 41 - 8, "MARK"],
  [2 ** 41 + 11, "MARK"],
  [RAW_SIZE - 4097, "MARK"],
  [RAW_SIZE - 1, "Z"],
];

t.test("flagsToRanges numbers blocks past 2^32 (16 TiB in 4 KiB blocks) without wrapping", async (t) => {
  t.same(flagsToRanges(Uint8Array.from([0, 1, 1, 0]), 2 ** 32 + 5), [{ firstBlock: 2 ** 32 + 6, blockCount: 2 }]);
  t.same(flagsToRanges(Uint8Array.from([1]), 2 ** 32 - 1), [{ firstBlock: 2 ** 32 - 1, blockCount: 1 }]);
  t.same(flagsToRanges(Uint8Array.from([1, 1]), 2 ** 34), [{ firstBlock: 2 ** 34, blockCount: 2 }]);
  t.throws(() => flagsToRanges(Uint8Array.from([1]), -1), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.throws(() => flagsToRanges(Uint8Array.from([1]), 0.5), { code: "VHDSYNC_INVALID_ARGUMENT" });
});

// The WASM scanners walk every block of a run, holes included (~2 s per pass over 3 TiB in
// 4 KiB blocks): they get 64 MiB blocks, the native scan 4 KiB ones, to keep the test fast.
for (const [name, env, small] of [
  ["native scan", {}, true],
  ["WASM scanners", { VHDSYNC_NO_NATIVE_SCAN: "1" }, false],
] as const) {
  t.test(`raw sparse ${RAW_SIZE} bytes, ${name}: diff, resync, copy past 2^41`, { skip }, async (t) => {
    const dir = tempDir(t);
    const [a, b, empty, copied] = ["a.raw", "b.raw", "empty.raw", "copy.raw"].map((name) => join(dir, name));
    sparse(a, RAW_SIZE, MARKERS);
    if (statSync(a).blocks * 512 > 1 << 20) {
      t.skip("the filesystem does not keep holes");
      return;
    }
    sparse(b, RAW_SIZE, [...MARKERS, [2 ** 32 - 1, "W"], [2 ** 41 + 11, "X"], [RAW_SIZE - 1, "Y"]]);
    sparse(empty, RAW_SIZE, []);

    for (const [blockSize, extents] of [
      ["4K", [
        { offset: 2 ** 32 - 4096, length: 4096 },
        { offset: 2 ** 41, length: 4096 },
        { offset: RAW_SIZE - 1, length: 1 },
      ]],
      ["64M", [
        { offset: 2 ** 32 - 2 ** 26, length: 2 ** 26 },
        { offset: 2 ** 41, length: 2 ** 26 },
        { offset: 3 * TiB, length: 4097 },
      ]],
    ] as const) {
      if (blockSize === "4K" && !small) continue;
      const blockBytes = blockSize === "4K" ? 4096 : 2 ** 26;
      const diff = json(["diff", a, b, "--block-size", blockSize], env);
      t.equal(diff.status, 1, `diff ${blockSize} exits 1: ${diff.stderr}`);
      t.same(diff.report.extents, extents, `diff ${blockSize} extents`);
      t.equal(diff.report.blocksTotal, Math.ceil(RAW_SIZE / blockBytes));
      t.equal(diff.report.blocksDiffering, 3);
      t.equal(diff.report.bytesDiffering, extents.reduce((sum, e) => sum + e.length, 0));
    }

    const bs = small ? ["--block-size", "4K"] : ["--block-size", "64M"];
    const blockBytes = small ? 4096 : 2 ** 26;
    // Blocks with data: 2 across 2^31, 2 across 2^32, 1 each side of 2^41, the last 4097 bytes
    // (2 blocks of 4 KiB, 1 of 64 MiB).
    const dataBlocks = small ? 8 : 7;
    const resync = json(["resync", a, empty, ...bs], env);
    t.equal(resync.status, 0, resync.stderr);
    t.equal(resync.report.blocksTotal, Math.ceil(RAW_SIZE / blockBytes));
    t.equal(resync.report.blocksChanged, dataBlocks);
    if (small) t.equal(resync.report.bytesWritten, 7 * 4096 + 1);
    t.equal(statSync(empty).size, RAW_SIZE);
    for (const [offset, text] of MARKERS) t.equal(peek(empty, offset, text.length), text, `resynced marker at ${offset}`);
    t.ok(statSync(empty).blocks * 512 < 1 << 20, "the target stays sparse");
    qemuSame(t, a, empty, ["raw", "raw"]);

    const back = json(["resync", a, b, ...bs], env);
    t.equal(back.status, 0, back.stderr);
    t.equal(back.report.blocksChanged, 3);
    t.equal(json(["diff", a, b, ...bs], env).status, 0, "equal after the resync");

    const copy = json(["copy", a, copied, ...bs], env);
    t.equal(copy.status, 0, copy.stderr);
    t.equal(copy.report.blocksWritten, dataBlocks);
    t.equal(statSync(copied).size, RAW_SIZE);
    for (const [offset, text] of MARKERS) t.equal(peek(copied, offset, text.length), text, `copied marker at ${offset}`);
    qemuSame(t, a, copied, ["raw", "raw"]);
  });
}

t.test("dynamic VHD at 2040 GiB on the portable path (VHDSYNC_NO_NATIVE=1)", { skip }, async (t) => {
  const dir = tempDir(t);
  const [raw, source, target] = ["src.raw", "src.vhd", "target.vhd"].map((name) => join(dir, name));
  const markers: [number, string][] = [
    [2 ** 32 - 2, "MARK"],
    [TiB + 5, "MARK"],
    [VHD_MAX - 2 ** 21 - 1, "EDGE"], // across the last two 2 MiB blocks
    [VHD_MAX - 1, "Z"],
  ];
  sparse(raw, VHD_MAX, markers);
  // The source VHD is written on the addon's path (the raw is mapped with SEEK_DATA); the rest
  // of the test reads VHDs only, whose BAT says what is allocated, without the addon.
  for (const path of [source, target]) t.equal(json(["create", "--type", "dynamic", "--size", String(VHD_MAX), path]).status, 0);
  t.equal(json(["resync", raw, source, "--block-size", "2M"]).status, 0);
  const portable = { VHDSYNC_NO_NATIVE: "1" };

  const vhdDiff = json(["diff", source, target, "--block-size", "1M"], portable);
  t.equal(vhdDiff.status, 1);
  t.equal(vhdDiff.report.scanner, "wasm");
  t.equal(vhdDiff.report.blocksTotal, VHD_MAX / 2 ** 20);
  t.same(vhdDiff.report.extents, [
    { offset: 2 ** 32 - 2 ** 20, length: 2 ** 21 },
    { offset: TiB, length: 2 ** 20 },
    { offset: VHD_MAX - 3 * 2 ** 20, length: 3 * 2 ** 20 }, // EDGE's two blocks and the last, coalesced
  ]);

  const resync = json(["resync", source, target, "--block-size", "2M"], portable);
  t.equal(resync.status, 0, resync.stderr);
  t.equal(resync.report.scanner, "wasm");
  t.equal(resync.report.blocksChanged, 5); // 2 across 2^32, 1 at 1 TiB, the last 2 (EDGE, Z)
  t.equal(json(["check", target]).status, 0);
  t.equal(json(["compare", raw, target]).status, 0);
  qemuSame(t, raw, target, ["raw", "vpc"]);
  if (QEMU) {
    for (const [offset, text] of markers) {
      const out = execFileSync("qemu-io", ["-f", "vpc", "-r", "-c", `read -v ${offset} ${text.length}`, target], { encoding: "utf8" });
      t.ok(out.includes(Buffer.from(text, "latin1").toString("hex").match(/../g)!.join(" ")), `qemu reads the marker at ${offset}`);
    }
  }
});
