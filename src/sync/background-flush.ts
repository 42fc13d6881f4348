// Flushing a scan's target while the scan goes on: after a segment that wrote, the target's
// dirty pages start going to disk (unless a flush is already running), so that the flush
// before success finds little left to do. Only durability is at stake: the final flush still
// runs, and a failure surfaces at the next segment or at the end.

import { VhdsyncError, toVhdsyncError } from "../errors.js";
import type { DiskImage } from "../formats/disk-image.js";

export class BackgroundFlush {
  private running: Promise<void> | undefined;
  private failure: VhdsyncError | undefined;

  constructor(private readonly target: DiskImage) {}

  /** Throws the error of a flush that failed. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Starts a flush unless one is running. */
  start(): void {
    if (this.running) return;
    this.running = this.target.flush().then(
      () => {
        this.running = undefined;
      },
      (error) => {
        this.failure ??= toVhdsyncError(error, { path: this.target.path });
        this.running = undefined;
      },
    );
  }

  /** Waits for a running flush; throws its error (or an earlier one). */
  async settle(): Promise<void> {
    await this.running;
    this.check();
  }
}
