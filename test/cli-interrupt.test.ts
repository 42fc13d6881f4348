// Ctrl-C handling of long CLI commands (src/cli/interrupt.ts), in child processes: a signal
// during the operation aborts it; a signal that arrives after the operation has ended (while
// the report is printed and the process exits) does not kill the process, and a second late
// one exits at once with 130.
import t from "tap";
import { spawnSync } from "node:child_process";

const INTERRUPT = new URL("../dist/cli/interrupt.js", import.meta.url).href;

function child(body: string) {
  const script = `import { interruptSignal } from ${JSON.stringify(INTERRUPT)};\n${body}`;
  return spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
}

t.test("a signal during the operation aborts it", async (t) => {
  const result = child(`
    const interrupt = interruptSignal();
    process.kill(process.pid, "SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 200));
    console.log(interrupt.signal.aborted ? "aborted" : "running");
    interrupt.dispose();`);
  t.equal(result.status, 0, result.stderr);
  t.equal(result.stdout.trim(), "aborted");
  t.match(result.stderr, /stopping after flushing/);
});

t.test("a signal after the operation ended leaves the command's exit status", async (t) => {
  const result = child(`
    const interrupt = interruptSignal();
    interrupt.dispose();
    process.kill(process.pid, "SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 200));
    console.log("report printed");
    process.exitCode = 1;`);
  t.equal(result.signal, null, "not killed by the signal");
  t.equal(result.status, 1, result.stderr);
  t.equal(result.stdout.trim(), "report printed");
});

t.test("a second late signal exits at once with 130", async (t) => {
  const result = child(`
    const interrupt = interruptSignal();
    interrupt.dispose();
    process.kill(process.pid, "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 100));
    process.kill(process.pid, "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    console.log("still running");`);
  t.equal(result.status, 130, result.stderr);
  t.equal(result.stdout, "");
});
