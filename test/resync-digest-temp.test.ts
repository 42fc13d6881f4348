// A resync --target-digest --update-digest killed with SIGKILL leaves the new digest's temp
// file (.NAME.HOST-PID.N.tmp) beside the digest. The usual next run is refused
// (VHDSYNC_IDENTITY_MISMATCH: the target changed under the old digest) or resumes (and so does
// not rewrite the digest), and neither wrote the digest, so the dead run's temp file, as large
// as the digest, stayed until a later checksum to that path. The next resync that uses the
// digest (and is not a dry run) now removes it, as a run that saves no checkpoint removes a
// dead run's checkpoint temp file.
import t from "tap";
import { copyFileSync, existsSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./helpers/cli.js";
import { fileSha, pairSetup, writeRandomImage } from "./helpers/resync-images.js";
import { TEMP_HOST, deadPid } from "./helpers/tmp.js";

const MIB = 1024 * 1024;

t.test("a dead run's digest temp file is removed by the next --target-digest resync, refused or not", async (t) => {
  const { dir, source, target, prng } = pairSetup(t);
  writeRandomImage(source, 2 * MIB, prng);
  copyFileSync(source, target);
  const digest = join(dir, "t.digest");
  t.equal(runCli(["checksum", target, "-o", digest]).status, 0);
  // What a killed --update-digest run leaves: the target written, the digest's temp file beside it.
  const fd = openSync(target, "r+");
  writeSync(fd, new Uint8Array(4096).fill(7), 0, 4096, 8192);
  closeSync(fd);
  const host = TEMP_HOST;
  const dead = deadPid();
  const stale = join(dir, `.t.digest.${host}-${dead}.1.tmp`);
  const live = join(dir, `.t.digest.${host}-${process.pid}.1.tmp`);
  writeFileSync(stale, "partial");
  writeFileSync(live, "partial");

  const dry = runCli(["resync", source, target, "--target-digest", digest, "--dry-run"]);
  t.equal(dry.status, 3, dry.stderr);
  t.ok(existsSync(stale), "a dry run writes nothing, and removes nothing");

  const targetSha = fileSha(target);
  const refused = runCli(["resync", source, target, "--target-digest", digest, "--update-digest"]);
  t.equal(refused.status, 3, "refused: the digest no longer describes the target");
  t.match(refused.stderr, /^vhdsync: VHDSYNC_IDENTITY_MISMATCH: /m);
  t.equal(fileSha(target), targetSha, "nothing written to the target");
  t.notOk(existsSync(stale), "the dead run's temp file is removed");
  t.ok(existsSync(live), "a running process's is kept");

  // A plain resync finishes the job; a fresh checksum makes the digest good again.
  t.equal(runCli(["resync", source, target]).status, 0);
  t.equal(fileSha(target), fileSha(source));
});
