// Positional writes handed to a native thread that runs at idle CPU priority (SCHED_IDLE):
// for writes nobody waits on until a flush, such as HRL log batches. The bytes are copied
// during submit(), so the caller may reuse its buffer at once. When the thread is behind
// (every slot busy), submit() returns false and the caller writes the buffer itself. Without
// the addon (or with VHDSYNC_NO_NATIVE_LOG=1) open() returns null. See docs/native.md.

import { fromNativeError, nativeAddon, type AppenderStats, type NativeAddon } from "./native-addon.js";

export type { AppenderStats } from "./native-addon.js";

/** Slots of an appender unless told otherwise: enough to ride out a busy moment of both cores. */
const DEFAULT_SLOTS = 8;

export class BackgroundAppender {
  private closed: Promise<AppenderStats> | undefined;

  private constructor(
    private readonly addon: NativeAddon,
    private readonly id: number,
    /** The file's path, for error messages. */
    readonly path: string,
  ) {}

  /**
   * Starts an appender for `fd` (kept open by the caller until close() settles) taking buffers
   * of up to `slotBytes`. Null when the addon is not loaded or VHDSYNC_NO_NATIVE_LOG=1.
   * @throws VHDSYNC_INVALID_ARGUMENT (bad slots/slotBytes), VHDSYNC_INTERNAL (thread creation)
   */
  static open(fd: number, path: string, slotBytes: number, slots = DEFAULT_SLOTS): BackgroundAppender | null {
    const addon = nativeAddon();
    if (!addon || process.env.VHDSYNC_NO_NATIVE_LOG === "1") return null;
    try {
      return new BackgroundAppender(addon, addon.appenderOpen(fd, slots, slotBytes, 1), path);
    } catch (error) {
      throw fromNativeError(error, { path });
    }
  }

  /**
   * Queues a copy of `bytes` to be written at `position`; false when no slot is free (nothing
   * was copied: write it yourself).
   * @throws the first failed background write (VHDSYNC_NO_SPACE, VHDSYNC_IO, ...), VHDSYNC_INVALID_ARGUMENT after close
   */
  submit(bytes: Uint8Array, position: number): boolean {
    try {
      return this.addon.appenderSubmit(this.id, bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, position) === 1;
    } catch (error) {
      throw fromNativeError(error, { path: this.path, offset: position });
    }
  }

  /**
   * Settles once every accepted buffer is written (queued ones are written from the libuv pool
   * rather than waiting for the idle thread).
   * @throws the first failed background write
   */
  async drain(): Promise<void> {
    try {
      await this.addon.appenderDrainAsync(this.id);
    } catch (error) {
      throw fromNativeError(error, { path: this.path });
    }
  }

  /**
   * Drains and stops the thread; the appender is then gone (also when the drain failed, which
   * is then thrown). Safe to call more than once.
   */
  close(): Promise<AppenderStats> {
    this.closed ??= this.addon.appenderCloseAsync(this.id).catch((error: unknown) => {
      throw fromNativeError(error, { path: this.path });
    });
    return this.closed;
  }
}
