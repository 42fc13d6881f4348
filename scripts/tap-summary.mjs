// Reads tap logs and prints one plain closing line: "N passed, N failed[, N skipped]".
// Exits non-zero when any log reports a failure or has no summary.
import { readFileSync } from "node:fs";

let pass = 0, fail = 0, skip = 0, missing = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  const match = [...text.matchAll(/^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, skip: (\d+))?.*\}$/gm)].pop();
  if (!match) { missing++; continue; }
  pass += Number(match[2]);
  fail += Number(match[3] ?? 0) + (/^# fail\s+(\d+)/m.test(text) ? 0 : 0);
  skip += Number(match[4] ?? 0);
}
console.log(`${pass} passed, ${fail + missing} failed${skip ? `, ${skip} skipped` : ""}`);
process.exit(fail + missing > 0 ? 1 : 0);
