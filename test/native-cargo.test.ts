// The native crate's own unit tests (`cargo test --release` in native/): the job gate's limit
// and its panicking jobs, the compare and hash scan kernels against per-block references,
// their refusals, XXH3 against known answers. They need cargo, so they run where the addon is
// built (the suite's first pass) and are skipped elsewhere; the JS tests then cover the
// addon through its exports.
import t from "tap";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const native = fileURLToPath(new URL("../native", import.meta.url));
const cargo = spawnSync("cargo", ["--version"], { encoding: "utf8" });
const skip = cargo.status !== 0 ? "cargo not found" : process.env.VHDSYNC_NO_NATIVE === "1" ? "VHDSYNC_NO_NATIVE=1 (the first pass runs them)" : false;

t.test("cargo test --release in native/ passes", { skip, timeout: 600_000 }, async (t) => {
  const run = spawnSync("cargo", ["test", "--release", "--offline"], { cwd: native, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  t.equal(run.status, 0, `cargo test failed:\n${run.stdout}\n${run.stderr}`);
  const passed = [...run.stdout.matchAll(/test result: ok\. (\d+) passed; 0 failed/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  t.ok(passed >= 17, `${passed} crate tests passed`);
  for (const name of ["gate::tests::no_more_than_capacity_jobs_hold_a_pass_and_waiting_jobs_all_run", "gate::tests::a_pass_is_given_back_when_its_job_panics"]) {
    t.match(run.stdout, new RegExp(`test ${name} \\.\\.\\. ok`), name);
  }
});
