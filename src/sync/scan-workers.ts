// Scan worker threads: how many a run uses, starting them, and starting them early. A worker
// spends ~0.1 s booting (Node, module loading, WASM compile) before it can scan; the CLI calls
// prewarmScanWorkers() first thing for a scanning command, so that boot overlaps the CLI's
// own start-up, and the segment pool later adopts the booted workers. This module imports
// only Node built-ins: it must cost nothing before the prewarm. node:worker_threads is loaded
// when a worker is first started: it brings Node's stream modules (~2 ms of a fresh process),
// and runs that the native scanners serve start none.

import type { Worker } from "node:worker_threads";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { statSync } from "node:fs";
import { VhdsyncError } from "../errors.js";

/** Below this many bytes, starting workers costs more than it saves: scan inline. */
export const INLINE_BELOW_BYTES = 48 * 1024 * 1024;

/**
 * Scanning threads for a run over `virtualSizeBytes` (this thread plus workers): `requested`
 * if given, else VHDSYNC_WORKERS, else 0 (this thread only) for small images and the cores
 * available otherwise. 0 and 1 both mean "this thread only".
 */
export function workerCountFor(virtualSizeBytes: number, requested?: number): number {
  if (requested !== undefined) return checkWorkers(requested);
  const fromEnv = workersFromEnv();
  if (fromEnv !== undefined) return fromEnv;
  if (virtualSizeBytes < INLINE_BELOW_BYTES) return 0;
  return defaultScanThreads();
}

/** Most scanning threads a caller may ask for (libuv's pool holds two jobs per thread, at most 1024). */
export const MAX_WORKERS = 256;

/**
 * Checks a requested thread count: an integer from 0 to MAX_WORKERS (undefined: the default).
 * Commands call it before they touch anything. @throws VHDSYNC_INVALID_ARGUMENT
 */
export function checkWorkers<T extends number | undefined>(requested: T): T {
  if (requested !== undefined && (!Number.isSafeInteger(requested) || requested < 0 || requested > MAX_WORKERS)) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `workers must be an integer from 0 to ${MAX_WORKERS}, got ${requested}`, { workers: requested });
  }
  return requested;
}

/**
 * VHDSYNC_WORKERS as a thread count; undefined when unset or empty. Anything else than an
 * integer from 0 to MAX_WORKERS is refused, as --workers is, not ignored (checkScanOptions
 * checks it before a command touches anything). @throws VHDSYNC_INVALID_ARGUMENT
 */
export function workersFromEnv(): number | undefined {
  const value = process.env.VHDSYNC_WORKERS;
  if (value === undefined || value.trim() === "") return undefined;
  const count = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || count > MAX_WORKERS) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `VHDSYNC_WORKERS must be an integer from 0 to ${MAX_WORKERS}, got ${JSON.stringify(value)}`, { variable: "VHDSYNC_WORKERS", value });
  }
  return count;
}

/** Scanning threads when neither the caller nor VHDSYNC_WORKERS says: the cores, at most 8. */
export function defaultScanThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/**
 * Jobs the native scanners (src/sync/native-scanner.ts) submit per scanning thread. With one,
 * a pool thread that finished its segment sat idle until the main thread woke, took the
 * result and started the next job; by alternating runs on the cached 2 GiB pair that cost
 * ~15% (docs/native.md "Jobs per thread").
 */
export const NATIVE_JOBS_PER_THREAD = 2;

/**
 * libuv pool threads that hold the native scanners' jobs for the default scanning threads, at
 * least libuv's own default of 4. The vhdsync bin sets UV_THREADPOOL_SIZE to this when unset.
 */
export function scanThreadPoolSize(): number {
  return Math.max(4, NATIVE_JOBS_PER_THREAD * defaultScanThreads());
}

const WORKER_URL = new URL("./resync-worker.js", import.meta.url);

/** workerData of a prewarmed worker: the image it will most likely open (to load its format early). */
export interface PrewarmData {
  prewarm: { sourcePath: string };
}

/** node:worker_threads' Worker, once the first worker starts (see the top of this file). */
let workerClass: typeof Worker | undefined;

/**
 * Starts a scan worker. With a ScanConfig it opens its images at once; prewarmed, it boots
 * (WASM, and the format modules `sourcePath` needs) and waits for an "open" message.
 */
export function startScanWorker(data: unknown): Worker {
  workerClass ??= (createRequire(import.meta.url)("node:worker_threads") as typeof import("node:worker_threads")).Worker;
  // execArgv: [] so workers do not inherit loaders the parent runs under (test runners, TS hooks).
  return new workerClass(WORKER_URL, { workerData: data, execArgv: [] });
}

/**
 * Prewarmed workers, kept on globalThis: bin/vhdsync.cjs prewarms through its own small bundle
 * (dist/bin/prewarm.cjs) and the CLI bundle adopts them, two copies of this module.
 */
const REGISTRY = Symbol.for("vhdsync.prewarmedScanWorkers");
const prewarmed: Worker[] = ((globalThis as { [REGISTRY]?: Worker[] })[REGISTRY] ??= []);

/** Whether workers have been prewarmed and not yet taken. */
export function hasPrewarmedWorkers(): boolean {
  return prewarmed.length > 0;
}

/**
 * Boots the workers a scan of the image at `sourcePath` would use (`requested` threads as with
 * --workers, else by size), if it is big enough to use any. They hold no reference on the event loop until adopted, so unused ones never keep the
 * process alive. Best effort: an unreadable path prewarms nothing.
 */
export function prewarmScanWorkers(sourcePath: string | undefined, requested?: number): void {
  if (!sourcePath || prewarmed.length > 0) return;
  let sizeBytes: number;
  try {
    sizeBytes = statSync(sourcePath).size;
  } catch {
    return;
  }
  const count = workerCountFor(sizeBytes, requested) - 1;
  for (let i = 0; i < count; i++) {
    const worker = startScanWorker({ prewarm: { sourcePath } } satisfies PrewarmData);
    worker.unref();
    // A prewarmed worker that fails to boot is dropped here; the pool then starts a fresh one.
    worker.once("error", () => dropPrewarmed(worker));
    worker.once("exit", () => dropPrewarmed(worker));
    prewarmed.push(worker);
  }
}

function dropPrewarmed(worker: Worker): void {
  const index = prewarmed.indexOf(worker);
  if (index >= 0) prewarmed.splice(index, 1);
}

/** A prewarmed worker (now holding the event loop again), or undefined. */
export function takePrewarmedWorker(): Worker | undefined {
  const worker = prewarmed.shift();
  if (!worker) return undefined;
  worker.removeAllListeners();
  worker.ref();
  return worker;
}

/** Stops the prewarmed workers not taken (a run that needs none: they would only take CPU). */
export function discardPrewarmedWorkers(): void {
  for (const worker of prewarmed.splice(0)) {
    worker.removeAllListeners();
    void worker.terminate();
  }
}
