// The disk and the write stream of the HRL benchmarks (hrl.mjs, hrl-floor.mjs): `writeCount`
// writes of `writeBytes` at random aligned offsets of a `diskBytes` disk, cycling through 32
// random buffers. Deterministic (xorshift32) so runs compare.
import { closeSync, openSync, writeSync } from "node:fs";

/** Writes the base disk: `diskBytes` of 0x33, fully allocated. */
export function writeBaseImage(path, diskBytes) {
  const chunk = new Uint8Array(16 * 1024 * 1024).fill(0x33);
  const fd = openSync(path, "w");
  try {
    for (let done = 0; done < diskBytes; done += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, diskBytes - done), done);
  } finally {
    closeSync(fd);
  }
}

/** @returns {{ data: Uint8Array, offset: number }[]} */
export function workload(seed, { diskBytes, writeCount, writeBytes }) {
  let x = seed >>> 0 || 1;
  const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 0);
  const buffers = Array.from({ length: 32 }, () => {
    const b = new Uint8Array(writeBytes);
    for (let i = 0; i < b.length; i += 4) new DataView(b.buffer).setUint32(i, next());
    return b;
  });
  const slots = diskBytes / writeBytes;
  return Array.from({ length: writeCount }, (_, i) => ({ data: buffers[i % buffers.length], offset: (next() % slots) * writeBytes }));
}
