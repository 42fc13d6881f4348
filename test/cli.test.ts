// The CLI contract: --help, --version, usage errors (exit 2), error format on stderr.
import t from "tap";
import { readFileSync } from "node:fs";
import { runCli } from "./helpers/cli.js";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

t.test("--version prints the package version; --json adds features", async (t) => {
  const plain = runCli(["--version"]);
  t.equal(plain.status, 0);
  t.equal(plain.stdout.trim(), `vhdsync ${pkg.version}`);
  const json = runCli(["--version", "--json"]);
  t.equal(json.status, 0);
  const report = JSON.parse(json.stdout);
  t.equal(report.version, pkg.version);
  t.match(report.wasm, /^(release|debug)$/);
});

t.test("--help lists commands and exits 0", async (t) => {
  const help = runCli(["--help"]);
  t.equal(help.status, 0);
  t.match(help.stdout, /vhdsync <command>/);
  t.match(help.stdout, /--json/);
});

t.test("usage errors exit 2 with the vhdsync: CODE: message format", async (t) => {
  const none = runCli([]);
  t.equal(none.status, 2);
  t.match(none.stderr, /^vhdsync: VHDSYNC_USAGE: /m);
  const unknown = runCli(["no-such-command"]);
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /^vhdsync: VHDSYNC_USAGE: /m);
  const json = runCli(["no-such-command", "--json"]);
  t.equal(json.status, 2);
  t.equal(JSON.parse(json.stdout).error.code, "VHDSYNC_USAGE");
});
