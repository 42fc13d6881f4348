// Worker-thread entry of the segment pool: opens its own images and WASM instance, then scans
// the segments it is sent, one at a time, posting results with their buffers transferred.
// Started with a ScanConfig it opens at once; prewarmed, it instantiates WASM, loads the
// modules of the source's format and waits for an "open" message.

import { parentPort, workerData } from "node:worker_threads";
import { toVhdsyncError } from "../errors.js";
import { getWasm } from "../wasm/driver.js";
import { loadFormatsFor, sniffSync } from "../formats/open-image.js";
import type { PrewarmData } from "./scan-workers.js";
import { SegmentScanner, type ScanConfig } from "./segment-scanner.js";
import type { SegmentResult, SegmentTask } from "./segment-task.js";

/** Messages the pool sends. */
export type WorkerRequest = { type: "open"; config: ScanConfig } | { type: "task"; task: SegmentTask; spare?: ArrayBuffer[] } | { type: "close" };
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
        const { head, tail } = sniffSync(prewarm.sourcePath);
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
        for (const buffer of request.spare ?? []) scanner.giveBack(buffer);
        const result = await scanner.scan(request.task);
        port.postMessage({ type: "result", result } satisfies WorkerReply, transferList(result));
      } catch (error) {
        port.postMessage(errorReply(error, request.task.id));
      }
    });
  });
}
