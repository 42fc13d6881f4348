// Data buffers of "caller" results (the changed source data a segment's result carries to the
// thread that writes it), given back once written and reused for later segments. Without
// reuse a resync that changes everything made a new buffer of megabytes per segment, which V8
// collected only at its external-memory thresholds: an all-changed 256 MiB resync into a
// dynamic VHD peaked at 155-223 MiB (docs/resync.md "VHD targets").

/** At most `limit` spare buffers, the largest given (a small outgrown one must not crowd out a segment's). */
export class SpareBuffers {
  private readonly spares: ArrayBuffer[] = [];

  constructor(private readonly limit = 2) {}

  /** Keeps `buffer` for reuse, unless the spares are full of larger ones. */
  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === 0) return;
    if (this.spares.length < this.limit) {
      this.spares.push(buffer);
      return;
    }
    const smallest = this.spares.reduce((at, spare, index) => (spare.byteLength < this.spares[at].byteLength ? index : at), 0);
    if (this.spares[smallest].byteLength < buffer.byteLength) this.spares[smallest] = buffer;
  }

  /** A spare of at least `bytes` (taken), or a new buffer of `newBytes` (default `bytes`). */
  take(bytes: number, newBytes = bytes): Uint8Array {
    const index = this.spares.findIndex((spare) => spare.byteLength >= bytes);
    return index >= 0 ? new Uint8Array(this.spares.splice(index, 1)[0]) : new Uint8Array(newBytes);
  }

  /** Up to `count` spares, taken (to send to a worker thread). */
  takeSome(count: number): ArrayBuffer[] {
    return this.spares.splice(0, count);
  }
}
