// chain() and the checks resync, copy and checksum make before any I/O (imageIdentity,
// parentsOf) read headers only, never the allocation map, whose size grows with the data's
// fragmentation (an 8 GiB raw source with 4 KiB of data every 8 KiB took 242 MB in resync's
// chain check); info()'s allocatedBytes is summed window by window and stays exact.

import t from "tap";
import { closeSync, openSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { openImage, type DiskImage } from "../dist/index.js";
import { totalLength } from "../dist/formats/extents.js";
import { imageIdentity, parentsOf } from "../dist/sync/image-identity.js";
import { runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";
import { qemuImg, qemuIo } from "./helpers/vhdx-qemu.js";

const MIB = 1024 * 1024;

/** Makes every allocation walk of `image` and its parents throw. */
function forbidMapWalks(image: DiskImage): void {
  for (let layer: DiskImage | undefined = image; layer; layer = (layer as { parent?: DiskImage }).parent) {
    const walked = (name: string) => () => Promise.reject(new Error(`${name} of ${layer!.path} was called`));
    Object.assign(layer, { info: walked("info"), allocationMap: walked("allocationMap") });
  }
}

t.test("identity and parents come from the headers, for raw, VHD chains and VHDX", async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, "disk.raw");
  writeFileSync(raw, new Uint8Array(MIB).fill(7));
  const base = join(dir, "base.vhd");
  const child = join(dir, "child.vhd");
  const grandchild = join(dir, "grandchild.vhd");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "8M", base]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", base, child]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", child, grandchild]).status, 0);
  const vhdx = join(dir, "disk.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", vhdx, String(8 * MIB));
  for (const [path, parents] of [[raw, []], [base, []], [grandchild, [child, base]], [vhdx, []]] as const) {
    const image = await openImage(path, { readOnly: true });
    try {
      const info = await image.info();
      t.same(image.chain(), info.chain, `${path}: chain() is info().chain`);
      forbidMapWalks(image);
      const identity = await imageIdentity(image);
      t.equal(identity.uniqueId, info.uniqueId, `${path}: identity's unique id`);
      t.same(await parentsOf(image), parents, `${path}: parents`);
    } finally {
      await image.close();
    }
  }
});

t.test("info().allocatedBytes is exact across its map windows (raw, VHDX)", async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, "sparse.raw");
  writeFileSync(raw, "");
  truncateSync(raw, 300 * MIB);
  const fd = openSync(raw, "r+");
  // Data straddling the 128 MiB and 256 MiB window edges, and scattered 4 KiB pieces.
  for (const [offset, length] of [[128 * MIB - 64 * 1024, 128 * 1024], [256 * MIB - 4096, 8192], [5 * MIB, 4096], [200 * MIB, 4096], [300 * MIB - 4096, 4096]]) {
    writeSync(fd, new Uint8Array(length).fill(1), 0, length, offset);
  }
  closeSync(fd);
  const vhdx = join(dir, "sparse.vhdx");
  qemuImg("create", "-f", "vhdx", "-o", "block_size=1M", vhdx, String(300 * MIB));
  qemuIo(vhdx, ["write -P 1 127M 2M", "write -P 2 255M 1M", "write -P 3 5M 4k"]);
  for (const path of [raw, vhdx]) {
    const image = await openImage(path, { readOnly: true });
    try {
      const expected = totalLength(await image.allocationMap(0, image.virtualSize, "layer"));
      t.ok(expected > 0, `${path}: has data`);
      t.equal((await image.info()).allocatedBytes, expected, `${path}: allocatedBytes`);
    } finally {
      await image.close();
    }
  }
});

t.test("an image of a registered format without chain() falls back to info().chain", async (t) => {
  const dir = tempDir(t);
  const base = join(dir, "base.vhd");
  const child = join(dir, "child.vhd");
  t.equal(runCli(["create", "--type", "dynamic", "--size", "8M", base]).status, 0);
  t.equal(runCli(["create", "--type", "differencing", "--parent", base, child]).status, 0);
  const image = await openImage(child, { readOnly: true });
  try {
    const info = await image.info();
    // Methods run on the image itself (its own info() uses chain()); callers see no chain().
    const legacy = new Proxy(image, {
      get: (target, key) => {
        if (key === "chain") return undefined;
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    t.same(await parentsOf(legacy), [base]);
    t.equal((await imageIdentity(legacy)).uniqueId, info.uniqueId);
  } finally {
    await image.close();
  }
});
