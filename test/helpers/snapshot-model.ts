// Helpers for the snapshot tests: an in-memory model of every snapshot's view and of the
// active disk, seeded random writes through vhdsync, and a full check of a disk's snapshot
// set against the model (content digests, catalogue, `vhdsync check` on every layer).

import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { checkImage } from "../../dist/formats/check.js";
import { openImage } from "../../dist/formats/open-image.js";
import { createVhd } from "../../dist/formats/vhd/index.js";
import { createSnapshot, listSnapshots, type SnapshotListing } from "../../dist/snapshot/index.js";
import { Prng, testSeed } from "./prng.js";
import { tempDir } from "./tmp.js";
import { readImage, sha256 } from "./vhd.js";

export const DISK_BYTES = 1024 * 1024;
export const BLOCK_BYTES = 16 * 1024;

/** What every snapshot and the active disk must read. */
export class SnapshotModel {
  active: Buffer;
  snapshots = new Map<string, Buffer>();

  constructor(readonly diskBytes = DISK_BYTES, readonly blockBytes = BLOCK_BYTES) {
    this.active = Buffer.alloc(diskBytes);
  }

  clone(): SnapshotModel {
    const copy = new SnapshotModel(this.diskBytes, this.blockBytes);
    copy.active = Buffer.from(this.active);
    for (const [id, content] of this.snapshots) copy.snapshots.set(id, content);
    return copy;
  }
}

/** Random writes (data, zeros, unaligned edges) to the active disk, mirrored in the model. */
export async function randomWrites(prng: Prng, diskPath: string, model: SnapshotModel, count: number): Promise<void> {
  const image = await openImage(diskPath, { readOnly: false });
  try {
    for (let i = 0; i < count; i++) {
      const length = 1 + prng.int(prng.int(4) === 0 ? 3 * model.blockBytes : 4096);
      const offset = prng.int(model.diskBytes - length);
      const data = prng.int(5) === 0 ? new Uint8Array(length) : prng.bytes(length);
      await image.write(data, offset);
      model.active.set(data, offset);
    }
  } finally {
    await image.close();
  }
}

/** A dynamic base with `depth` snapshots, random writes before each; returns the snapshot ids in order. */
/**
 * The usual start of a snapshot test: a seed (print it in messages), its PRNG, a temp dir, a
 * model of `diskBytes`/`blockBytes` and a chain of `depth` snapshots built from random writes.
 */
export async function chainFixture(
  t: { teardown: (fn: () => void) => void },
  depth: number,
  diskBytes = DISK_BYTES,
  blockBytes = BLOCK_BYTES,
): Promise<{ seed: number; prng: Prng; dir: string; model: SnapshotModel; disk: string; ids: string[] }> {
  const seed = testSeed();
  const prng = new Prng(seed);
  const dir = tempDir(t);
  const model = new SnapshotModel(diskBytes, blockBytes);
  const { disk, ids } = await buildChain(prng, dir, model, depth);
  return { seed, prng, dir, model, disk, ids };
}

export async function buildChain(prng: Prng, dir: string, model: SnapshotModel, depth: number): Promise<{ disk: string; ids: string[] }> {
  const disk = join(dir, "disk.vhd");
  await (await createVhd(disk, { type: "dynamic", sizeBytes: model.diskBytes, blockSizeBytes: model.blockBytes })).close();
  const ids: string[] = [];
  for (let level = 0; level < depth; level++) {
    await randomWrites(prng, disk, model, 6);
    const { snapshot } = await createSnapshot(disk, { name: `level-${level}` });
    model.snapshots.set(snapshot.id, Buffer.from(model.active));
    ids.push(snapshot.id);
  }
  await randomWrites(prng, disk, model, 6);
  return { disk, ids };
}

/** sha256 of an image's virtual content (read through openImage). */
export async function digestOf(path: string): Promise<string> {
  const image = await openImage(path, { readOnly: true });
  try {
    return sha256(await readImage(image));
  } finally {
    await image.close();
  }
}

/** Mismatches between the disk's snapshot set and the model (empty when they agree). */
export async function modelMismatches(diskPath: string, model: SnapshotModel, options: { check?: boolean; strays?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const listing = await listSnapshots(diskPath);
  if (options.strays) problems.push(...strayFiles(dirname(diskPath), listing).map((path) => `stray file ${path}`));
  const listed = new Map(listing.layers.filter((layer) => layer.kind === "snapshot").map((layer) => [layer.id!, layer.path]));
  const expected = [...model.snapshots.keys()].sort();
  if (JSON.stringify([...listed.keys()].sort()) !== JSON.stringify(expected)) problems.push(`catalogue lists ${[...listed.keys()].sort()} but the model has ${expected}`);
  if ((await digestOf(diskPath)) !== sha256(model.active)) problems.push("active disk content differs from the model");
  for (const [id, content] of model.snapshots) {
    const path = listed.get(id);
    if (path && (await digestOf(path)) !== sha256(content)) problems.push(`snapshot ${id} content differs from the model`);
  }
  if (options.check !== false) {
    for (const layer of listing.layers) {
      const result = await checkImage(layer.path);
      if (!result.ok) problems.push(`check ${layer.path}: ${JSON.stringify(result.problems)}`);
    }
  }
  return problems;
}

/** Files in `dir` that are neither a layer of the listing nor the catalogue (temp files, state files, orphans); a lock left by a killed process is benign. */
export function strayFiles(dir: string, listing: SnapshotListing): string[] {
  const known = new Set([...listing.layers.map((layer) => layer.path), join(dir, "disk.vhd.snapshots.json")]);
  return readdirSync(dir).map((name) => join(dir, name)).filter((path) => !known.has(path));
}
