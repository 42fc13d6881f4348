// The seal of JSON state files (src/hash/sealed-json.ts) against node:crypto, and the snapshot
// operation state that carries it: a changed cursor is refused, an unsealed version 1 state is
// still read.
import t from "tap";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sealIntact, sealJson } from "../dist/hash/sealed-json.js";
import { readOperationState, writeOperationState } from "../dist/snapshot/operation-state.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

t.test("sealJson: SHA-256 hex of JSON.stringify of the other fields, in order, as the last field", async (t) => {
  const seed = testSeed();
  const prng = new Prng(seed);
  for (let i = 0; i < 200; i++) {
    const value: Record<string, unknown> = { kind: "x", n: prng.int(1 << 30), big: String(prng.int(1 << 30)) + "000000000", list: [prng.int(9), "é€"], nested: { a: null, b: prng.int(2) === 0 } };
    const sealed = sealJson(value);
    t.equal(Object.keys(sealed).at(-1), "checksum", "last");
    t.equal(sealed.checksum, createHash("sha256").update(JSON.stringify(value)).digest("hex"), `seed ${seed}: as node:crypto`);
    t.ok(sealIntact(sealed));
    t.ok(sealIntact(JSON.parse(JSON.stringify(sealed, null, prng.int(4)))), "whitespace is not sealed");
    t.same(sealJson(sealed), sealed, "sealing again replaces the old seal");
    t.notOk(sealIntact({ ...sealed, n: (value.n as number) + 1 }), "a changed number");
    t.notOk(sealIntact({ ...value }), "no seal");
    t.notOk(sealIntact({ ...sealed, checksum: 5 }), "a seal that is not a string");
    if (t.passing() === false) break;
  }
});

t.test("snapshot operation state: sealed when written; a changed cursor is VHDSYNC_BAD_STATE; version 1 without a seal is read", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "disk.vhd.snapshot-op.json");
  const state = {
    version: 2, op: "merge", step: "copy", disk: join(dir, "disk.vhd"), startedAt: new Date(0).toISOString(),
    targetPath: join(dir, "base.vhd"), targetUniqueId: "u", intermediatePaths: [], droppedIds: [], cursorBytes: 3 << 20,
  };
  await writeOperationState(path, state as never);
  const written = JSON.parse(readFileSync(path, "utf8"));
  t.match(written.checksum, /^[0-9a-f]{64}$/);
  t.same(await readOperationState(path), state, "read back without the seal");
  writeFileSync(path, JSON.stringify({ ...written, cursorBytes: 30 << 20 }));
  await t.rejects(readOperationState(path), { code: "VHDSYNC_BAD_STATE", message: /damaged/ });
  const { checksum: _seal, ...fields } = written;
  writeFileSync(path, JSON.stringify({ ...fields, version: 1 }));
  t.same(await readOperationState(path), state, "an unsealed version 1 state");
  writeFileSync(path, JSON.stringify({ ...fields, version: 2 }));
  await t.rejects(readOperationState(path), { code: "VHDSYNC_BAD_STATE" }, "version 2 needs its seal");
});
