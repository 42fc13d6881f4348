// The [MS-HRL] 2.5 traversal of a clean log: a small log is read whole into WASM memory and
// walked by hrlTraverse (assembly/hrl/traverse.ts) in one call; a large one is walked block by
// block from EOLLocation − MetadataSize, each block read and validated by hrlMetadataParse.
// Those 4 KiB reads are made on the calling thread: a hop through the libuv pool per block cost
// more than the read (a log of 8192 64 KiB writes in 256 KiB batches has 2048 blocks).

import type { FileHandle } from "node:fs/promises";
import { VhdsyncError } from "../errors.js";
import { readExactly, readExactlySync } from "../io/file.js";
import { getWasm } from "../wasm/driver.js";
import { checkStatus } from "../wasm/status.js";
import type { HrlHeader } from "./header.js";
import { BLOCK_INFO, BLOCK_TABLE_BYTES, ENTRY_RECORD } from "./layout.js";
import { collectBlocks, type ParsedBlock } from "./parsed-block.js";

/** Reads a whole (small) log into WASM memory; the caller owns the returned address. */
export async function readWhole(handle: FileHandle, path: string, header: HrlHeader, fileSizeBytes: number): Promise<number> {
  checkEolInsideFile(path, header, fileSizeBytes);
  const wasm = getWasm();
  const address = wasm.alloc(fileSizeBytes);
  try {
    await readExactly(handle, wasm.view(address, fileSizeBytes), 0, path);
    return address;
  } catch (error) {
    wasm.release(address);
    throw error;
  }
}

/** [MS-HRL] 2.5 on a log read whole into WASM memory at `logAt` (assembly/hrl/traverse.ts). */
export function traverseInMemory(logAt: number, path: string, header: HrlHeader, fileSizeBytes: number, diskSizeBytes: number): ParsedBlock[] {
  const wasm = getWasm();
  const metadataSize = header.metadataSizeBytes;
  const maxBlocks = Math.floor(fileSizeBytes / metadataSize) + 1;
  const maxRecords = Math.floor(fileSizeBytes / ENTRY_RECORD.bytes) + 1;
  const [blocksAt, recordsAt, scratchAt] = [maxBlocks * BLOCK_TABLE_BYTES, maxRecords * ENTRY_RECORD.bytes, BLOCK_INFO.bytes + 8].map((bytes) => wasm.alloc(bytes));
  try {
    const resultAt = scratchAt + BLOCK_INFO.bytes;
    const status = wasm.exports.hrlTraverse(logAt, fileSizeBytes, metadataSize, header.eolLocation, diskSizeBytes, blocksAt, maxBlocks, recordsAt, maxRecords, scratchAt, resultAt);
    checkStatus(status, `${path}: metadata`, { path });
    const table = wasm.dataView(blocksAt, maxBlocks * BLOCK_TABLE_BYTES);
    const blockCount = wasm.dataView(resultAt, 8).getUint32(0, true);
    const blocks: ParsedBlock[] = [];
    for (let i = 0; i < blockCount; i++) {
      const firstEntry = table.getUint32(i * BLOCK_TABLE_BYTES + 8, true);
      const entryCount = table.getUint32(i * BLOCK_TABLE_BYTES + 12, true);
      const records = wasm.view(recordsAt + firstEntry * ENTRY_RECORD.bytes, entryCount * ENTRY_RECORD.bytes).slice();
      blocks.push({ location: table.getFloat64(i * BLOCK_TABLE_BYTES, true), entryCount, records });
    }
    return blocks;
  } finally {
    for (const address of [blocksAt, recordsAt, scratchAt]) wasm.release(address);
  }
}

function checkEolInsideFile(path: string, header: HrlHeader, fileSizeBytes: number): void {
  if (header.eolLocation > fileSizeBytes) {
    throw new VhdsyncError("VHDSYNC_TRUNCATED", `${path}: EOLLocation ${header.eolLocation} is past the end of the file (${fileSizeBytes} bytes)`, {
      path,
      eolLocation: header.eolLocation,
      fileSizeBytes,
    });
  }
}

/** [MS-HRL] 2.5 first pass: from EOLLocation − MetadataSize back to the first block. */
export async function traverseBackwards(handle: FileHandle, path: string, header: HrlHeader, fileSizeBytes: number, diskSizeBytes: number): Promise<ParsedBlock[]> {
  checkEolInsideFile(path, header, fileSizeBytes);
  const wasm = getWasm();
  const metadataSize = header.metadataSizeBytes;
  const stack: ParsedBlock[] = [];
  await collectBlocks(metadataSize, async (block, records, info) => {
    let location = header.eolLocation - metadataSize;
    for (;;) {
      readExactlySync(handle.fd, block.view, location, path);
      const status = wasm.exports.hrlMetadataParse(block.address, metadataSize, location, diskSizeBytes, records.address, info.address);
      checkStatus(status, `${path}: metadata block at ${location}`, { path, location });
      const entryCount = info.dataView.getUint32(BLOCK_INFO.entryCount, true);
      stack.push({ location, entryCount, records: records.view.slice(0, entryCount * ENTRY_RECORD.bytes) });
      const previous = info.dataView.getFloat64(BLOCK_INFO.previousLocation, true);
      if (previous === 0) break;
      location = previous;
    }
  });
  return stack.reverse();
}
