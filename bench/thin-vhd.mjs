// Large thin VHDs through the CLI (docs/resync.md "Large thin VHDs"): a 2040 GiB dynamic VHD
// (the format's largest) with 64 allocated 2 MiB blocks of data, spread out, and a target
// dynamic VHD that holds 32 of them, 8 of those different, plus 8 blocks of its own where the
// source has nothing. Each command runs in its own process (wall time and peak RSS through
// /usr/bin/time; medians of 3), with the addon and without it (VHDSYNC_NO_NATIVE=1):
//   verify and resync --dry-run of the pair, resync into a copy of the target, copy into a
//   copy of the target, convert to a dynamic and to a fixed VHD, checksum of the target, and
//   resync --target-digest --dry-run from that digest.
// Each result is checked: the differing blocks found, and (when qemu-img is on PATH) every
// written image against the source with `qemu-img compare`. The script fails otherwise.
// VHDSYNC_BENCH_TINY=1: 8 GiB, one run each. Results: bench/results/thin-vhd.json.
//   node bench/thin-vhd.mjs            (needs `npm run build`)
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GiB, MiB, root, measureCli, writeResults } from "./hash-common.mjs";

const tiny = process.env.VHDSYNC_BENCH_TINY === "1";
const SIZE = tiny ? 8 * GiB : 2040 * GiB;
const BLOCKS = 64;
const BLOCK_BYTES = 2 * MiB;
const REPEATS = tiny ? 1 : 3;
const CLI = join(root, "bin", "vhdsync.cjs");
// NODE_EXTRA_CA_CERTS costs every Node process a CA bundle parse at start-up; vhdsync opens no TLS.
const ENV = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;
const qemu = spawnSync("qemu-img", ["--version"]).status === 0;

/** Block i of the source: spread over the disk, the odd ones at a 32 MiB boundary's last 2 MiB. */
const blockAt = (i) => {
  const spread = Math.floor((i * SIZE) / BLOCKS / (32 * MiB)) * 32 * MiB;
  return i % 2 === 1 ? spread + 30 * MiB : spread;
};

function cli(args, env = ENV, allow = [0]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env });
  if (!allow.includes(result.status)) throw new Error(`vhdsync ${args.join(" ")} failed (${result.status}): ${result.stderr}`);
  return result;
}

/** A dynamic VHD of SIZE made by the CLI, then BLOCK_BYTES of pattern `stamp` written at each [offset, stamp] through the library. */
function makeVhd(path, writes) {
  cli(["create", path, "--size", String(SIZE), "--type", "dynamic"]);
  const code = `
    import { openImage } from ${JSON.stringify(join(root, "dist", "formats", "open-image.js"))};
    const image = await openImage(${JSON.stringify(path)}, { readOnly: false });
    const data = Buffer.alloc(${BLOCK_BYTES});
    for (const [offset, stamp] of ${JSON.stringify(writes)}) {
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((Math.imul(((offset + i) / 4) >>> 0, 2654435761) ^ Math.imul(stamp, 0x9e3779b9)) >>> 0, i);
      await image.write(data, offset);
    }
    await image.close();
  `;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`writing ${path} failed: ${result.stderr}`);
}

const measure = (args, env, options = {}) => measureCli(args, { repeats: REPEATS, env, ...options });

function sameContent(a, b, formatB = "vpc") {
  if (!qemu) return;
  const result = spawnSync("qemu-img", ["compare", "-f", "vpc", "-F", formatB, a, b], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`qemu-img compare ${a} ${b}: ${result.stdout}${result.stderr}`);
}

if (!existsSync("/usr/bin/time")) {
  console.log("thin-vhd: /usr/bin/time is missing (the time package); skipped");
  process.exit(0);
}
const dir = mkdtempSync(join(process.env.VHDSYNC_BENCH_DIR ?? tmpdir(), "vhdsync-thin-"));
try {
  const [source, target] = [join(dir, "source.vhd"), join(dir, "target.vhd")];
  const offsets = Array.from({ length: BLOCKS }, (_, i) => blockAt(i));
  makeVhd(source, offsets.map((offset) => [offset, 1]));
  // The target: every other source block; 8 of them with other data; 8 blocks of its own, 64 MiB past a source block.
  const kept = offsets.filter((_, i) => i % 2 === 0);
  const own = kept.slice(0, 8).map((offset) => offset + 64 * MiB);
  makeVhd(target, [...kept.map((offset, i) => [offset, i < 8 ? 2 : 1]), ...own.map((offset) => [offset, 3])]);
  // 4 KiB blocks that differ: the 32 source blocks the target lacks, the 8 changed, the target's own 8.
  const differingBlocks = ((BLOCKS - kept.length + 8 + own.length) * BLOCK_BYTES) / 4096;
  const work = join(dir, "work.vhd");
  const out = join(dir, "out.vhd");
  const freshTarget = () => copyFileSync(target, work);
  const freshOut = () => rmSync(out, { force: true });

  const results = { sizeBytes: SIZE, sourceBlocks: BLOCKS, vhdBlockBytes: BLOCK_BYTES, differingBlocks, repeats: REPEATS, qemuChecked: qemu, paths: {} };
  for (const [path, env] of [["addon", ENV], ["portable", { ...ENV, VHDSYNC_NO_NATIVE: "1" }]]) {
    const commands = {
      verify: measure(["verify", source, target], env, { allow: [1] }),
      resyncDryRun: measure(["resync", source, target, "--dry-run"], env),
      resync: measure(["resync", source, work], env, { prepare: freshTarget }),
    };
    sameContent(source, work);
    commands.copy = measure(["copy", source, work], env, { prepare: freshTarget });
    sameContent(source, work);
    commands.convertDynamic = measure(["convert", source, out, "--to", "vhd-dynamic"], env, { prepare: freshOut });
    sameContent(source, out);
    commands.convertFixed = measure(["convert", source, out, "--to", "vhd-fixed"], env, { prepare: freshOut });
    sameContent(source, out);
    const digest = join(dir, "target.digest");
    commands.checksum = measure(["checksum", target, "-o", digest], env, { prepare: () => rmSync(digest, { force: true }) });
    commands.targetDigestDryRun = measure(["resync", source, target, "--target-digest", digest, "--dry-run"], env);
    const found = {
      verify: commands.verify.report.blocksDiffering,
      resyncDryRun: commands.resyncDryRun.report.blocksChanged,
      resync: commands.resync.report.blocksChanged,
      targetDigestDryRun: commands.targetDigestDryRun.report.blocksChanged,
    };
    for (const [name, blocks] of Object.entries(found)) {
      if (blocks !== differingBlocks) throw new Error(`${path} ${name} found ${blocks} differing blocks, expected ${differingBlocks}`);
    }
    results.paths[path] = Object.fromEntries(Object.entries(commands).map(([name, { seconds, peakRssMiB, allSeconds }]) => [name, { seconds, peakRssMiB, allSeconds }]));
    for (const [name, figures] of Object.entries(results.paths[path])) console.log(`${path.padEnd(9)} ${name.padEnd(18)} ${figures.seconds.toFixed(2).padStart(7)} s  ${figures.peakRssMiB.toFixed(0).padStart(4)} MiB`);
  }
  console.log(`results: ${writeResults("thin-vhd", tiny, results)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
