#!/usr/bin/env node
// The vhdsync command. It runs the CLI bundle (dist/bin/main.cjs, made by
// scripts/build-bundle.mjs) with the V8 code cache made for it at build time, which saves
// ~30 ms of compiling on every run. A missing, stale or rejected cache (another Node version,
// V8 flags) only costs that time: V8 then compiles the source as usual.
"use strict";
const { isAscii } = require("node:buffer");
const { readFileSync, writeFileSync } = require("node:fs");
const { createRequire, wrap } = require("node:module");
const { join } = require("node:path");
const { Script } = require("node:vm");

const directory = join(__dirname, "..", "dist", "bin");
const bundle = join(directory, "main.cjs");
// Scan commands start their worker before anything else (src/cli/prewarm.ts, a small bundle
// of its own), so that its boot overlaps the compile and start-up of the CLI bundle. Best
// effort: the CLI prewarms itself when this did nothing.
// Loading it uses no thread pool, so before anything does, libuv's pool is sized for the
// native scanners' jobs (scanThreadPoolSize in src/sync/scan-workers.ts): libuv reads
// UV_THREADPOOL_SIZE when its pool starts. A size the user set is kept.
try {
  const prewarm = require(join(directory, "prewarm.cjs"));
  if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = String(prewarm.scanThreadPoolSize());
  prewarm.prewarmFor(process.argv.slice(2));
} catch {
  // see above
}
let source;
try {
  // The build leaves the bundle ASCII (scripts/build-bundle.mjs): read as latin1, one byte per
  // character, ~2 ms sooner than decoding UTF-8. Anything else is decoded as UTF-8.
  const bytes = readFileSync(bundle);
  source = (isAscii(bytes) ? bytes.latin1Slice(0, bytes.length) : bytes.toString("utf8")).replace(/^#!.*/, "");
} catch (error) {
  // An incomplete install or build: say so in the CLI's error format (exit 3, not recoverable).
  const message = `the CLI bundle ${bundle} cannot be read (${error.code ?? error.message}); run npm run build`;
  process.stderr.write(`vhdsync: VHDSYNC_INTERNAL: ${message}\n`);
  if (process.argv.includes("--json")) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: { code: "VHDSYNC_INTERNAL", message, recoverable: false, details: { path: bundle } } })}\n`);
  }
  process.exit(3);
}
let cachedData;
try {
  cachedData = readFileSync(`${bundle}.v8cache`);
} catch {
  cachedData = undefined;
}
const script = new Script(wrap(source), { filename: bundle, cachedData });
if (process.env.VHDSYNC_DEBUG_CODE_CACHE === "1") {
  const state = cachedData === undefined ? "absent" : script.cachedDataRejected ? "rejected" : "used";
  process.stderr.write(`vhdsync: code cache ${state}\n`);
}
// The build sets this to write the cache after a representative run.
const cacheOut = process.env.VHDSYNC_CODE_CACHE_OUT;
if (cacheOut) process.once("exit", () => writeFileSync(cacheOut, script.createCachedData()));
const bundleModule = { exports: {} };
script.runInThisContext().call(bundleModule.exports, bundleModule.exports, createRequire(bundle), bundleModule, bundle, directory);
