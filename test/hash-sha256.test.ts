// SHA-256 fed in pieces (src/hash/sha256.ts): the addon's stream (native/src/sha256.rs) and the
// node:crypto fallback against node:crypto's one-shot digest, over random inputs cut at random
// places, with digests asked for midway; and the runs that hash digest files without loading
// node:crypto when the addon streams SHA-256.
import t from "tap";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createSha256, sha256 } from "../dist/hash/sha256.js";
import { nativeAddon } from "../dist/io/native-addon.js";
import { runCliListingModules } from "./helpers/cli.js";
import { Prng, testSeed } from "./helpers/prng.js";
import { tempDir } from "./helpers/tmp.js";

const seed = testSeed();
const addon = nativeAddon();
const streams = typeof addon?.sha256StreamUpdate === "function";
const reference = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** Runs `body` with VHDSYNC_NO_NATIVE_HASH set to `value` (undefined: unset). */
function withNoNativeHash<T>(value: string | undefined, body: () => T): T {
  const before = process.env.VHDSYNC_NO_NATIVE_HASH;
  if (value === undefined) delete process.env.VHDSYNC_NO_NATIVE_HASH;
  else process.env.VHDSYNC_NO_NATIVE_HASH = value;
  try {
    return body();
  } finally {
    if (before === undefined) delete process.env.VHDSYNC_NO_NATIVE_HASH;
    else process.env.VHDSYNC_NO_NATIVE_HASH = before;
  }
}

const paths = [
  { name: streams ? "the addon's stream" : "node:crypto (the addon does not stream SHA-256 here)", noNativeHash: undefined },
  { name: "node:crypto (VHDSYNC_NO_NATIVE_HASH=1)", noNativeHash: "1" },
];

for (const path of paths) {
  t.test(`${path.name}: the standard's examples, one piece and byte by byte`, async (t) => {
    withNoNativeHash(path.noNativeHash, () => {
      const examples = [
        ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
        ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
        ["abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"],
      ];
      for (const [text, expected] of examples) {
        const bytes = new TextEncoder().encode(text);
        t.equal(hex(sha256(bytes)), expected, `"${text}"`);
        const stream = createSha256();
        for (let i = 0; i < bytes.length; i++) stream.update(bytes.subarray(i, i + 1));
        t.equal(hex(stream.digest()), expected, `"${text}" byte by byte`);
      }
    });
  });

  t.test(`${path.name}: random inputs in random pieces, digests midway, against node:crypto (seed ${seed})`, async (t) => {
    withNoNativeHash(path.noNativeHash, () => {
      const prng = new Prng(seed);
      for (let round = 0; round < 150; round++) {
        // Pieces of 0-200 bytes, some multiples of 64, views at odd offsets of a larger buffer.
        const length = prng.int(round < 100 ? 1000 : 200_000);
        const backing = prng.bytes(length + 17);
        const offset = prng.int(17);
        const data = backing.subarray(offset, offset + length);
        const stream = createSha256();
        let at = 0;
        while (at < length) {
          const piece = Math.min(length - at, prng.int(4) === 0 ? 64 * prng.int(4) : prng.int(round < 100 ? 200 : 70_000));
          stream.update(data.subarray(at, at + piece));
          at += piece;
          if (prng.int(3) === 0) t.equal(hex(stream.digest()), reference(data.subarray(0, at)), `seed ${seed} round ${round}: digest after ${at} bytes`);
        }
        t.equal(hex(stream.digest()), reference(data), `seed ${seed} round ${round}: ${length} bytes`);
      }
      // Bytes in a SharedArrayBuffer (which the addon does not take) hash the same.
      const shared = new Uint8Array(new SharedArrayBuffer(5000));
      shared.set(prng.bytes(5000));
      t.equal(hex(createSha256().update(shared.subarray(3, 4003)).digest()), reference(Uint8Array.from(shared.subarray(3, 4003))), "bytes in a SharedArrayBuffer");
    });
  });
}

t.test("checksum and --target-digest load neither node:crypto nor streams when the addon streams SHA-256", { skip: streams ? false : "the addon does not stream SHA-256 here" }, async (t) => {
  const dir = tempDir(t);
  const [a, b, digest] = ["a.img", "b.img", "b.digest"].map((name) => join(dir, name));
  writeFileSync(a, new Prng(seed).bytes(64 * 1024));
  writeFileSync(b, new Prng(seed + 1).bytes(64 * 1024));
  for (const args of [
    ["checksum", b, "-o", digest],
    ["resync", a, b, "--target-digest", digest, "--update-digest"],
  ]) {
    const result = runCliListingModules(args, dir);
    t.equal(result.status, 0, `${args[0]}: ${result.stderr}`);
    t.ok(result.loaded.has("NativeModule fs"), `${args[0]}: the module list is read`);
    for (const name of ["crypto", "stream"]) t.notOk(result.loaded.has(`NativeModule ${name}`), `${args.slice(0, 4).join(" ")}: node:${name} not loaded`);
  }
  t.ok(readFileSync(a).equals(readFileSync(b)), "the target equals the source");
});
