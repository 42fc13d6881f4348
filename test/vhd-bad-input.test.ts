// Bad VHD input: truncated files, wrong cookies, bad checksums, BAT entries past the end or
// overlapping, bad block sizes, overflowing sizes → a coded VhdsyncError (CLI exit 3), no
// crash, no hang, and the file's bytes unchanged after the failed open (even read-write).

import t from "tap";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VhdsyncError, checkImage, openImage } from "../dist/index.js";
import { openVhd } from "../dist/formats/vhd/index.js";
import { runCli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";
import { fixChecksums, onesComplement, run, sha256 } from "./helpers/vhd.js";

/** Cases also run through the CLI (each spawn costs a Node start-up). */
const CLI_CASES = new Set(["header checksum bad", "BAT entries overlapping", "fixed: size beyond the file"]);

/** A qemu-made dynamic VHD (force_size) written by one qemu-io command. */
function qemuDynamic(path: string, size: string, command: string): string {
  run("qemu-img", ["create", "-q", "-f", "vpc", "-o", "force_size=on", path, size]);
  run("qemu-io", ["-f", "vpc", "-c", command, path]);
  return path;
}

type Mutation = { name: string; code: RegExp; mutate(file: Buffer): Buffer };

t.test("reference checksum agrees with the footers vhdsync and qemu write", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "q.vhd");
  run("qemu-img", ["create", "-q", "-f", "vpc", path, "8M"]);
  const file = readFileSync(path);
  t.equal(onesComplement(file.subarray(file.length - 512), 64), file.readUInt32BE(file.length - 512 + 64));
  t.equal(onesComplement(file.subarray(512, 1536), 36), file.readUInt32BE(512 + 36));
});

t.test("corrupt dynamic and fixed images give coded errors and stay unchanged", async (t) => {
  const dir = tempDir(t);
  const dynamic = qemuDynamic(join(dir, "base-dyn.vhd"), "8M", "write -P 0x5a 0 3M");
  const fixed = join(dir, "base-fixed.vhd");
  run("qemu-img", ["create", "-q", "-f", "vpc", "-o", "subformat=fixed,force_size=on", fixed, "4M"]);
  const dyn = readFileSync(dynamic);
  const tableOffset = Number(dyn.readBigUInt64BE(512 + 16));
  const footers = (f: Buffer) => [0, f.length - 512];
  const dynamicCases: Mutation[] = [
    { name: "truncated to 300 bytes", code: /TRUNCATED/, mutate: (f) => f.subarray(0, 300) },
    { name: "truncated mid-data", code: /TRUNCATED|CORRUPT/, mutate: (f) => f.subarray(0, f.length - 700000) },
    { name: "both cookies wrong", code: /CORRUPT/, mutate: (f) => { f.write("conectiy", f.length - 512, "latin1"); f.writeUInt32BE(0, 64); return f; } },
    { name: "footer checksums bad", code: /BAD_CHECKSUM/, mutate: (f) => { f[f.length - 512 + 64] ^= 1; f[64] ^= 1; return f; } },
    { name: "header cookie wrong", code: /CORRUPT/, mutate: (f) => { f.write("cxspars3", 512, "latin1"); fixChecksums(f, [], 512); return f; } },
    { name: "header checksum bad", code: /BAD_CHECKSUM/, mutate: (f) => { f[512 + 100] ^= 0x40; return f; } },
    { name: "block size not a power of two", code: /CORRUPT/, mutate: (f) => { f.writeUInt32BE(3 << 20, 512 + 32); fixChecksums(f, [], 512); return f; } },
    { name: "block size absurd (2 GiB)", code: /CORRUPT/, mutate: (f) => { f.writeUInt32BE(0x80000000, 512 + 32); fixChecksums(f, [], 512); return f; } },
    { name: "max table entries huge", code: /UNSUPPORTED|TRUNCATED/, mutate: (f) => { f.writeUInt32BE(0x40000000, 512 + 28); fixChecksums(f, [], 512); return f; } },
    { name: "BAT past end of file", code: /TRUNCATED/, mutate: (f) => { f.writeBigUInt64BE(BigInt(f.length), 512 + 16); fixChecksums(f, [], 512); return f; } },
    { name: "BAT entry past end of file", code: /TRUNCATED/, mutate: (f) => { f.writeUInt32BE(Math.floor(f.length / 512) + 10, tableOffset + 3 * 4); return f; } },
    { name: "BAT entries overlapping", code: /CORRUPT/, mutate: (f) => { f.writeUInt32BE(f.readUInt32BE(tableOffset), tableOffset + 2 * 4); return f; } },
    { name: "BAT entry into the header", code: /CORRUPT/, mutate: (f) => { f.writeUInt32BE(1, tableOffset + 2 * 4); return f; } },
    { name: "current size overflows", code: /CORRUPT/, mutate: (f) => { for (const o of footers(f)) f.writeBigUInt64BE(0x7ffffffffffffe00n, o + 48); fixChecksums(f, footers(f)); return f; } },
    { name: "disk type unknown", code: /UNSUPPORTED/, mutate: (f) => { for (const o of footers(f)) f.writeUInt32BE(7, o + 60); fixChecksums(f, footers(f)); return f; } },
  ];
  const fixedCases: Mutation[] = [
    { name: "fixed: footer checksum bad", code: /BAD_CHECKSUM/, mutate: (f) => { f[f.length - 512 + 70] ^= 1; return f; } },
    { name: "fixed: size beyond the file", code: /TRUNCATED/, mutate: (f) => { const o = f.length - 512; f.writeBigUInt64BE(64n << 20n, o + 48); fixChecksums(f, [o]); return f; } },
  ];
  for (const [source, cases] of [[dynamic, dynamicCases], [fixed, fixedCases]] as const) {
    for (const c of cases) {
      const path = join(dir, `bad-${c.name.replace(/\W+/g, "-")}.vhd`);
      writeFileSync(path, c.mutate(Buffer.from(readFileSync(source))));
      const before = sha256(readFileSync(path));
      const error = await openVhd(path, { readOnly: false }).then((image) => image.close().then(() => undefined), (e: unknown) => e);
      t.ok(error instanceof VhdsyncError, `${c.name}: coded error`);
      t.match((error as VhdsyncError)?.code, c.code, `${c.name}: ${(error as Error)?.message}`);
      t.equal(sha256(readFileSync(path)), before, `${c.name}: file unchanged after failed open`);
      const check = await checkImage(path);
      if (check.format === "vhd") t.notOk(check.ok, `${c.name}: check reports a problem`);
      if (CLI_CASES.has(c.name)) {
        const cliCheck = runCli(["check", path, "--json"]);
        t.equal(cliCheck.status, 3, `${c.name}: check exits 3 (${cliCheck.stderr.trim()})`);
        const info = runCli(["info", path]);
        t.equal(info.status, 3, `${c.name}: info exits 3 (${info.stderr.trim()})`);
        t.match(info.stderr, /^vhdsync: VHDSYNC_[A-Z_]+: /, "error on stderr in the CLI format");
        t.equal(sha256(readFileSync(path)), before, `${c.name}: file unchanged after CLI`);
      }
    }
  }
});

