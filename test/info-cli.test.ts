// The CLI commands info / create / check: `vhdsync create --type differencing --parent BASE
// CHILD` makes a child vhdiinfo reports as differencing with the right parent; info --json
// for raw and VHD; check exit codes; usage errors exit 2.

import t from "tap";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuVirtualSize, run } from "./helpers/vhd.js";

/** Runs the CLI and parses its JSON output; a failure shows the exit status and stderr. */
function cliJson(args: string[]): Record<string, any> {
  const result = runCli(args);
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`vhdsync ${args.join(" ")}: exit ${result.status}, stdout ${JSON.stringify(result.stdout)}, stderr ${result.stderr}`);
  }
}

t.test("create, info and check through the CLI", async (t) => {
  const dir = tempDir(t);
  const base = join(dir, "base.vhd");
  const child = join(dir, "child.vhd");
  const created = runCli(["create", "--type", "dynamic", "--size", "100M", "--block-size", "512K", base, "--json"]);
  t.equal(created.status, 0, created.stderr);
  const baseInfo = JSON.parse(created.stdout);
  t.equal(baseInfo.virtualSize, 100 * 1024 * 1024);
  t.equal(baseInfo.blockSize, 512 * 1024);
  t.equal(qemuVirtualSize(base), 100 * 1024 * 1024, "qemu-img sees the exact size");

  t.equal(runCli(["create", "--type", "differencing", "--parent", base, child]).status, 0);
  const vhdi = run("vhdiinfo", [child]);
  t.match(vhdi, /Disk type\s*: Differential/);
  t.match(vhdi, new RegExp(`Parent identifier\\s*: ${baseInfo.uniqueId}`));
  t.match(vhdi, /Parent filename\s*: .*base\.vhd/);

  const info = cliJson(["info", child, "--json"]);
  t.equal(info.type, "differencing");
  t.same(info.chain.map((layer: { type: string }) => layer.type), ["differencing", "dynamic"]);
  t.equal(info.parent.uniqueId, baseInfo.uniqueId);
  const human = runCli(["info", child]);
  t.match(human.stdout, /type:\s+differencing/);
  t.match(human.stdout, /chain:/);

  const check = runCli(["check", child, "--json"]);
  t.equal(check.status, 0);
  t.same(JSON.parse(check.stdout).problems, []);

  const fixed = join(dir, "fixed.vhd");
  t.equal(runCli(["create", "--type", "fixed", "--size", "3000000", fixed]).status, 2, "--size not a multiple of 512 is a usage error");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "1M", base]).status, 3, "refuses to overwrite (exit 3)");
});

t.test("info on raw files; usage errors", async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, "disk.raw");
  writeFileSync(raw, Buffer.alloc(1 << 20, 1));
  const info = cliJson(["info", raw, "--json"]);
  t.equal(info.format, "raw");
  t.equal(info.virtualSize, 1 << 20);
  const check = runCli(["check", raw, "--json"]);
  t.equal(check.status, 0);
  t.equal(JSON.parse(check.stdout).format, "raw");
  t.equal(runCli(["create", "--type", "differencing", join(dir, "x.vhd")]).status, 2, "differencing without --parent");
  t.equal(runCli(["create", "--type", "dynamic", join(dir, "y.vhd")]).status, 2, "missing --size");
  // Option values out of the format's range are usage errors too, whichever limit they break.
  for (const args of [
    ["--type", "dynamic", "--size", "10M", "--block-size", "256"],
    ["--type", "dynamic", "--size", "10M", "--block-size", "512M"],
    ["--type", "dynamic", "--size", "10M", "--block-size", "3K"],
    ["--type", "dynamic", "--size", "1001"],
    ["--type", "dynamic", "--size", "2041G"],
    ["--type", "fixed", "--size", "65T"],
    ["--type", "fixed", "--size", "10M", "--block-size", "1M"],
  ]) {
    const run = runCli(["create", ...args, join(dir, "z.vhd")]);
    t.equal(run.status, 2, `create ${args.join(" ")}: exit 2 (${run.stderr.trim()})`);
    t.match(run.stderr, /^vhdsync: VHDSYNC_USAGE: --(size|block-size)/);
  }
  t.equal(existsSync(join(dir, "z.vhd")), false, "nothing created");
  t.equal(runCli(["info", join(dir, "missing.vhd")]).status, 3, "missing file");
});
