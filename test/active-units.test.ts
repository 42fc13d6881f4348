// activeUnits (src/sync/segment-scanner.ts; maps and results as Float64Array pairs), which
// every scanner uses to pick the units of a window that either side has allocated: against a reference that marks each unit, for maps
// in order (merged as they are read) and out of order (sorted first). Seeded; the seed is in
// every message.
import t from "tap";
import { activeUnits as activeUnitPairs } from "../dist/sync/segment-scanner.js";
import { pairsOfExtents } from "../dist/io/extent-pairs.js";
import { Prng, testSeed } from "./helpers/prng.js";

interface Extent {
  offset: number;
  length: number;
}

/** The runs of units that some extent of `maps` overlaps, unit by unit. */
function reference(maps: Extent[][], offset: number, unit: number, units: number): Array<[number, number]> {
  const marked = new Uint8Array(units);
  for (const map of maps) {
    for (const { offset: at, length } of map) {
      for (let index = Math.floor((at - offset) / unit); index < Math.min(units, Math.ceil((at + length - offset) / unit)); index++) marked[index] = 1;
    }
  }
  const runs: Array<[number, number]> = [];
  for (let index = 0; index < units; index++) {
    if (!marked[index]) continue;
    const last = runs[runs.length - 1];
    if (last && last[1] === index) last[1]++;
    else runs.push([index, index + 1]);
  }
  return runs;
}

/** Sorted, disjoint extents of a window [offset, offset + units * unit), at byte granularity. */
function randomMap(prng: Prng, offset: number, unit: number, units: number): Extent[] {
  const map: Extent[] = [];
  const end = offset + units * unit;
  for (let at = offset + prng.int(2 * unit); at < end; ) {
    const length = Math.min(end - at, 1 + prng.int(3 * unit));
    map.push({ offset: at, length });
    at += length + 1 + prng.int(4 * unit);
  }
  return map;
}

const seed = testSeed();

/** activeUnits over extent objects, its (first, last) pairs as [first, last] arrays. */
function activeUnits(a: Extent[], b: Extent[], offset: number, unit: number, units: number): Array<[number, number]> {
  const pairs = activeUnitPairs(pairsOfExtents(a), pairsOfExtents(b), offset, unit, units);
  return Array.from({ length: pairs.length / 2 }, (_, i): [number, number] => [pairs[2 * i], pairs[2 * i + 1]]);
}

t.test("activeUnits equals the unit-by-unit reference, maps in order or not", async (t) => {
  const prng = new Prng(seed);
  for (let round = 0; round < 300; round++) {
    const unit = 2 ** (9 + prng.int(8));
    const units = 1 + prng.int(200);
    const offset = prng.int(1000) * unit;
    const a = randomMap(prng, offset, unit, units);
    const b = prng.int(4) === 0 ? [] : randomMap(prng, offset, unit, units);
    const expected = reference([a, b], offset, unit, units);
    const label = `seed ${seed} round ${round}: ${a.length} + ${b.length} extents, ${units} units of ${unit}`;
    t.same(activeUnits(a, b, offset, unit, units), expected, `${label}, in order`);
    t.same(activeUnits(b, a, offset, unit, units), expected, `${label}, sides swapped`);
    const shuffled = [...a].sort(() => prng.int(3) - 1);
    t.same(activeUnits(shuffled, b, offset, unit, units), expected, `${label}, one side out of order`);
  }
  t.same(activeUnits([], [], 0, 4096, 10), [], "no extents: no units");
  // Parts before the window's offset (unclipped maps) give negative units, as they always did.
  t.same(activeUnits([{ offset: 4096, length: 4096 }], [{ offset: 0, length: 100 }], 8192, 4096, 4), [[-2, 0]], "parts before the window");
  t.same(activeUnits([{ offset: 4096, length: 4096 }, { offset: 0, length: 100 }], [], 8192, 4096, 4), [[-2, 0]], "parts before the window, out of order");
});