t.test("check lists every problem, not only the first", async (t) => {
  const dir = tempDir(t);
  const path = qemuDynamic(join(dir, "multi.vhd"), "16M", "write -P 0x11 0 6M");
  const file = readFileSync(path);
  const tableOffset = Number(file.readBigUInt64BE(512 + 16));
  file.writeUInt32BE(file.readUInt32BE(tableOffset), tableOffset + 4 * 4);
  file.writeUInt32BE(0x7fffffff, tableOffset + 5 * 4);
  file[0] ^= 0xff;
  writeFileSync(path, file);
  const result = JSON.parse(runCli(["check", path, "--json"]).stdout);
  t.equal(result.ok, false);
  const codes = result.problems.map((p: { code: string }) => p.code).sort();
  t.ok(codes.includes("VHDSYNC_TRUNCATED"), "block past end listed");
  t.ok(codes.includes("VHDSYNC_CORRUPT"), "overlap / footer copy listed");
  t.ok(result.problems.length >= 3, `all problems listed: ${JSON.stringify(result.problems)}`);
  const image = await openImage(path).catch((e: unknown) => e);
  t.ok(image instanceof VhdsyncError);
});

t.test("damaged end footer: the copy at offset 0 is used, check reports it", async (t) => {
  const dir = tempDir(t);
  const path = qemuDynamic(join(dir, "copy.vhd"), "4M", "write -P 0x21 512k 1M");
  const file = readFileSync(path);
  file[file.length - 512 + 70] ^= 0xff;
  writeFileSync(path, file);
  const image = await openImage(path);
  const info = await image.info();
  t.equal(info.footerSource, "copy");
  const data = Buffer.alloc(1024 * 1024);
  await image.read(data, 512 * 1024);
  t.ok(data.every((b) => b === 0x21), "data still readable");
  await image.close();
  const check = await checkImage(path);
  t.equal(check.ok, false);
  t.match(check.problems.map((p) => p.code), ["VHDSYNC_BAD_CHECKSUM"]);
});

t.test("parent time stamp not matching (parent modified since): reads work, check reports the time stamp", async (t) => {
  const dir = tempDir(t);
  const { createVhd } = await import("../dist/index.js");
  const base = await createVhd(join(dir, "p.vhd"), { type: "dynamic", sizeBytes: 1 << 20 });
  await base.close();
  const child = await createVhd(join(dir, "c.vhd"), { type: "differencing", parentPath: join(dir, "p.vhd") });
  await child.close();
  const childBytes = readFileSync(join(dir, "c.vhd"));
  childBytes.writeUInt32BE(childBytes.readUInt32BE(512 + 56) - 5000, 512 + 56);
  fixChecksums(childBytes, [], 512);
  writeFileSync(join(dir, "c.vhd"), childBytes);
  const image = await openImage(join(dir, "c.vhd"));
  t.equal(((await image.info()).parent as { timestampMatches: boolean }).timestampMatches, false);
  await image.close();
  const check = await checkImage(join(dir, "c.vhd"));
  t.match(check.problems, [{ code: "VHDSYNC_CHAIN_BROKEN", message: /time stamp/ }]);
});
