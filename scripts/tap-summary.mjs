// Reads tap logs and prints, last, every failing assertion (its test file, its line and the
// diagnostics tap printed under it, at most 40 lines each, 20 failures in all), then one plain
// closing line: "N passed, N failed[, N skipped]". The failures come last so that a CI log cut
// to its tail still shows them. Exits non-zero when any log reports a failure or has no summary.
import { readFileSync } from "node:fs";

let pass = 0, fail = 0, skip = 0, missing = 0;
const failures = [];
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  const match = [...text.matchAll(/^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, skip: (\d+))?.*\}$/gm)].pop();
  if (!match) missing++;
  else {
    pass += Number(match[2]);
    fail += Number(match[3] ?? 0);
    skip += Number(match[4] ?? 0);
  }
  const lines = text.split("\n");
  let testFile = "";
  for (let i = 0; i < lines.length; i++) {
    const subtest = /^# Subtest: (test\/\S+)/.exec(lines[i]);
    if (subtest) testFile = subtest[1];
    const failed = /^(\s*)not ok \d+ - (.*)$/.exec(lines[i]);
    // An enclosing subtest's "not ok" repeats its child's failure: only the innermost ones.
    if (!failed || /^\s*not ok \d+ - test\//.test(lines[i]) || failures.length >= 20) continue;
    const indent = failed[1].length;
    const block = [lines[i]];
    for (let j = i + 1; j < lines.length && block.length < 40; j++) {
      const depth = lines[j].length - lines[j].trimStart().length;
      if (lines[j].trim() !== "" && depth <= indent) break;
      block.push(lines[j]);
    }
    failures.push(`${file}: ${testFile}\n${block.join("\n")}`);
  }
}
if (missing) console.log(`${missing} log(s) without a tap summary (a run that did not finish)`);
for (const failure of failures) console.log(`\n== failed: ${failure}`);
console.log(`${pass} passed, ${fail + missing} failed${skip ? `, ${skip} skipped` : ""}`);
process.exit(fail + missing > 0 ? 1 : 0);
