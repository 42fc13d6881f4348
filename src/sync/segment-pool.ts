// Runs segment scans on worker threads (one WASM instance each) so reading, comparing and
// hashing keep every core busy; with zero workers it scans inline on the calling thread.
// runSegments() keeps a bounded number of segments in flight and hands results back in order.

import type { Worker } from "node:worker_threads";
import { VhdsyncError, type ErrorCode } from "../errors.js";
import { SegmentScanner, type ScanConfig } from "./segment-scanner.js";
import { answerUnallocated, isAnswered, type UnallocatedAnswerer } from "./unallocated.js";
import { SpareBuffers } from "./spare-buffers.js";
import { callerInFlight } from "./segment-plan.js";
import type { SegmentResult, SegmentTask } from "./segment-task.js";
import type { WorkerReply } from "./resync-worker.js";
import { discardPrewarmedWorkers, startScanWorker, takePrewarmedWorker } from "./scan-workers.js";
import { NativeCompareScanner, NativeHashScanner } from "./native-scanner.js";

/** The native scanners: segments as libuv pool jobs, no worker threads. */
type NativeScanner = NativeCompareScanner | NativeHashScanner;

function isNative(scanner: SegmentScanner | NativeScanner): scanner is NativeScanner {
  return scanner instanceof NativeCompareScanner || scanner instanceof NativeHashScanner;
}

interface Pending {
  resolve: (result: SegmentResult) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, Pending>;
  /** The worker has opened its images (until then, tasks go to other scanners). */
  ready: boolean;
  failure?: VhdsyncError;
  exited?: boolean;
  /** Settles when the worker has opened its images, failed, or exited. */
  opened: Promise<void>;
}

function toError(error: { code: string; message: string; details: Record<string, unknown> }): VhdsyncError {
  return new VhdsyncError(error.code as ErrorCode, error.message, error.details);
}

/**
 * A set of scanners working on segments: this thread's own plus worker threads, or (images
 * whose data lies in runs of their files, with the addon) a native scanner's jobs on the libuv pool.
 */
export class SegmentPool {
  private inlineChain: Promise<unknown> = Promise.resolve();
  /** Data buffers of workers' results, given back once handled: sent with the next tasks for reuse. */
  private readonly spareData = new SpareBuffers();
  private inlinePending = 0;

  private constructor(private readonly workers: PoolWorker[], private readonly inline: SegmentScanner | NativeScanner) {}

  /**
   * Starts a pool of `threadCount` scanners: a native scanner running that many segments at
   * once where one applies (see NativeCompareScanner.open, NativeHashScanner.open), else one WASM scanner on this
   * thread (it scans between handling results, so no core waits for a worker to boot) and
   * `threadCount - 1` worker threads.
   * @throws open errors from the images
   */
  static async start(config: ScanConfig, threadCount: number): Promise<SegmentPool> {
    let inline: SegmentScanner;
    try {
      const native = (await NativeCompareScanner.open(config, threadCount)) ?? (await NativeHashScanner.open(config, threadCount));
      if (native) {
        discardPrewarmedWorkers();
        return new SegmentPool([], native);
      }
      inline = await SegmentScanner.open(config);
    } catch (error) {
      // Prewarmed workers nobody adopts would keep the process alive after the error.
      discardPrewarmedWorkers();
      throw error;
    }
    // Workers are not awaited: this thread scans while they boot and gets their share until
    // they are ready (see submit). A worker that fails to open rejects its tasks.
    const workers = Array.from({ length: Math.max(0, threadCount - 1) }, () => startWorker(config));
    return new SegmentPool(workers, inline);
  }

  /**
   * Settles once every worker has opened its images (or failed). When the caller writes the
   * results into an image the workers also read through its format (apply "caller": a VHD
   * target, whose footer moves and BAT grows as blocks are allocated), runSegments hands out
   * no result before this, so that no worker reads those structures half-changed while
   * opening them.
   */
  async whenWorkersOpen(): Promise<void> {
    if (this.inline.config.apply === "caller") await Promise.all(this.workers.map((worker) => worker.opened));
  }

  /** Number of scanners (threads scanning at once). */
  get size(): number {
    return isNative(this.inline) ? this.inline.threads : this.workers.length + 1;
  }

