// diff(): compares any two of {image, digest file}. Two images: a direct block compare
// (verify). Image and digest: the image is hashed with the digest's block size and algorithm
// and compared frame by frame. Two digests: compared record by record without reading images.

import { VhdsyncError } from "../errors.js";
import { BLOCK_DATA, type DigestFrame } from "./digest-format.js";
import { DigestReader, isDigestFile } from "./digest-reader.js";
import { ExtentCollector, collectDifferences, diffReport, type DiffReport } from "./diff-report.js";
import { SegmentPool } from "./segment-pool.js";
import { workerCountFor } from "./scan-workers.js";
import { checkScanOptions, DEFAULT_WINDOW_BYTES } from "./segment-plan.js";
import type { SegmentTask } from "./segment-task.js";
import { imageVirtualSize, verify, type CompareOptions } from "./verify.js";
import { monotonicMs } from "../io/clock.js";
import { reportedAs } from "../progress.js";

/**
 * Compares A and B, each an image or a digest file.
 * @throws VHDSYNC_SIZE_MISMATCH, VHDSYNC_INVALID_ARGUMENT (digests with different block sizes
 *   or algorithms), VHDSYNC_CORRUPT / VHDSYNC_TRUNCATED / VHDSYNC_BAD_CHECKSUM, I/O codes
 */
export async function diff(aPath: string, bPath: string, options: CompareOptions = {}): Promise<DiffReport> {
  checkScanOptions(options, { aPath, bPath });
  const [aDigest, bDigest] = [await isDigestFile(aPath), await isDigestFile(bPath)];
  if (!aDigest && !bDigest) {
    // Verify's engine, under this command's name (its progress events, its interruption).
    return verify(aPath, bPath, { ...options, onProgress: reportedAs(options.onProgress, "diff") }).catch((error: unknown) => {
      throw error instanceof VhdsyncError && error.code === "VHDSYNC_INTERRUPTED" ? new VhdsyncError(error.code, "diff interrupted", error.details, { cause: error }) : error;
    });
  }
  if (aDigest && bDigest) return diffDigests(aPath, bPath, options);
  const report = aDigest ? await diffImageDigest(bPath, aPath, options) : await diffImageDigest(aPath, bPath, options);
  return { ...report, a: aPath, b: bPath };
}

function sizeMismatch(a: string, aSize: number, b: string, bSize: number): VhdsyncError {
  return new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `${a} describes ${aSize} bytes but ${b} ${bSize}`, { aSizeBytes: aSize, bSizeBytes: bSize });
}

async function diffImageDigest(imagePath: string, digestPath: string, options: CompareOptions): Promise<DiffReport> {
  const started = monotonicMs();
  const digest = await DigestReader.open(digestPath);
  try {
    await digest.validate();
    const { blockSizeBytes, algo, virtualSizeBytes, blockCount } = digest.header;
    checkDigestBlockSize(digestPath, blockSizeBytes, options);
    const imageSize = await imageVirtualSize(imagePath);
    if (imageSize !== virtualSizeBytes) throw sizeMismatch(imagePath, imageSize, digestPath, virtualSizeBytes);
    const pool = await SegmentPool.start(
      { mode: "hash-compare", sourcePath: imagePath, blockSizeBytes, algo, apply: "none", windowBytes: DEFAULT_WINDOW_BYTES },
      workerCountFor(virtualSizeBytes, options.workers),
    );
    const { counters, extents, scanner } = await collectDifferences(pool, framesAsTasks(digest), { operation: "diff", virtualSizeBytes, blockSizeBytes }, options);
    return diffReport({ a: imagePath, b: digestPath, method: "image-digest", blockSizeBytes, virtualSizeBytes, blocksTotal: blockCount, scanner }, counters, extents, started);
  } finally {
    await digest.close();
  }
}

