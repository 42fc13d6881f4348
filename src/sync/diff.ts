// diff(): compares any two of {image, digest file}. Two images: a direct block compare
// (verify). Image and digest: the image is hashed with the digest's block size and algorithm
// and compared frame by frame. Two digests: compared record by record without reading images.

import { VhdsyncError } from "../errors.js";
import { BLOCK_DATA, type DigestFrame } from "./digest-format.js";
import { DigestReader, isDigestFile } from "./digest-reader.js";
import { ExtentCollector, collectDifferences, diffReport, type DiffReport } from "./diff-report.js";
import { SegmentPool } from "./segment-pool.js";
import { workerCountFor } from "./scan-workers.js";
import { DEFAULT_WINDOW_BYTES } from "./segment-plan.js";
import type { SegmentTask } from "./segment-task.js";
import { imageVirtualSize, verify, type CompareOptions } from "./verify.js";

/**
 * Compares A and B, each an image or a digest file.
 * @throws VHDSYNC_SIZE_MISMATCH, VHDSYNC_INVALID_ARGUMENT (digests with different block sizes
 *   or algorithms), VHDSYNC_CORRUPT / VHDSYNC_TRUNCATED / VHDSYNC_BAD_CHECKSUM, I/O codes
 */
export async function diff(aPath: string, bPath: string, options: CompareOptions = {}): Promise<DiffReport> {
  const [aDigest, bDigest] = [await isDigestFile(aPath), await isDigestFile(bPath)];
  if (!aDigest && !bDigest) return verify(aPath, bPath, options);
  if (aDigest && bDigest) return diffDigests(aPath, bPath, options);
  const report = aDigest ? await diffImageDigest(bPath, aPath, options) : await diffImageDigest(aPath, bPath, options);
  return { ...report, a: aPath, b: bPath };
}

function sizeMismatch(a: string, aSize: number, b: string, bSize: number): VhdsyncError {
  return new VhdsyncError("VHDSYNC_SIZE_MISMATCH", `${a} describes ${aSize} bytes but ${b} ${bSize}`, { aSizeBytes: aSize, bSizeBytes: bSize });
}

async function diffImageDigest(imagePath: string, digestPath: string, options: CompareOptions): Promise<DiffReport> {
  const started = performance.now();
  const digest = await DigestReader.open(digestPath);
  try {
    await digest.validate();
    const { blockSizeBytes, algo, virtualSizeBytes, blockCount } = digest.header;
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

async function* framesAsTasks(digest: DigestReader): AsyncGenerator<SegmentTask> {
  let id = 0;
  for await (const frame of digest.frames()) yield { id: id++, firstBlock: frame.firstBlock, blockCount: frame.blockCount, targetFlags: frame.flags, targetDigests: frame.digests };
}

/** Block by block over a digest file's frames: each block's digest, or undefined when it reads as zeros. */
async function* blockDigests(digest: DigestReader): AsyncGenerator<Uint8Array | undefined> {
  const length = digest.header.digestLength;
  for await (const frame of digest.frames()) yield* frameBlockDigests(frame, length);
}

function* frameBlockDigests(frame: DigestFrame, digestLength: number): Generator<Uint8Array | undefined> {
  let next = 0;
  for (let i = 0; i < frame.blockCount; i++) {
    if (frame.flags[i] !== BLOCK_DATA) yield undefined;
    else yield frame.digests.subarray(next * digestLength, ++next * digestLength);
  }
}

async function diffDigests(aPath: string, bPath: string, options: CompareOptions): Promise<DiffReport> {
  const started = performance.now();
  const a = await DigestReader.open(aPath);
  const b = await DigestReader.open(bPath).catch(async (error) => {
    await a.close();
    throw error;
  });
  try {
    const [ha, hb] = [a.header, b.header];
    if (ha.virtualSizeBytes !== hb.virtualSizeBytes) throw sizeMismatch(aPath, ha.virtualSizeBytes, bPath, hb.virtualSizeBytes);
    if (ha.blockSizeBytes !== hb.blockSizeBytes || ha.algo !== hb.algo) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `digests differ in block size or algorithm (${ha.blockSizeBytes}/${ha.algo} vs ${hb.blockSizeBytes}/${hb.algo})`);
    }
    await a.validate();
    await b.validate();
    const extents = new ExtentCollector(options.maxExtents);
    let differing = 0;
    const bBlocks = blockDigests(b);
    let block = 0;
    for await (const da of blockDigests(a)) {
      const db = (await bBlocks.next()).value as Uint8Array | undefined;
      const same = da === undefined || db === undefined ? da === db : Buffer.compare(da, db) === 0;
      if (!same) {
        differing++;
        const offset = block * ha.blockSizeBytes;
        extents.add(offset, Math.min(ha.blockSizeBytes, ha.virtualSizeBytes - offset));
      }
      block++;
    }
    const counters = { blocksCompared: ha.blockCount, blocksChanged: differing, bytesRead: 0 };
    return diffReport({ a: aPath, b: bPath, method: "digests", blockSizeBytes: ha.blockSizeBytes, virtualSizeBytes: ha.virtualSizeBytes, blocksTotal: ha.blockCount }, counters, extents, started);
  } finally {
    await a.close();
    await b.close();
  }
}
