// The `vhdsync` bin (bin/vhdsync.cjs) runs the CLI bundle with the V8 code cache built for it,
// runs just the same when the cache is missing or unusable (corrupt, another Node), and says
// clearly when the bundle itself is missing. A small run loads none of the Node built-ins kept
// off the start-up path.
import t from "tap";
import * as nodeAssert from "node:assert";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as yargsAssert from "../dist/cli/yargs-assert.js";
import { CLI_PATH, runCliListingModules } from "./helpers/cli.js";
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

t.test("a tiny resync, checksum and verify load none of the built-ins kept off the start-up path", async (t) => {
  // Each costs 0.7–3.5 ms of a fresh process: node:assert (yargs' two calls are in
  // src/cli/yargs-assert.ts), worker_threads (only when a scan worker starts; none does below
  // 48 MiB), perf_hooks (src/io/clock.ts), crypto (only to hash with it: a digest file's
  // SHA-256, so not for resync and verify), and stream, net and tty, which process.stdout and
  // process.stderr bring (src/cli/output.ts writes without them; stdout and stderr are pipes
  // here, so there is no progress bar to draw). A resync's write lock binds its socket through
  // the addon; without it (VHDSYNC_NO_NATIVE=1) a node:net server binds it, which loads net and
  // stream (src/io/write-lock.ts).
  const portableLock = process.env.VHDSYNC_NO_NATIVE === "1" ? ["stream", "net"] : [];
  const dir = tempDir(t);
  const [a, b, digest] = ["a.img", "b.img", "a.digest"].map((name) => join(dir, name));
  writeFileSync(a, Buffer.alloc(8192, 7));
  writeFileSync(b, Buffer.alloc(8192, 9));
  const commands = [
    { args: ["resync", a, b], unloaded: ["assert", "worker_threads", "perf_hooks", "crypto", "stream", "net", "tty"].filter((name) => !portableLock.includes(name)) },
    { args: ["verify", a, b], unloaded: ["assert", "worker_threads", "perf_hooks", "crypto", "stream", "net", "tty"] },
    { args: ["checksum", a, "-o", digest, "--hash", "xxh64"], unloaded: ["assert", "worker_threads", "perf_hooks"] },
  ];
  for (const { args, unloaded } of commands) {
    const result = runCliListingModules(args, dir);
    t.equal(result.status, 0, `${args[0]}: ${result.stderr}`);
    t.ok(result.loaded.has("NativeModule fs"), `${args[0]}: the module list is read`);
    for (const name of unloaded) t.notOk(result.loaded.has(`NativeModule ${name}`), `${args[0]}: node:${name} not loaded`);
  }
});

t.test("yargs' assert stand-in throws where node:assert throws", async (t) => {
  const values: unknown[] = [0, -0, NaN, 1, "1", "", null, undefined, false, {}, [], Symbol.for("x"), 1n];
  const shared = {};
  values.push(shared);
  for (const actual of values) {
    for (const expected of [...values, shared]) {
      for (const name of ["strictEqual", "notStrictEqual"] as const) {
        const outcome = (assert: typeof yargsAssert | typeof nodeAssert) => {
          try {
            assert[name](actual, expected);
            return "passed";
          } catch (error) {
            return (error as { code?: string }).code;
          }
        };
        t.equal(outcome(yargsAssert), outcome(nodeAssert), `${name}(${String(actual)}, ${String(expected)})`);
      }
    }
  }
  const own = new Error("yargs' own message");
  t.throws(() => yargsAssert.notStrictEqual(undefined, undefined, own), own, "an Error message is thrown as it is");
  t.throws(() => yargsAssert.strictEqual(typeof 1, "string", "a string message"), { message: "a string message", code: "ERR_ASSERTION", name: "AssertionError" });
});