  /**
   * New answers for segments with nothing allocated, for one run (see UnallocatedAnswerer),
   * given on this thread: otherwise each would go through a scan, a WASM pool's through a
   * worker's messages, only to count zeros, and a 2040 GiB dynamic VHD with a few MiB of data
   * is 261,120 segments of 8 MiB. Undefined for modes that have none.
   */
  unallocatedAnswerer(): UnallocatedAnswerer | undefined {
    return this.inline.unallocatedAnswerer();
  }

  /** Whether a native scanner does the work. */
  get native(): boolean {
    return isNative(this.inline);
  }

  /** Segments runSegments keeps in flight unless told otherwise (fewer when results carry data). */
  get defaultInFlight(): number {
    if (this.inline.config.apply !== "caller") return this.size * IN_FLIGHT_PER_SCANNER;
    // The WASM scanners' results carry their data across threads (a copy in each isolate until
    // its GC runs): one segment each kept an all-changed VHD resync at 123 MiB peak, two at
    // 152-174 MiB, and were no slower.
    return this.size * (isNative(this.inline) ? CALLER_IN_FLIGHT_PER_SCANNER : 1);
  }

  /**
   * Segments runSegments keeps in flight for tasks like `task`: defaultInFlight, fewer when
   * results carry their data and segments are large (callerInFlight).
   */
  inFlightFor(task: SegmentTask): number {
    const { apply, blockSizeBytes } = this.inline.config;
    return apply === "caller" ? callerInFlight(this.defaultInFlight, task.blockCount * blockSizeBytes) : this.defaultInFlight;
  }

  /**
   * Scans one segment on the least busy scanner (a worker when tied, to keep this thread
   * responsive). Workers still booting get nothing: results are consumed in task order, so a
   * task queued behind a boot would leave this thread idle waiting for it.
   */
  submit(task: SegmentTask): Promise<SegmentResult> {
    if (isNative(this.inline)) return this.inline.scan(task);
    const ready = this.workers.filter((candidate) => candidate.ready || candidate.failure);
    const worker = ready.length > 0 ? ready.reduce((best, candidate) => (candidate.pending.size < best.pending.size ? candidate : best)) : undefined;
    if (!worker || this.inlinePending < worker.pending.size) return this.submitInline(task);
    if (worker.failure) return Promise.reject(worker.failure);
    return new Promise((resolve, reject) => {
      const withRelease = (result: SegmentResult) => {
        const data = result.data;
        if (data) result.release = () => this.spareData.give(data.buffer as ArrayBuffer);
        resolve(result);
      };
      worker.pending.set(task.id, { resolve: withRelease, reject });
      const spare = this.spareData.takeSome(2);
      const transfer = [task.targetFlags?.buffer, task.targetDigests?.buffer, ...spare].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
      worker.worker.postMessage({ type: "task", task, spare }, transfer);
    });
  }

  /**
   * Inline scans share one set of buffers, so they run one after another. Each first yields to
   * the event loop: a scan blocks this thread (synchronous reads, mapping, kernels), and
   * back-to-back scans chained as microtasks would keep workers' results (macrotasks) waiting,
   * so workers would starve for new segments. That had made two threads slower than one.
   */
  private submitInline(task: SegmentTask): Promise<SegmentResult> {
    this.inlinePending++;
    const inline = this.inline as SegmentScanner;
    const result = this.inlineChain
      .then(yieldToEventLoop)
      .then(() => inline.scan(task))
      .then((scanned) => {
        const data = scanned.data;
        if (data) scanned.release = () => inline.giveBack(data.buffer as ArrayBuffer);
        return scanned;
      });
    this.inlineChain = result.catch(() => undefined);
    return result.finally(() => this.inlinePending--);
  }

  /** Flushes and closes every scanner's images and stops the workers. */
  async close(): Promise<void> {
    const errors: VhdsyncError[] = [];
    await this.inlineChain;
    await this.inline.close().catch((error) => errors.push(error));
    await Promise.all(
      this.workers.map(
        ({ worker, exited }) =>
          new Promise<void>((resolve) => {
            if (exited) return resolve();
            const done = () => void worker.terminate().then(() => resolve());
            worker.once("exit", () => resolve());
            worker.on("message", (reply: WorkerReply) => {
              if (reply.type === "error") errors.push(toError(reply.error));
              if (reply.type === "closed" || reply.type === "error") done();
            });
            worker.once("error", done);
            worker.postMessage({ type: "close" });
          }),
      ),
    );
    if (errors.length > 0) throw errors[0];
  }
}

