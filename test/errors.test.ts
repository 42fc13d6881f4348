import t from "tap";
import { VhdsyncError, codeForErrno, exitCodeFor, toVhdsyncError, ERROR_CODES } from "../dist/errors.js";

t.test("recoverable flag follows the code table", async (t) => {
  t.equal(new VhdsyncError("VHDSYNC_NO_SPACE", "x").recoverable, true);
  t.equal(new VhdsyncError("VHDSYNC_CORRUPT", "x").recoverable, false);
  t.equal(new VhdsyncError("VHDSYNC_CHAIN_BROKEN", "x").recoverable, false);
  for (const code of Object.keys(ERROR_CODES)) t.match(code, /^VHDSYNC_[A-Z_]+$/);
});

t.test("errno mapping", async (t) => {
  t.equal(codeForErrno("ENOSPC"), "VHDSYNC_NO_SPACE");
  t.equal(codeForErrno("EIO"), "VHDSYNC_IO");
  t.equal(codeForErrno("EACCES"), "VHDSYNC_ACCESS_DENIED");
  t.equal(codeForErrno("ENOTTY"), "VHDSYNC_UNSUPPORTED");
  const wrapped = toVhdsyncError(Object.assign(new Error("no space"), { code: "ENOSPC" }), { path: "/x" });
  t.equal(wrapped.code, "VHDSYNC_NO_SPACE");
  t.equal(wrapped.recoverable, true);
  t.equal(wrapped.details.path, "/x");
});

t.test("exit codes", async (t) => {
  t.equal(exitCodeFor(new VhdsyncError("VHDSYNC_USAGE", "x")), 2);
  t.equal(exitCodeFor(new VhdsyncError("VHDSYNC_CORRUPT", "x")), 3);
  t.equal(exitCodeFor(new VhdsyncError("VHDSYNC_IO", "x")), 4);
});
