// VHDX through the CLI: info, check, hash and compare see a VHDX like any other image
// (hash equals xxhsum -H2 of qemu's raw conversion; compare against that raw file).

import t from "tap";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./helpers/cli.js";
import { buildVhdx, dataWriteGuidOf, STATE } from "./helpers/vhdx-builder.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuImg, qemuIo } from "./helpers/vhdx-qemu.js";

const MIB = 1024 * 1024;

t.test("info, check, hash and compare on a VHDX chain", async (t) => {
  const dir = tempDir(t);
  const parent = join(dir, "parent.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", parent, String(4 * MIB));
  qemuIo(parent, ["write -P 0x41 0 1536K"]);
  const child = join(dir, "child.vhdx");
  const blocks = new Map([[1, { state: STATE.FULLY_PRESENT, data: new Uint8Array(MIB).fill(0x42) }]]);
  writeFileSync(child, buildVhdx({ virtualSize: 4 * MIB, blockSize: MIB, hasParent: true, blocks, locator: { parent_linkage: `{${dataWriteGuidOf(new Uint8Array(readFileSync(parent)))}}`, relative_path: "parent.vhdx" } }));
  const raw = join(dir, "child.raw");
  const expected = new Uint8Array(4 * MIB);
  expected.fill(0x41, 0, MIB);
  expected.fill(0x42, MIB, 2 * MIB);
  writeFileSync(raw, expected);

  const info = runCli(["info", "--json", child]);
  t.equal(info.status, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  t.equal(parsed.format, "vhdx");
  t.equal(parsed.type, "differencing");
  t.equal(parsed.blockSize, MIB);
  t.same(parsed.chain.map((layer: { type: string }) => layer.type), ["differencing", "dynamic"]);

  const check = runCli(["check", "--json", child]);
  t.equal(check.status, 0, check.stdout + check.stderr);
  t.same(JSON.parse(check.stdout).problems, []);

  const hash = runCli(["hash", child]);
  t.equal(hash.status, 0, hash.stderr);
  const oracle = execFileSync("xxhsum", ["-H2", raw], { encoding: "utf8" }).split(/\s+/)[0];
  t.equal(hash.stdout.split(/\s+/)[0], oracle, "hash equals xxhsum -H2 of the content");

  const compare = runCli(["compare", child, raw]);
  t.equal(compare.status, 0, compare.stdout + compare.stderr);
});

t.test("check exits 3 and names the problem; a VHDX is never written", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "bad.vhdx");
  qemuImg("create", "-f", "vhdx", path, String(4 * MIB));
  const file = new Uint8Array(readFileSync(path));
  file[64 * 1024 + 200] ^= 1;
  file[128 * 1024 + 200] ^= 1;
  writeFileSync(path, file);
  const check = runCli(["check", "--json", path]);
  t.equal(check.status, 3);
  t.equal(JSON.parse(check.stdout).problems[0].code, "VHDSYNC_BAD_CHECKSUM");
  const info = runCli(["info", path]);
  t.equal(info.status, 3);
  t.match(info.stderr, /vhdsync: VHDSYNC_BAD_CHECKSUM: /);
  t.ok(Buffer.from(readFileSync(path)).equals(file), "file unchanged");
});

t.test("a VHDX target is refused before the scan: resync and copy write nothing and leave no checkpoint or lock", async (t) => {
  const dir = tempDir(t);
  // 64 MiB with the only difference near the end: a run that scanned first would checkpoint
  // the part before it (as one did, before the twenty-third session).
  const source = join(dir, "source.raw");
  const bytes = new Uint8Array(64 * MIB);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i >> 12) & 255;
  writeFileSync(source, bytes);
  const raw = join(dir, "target.raw");
  bytes[60 * MIB + 7] ^= 1;
  writeFileSync(raw, bytes);
  const target = join(dir, "target.vhdx");
  qemuImg("convert", "-f", "raw", "-O", "vhdx", raw, target);
  const before = readFileSync(target);
  for (const args of [["resync", source, target], ["resync", source, target, "--workers", "1"], ["copy", source, target]]) {
    for (const env of [{}, { VHDSYNC_NO_NATIVE_HASH: "1" }, { VHDSYNC_NO_NATIVE: "1" }]) {
      const run = runCli([...args, "--json"], { env: { ...process.env, ...env } });
      t.equal(run.status, 3, `${args.join(" ")} ${JSON.stringify(env)}: exit 3`);
      t.equal(JSON.parse(run.stdout).error.code, "VHDSYNC_UNSUPPORTED");
    }
  }
  t.ok(Buffer.from(readFileSync(target)).equals(before), "the VHDX is unchanged");
  t.same(readdirSync(dir).sort(), ["source.raw", "target.raw", "target.vhdx"], "no checkpoint, lock or temp file");
  const dry = runCli(["resync", source, target, "--dry-run", "--json"]);
  t.equal(dry.status, 0, "a dry run compares it");
  t.equal(JSON.parse(dry.stdout).blocksChanged, 1);
});
