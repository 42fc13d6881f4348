// A dynamic or differencing VHD whose BAT would have more than 2^22 entries (over 16 GiB of
// 4 KiB blocks) is refused before any file is created: `create` wrote such a file, then failed
// to open it (VHDSYNC_UNSUPPORTED, exit 3) and left it behind, unreadable by vhdsync.
import t from "tap";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createVhd } from "../dist/index.js";
import { runCli } from "./helpers/cli.js";

const GIB = 1024 ** 3;

t.test("createVhd refuses a BAT over 2^22 entries and creates nothing", async (t) => {
  const dir = t.testdir({});
  const path = join(dir, "big.vhd");
  await t.rejects(createVhd(path, { type: "dynamic", sizeBytes: 17 * GIB, blockSizeBytes: 4096 }), { code: "VHDSYNC_INVALID_ARGUMENT" });
  t.notOk(existsSync(path), "no file left behind");
  const image = await createVhd(path, { type: "dynamic", sizeBytes: 16 * GIB, blockSizeBytes: 4096 });
  t.equal(image.virtualSize, 16 * GIB, "2^22 blocks is the limit");
  await image.close();
});

t.test("vhdsync create: a size and block size the BAT cannot hold is a usage error (exit 2)", async (t) => {
  const dir = t.testdir({});
  const path = join(dir, "big.vhd");
  const result = runCli(["create", "--type", "dynamic", "--size", "17G", "--block-size", "4K", path]);
  t.equal(result.status, 2, result.stderr);
  t.match(result.stderr, /^vhdsync: VHDSYNC_USAGE: .*BAT/m);
  t.notOk(existsSync(path), "no file left behind");
});
