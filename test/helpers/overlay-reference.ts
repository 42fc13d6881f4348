// The compaction overlay vhdsync used before the sort-and-sweep (src/hrl/extent-map.ts before
// commit "log compact: sort-and-sweep"), kept as the reference its replacement must equal:
// segments sorted by offset, each insert splicing out what it covers (O(n²)).

export interface ReferenceSegment {
  offset: number;
  length: number;
  entryIndex: number;
  entryDelta: number;
}

/** Non-overlapping segments sorted by offset; later inserts replace what they cover. */
export class ReferenceOverlay {
  private readonly segments: ReferenceSegment[] = [];

  /** Records that entry `entryIndex` wrote [offset, offset + length). */
  insert(offset: number, length: number, entryIndex: number): void {
    if (length <= 0) return;
    const end = offset + length;
    const first = this.firstEndingAfter(offset);
    let last = first;
    while (last < this.segments.length && this.segments[last].offset < end) last++;
    const replacement: ReferenceSegment[] = [];
    if (first < last) {
      const head = this.segments[first];
      if (head.offset < offset) replacement.push({ ...head, length: offset - head.offset });
    }
    replacement.push({ offset, length, entryIndex, entryDelta: 0 });
    if (first < last) {
      const tail = this.segments[last - 1];
      const tailEnd = tail.offset + tail.length;
      if (tailEnd > end) replacement.push({ offset: end, length: tailEnd - end, entryIndex: tail.entryIndex, entryDelta: tail.entryDelta + (end - tail.offset) });
    }
    this.segments.splice(first, last - first, ...replacement);
  }

  /** The segments, sorted by offset. */
  list(): readonly ReferenceSegment[] {
    return this.segments;
  }

  private firstEndingAfter(offset: number): number {
    let low = 0;
    let high = this.segments.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const segment = this.segments[mid];
      if (segment.offset + segment.length <= offset) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}
