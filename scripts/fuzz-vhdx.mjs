#!/usr/bin/env node
// Long VHDX fuzz run: the CI fuzz test (test/fuzz-vhdx.test.ts) with many more cases.
// Usage: node scripts/fuzz-vhdx.mjs [cases=20000] [seed=random]
// Needs a build (npm run build) and qemu-img/qemu-io on PATH. Exit status is tap's; a failure
// prints the seed and the failing cases, and VHDSYNC_SEED=<seed> reproduces it.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cases = Number(process.argv[2]) || 20000;
const seed = process.argv[3] ?? String(Math.floor(Math.random() * 2 ** 31));
console.log(`fuzz-vhdx: ${cases} cases, seed ${seed}`);
const result = spawnSync("npx", ["tap", "--timeout=0", "--reporter=tap", "test/fuzz-vhdx.test.ts"], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, VHDSYNC_FUZZ_CASES: String(cases), VHDSYNC_SEED: seed },
});
process.exit(result.status ?? 1);
