// Runs every benchmark script in bench/ (each bench/*.mjs that reads VHDSYNC_BENCH_TINY) one
// after the other. With VHDSYNC_BENCH_TINY=1 (as .ci/run does) each runs at a tiny size so none rots;
// without it they run at full size and write bench/results/<name>.json.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL(".", import.meta.url));
const only = process.argv.slice(2);
const scripts = readdirSync(dir)
  .filter((name) => name.endsWith(".mjs") && name !== "run-all.mjs")
  // A benchmark honours VHDSYNC_BENCH_TINY; files that don't mention it are shared modules.
  .filter((name) => readFileSync(`${dir}/${name}`, "utf8").includes("VHDSYNC_BENCH_TINY"))
  .filter((name) => only.length === 0 || only.some((pattern) => name.includes(pattern)))
  .sort();
const failed = [];
for (const script of scripts) {
  const started = Date.now();
  console.log(`\n== bench/${script}${process.env.VHDSYNC_BENCH_TINY ? " (tiny)" : ""}`);
  const result = spawnSync(process.execPath, [`${dir}/${script}`], { stdio: "inherit" });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) failed.push(script);
  console.log(`== bench/${script}: ${result.status === 0 ? "ok" : `FAILED (status ${result.status}, signal ${result.signal})`} in ${seconds} s`);
}
if (failed.length > 0) {
  console.error(`benchmarks failed: ${failed.join(", ")}`);
  process.exit(1);
}
console.log(`\n${scripts.length} benchmark scripts ran`);
