// Positional writes handed to a native thread that runs at idle CPU priority (SCHED_IDLE):
// for writes nobody waits on until a flush, such as HRL log batches. Nothing is copied: the
// caller lends a region of WebAssembly memory (which never moves: vhdsync's memories do not
// grow) and leaves it unchanged until the job is finished (finished(), wait(), drain(),
// close()). When `limit` jobs are unfinished, submit() returns 0 and the caller writes the
// buffer itself. Without the addon (or with VHDSYNC_NO_NATIVE_LOG=1) open() returns null.
// See docs/native.md.

import { callNative, fromNativeError, nativeAddon, type AppenderStats, type NativeAddon } from "./native-addon.js";

export type { AppenderStats } from "./native-addon.js";

/** Unfinished jobs allowed unless told otherwise. */
const DEFAULT_LIMIT = 8;

export class BackgroundAppender {
  private closed: Promise<AppenderStats> | undefined;

  private constructor(
    private readonly addon: NativeAddon,
    private readonly id: number,
    /** The file's path, for error messages. */
    readonly path: string,
  ) {}

  /**
   * Starts an appender for `fd` (kept open by the caller until close() settles). Null when the
   * addon is not loaded or VHDSYNC_NO_NATIVE_LOG=1.
   * @throws VHDSYNC_INVALID_ARGUMENT (bad limit), VHDSYNC_INTERNAL (thread creation)
   */
  static open(fd: number, path: string, limit = DEFAULT_LIMIT): BackgroundAppender | null {
    const addon = nativeAddon();
    if (!addon || process.env.VHDSYNC_NO_NATIVE_LOG === "1") return null;
    return new BackgroundAppender(addon, callNative(() => addon.appenderOpen(fd, limit, 1), { path }), path);
  }

  /**
   * Queues the write of `bytes` at `position`, lending them: they must be a view of a
   * WebAssembly.Memory that does not grow, unchanged until the returned job is finished.
   * Returns the job's token, or 0 when too many jobs are unfinished (nothing queued: write it
   * yourself).
   * @throws the first failed background write (VHDSYNC_NO_SPACE, VHDSYNC_IO, ...), VHDSYNC_INVALID_ARGUMENT after close
   */
  submit(bytes: Uint8Array, position: number): number {
    return this.call(() => this.addon.appenderSubmit(this.id, bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, position), position);
  }

  /** Whether job `token` is finished (its memory may be reused). Never blocks. */
  finished(token: number): boolean {
    return this.call(() => this.addon.appenderFinished(this.id, token)) === 1;
  }

  /**
   * Settles once job `token` is finished (written from the libuv pool if the idle thread has
   * not started it).
   * @throws the first failed background write
   */
  async wait(token: number): Promise<void> {
    return this.call(() => this.addon.appenderWaitAsync(this.id, token));
  }

  /**
   * Settles once every job is finished (queued ones are written from the libuv pool rather
   * than waiting for the idle thread).
   * @throws the first failed background write
   */
  async drain(): Promise<void> {
    return this.call(() => this.addon.appenderDrainAsync(this.id));
  }

  /**
   * Drains and stops the thread; the appender is then gone (also when the drain failed, which
   * is then thrown). Safe to call more than once.
   */
  close(): Promise<AppenderStats> {
    this.closed ??= (async () => this.call(() => this.addon.appenderCloseAsync(this.id)))();
    return this.closed;
  }

  /** Runs an addon call; its errors, thrown or rejected, become VhdsyncErrors naming the file. */
  private call<T>(body: () => T, offset?: number): T {
    const convert = (error: unknown): never => {
      throw fromNativeError(error, offset === undefined ? { path: this.path } : { path: this.path, offset });
    };
    try {
      const result = body();
      return (result instanceof Promise ? result.catch(convert) : result) as T;
    } catch (error) {
      return convert(error);
    }
  }
}
