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

t.test("an option given twice is a usage error, before any file is touched", async (t) => {
  const dir = t.testdir({ "a.raw": Buffer.alloc(8192, 1), "b.raw": Buffer.alloc(8192, 2) });
  const [a, b] = [`${dir}/a.raw`, `${dir}/b.raw`];
  const cases: [string[], string][] = [
    [["resync", a, b, "--block-size", "4K", "--block-size=8K"], "--block-size"],
    [["copy", a, b, "--block-size", "4K", "--block-size", "4K"], "--block-size"],
    [["checksum", a, "-o", `${dir}/x.digest`, "-o", `${dir}/y.digest`], "-o"],
    [["resync", a, b, "--hash", "sha256", "--hash", "xxh64"], "--hash"],
    [["resync", a, b, "--checkpoint", `${dir}/c1`, "--checkpoint", `${dir}/c2`], "--checkpoint"],
  ];
  for (const [args, option] of cases) {
    const run = runCli([...args, "--json"]);
    t.equal(run.status, 2, args.join(" "));
    const error = JSON.parse(run.stdout).error;
    t.equal(error.code, "VHDSYNC_USAGE");
    t.equal(error.message, `${option} was given more than once`);
  }
  t.same(readFileSync(b), Buffer.alloc(8192, 2), "the target is untouched");
  // Flags may repeat (yargs keeps one boolean), and `hash` takes several files.
  t.equal(runCli(["resync", a, b, "--dry-run", "--dry-run"]).status, 0);
  t.equal(runCli(["hash", a, b]).status, 0);
});

t.test("an empty path, name or size is a usage error, before any file is touched", async (t) => {
  const dir = t.testdir({ "a.raw": Buffer.alloc(8192, 1), "b.raw": Buffer.alloc(8192, 2) });
  const [a, b] = [`${dir}/a.raw`, `${dir}/b.raw`];
  const cases: [string[], string][] = [
    // Before, the library took these for options not given: a plain resync read and wrote b.
    [["resync", a, b, "--target-digest", ""], "--target-digest is empty"],
    [["resync", a, b, "--checkpoint="], "--checkpoint is empty"],
    [["resync", "", b], "the SOURCE argument is empty"],
    [["copy", a, ""], "the TARGET argument is empty"],
    [["checksum", a, "-o", ""], "-o is empty"],
    [["checksum", a, "--output", ""], "--output is empty"],
    [["hash", a, ""], "the FILES argument is empty"],
    [["resize", b, ""], "the SIZE argument is empty"],
    [["snapshot", "create", `${dir}/disk.vhd`, "--name", ""], "--name is empty"],
    [["log", "apply", `${dir}/x.hrl`, b, "--undo", ""], "--undo is empty"],
  ];
  for (const [args, message] of cases) {
    const run = runCli([...args, "--json"]);
    t.equal(run.status, 2, args.join(" "));
    t.match(run.stderr, `vhdsync: VHDSYNC_USAGE: ${message}`);
    t.same(JSON.parse(run.stdout).error, { code: "VHDSYNC_USAGE", message, recoverable: false, details: {} });
  }
  t.same(readFileSync(b), Buffer.alloc(8192, 2), "the target is untouched");
});

t.test("usage messages name what is wrong: an unknown command or subcommand, an extra argument, an unknown option", async (t) => {
  const cases: [string[], string][] = [
    [["nosuch", "a"], "unknown command: nosuch"],
    [["snapshot", "nosuch", "disk.vhd"], "unknown snapshot command: nosuch (see vhdsync snapshot --help)"],
    [["log", "nosuch"], "unknown log command: nosuch (see vhdsync log --help)"],
    [["snapshot"], "name a snapshot command: create, list, revert, delete, merge or resume"],
    [["log"], "name a log command: info, verify, apply, extents, compact or recover"],
    [["resync", "a", "b", "extra"], "unexpected argument: extra (see vhdsync resync --help)"],
    [["resync", "a", "b", "extra", "more", "--dry-run"], "unexpected arguments: extra more (see vhdsync resync --help)"],
    [["log", "extents", "x.hrl", "x.hrl"], "unexpected argument: x.hrl (see vhdsync log extents --help)"],
    [["snapshot", "create", "d.vhd", "extra"], "unexpected argument: extra (see vhdsync snapshot create --help)"],
    [["resync", "--", "-a.img", "b.img"], "-- (end of options) is not supported: name a path that starts with - as ./-name"],
    [["resync", "a", "b", "--", "extra"], "-- (end of options) is not supported: name a path that starts with - as ./-name"],
    [["verify", "a", "b", "--nosuch"], "unknown option: --nosuch"],
    [["verify", "a", "b", "--nosuch=1", "-z"], "unknown options: --nosuch -z"],
    // yargs reports a negated unknown boolean without its "no-" ("Unknown argument: such").
    [["verify", "a", "b", "--no-such"], "unknown option: --no-such"],
  ];
  for (const [args, message] of cases) {
    const run = runCli([...args, "--json"]);
    t.equal(run.status, 2, `${args.join(" ")}: exit 2`);
    t.equal(JSON.parse(run.stdout).error.message, message, args.join(" "));
    t.match(run.stderr, `vhdsync: VHDSYNC_USAGE: ${message}\n`);
    // One pointer to help: the command's when the message names it, else the general one.
    t.equal(run.stderr.match(/\(see vhdsync/g)?.length, 1, `${args.join(" ")}: one help hint`);
  }
});

t.test("a flag given a value other than true or false is a usage error (yargs read --dry-run=yes as false, and wrote)", async (t) => {
  const { pairSetup, writeRandomImage, fileSha } = await import("./helpers/resync-images.js");
  const { prng, source, target } = pairSetup(t);
  writeRandomImage(source, 1 << 20, prng);
  writeRandomImage(target, 1 << 20, prng);
  const before = fileSha(target);
  for (const arg of ["--dry-run=yes", "--dry-run=1", "--dry-run=", "--no-dry-run=no", "--resize=on"]) {
    const run = runCli(["resync", source, target, arg]);
    t.equal(run.status, 2, `${arg}: ${run.stderr}`);
    t.match(run.stderr, /^vhdsync: VHDSYNC_USAGE: --(no-)?[a-z-]+ takes no value, or true or false/m, arg);
  }
  t.equal(fileSha(target), before, "nothing written");
  const dry = runCli(["resync", source, target, "--dry-run=true", "--json"]);
  t.equal(dry.status, 0, dry.stderr);
  t.equal(JSON.parse(dry.stdout).dryRun, true, "--dry-run=true is a dry run");
  t.equal(fileSha(target), before, "nothing written");
  t.equal(runCli(["resync", source, target, "--dry-run=false"]).status, 0, "--dry-run=false writes");
  t.equal(fileSha(target), fileSha(source));
});
