// Messages between the resync driver and its segment workers: a task names a run of blocks
// (plus the target digest frame in hash-compare mode); a result carries counters, the
// coalesced changed ranges, and optionally the changed data and the source's digest frame.

/** Work for one segment: `blockCount` blocks from `firstBlock`. */
export interface SegmentTask {
  id: number;
  firstBlock: number;
  blockCount: number;
  /** Target digest frame (hash-compare mode): flags per block and packed data digests. */
  targetFlags?: Uint8Array;
  targetDigests?: Uint8Array;
}

/** Counters one segment contributes to a report. */
export interface SegmentCounters {
  /** Blocks whose content was read and compared (or hashed). */
  blocksCompared: number;
  /** Blocks that differ. */
  blocksChanged: number;
  /** Source blocks that read as zeros (all-zero or unallocated). */
  blocksZero: number;
  /** Source blocks that are unallocated (not read). */
  blocksUnallocated: number;
  /** Bytes read from the images. */
  bytesRead: number;
  /** Bytes of data written to the target. */
  bytesWritten: number;
  /** Bytes made zero in the target (holes / unallocated blocks / zero writes). */
  bytesZeroed: number;
}

/** Result of one segment. */
export interface SegmentResult {
  id: number;
  firstBlock: number;
  blockCount: number;
  counters: SegmentCounters;
  /** Changed ranges as triples (offsetBytes, lengthBytes, 1 if the source reads as zeros else 0). */
  changes: Float64Array;
  /** Source data of the non-zero changes, concatenated in order (apply "caller"). */
  data?: Uint8Array;
  /** Gives `data`'s memory back to the scanner, for the next segment (runSegments calls it once the result is handled). */
  release?: () => void;
  /** Source digest frame (hash modes). */
  frameFlags?: Uint8Array;
  frameDigests?: Uint8Array;
}

/** All-zero counters. */
export function emptyCounters(): SegmentCounters {
  return { blocksCompared: 0, blocksChanged: 0, blocksZero: 0, blocksUnallocated: 0, bytesRead: 0, bytesWritten: 0, bytesZeroed: 0 };
}

/** Adds `from` into `into`. */
export function addCounters(into: SegmentCounters, from: SegmentCounters): SegmentCounters {
  for (const key of Object.keys(into) as (keyof SegmentCounters)[]) into[key] += from[key];
  return into;
}

/** Collects changed ranges, merging a range into the previous one when adjacent and of the same kind. */
export class ChangeList {
  private values: number[] = [];

  add(offsetBytes: number, lengthBytes: number, zero: boolean): void {
    const n = this.values.length;
    const kind = zero ? 1 : 0;
    if (n >= 3 && this.values[n - 3] + this.values[n - 2] === offsetBytes && this.values[n - 1] === kind) {
      this.values[n - 2] += lengthBytes;
      return;
    }
    this.values.push(offsetBytes, lengthBytes, kind);
  }

  toArray(): Float64Array {
    return Float64Array.from(this.values);
  }
}

/** Iterates the (offsetBytes, lengthBytes, zero) triples of a changes array. */
export function* eachChange(changes: Float64Array): Generator<{ offsetBytes: number; lengthBytes: number; zero: boolean }> {
  for (let i = 0; i + 2 < changes.length; i += 3) yield { offsetBytes: changes[i], lengthBytes: changes[i + 1], zero: changes[i + 2] === 1 };
}
