// Bundles the CLI for the `vhdsync` bin (run by `npm run build:bundle`, after build:ts):
// - dist/bin/main.cjs: the CLI (dist/cli/main.js and every module it may load) as one
//   CommonJS file, which bin/vhdsync.cjs compiles with a V8 code cache;
// - dist/bin/resync-worker.js: the scan worker as one ES module;
// - dist/bin/prewarm.cjs: what the bin runs first for scan commands (starts the scan worker);
// - dist/bin/main.cjs.v8cache: V8's code cache, written by a tiny resync run through the bin.
// Node 20 loads ES modules one by one (~3 ms each) and has no compile cache of its own; a
// resync loaded ~50 of ours in every thread. dist/bin sits as deep as dist/cli, dist/sync,
// dist/wasm and dist/io, so paths made from import.meta.url resolve the same. yargs' CommonJS
// build is bundled too (src/cli/yargs-factory.cts); it looks for its message translations in
// ../locales beside the bundle, so they are copied to dist/locales.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
// Whitespace, comments and syntax are minified, names kept (stack traces still name functions;
// the unbundled dist/ is there to debug): the CLI bundle is 512 KB instead of 719 KB, and reading
// it and taking its code cache cost 2.3 ms instead of 3.4 ms per run (medians of 5).
const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  logLevel: "warning",
  absWorkingDir: root,
  minifyWhitespace: true,
  minifySyntax: true,
};
const commonJs = {
  ...common,
  format: "cjs",
  // import.meta.url of every bundled module becomes the bundle's own URL.
  define: { "import.meta.url": "__vhdsyncBundleUrl" },
  banner: { js: 'const __vhdsyncBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
};
// yargs' CommonJS build reads process.stdout.columns as it loads (its default wrap width),
// which makes the stdout stream: Node's stream and net modules, ~2.5 ms. main.ts always sets
// the width, and src/cli/output.ts writes without the stream: the read becomes a getter.
const EAGER_COLUMNS = "stdColumns:void 0!==process.stdout.columns?process.stdout.columns:null";
const lazyYargsColumns = {
  name: "lazy-yargs-columns",
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /[\\/]node_modules[\\/]yargs[\\/]build[\\/]index\.cjs$/ }, (args) => {
      const text = readFileSync(args.path, "utf8");
      if (!text.includes(EAGER_COLUMNS)) {
        console.warn(`bundle: yargs' stdColumns not found in ${args.path} (another yargs version?): stdout is made at start-up`);
        return undefined;
      }
      return { contents: text.replace(EAGER_COLUMNS, `get ${EAGER_COLUMNS.replace(":", "(){return ")}}`), loader: "js" };
    });
  },
};
// yargs requires node:assert for two functions: src/cli/yargs-assert.ts has them, without the
// ~1.5–3.5 ms node:assert costs to load.
const cli = await build({
  ...commonJs,
  metafile: true,
  plugins: [lazyYargsColumns],
  alias: { assert: "./dist/cli/yargs-assert.js" },
  entryPoints: ["dist/cli/main.js"],
  outfile: "dist/bin/main.cjs",
});
// bin/vhdsync.cjs runs the bundle through vm.Script, which has no dynamic import callback: an
// import() esbuild leaves in place (a Node built-in or an unbundled file) would fail at run time.
const leftover = Object.values(cli.metafile.outputs).flatMap((output) => output.imports.filter((entry) => entry.kind === "dynamic-import"));
if (leftover.length > 0) throw new Error(`bundle: dynamic import() left in dist/bin/main.cjs (use a static import or require): ${leftover.map((entry) => entry.path).join(", ")}`);
// bin/vhdsync.cjs reads an ASCII bundle as latin1, one byte per character: ~2 ms sooner than
// decoding UTF-8 on every run. esbuild escapes non-ASCII text in strings, templates, regular
// expressions and identifiers (charset "ascii", its default); unminified, it kept non-ASCII
// comments on class fields. Anything left is written out as \u{...} (a no-op while minified).
const mainPath = join(root, "dist/bin/main.cjs");
writeFileSync(mainPath, readFileSync(mainPath, "utf8").replace(/[^\x00-\x7f]/gu, (char) => `\\u{${char.codePointAt(0).toString(16)}}`));
// The scan-worker prewarm the bin runs before it compiles the CLI bundle (src/cli/prewarm.ts).
await build({ ...commonJs, entryPoints: ["dist/cli/prewarm.js"], outfile: "dist/bin/prewarm.cjs" });
cpSync(join(root, "node_modules/yargs/locales"), join(root, "dist/locales"), { recursive: true });
await build({ ...common, entryPoints: ["dist/sync/resync-worker.js"], outfile: "dist/bin/resync-worker.js", format: "esm" });

// The code cache holds what a run compiled: make it from a small resync (argument parsing,
// opening images, the scan, the report).
const cache = join(root, "dist/bin/main.cjs.v8cache");
rmSync(cache, { force: true });
const dir = mkdtempSync(join(tmpdir(), "vhdsync-build-"));
try {
  const data = new Uint8Array(1024 * 1024).map((_, i) => (i * 131) & 255);
  writeFileSync(join(dir, "a.img"), data);
  writeFileSync(join(dir, "b.img"), data.map((byte, i) => (i % 4096 === 0 ? byte ^ 1 : byte)));
  const run = spawnSync(process.execPath, [join(root, "bin/vhdsync.cjs"), "resync", join(dir, "a.img"), join(dir, "b.img"), "--json"], {
    env: { ...process.env, VHDSYNC_CODE_CACHE_OUT: cache },
    encoding: "utf8",
  });
  // Without a cache the bin only compiles more at start-up: say so, but do not fail the build.
  if (run.status !== 0) console.warn(`bundle: no code cache (the resync run failed, status ${run.status}): ${run.stderr.trim()}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`bundle: dist/bin/main.cjs${existsSync(cache) ? " + code cache" : ""}, dist/bin/prewarm.cjs, dist/bin/resync-worker.js`);
