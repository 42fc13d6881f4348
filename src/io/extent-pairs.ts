// Extents packed as (offset, length) pairs in one Float64Array: how the native addon hands a
// file's extents over, and how the native scanners carry allocation maps, since a fragmented
// sparse file has thousands of extents per segment and an object per extent cost the main
// thread more than the scan (docs/native.md "Fragmented images: packed extents and close
// ranges read together").

import type { Extent } from "../formats/disk-image.js";

/** (offset, length) pairs, in bytes: extent i is [2i] and [2i + 1]. */
export type ExtentPairs = Float64Array;

/** A map with no extent. */
export const NO_EXTENTS: ExtentPairs = new Float64Array(0);

/** Puts the pair (a, b) at `at` of `pairs`; returns where the next goes. */
export function putPair(pairs: Float64Array, at: number, a: number, b: number): number {
  pairs[at] = a;
  pairs[at + 1] = b;
  return at + 2;
}

/** `map` as pairs. */
export function pairsOfExtents(map: readonly Extent[]): ExtentPairs {
  const pairs = new Float64Array(map.length * 2);
  for (let i = 0; i < map.length; i++) {
    pairs[2 * i] = map[i].offset;
    pairs[2 * i + 1] = map[i].length;
  }
  return pairs;
}

/** `pairs` as extents. */
export function extentsOfPairs(pairs: ExtentPairs): Extent[] {
  const map: Extent[] = new Array(pairs.length >> 1);
  for (let i = 0; i < map.length; i++) map[i] = { offset: pairs[2 * i], length: pairs[2 * i + 1] };
  return map;
}

/** Bytes the pairs cover. */
export function pairsBytes(pairs: ExtentPairs): number {
  let sum = 0;
  for (let i = 1; i < pairs.length; i += 2) sum += pairs[i];
  return sum;
}