/** A worker scanning with `config`: a prewarmed one when the CLI started any, else a new one. */
function startWorker(config: ScanConfig): PoolWorker {
  const prewarmed = takePrewarmedWorker();
  const worker = prewarmed ?? startScanWorker(config);
  if (prewarmed) worker.postMessage({ type: "open", config });
  let settleOpened = () => {};
  const entry: PoolWorker = { worker, pending: new Map(), ready: false, opened: new Promise<void>((resolve) => (settleOpened = resolve)) };
  const failAll = (error: VhdsyncError) => {
    settleOpened();
    entry.failure = error;
    for (const pending of entry.pending.values()) pending.reject(error);
    entry.pending.clear();
  };
  worker.on("message", (reply: WorkerReply) => {
    if (reply.type === "ready") {
      entry.ready = true;
      settleOpened();
    }
    else if (reply.type === "result") {
      entry.pending.get(reply.result.id)?.resolve(reply.result);
      entry.pending.delete(reply.result.id);
    } else if (reply.type === "error") {
      const error = toError(reply.error);
      if (reply.id === undefined) failAll(error);
      else {
        entry.pending.get(reply.id)?.reject(error);
        entry.pending.delete(reply.id);
      }
    }
  });
  worker.on("exit", () => {
    settleOpened();
    entry.exited = true;
    if (entry.pending.size > 0) failAll(new VhdsyncError("VHDSYNC_INTERNAL", "resync worker exited with segments pending"));
  });
  worker.on("error", (error) => failAll(new VhdsyncError("VHDSYNC_INTERNAL", `resync worker failed: ${error.message}`, {}, { cause: error })));
  return entry;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Segments in flight per scanner by default: enough that a worker always has the next one
 * queued while this thread handles results or scans its own.
 */
export const IN_FLIGHT_PER_SCANNER = 4;
/** In flight per scanner when results carry changed data ("caller" apply: VHD targets), to bound memory (CALLER_SEGMENT_BYTES each). */
export const CALLER_IN_FLIGHT_PER_SCANNER = 2;

/**
 * Submits the tasks with at most `maxInFlight` outstanding and calls `onResult` for each result
 * in task order. Stops pulling new tasks once `signal` is aborted (in-flight ones finish) and
 * returns whether every task was processed.
 */
export async function runSegments(
  pool: SegmentPool,
  tasks: AsyncIterable<SegmentTask> | Iterable<SegmentTask>,
  onResult: (result: SegmentResult) => Promise<void> | void,
  options: { maxInFlight?: number; signal?: AbortSignal } = {},
): Promise<boolean> {
  let maxInFlight = options.maxInFlight;
  const answerer = pool.unallocatedAnswerer();
  const work = answerer ? answerUnallocated(answerer, tasks) : tasks;
  const workersOpen = pool.whenWorkersOpen();
  const deliver = async (result: SegmentResult) => {
    await workersOpen;
    await onResult(result);
    result.release?.();
  };
  const inFlight: Promise<SegmentResult>[] = [];
  let firstError: unknown;
  let stopped = false;
  try {
    for await (const item of work) {
      if (options.signal?.aborted) {
        stopped = true;
        break;
      }
      let promise: Promise<SegmentResult>;
      if (isAnswered(item)) promise = Promise.resolve(item.result);
      else {
        maxInFlight ??= pool.inFlightFor(item);
        promise = pool.submit(item);
        promise.catch(() => undefined);
      }
      inFlight.push(promise);
      if (inFlight.length >= (maxInFlight ?? pool.defaultInFlight)) {
        try {
          await deliver(await inFlight.shift()!);
        } catch (error) {
          firstError = error;
          stopped = true;
          break;
        }
      }
    }
  } catch (error) {
    // The tasks themselves failed (a digest frame, or the map asked for an empty segment):
    // nothing more is submitted, and what is in flight is waited for below, not left running.
    firstError = error;
    stopped = true;
  }
  // Drain: finish what was started (so writes in flight complete) even when stopping.
  for (const promise of inFlight) {
    try {
      const result = await promise;
      if (firstError === undefined) await deliver(result);
    } catch (error) {
      firstError ??= error;
    }
  }
  if (firstError !== undefined) throw firstError;
  return !stopped;
}
