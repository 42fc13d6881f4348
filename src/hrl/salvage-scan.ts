// Finds the metadata blocks of a log whose EOLLocation is 0 (not closed cleanly): a forward
// scan from the end of the header, each block linked to the one before ([MS-HRL] 2.3) and
// preceded by exactly its entries' data. Blocks after the last one found (data written
// without its metadata, or a torn block) are dropped. The kernel is assembly/hrl/scan.ts.

import type { FileHandle } from "node:fs/promises";
import { readUpTo } from "../io/file.js";
import { getWasm } from "../wasm/driver.js";
import type { HrlHeader } from "./header.js";
import { BLOCK_INFO, ENTRY_RECORD, HRL_HEADER_BYTES } from "./layout.js";
import { collectBlocks, type ParsedBlock } from "./parsed-block.js";

/** Bytes read per scan window. */
const SCAN_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * Scans a log forward for its valid metadata blocks, in log order.
 * Entries past `diskSizeBytes` (if ≥ 0) end the salvage at the block before.
 */
export async function scanMetadataBlocks(
  handle: FileHandle,
  path: string,
  header: HrlHeader,
  fileSizeBytes: number,
  diskSizeBytes: number,
): Promise<ParsedBlock[]> {
  const wasm = getWasm();
  const metadataSize = header.metadataSizeBytes;
  const windowBytes = Math.max(SCAN_WINDOW_BYTES, 2 * metadataSize);
  const blocks: ParsedBlock[] = [];
  const window = wasm.alloc(windowBytes);
  try {
    await collectBlocks(metadataSize, async (_block, records, info) => {
      let previous = 0;
      let position = HRL_HEADER_BYTES;
      while (position + metadataSize <= fileSizeBytes) {
        const length = await readUpTo(handle, wasm.view(window, Math.min(windowBytes, fileSizeBytes - position)), position, path);
        const found = wasm.exports.hrlScanMetadata(window, length, position, previous, metadataSize, records.address, info.address);
        if (found < 0) {
          if (position + length >= fileSizeBytes) break;
          position += length - metadataSize + 1;
          continue;
        }
        const location = position + found;
        if (diskSizeBytes >= 0) {
          const status = wasm.exports.hrlMetadataParse(window + found, metadataSize, location, diskSizeBytes, records.address, info.address);
          if (status !== 0) break;
        }
        const entryCount = info.dataView.getUint32(BLOCK_INFO.entryCount, true);
        blocks.push({ location, entryCount, records: records.view.slice(0, entryCount * ENTRY_RECORD.bytes) });
        previous = location;
        position = location + metadataSize;
      }
    });
  } finally {
    wasm.release(window);
  }
  return blocks;
}

