// Worker-thread entry of the segment pool: opens its own images and WASM instance, then scans
// the segments it is sent, one at a time, posting results with their buffers transferred.
// Started with a ScanConfig it opens at once; prewarmed, it instantiates WASM, loads the
// modules of the source's format and waits for an "open" message.

import { parentPort, workerData } from "node:worker_threads";
import { toVhdsyncError } from "../errors.js";
import { getWasm } from "../wasm/driver.js";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { loadFormatsFor } from "../formats/open-image.js";
import type { PrewarmData } from "./scan-workers.js";
import { SegmentScanner, type ScanConfig } from "./segment-scanner.js";
import type { SegmentResult, SegmentTask } from "./segment-task.js";

/** Messages the pool sends. */
export type WorkerRequest = { type: "open"; config: ScanConfig } | { type: "task"; task: SegmentTask } | { type: "close" };
/** Messages a worker sends back. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "result"; result: SegmentResult }
  | { type: "error"; id?: number; error: { code: string; message: string; details: Record<string, unknown> } }
  | { type: "closed" };

/** Buffers of a result that can be transferred instead of copied. */
export function transferList(result: SegmentResult): ArrayBuffer[] {
  return [result.changes, result.data, result.frameFlags, result.frameDigests]
    .filter((array): array is NonNullable<typeof array> => array !== undefined)
    .map((array) => array.buffer as ArrayBuffer);
}

function errorReply(error: unknown, id?: number): WorkerReply {
  const coded = toVhdsyncError(error);
  return { type: "error", id, error: { code: coded.code, message: coded.message, details: coded.details } };
}

/**
 * The first 64 KiB and last 512 bytes of a file, read synchronously (best effort: the prewarm
 * only picks the format modules to load). The async sniff() took ~20 ms here, five thread-pool
 * round trips while the main thread and the scan compete for the cores, and the "open" message
 * waited behind it.
 */
function peekSync(path: string): { head: Uint8Array; tail: Uint8Array } {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(Math.min(65536, size));
    const tail = new Uint8Array(Math.min(512, size));
    const headLength = readSync(fd, head, 0, head.length, 0);
    const tailLength = readSync(fd, tail, 0, tail.length, size - tail.length);
    return { head: head.subarray(0, headLength), tail: tail.subarray(0, tailLength) };
  } finally {
    closeSync(fd);
  }
}

if (parentPort) {
  const port = parentPort;
  let queue: Promise<unknown> = Promise.resolve();
  let scanner: SegmentScanner | undefined;
  const open = (config: ScanConfig) =>
    SegmentScanner.open(config).then(
      (opened) => {
        scanner = opened;
        port.postMessage({ type: "ready" } satisfies WorkerReply);
      },
      (error) => port.postMessage(errorReply(error)),
    );
  const prewarm = (workerData as Partial<PrewarmData> | null)?.prewarm;
  if (!prewarm) queue = open(workerData as ScanConfig);
  else {
    // Prewarmed: do the expensive parts of opening now: compile and instantiate WASM, load the
    // modules of the source's format. Failures are reported when the scanner opens.
    queue = (async () => {
      try {
        getWasm();
        const { head, tail } = peekSync(prewarm.sourcePath);
        await loadFormatsFor(head, tail);
      } catch {
        // see above
      }
    })();
  }
  port.on("message", (request: WorkerRequest) => {
    queue = queue.then(async () => {
      if (request.type === "open") return open(request.config);
      if (request.type === "close") {
        try {
          await scanner?.close();
          port.postMessage({ type: "closed" } satisfies WorkerReply);
        } catch (error) {
          port.postMessage(errorReply(error));
        }
        return;
      }
      try {
        if (!scanner) throw new Error("scanner failed to open");
        const result = await scanner.scan(request.task);
        port.postMessage({ type: "result", result } satisfies WorkerReply, transferList(result));
      } catch (error) {
        port.postMessage(errorReply(error, request.task.id));
      }
    });
  });
}
