// The engine's library entry points as an embedding tool calls them: arguments of the wrong type
// refused with VHDSYNC_INVALID_ARGUMENT before anything is opened or written, no descriptor
// left open by a refusal, concurrent calls writing one path, progress counters that mean what
// the report's mean, and an exception from a progress listener.
import t from "tap";
import { copyFileSync, existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { checksum, convertImage, copy, diff, resync, verify } from "../dist/index.js";
import { fileSha, pairSetup, writeRandomImage } from "./helpers/resync-images.js";

/** Descriptors of this process open on `path`. */
function openOn(path: string): number {
  return readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;
}

const invalid = { code: "VHDSYNC_INVALID_ARGUMENT", recoverable: false };

t.test("wrong-type arguments: VHDSYNC_INVALID_ARGUMENT, nothing opened or written", async (t) => {
  const { prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, 1 << 20, prng);
  writeRandomImage(target, 1 << 20, prng);
  const before = fileSha(target);
  const digest = join(dir, "d.digest");
  const calls: Array<[string, () => Promise<unknown>]> = [
    ["resync(number)", () => resync(42 as never, target)],
    ["copy(undefined)", () => copy(undefined as never, join(dir, "x.img"))],
    ["verify(, null)", () => verify(source, null as never)],
    ["diff(object)", () => diff({} as never, target)],
    ["checksum()", () => (checksum as (...args: unknown[]) => Promise<unknown>)()],
    ["checksum(number)", () => checksum(5 as never, digest)],
    ["checksum(null)", () => checksum(null as never, digest)],
    ["checksum(, number)", () => checksum(source, 7 as never)],
    ["resync(\"\")", () => resync("", target)],
    ["resync options null", () => resync(source, target, null as never)],
    ["copy options string", () => copy(source, target, "fast" as never)],
  ];
  for (const onProgress of [5, "log", {}]) {
    calls.push([`resync onProgress ${String(onProgress)}`, () => resync(source, target, { onProgress: onProgress as never })]);
    calls.push([`copy onProgress ${String(onProgress)}`, () => copy(source, target, { onProgress: onProgress as never })]);
    calls.push([`checksum onProgress ${String(onProgress)}`, () => checksum(source, digest, { onProgress: onProgress as never })]);
    calls.push([`verify onProgress ${String(onProgress)}`, () => verify(source, target, { onProgress: onProgress as never })]);
    calls.push([`diff onProgress ${String(onProgress)}`, () => diff(source, target, { onProgress: onProgress as never })]);
  }
  for (const signal of [{}, { aborted: false }, "stop"]) {
    calls.push([`resync signal ${JSON.stringify(signal)}`, () => resync(source, target, { signal: signal as never })]);
    calls.push([`verify signal ${JSON.stringify(signal)}`, () => verify(source, target, { signal: signal as never })]);
  }
  for (const maxExtents of [-1, Number.NaN, 1.5, "2"]) {
    calls.push([`verify maxExtents ${String(maxExtents)}`, () => verify(source, target, { maxExtents: maxExtents as never })]);
    calls.push([`diff maxExtents ${String(maxExtents)}`, () => diff(source, target, { maxExtents: maxExtents as never })]);
  }
  for (const algo of ["md5", 3, null]) calls.push([`checksum algo ${String(algo)}`, () => checksum(source, digest, { algo: algo as never })]);
  // Paths and flags of resync beyond the scan's own: a string "false" is truthy, so a flag
  // that is not a boolean would do what the caller meant not to (resize, overwrite, shrink).
  for (const path of [1, {}, ""]) {
    calls.push([`resync targetDigestPath ${JSON.stringify(path)}`, () => resync(source, target, { targetDigestPath: path as never })]);
    calls.push([`resync checkpointPath ${JSON.stringify(path)}`, () => resync(source, target, { checkpointPath: path as never })]);
  }
  for (const flag of ["updateTargetDigest", "dryRun", "resize", "resume"]) {
    for (const value of ["false", 1, {}]) calls.push([`resync ${flag} ${JSON.stringify(value)}`, () => resync(source, target, { [flag]: value })]);
  }
  for (const flag of ["targetFresh", "allowLargerTarget"]) calls.push([`copy ${flag} "no"`, () => copy(source, target, { [flag]: "no" })]);
  for (const value of [-1, Number.NaN, "2000"]) calls.push([`resync checkpointIntervalMs ${JSON.stringify(value)}`, () => resync(source, target, { checkpointIntervalMs: value as never })]);
  // The run would complete without a digest to update, and explain why with a wrong reason.
  calls.push(["resync updateTargetDigest without a digest", () => resync(source, target, { updateTargetDigest: true })]);
  for (const [name, call] of calls) {
    let promise: Promise<unknown> | undefined;
    t.doesNotThrow(() => (promise = call()), `${name}: no synchronous throw`);
    await t.rejects(promise!, invalid, name);
  }
  t.equal(fileSha(target), before, "the target is unchanged");
  t.same(readdirSync(dir).sort(), [basename(source), basename(target)].sort(), "nothing else in the directory");
  t.notOk(existsSync(digest), "no digest written");
  t.notOk(existsSync(`${target}.vhdsync-checkpoint`), "no checkpoint left");
  t.equal(openOn(source) + openOn(target), 0, "no descriptor left open");
});

t.test("checksum with an unknown algorithm, called again and again, leaves no descriptor open", async (t) => {
  const { prng, dir, source } = pairSetup(t);
  writeRandomImage(source, 1 << 20, prng);
  for (let i = 0; i < 5; i++) await t.rejects(checksum(source, join(dir, "x.digest"), { algo: "md5" as never }), invalid);
  t.equal(openOn(source), 0);
});

t.test("concurrent calls writing one path: each write is whole, a new target is never replaced, no temp file is left", async (t) => {
  const { seed, prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, 4 << 20, prng);
  writeRandomImage(target, 4 << 20, prng);
  for (let round = 0; round < 4; round++) {
    const out = join(dir, `out${round}.img`);
    // Both create the new target: the first to finish puts it in place; the other finds it
    // there and leaves it (VHDSYNC_BUSY) rather than replace it.
    const copies = await Promise.allSettled([copy(source, out), copy(target, out)]);
    t.same(copies.map((result) => result.status).sort(), ["fulfilled", "rejected"], `seed ${seed}: one copy lands`);
    const refused = copies.find((result) => result.status === "rejected") as PromiseRejectedResult;
    t.match(refused.reason, { code: "VHDSYNC_BUSY", recoverable: true }, "the other is told");
    const content = fileSha(out);
    t.equal(content, fileSha(copies[0].status === "fulfilled" ? source : target), "the target is the landed copy's source, whole");
    const digest = join(dir, `out${round}.digest`);
    const sums = await Promise.allSettled([checksum(source, digest), checksum(target, digest)]);
    t.same(sums.map((result) => result.status), ["fulfilled", "fulfilled"], "both checksums succeed");
    const against = await Promise.all([diff(digest, source), diff(digest, target)]);
    t.ok(against.some((report) => report.equal), "the digest is whole and describes one of the images");
  }
  t.same(readdirSync(dir).filter((name) => name.endsWith(".tmp")), [], "no temp file left");
});

t.test("resync progress counters carry the report's meanings; a listener's exception stops the run resumably", async (t) => {
  const { prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, 8 << 20, prng, 1 << 20);
  const bytes = readFileSync(source);
  // The target differs in data and in zeros: the source's first 64 KiB are zeros, the target's random.
  bytes.fill(0, 0, 65536);
  writeFileSync(source, bytes);
  const other = Buffer.from(bytes);
  for (let i = 0; i < 65536; i++) other[i] = (i * 7 + 1) & 255;
  for (let i = 0; i < 20; i++) other[prng.int(other.length)] ^= 1;
  writeFileSync(target, other);
  const events: Array<{ counters?: Record<string, number> }> = [];
  const report = await resync(source, target, { onProgress: (event) => events.push(event) });
  t.ok(report.bytesZeroed > 0 && report.bytesWritten > 0, `${report.bytesWritten} written, ${report.bytesZeroed} zeroed`);
  t.same(events.at(-1)!.counters, { blocksChanged: report.blocksChanged, bytesWritten: report.bytesWritten, bytesZeroed: report.bytesZeroed }, "the last event's counters are the report's");

  // A listener that throws on its first event: the error comes back unchanged, the run resumes.
  writeFileSync(target, other);
  const copyOfTarget = join(dir, "before.img");
  copyFileSync(target, copyOfTarget);
  const mistake = new Error("listener bug");
  await t.rejects(resync(source, target, { workers: 1, checkpointIntervalMs: 0, onProgress: () => { throw mistake; } }), mistake);
  const resumed = await resync(source, target, { resume: true });
  t.equal(fileSha(target), fileSha(source), "resumed to the source's content");
  t.notOk(existsSync(`${target}.vhdsync-checkpoint`), "checkpoint removed after success");
  t.ok(resumed.blocksChanged <= report.blocksChanged);
});

t.test("progress details count in words that agree with the number: 1 block, 2 blocks", async (t) => {
  const { source, target } = pairSetup(t);
  const bytes = Buffer.alloc(1 << 20, 7);
  writeFileSync(source, bytes);
  for (const changed of [1, 2]) {
    const other = Buffer.from(bytes);
    for (let i = 0; i < changed; i++) other[i * 65536] ^= 1;
    writeFileSync(target, other);
    const verifyDetails: string[] = [];
    await verify(source, target, { onProgress: (event) => verifyDetails.push(event.detail ?? "") });
    t.equal(verifyDetails.at(-1), changed === 1 ? "1 block differs" : "2 blocks differ", `verify, ${changed} changed`);
    const resyncDetails: string[] = [];
    await resync(source, target, { onProgress: (event) => resyncDetails.push(event.detail ?? "") });
    t.equal(resyncDetails.at(-1), changed === 1 ? "1 block changed" : "2 blocks changed", `resync, ${changed} changed`);
  }
});

t.test("progress events name the operation called, also where it runs another's engine (diff of two images, convert)", async (t) => {
  const { dir, source, target } = pairSetup(t);
  writeFileSync(source, Buffer.alloc(1 << 20, 3));
  writeFileSync(target, Buffer.alloc(1 << 20, 4));
  const digest = join(dir, "target.digest");
  await checksum(target, digest);
  const seen: Record<string, Set<string>> = {};
  const listener = (name: string) => (event: { operation: string }) => (seen[name] ??= new Set()).add(event.operation);
  await verify(source, target, { onProgress: listener("verify") });
  await diff(source, target, { onProgress: listener("diff") });
  await diff(source, digest, { onProgress: listener("diff with a digest") });
  await convertImage(source, join(dir, "out.vhd"), { to: "vhd-dynamic", onProgress: listener("convert") });
  await copy(source, join(dir, "copied.img"), { onProgress: listener("copy") });
  t.same(Object.fromEntries(Object.entries(seen).map(([name, operations]) => [name, [...operations]])), {
    verify: ["verify"],
    diff: ["diff"],
    "diff with a digest": ["diff"],
    convert: ["convert"],
    copy: ["copy"],
  });
});

t.test("the other entry points: wrong-type arguments are VHDSYNC_INVALID_ARGUMENT too", async (t) => {
  const lib = await import("../dist/index.js");
  const { dir } = pairSetup(t);
  const anyLib = lib as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const calls: Array<[string, unknown[]]> = [
    ["openImage", [5]],
    ["openImage", ["x.img", "readOnly"]],
    ["compareImages", [5, 6]],
    ["convertImage", [5, join(dir, "x.raw"), { to: "raw" }]],
    ["convertImage", [join(dir, "in.raw"), join(dir, "x.raw")]],
    ["createVhd", [5, { type: "dynamic", sizeBytes: 1 << 20 }]],
    ["createVhd", [join(dir, "x.vhd")]],
    ["hashFile", [5]],
    ["applyLog", [5, 6]],
    ["writeUndoLog", [5, {}, 6]],
    ["createSnapshot", [5]],
    ["listSnapshots", [null]],
    ["revertSnapshot", [join(dir, "disk.vhd"), 3]],
    ["deleteSnapshot", [join(dir, "disk.vhd"), ""]],
    ["mergeSnapshots", [5]],
    ["resumeSnapshotOperation", [{}]],
    ["compactLog", [5, 6]],
    ["recoverLog", [join(dir, "a.hrl"), undefined]],
    ["imageIdentity", [5]],
    ["checkImage", [5]],
    ["cloneFile", [5, 6]],
    ["cloneFile", [join(dir, "a.img"), join(dir, "b.img"), null]],
    ["cloneFile", [join(dir, "a.img"), join(dir, "b.img"), 123]],
    // A NUL byte in a path: Node's own ERR_INVALID_ARG_VALUE.
    ["hashFile", [join(dir, "a\0b")]],
    ["openVhd", [join(dir, "a\0b")]],
    ["isDigestFile", [join(dir, "a\0b")]],
    ["openLog", [join(dir, "a\0b")]],
    ["checksum", [join(dir, "a.img"), join(dir, "a.digest"), ["an", "array"]]],
    // An unknown kind of VHD once wrote a 2,560-byte "differencing disk" without a parent.
    ["createVhd", [join(dir, "x.vhd"), { type: "bogus", sizeBytes: 1 << 20 }]],
    ["createVhd", [join(dir, "x.vhd"), { sizeBytes: 1 << 20 }]],
    ["createVhd", [join(dir, "x.vhd"), { type: "dynamic", sizeBytes: 1 << 20, creatorApplication: 1234 }]],
    ["createVhd", [join(dir, "x.vhd"), { type: "differencing", parentPath: 5 }]],
    ["hashFile", [join(dir, "a.img"), { onProgress: 1 }]],
    ["hashFile", [join(dir, "a.img"), { onBlockDigests: "x", blockSizeBytes: 4096 }]],
    ["hashFile", [join(dir, "a.img"), { buffers: -2 }]],
    ["hashImage", [null]],
    // A name that is not a string once went into the catalogue and made it unreadable.
    ["createSnapshot", [join(dir, "disk.vhd"), { name: 5 }]],
    ["createSnapshot", [join(dir, "disk.vhd"), { name: { x: 1 } }]],
    ["createSnapshot", [join(dir, "disk.vhd"), { now: "yesterday" }]],
    ["createSnapshot", [join(dir, "disk.vhd"), { now: new Date(Number.NaN) }]],
    ["mergeSnapshots", [join(dir, "disk.vhd"), { into: 5 }]],
    // Flags that are not booleans: "no" is truthy.
    ["convertImage", [join(dir, "in.raw"), join(dir, "x.raw"), { to: "raw", overwrite: "no" }]],
    ["resizeImage", [join(dir, "a.img"), 1 << 20, { allowShrink: "no" }]],
    ["openImage", [join(dir, "a.img"), { readOnly: "false" }]],
    ["openVhd", [join(dir, "a.vhd"), { readOnly: "false" }]],
    ["openLog", [join(dir, "a.hrl"), { allowUnclean: "no" }]],
    ["openLog", [5]],
    ["applyLog", [{ path: "x", read() {}, close() {} }, join(dir, "a.hrl"), { checkSequence: "no" }]],
    ["applyLog", [{ path: "x", read() {}, close() {} }, join(dir, "a.hrl"), { statePath: 5 }]],
  ];
  for (const [name, args] of calls) {
    t.type(anyLib[name], "function", `${name} is exported`);
    await t.rejects(anyLib[name](...args), invalid, `${name}(${args.map((arg) => JSON.stringify(arg) ?? "undefined").join(", ")})`);
  }
  t.same(readdirSync(dir), [], "nothing created");
});

t.test("an interruption names the operation called and its output, also where it runs another's engine (diff of two images, convert)", async (t) => {
  const { prng, dir, source, target } = pairSetup(t);
  writeRandomImage(source, 4 << 20, prng);
  writeRandomImage(target, 4 << 20, prng);
  const stop = new AbortController();
  stop.abort();
  const output = join(dir, "out.vhd");
  await t.rejects(convertImage(source, output, { to: "vhd-dynamic", signal: stop.signal }), { code: "VHDSYNC_INTERRUPTED", message: `convert to ${output} interrupted (rerun to convert again)`, details: { path: output } });
  await t.rejects(diff(source, target, { signal: stop.signal }), { code: "VHDSYNC_INTERRUPTED", message: "diff interrupted" });
  await t.rejects(verify(source, target, { signal: stop.signal }), { code: "VHDSYNC_INTERRUPTED", message: "verify interrupted" });
  t.same(readdirSync(dir).sort(), [basename(source), basename(target)].sort(), "no output, no temp file");
});
