// The "ring" design of bench/hrl-floor.mjs: a worker thread that appends the batches the main
// thread publishes in a SharedArrayBuffer ring. control = [produced, consumed, stop, failed].
"use strict";
const { workerData } = require("node:worker_threads");
const { closeSync, openSync, writeSync } = require("node:fs");

const { ring, control: controlBuffer, batchBytes, slots, path } = workerData;
const bytes = new Uint8Array(ring);
const control = new Int32Array(controlBuffer);
const fd = openSync(path, "w");
let consumed = 0;
let position = 4096;
try {
  for (;;) {
    if (Atomics.load(control, 0) === consumed) {
      if (Atomics.load(control, 2) === 1) break;
      Atomics.wait(control, 0, consumed, 50);
      continue;
    }
    writeSync(fd, bytes, (consumed % slots) * batchBytes, batchBytes, position);
    position += batchBytes;
    Atomics.store(control, 1, ++consumed);
    Atomics.notify(control, 1);
  }
} catch (error) {
  Atomics.store(control, 3, 1);
  Atomics.store(control, 1, 2 ** 30); // release a waiting main thread
  Atomics.notify(control, 1);
  throw error;
} finally {
  closeSync(fd);
}
