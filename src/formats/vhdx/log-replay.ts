// Replays a dirty VHDX log in memory ([MS-VHDX] 2.3.3): reads the whole log region into WASM
// memory, lets the kernel find the active sequence, then walks its entries from the tail and
// records every descriptor in a LogOverlay. The file itself is never written.

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError } from "../../errors.js";
import { readExactly } from "../../io/file.js";
import { allocWasm } from "../../wasm/driver.js";
import { checkStatus } from "../../wasm/status.js";
import { LogOverlay } from "./log-overlay.js";
import type { VhdxHeader } from "./vhdx-structures.js";

/** Largest log replayed (bigger logs are refused rather than exhausting the WASM arena). */
export const MAX_LOG_BYTES = 64 * 1024 * 1024;
const DESCRIPTOR_OUT_BYTES = 64 + 4096;
/** Scan cache bytes per 4 KiB of log (assembly/vhdx/log-sequence.ts VHDX_LOG_CACHE_SLOT_BYTES). */
const CACHE_SLOT_BYTES = 48;
/** assembly/status.ts STATUS_VHDX_LOG_TRUNCATED. */
const STATUS_LOG_TRUNCATED = 222;

/** What a replay produced: the overlay and the file size the log implies. */
export interface LogReplay {
  overlay: LogOverlay;
  /** max(file size, head entry's LastFileOffset, highest descriptor end): the size reads may cover. */
  effectiveFileSize: number;
  entries: number;
  headSequenceNumber: bigint;
}

/**
 * Replays the log named by `header` (whose LogGuid is non-zero) in memory.
 * @throws VHDSYNC_CORRUPT (no valid sequence), VHDSYNC_TRUNCATED (file shorter than the log
 * region or than FlushedFileOffset), VHDSYNC_UNSUPPORTED (log above MAX_LOG_BYTES), I/O codes.
 */
export async function replayLog(handle: FileHandle, path: string, header: VhdxHeader, fileSize: number): Promise<LogReplay> {
  const logBytes = header.logLengthBytes;
  if (logBytes > MAX_LOG_BYTES) {
    throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${path}: VHDX log of ${logBytes} bytes is larger than vhdsync replays (${MAX_LOG_BYTES})`, { path, logBytes });
  }
  if (header.logOffsetBytes + logBytes > fileSize) {
    throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: VHDX log region ends past the end of the file`, { path, logOffset: header.logOffsetBytes });
  }
  const cacheBytes = (logBytes / 4096) * CACHE_SLOT_BYTES;
  const { wasm, address: logAddress } = allocWasm(logBytes + 16 + 64 + DESCRIPTOR_OUT_BYTES + cacheBytes, 4096);
  try {
    const guidAddress = logAddress + logBytes;
    const outAddress = guidAddress + 16;
    const descriptorAddress = outAddress + 64;
    const cacheAddress = descriptorAddress + DESCRIPTOR_OUT_BYTES;
    await readExactly(handle, wasm.view(logAddress, logBytes), header.logOffsetBytes, path);
    wasm.view(guidAddress, 16).set(header.logGuid);
    wasm.view(cacheAddress, cacheBytes).fill(0);
    const status = wasm.exports.vhdxLogFindActive(logAddress, BigInt(logBytes), guidAddress, cacheAddress, outAddress);
    checkStatus(status, `${path}: VHDX log`, { path });
    const active = wasm.dataView(outAddress, 40);
    const tail = active.getUint32(0, true);
    const entries = active.getUint32(8, true);
    const headSequenceNumber = active.getBigUint64(16, true);
    const flushedBytes = Number(active.getBigUint64(24, true));
    const lastBytes = Number(active.getBigUint64(32, true));
    if (fileSize < flushedBytes) {
      checkStatus(STATUS_LOG_TRUNCATED, `${path}: VHDX log`, { path, fileSize, flushedFileOffset: flushedBytes });
    }
    const overlay = new LogOverlay();
    let position = tail;
    for (let entry = 0; entry < entries; entry++) {
      checkStatus(wasm.exports.vhdxLogEntryCheck(logAddress, BigInt(logBytes), BigInt(position), guidAddress, outAddress), `${path}: VHDX log entry`, { path, logOffset: position });
      const info = wasm.dataView(outAddress, 40);
      const entryLength = info.getUint32(0, true);
      const descriptors = info.getUint32(16, true);
      let dataIndex = 0;
      for (let index = 0; index < descriptors; index++) {
        const status = wasm.exports.vhdxLogDescriptor(logAddress, BigInt(logBytes), BigInt(position), index, dataIndex, descriptorAddress);
        checkStatus(status, `${path}: VHDX log descriptor`, { path, logOffset: position, descriptor: index });
        const out = wasm.dataView(descriptorAddress, 24);
        const fileOffset = Number(out.getBigUint64(8, true));
        if (out.getUint32(0, true) === 1) {
          overlay.writeSector(fileOffset, wasm.view(descriptorAddress + 64, 4096));
          dataIndex++;
        } else {
          overlay.zero(fileOffset, Number(out.getBigUint64(16, true)));
        }
      }
      position = (position + entryLength) % logBytes;
    }
    const effectiveFileSize = Math.max(fileSize, lastBytes, overlay.highestOffsetBytes);
    return { overlay, effectiveFileSize, entries, headSequenceNumber };
  } finally {
    wasm.release(logAddress);
  }
}