/** A digest's blocks are its own: a --block-size that says otherwise is refused, not ignored. */
function checkDigestBlockSize(path: string, blockSizeBytes: number, options: CompareOptions): void {
  if (options.blockSizeBytes !== undefined && options.blockSizeBytes !== blockSizeBytes) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${path}: the digest uses ${blockSizeBytes}-byte blocks, not ${options.blockSizeBytes}`, { path, blockSizeBytes });
  }
}

async function* framesAsTasks(digest: DigestReader): AsyncGenerator<SegmentTask> {
  let id = 0;
  for await (const frame of digest.frames()) yield { id: id++, firstBlock: frame.firstBlock, blockCount: frame.blockCount, targetFlags: frame.flags, targetDigests: frame.digests };
}

/**
 * One digest file's frames as a walk over blocks: the frame holding the next block, that
 * block's index in it, and the index of the next data block's digest.
 */
class FrameWalk {
  frame: DigestFrame | undefined;
  at = 0;
  digestAt = 0;
  private readonly frames: AsyncGenerator<DigestFrame>;

  constructor(private readonly reader: DigestReader) {
    this.frames = reader.frames();
  }

  /** Blocks left in the current frame, moving to the next frame when it is used up. */
  async left(): Promise<number> {
    if (this.frame === undefined || this.at === this.frame.blockCount) {
      const next = await this.frames.next();
      if (next.done) throw new VhdsyncError("VHDSYNC_CORRUPT", `${this.reader.path}: digest file: fewer blocks in its frames than its header says`, { path: this.reader.path });
      [this.frame, this.at, this.digestAt] = [next.value, 0, 0];
    }
    return this.frame.blockCount - this.at;
  }

  /** Ends the walk: the reader's end-of-file checks (trailer, checksum) run here. */
  async finish(): Promise<void> {
    const next = await this.frames.next();
    if (!next.done) throw new VhdsyncError("VHDSYNC_CORRUPT", `${this.reader.path}: digest file: frames past its last block`, { path: this.reader.path });
  }
}

/** Same bytes (memcmp; for frames, where a JS loop would be slow). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

async function diffDigests(aPath: string, bPath: string, options: CompareOptions): Promise<DiffReport> {
  const started = monotonicMs();
  const a = await DigestReader.open(aPath);
  const b = await DigestReader.open(bPath).catch(async (error) => {
    await a.close();
    throw error;
  });
  try {
    const [ha, hb] = [a.header, b.header];
    if (ha.virtualSizeBytes !== hb.virtualSizeBytes) throw sizeMismatch(aPath, ha.virtualSizeBytes, bPath, hb.virtualSizeBytes);
    checkDigestBlockSize(aPath, ha.blockSizeBytes, options);
    if (ha.blockSizeBytes !== hb.blockSizeBytes || ha.algo !== hb.algo) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `digests differ in block size or algorithm (${ha.blockSizeBytes}/${ha.algo} vs ${hb.blockSizeBytes}/${hb.algo})`);
    }
    // No validate() first: a diff writes nothing, and reading each file once is half the work
    // for large ones. The walk raises structural errors as it meets them, and its end (finish())
    // checks each file's checksum before any report is made.
    const extents = new ExtentCollector(options.maxExtents);
    let differing = 0;
    const [walkA, walkB] = [new FrameWalk(a), new FrameWalk(b)];
    const length = ha.digestLength;
    const differs = (block: number) => {
      differing++;
      const offset = block * ha.blockSizeBytes;
      extents.add(offset, Math.min(ha.blockSizeBytes, ha.virtualSizeBytes - offset));
    };
    for (let block = 0; block < ha.blockCount; ) {
      const count = Math.min(await walkA.left(), await walkB.left());
      const [fa, fb] = [walkA.frame!, walkB.frame!];
      if (walkA.at === 0 && walkB.at === 0 && fa.blockCount === count && fb.blockCount === count && sameBytes(fa.flags, fb.flags) && sameBytes(fa.digests, fb.digests)) {
        // Frames alike to the byte (the common case): no block differs.
        [walkA.at, walkB.at, block] = [count, count, block + count];
        continue;
      }
      // Block by block: zero and unallocated blocks are equal to each other; data blocks are
      // equal when their digests are.
      let [ia, ib, da, db] = [walkA.at, walkB.at, walkA.digestAt * length, walkB.digestAt * length];
      for (const end = block + count; block < end; block++, ia++, ib++) {
        const dataA = fa.flags[ia] === BLOCK_DATA;
        const dataB = fb.flags[ib] === BLOCK_DATA;
        let same = dataA === dataB;
        if (dataA && dataB) for (let k = 0; k < length && same; k++) same = fa.digests[da + k] === fb.digests[db + k];
        if (dataA) da += length;
        if (dataB) db += length;
        if (!same) differs(block);
      }
      [walkA.at, walkB.at, walkA.digestAt, walkB.digestAt] = [ia, ib, da / length, db / length];
    }
    await walkA.finish();
    await walkB.finish();
    const counters = { blocksCompared: ha.blockCount, blocksChanged: differing, bytesRead: 0 };
    return diffReport({ a: aPath, b: bPath, method: "digests", blockSizeBytes: ha.blockSizeBytes, virtualSizeBytes: ha.virtualSizeBytes, blocksTotal: ha.blockCount }, counters, extents, started);
  } finally {
    await a.close();
    await b.close();
  }
}
