#!/usr/bin/env node
// Long VHD fuzzing run: the same harness as test/fuzz-vhd.test.ts with many more cases and
// several seeds. Usage: node scripts/fuzz-vhd.mjs [cases-per-seed=5000] [seeds=4]
// (build first: npm run build). Exits non-zero on the first seed with a failure; the seed is
// printed so VHDSYNC_SEED=<seed> VHDSYNC_FUZZ_CASES=<n> npx tap test/fuzz-vhd.test.ts replays it.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cases = Number(process.argv[2] ?? 5000);
const seeds = Number(process.argv[3] ?? 4);

for (let i = 0; i < seeds; i++) {
  const seed = Math.floor(Math.random() * 2 ** 31);
  process.stdout.write(`seed ${seed}: ${cases} cases ... `);
  const result = spawnSync("npx", ["tap", "--timeout", "0", "--reporter", "tap", "test/fuzz-vhd.test.ts"], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, VHDSYNC_SEED: String(seed), VHDSYNC_FUZZ_CASES: String(cases) },
    maxBuffer: 256 * 1024 * 1024,
  });
  const outcomes = /outcomes: (\{.*\})/.exec(result.stdout)?.[1] ?? "";
  if (result.status !== 0) {
    process.stdout.write("FAILED\n");
    process.stdout.write(result.stdout.split("\n").filter((line) => /not ok|uncoded|modified|hang/.test(line)).slice(0, 20).join("\n") + "\n");
    process.exit(1);
  }
  process.stdout.write(`ok ${outcomes}\n`);
}
