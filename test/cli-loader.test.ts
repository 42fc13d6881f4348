// The `vhdsync` bin (bin/vhdsync.cjs) runs the CLI bundle with the V8 code cache built for it,
// runs just the same when the cache is missing or unusable (corrupt, another Node), and says
// clearly when the bundle itself is missing.
import t from "tap";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CLI_PATH } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function run(bin: string, args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, VHDSYNC_DEBUG_CODE_CACHE: "1" } });
}

t.test("the installed bin uses the code cache made at build time", async (t) => {
  const result = run(CLI_PATH, ["--version"]);
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /^vhdsync \d+\.\d+\.\d+/);
  t.match(result.stderr, /vhdsync: code cache used/);
});

t.test("a corrupt or missing cache costs only time", async (t) => {
  // A copy of the bin and the bundle; yargs comes from the project's node_modules.
  const dir = tempDir(t);
  mkdirSync(join(dir, "bin"));
  mkdirSync(join(dir, "dist", "bin"), { recursive: true });
  copyFileSync(CLI_PATH, join(dir, "bin", "vhdsync.cjs"));
  copyFileSync(join(ROOT, "dist", "bin", "main.cjs"), join(dir, "dist", "bin", "main.cjs"));
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  const bin = join(dir, "bin", "vhdsync.cjs");
  const cache = join(dir, "dist", "bin", "main.cjs.v8cache");
  for (const [state, prepare] of [
    ["rejected", () => writeFileSync(cache, "not a V8 code cache")],
    ["absent", () => rmSync(cache, { force: true })],
  ] as const) {
    prepare();
    const result = run(bin, ["--help"]);
    t.equal(result.status, 0, `${state}: ${result.stderr}`);
    t.match(result.stdout, /vhdsync <command> \[options\]/, state);
    t.match(result.stderr, new RegExp(`vhdsync: code cache ${state}`));
    const usage = run(bin, ["resync"]);
    t.equal(usage.status, 2, `${state}: a usage error is still exit 2`);
    t.match(usage.stderr, /vhdsync: VHDSYNC_USAGE: /);
  }
});

t.test("the bundle is ASCII (the bin reads it as latin1); a bundle that is not is decoded as UTF-8", async (t) => {
  const bundle = readFileSync(join(ROOT, "dist", "bin", "main.cjs"));
  const at = bundle.findIndex((byte) => byte > 0x7f);
  t.equal(at, -1, at < 0 ? "ASCII" : `a non-ASCII byte at ${at}: ${bundle.subarray(Math.max(0, at - 40), at + 10).toString("utf8")}`);
  // A copy whose help text holds UTF-8: the bin must decode it, not read it as latin1.
  const dir = tempDir(t);
  mkdirSync(join(dir, "bin"));
  mkdirSync(join(dir, "dist", "bin"), { recursive: true });
  copyFileSync(CLI_PATH, join(dir, "bin", "vhdsync.cjs"));
  const text = bundle.toString("latin1");
  const marker = "Block replication and disaster recovery for virtual disk images.";
  t.ok(text.includes(marker), "the help text is in the bundle");
  writeFileSync(join(dir, "dist", "bin", "main.cjs"), Buffer.from(text.replace(marker, `${marker} \u2192 \u00e9t\u00e9`), "utf8"));
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  const result = run(join(dir, "bin", "vhdsync.cjs"), ["--help"]);
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /disaster recovery for virtual disk images\. \u2192 \u00e9t\u00e9/, "UTF-8 text comes out as written");
});

t.test("a missing bundle is a coded error (exit 3), also with --json", async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, "bin"));
  copyFileSync(CLI_PATH, join(dir, "bin", "vhdsync.cjs"));
  const result = run(join(dir, "bin", "vhdsync.cjs"), ["resync", "a", "b", "--json"]);
  t.equal(result.status, 3);
  t.match(result.stderr, /^vhdsync: VHDSYNC_INTERNAL: the CLI bundle .*main\.cjs cannot be read \(ENOENT\); run npm run build\n$/);
  const report = JSON.parse(result.stdout);
  t.same([report.ok, report.error.code, report.error.recoverable], [false, "VHDSYNC_INTERNAL", false]);
});
