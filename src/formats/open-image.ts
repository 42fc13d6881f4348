// openImage(): detects an image's format and opens it as a DiskImage. Detection order: VHDX
// ("vhdxfile" at offset 0), VHD ("conectix" footer at the end, or its copy at offset 0),
// otherwise raw (or a block device). Each format registers a detector here; the built-in
// ones are loaded on first need (their signatures are in signatures.ts).

import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { closeSync, fstatSync, openSync } from "node:fs";
import { openFile, readUpTo, readUpToSync, refusePipe } from "../io/file.js";
import type { DiskImage, ImageFormat, OpenOptions } from "./disk-image.js";
import { RawImage } from "./raw.js";
import { detectVhd, isVhdx } from "./signatures.js";
import { checkFlags, checkOptions, checkPath } from "../arguments.js";

/** A format's detector: given the first and last 512 bytes, can it open the file? */
export interface FormatHandler {
  format: ImageFormat;
  /** `head` = first 64 KiB (or less), `tail` = last 512 bytes (or less). */
  detect(head: Uint8Array, tail: Uint8Array): boolean;
  open(path: string, options: Required<OpenOptions>): Promise<DiskImage>;
}

const handlers: FormatHandler[] = [];
let builtinFormats: Promise<unknown> | undefined;

/**
 * Loads the built-in formats (VHD, VHDX), which register themselves on import. Dynamic
 * imports keep the modules acyclic and make every openImage() caller — worker threads
 * included — see every format, whatever else that thread imported.
 */
function loadBuiltinFormats(): Promise<unknown> {
  builtinFormats ??= Promise.all([import("./vhd/index.js"), import("./vhdx/index.js")]);
  return builtinFormats;
}

/** Loads the built-in formats' modules if `head`/`tail` carry one of their signatures. */
export async function loadFormatsFor(head: Uint8Array, tail: Uint8Array): Promise<void> {
  if (detectVhd(head, tail) || isVhdx(head)) await loadBuiltinFormats();
}

/** Registers a format (called once by each format module at import time). */
export function registerFormat(handler: FormatHandler): void {
  if (!handlers.some((existing) => existing.format === handler.format)) handlers.push(handler);
}

/** What sniff() returns. */
export interface Sniffed {
  head: Uint8Array;
  tail: Uint8Array;
  isBlockDevice: boolean;
}

/** The buffers sniff() fills for a file of `size` bytes (0 for a block device: the head only). */
function sniffBuffers(size: number): { head: Uint8Array; tail: Uint8Array; tailAt: number } {
  const tail = new Uint8Array(Math.min(512, size));
  return { head: new Uint8Array(Math.min(65536, size || 65536)), tail, tailAt: size - tail.length };
}

/** Reads the first 64 KiB and last 512 bytes of a file (for detection). */
export async function sniff(path: string): Promise<Sniffed> {
  const handle = await openFile(path, "r");
  try {
    const stat = await handle.stat();
    const { head, tail, tailAt } = sniffBuffers(stat.isBlockDevice() ? 0 : stat.size);
    const headLength = await readUpTo(handle, head, 0, path);
    if (tail.length > 0) await readUpTo(handle, tail, tailAt, path);
    return { head: head.subarray(0, headLength), tail, isBlockDevice: stat.isBlockDevice() };
  } catch (error) {
    throw toVhdsyncError(error, { path });
  } finally {
    await handle.close();
  }
}

/**
 * sniff() with synchronous reads, for a thread with nothing else to do meanwhile (a scan
 * worker's prewarm: the async form's five thread-pool round trips took ~20 ms there).
 */
export function sniffSync(path: string): Sniffed {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw toVhdsyncError(error, { path });
  }
  try {
    const stat = fstatSync(fd);
    const { head, tail, tailAt } = sniffBuffers(stat.isBlockDevice() ? 0 : stat.size);
    const headLength = readUpToSync(fd, head, 0, path);
    if (tail.length > 0) readUpToSync(fd, tail, tailAt, path);
    return { head: head.subarray(0, headLength), tail, isBlockDevice: stat.isBlockDevice() };
  } catch (error) {
    throw toVhdsyncError(error, { path });
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a disk image of any supported format.
 * @throws VHDSYNC_NOT_FOUND, VHDSYNC_CORRUPT, VHDSYNC_CHAIN_BROKEN, VHDSYNC_UNSUPPORTED, ...
 */
export async function openImage(path: string, options: OpenOptions = {}): Promise<DiskImage> {
  checkPath(path, "path");
  checkOptions(options);
  checkFlags(options, ["readOnly"]);
  await refusePipe(path, "images");
  const resolved: Required<OpenOptions> = { readOnly: options.readOnly ?? true, format: options.format as ImageFormat };
  if (options.format === "raw" || options.format === "block-device") return RawImage.open(path, resolved.readOnly);
  if (options.format) {
    await loadBuiltinFormats();
    const handler = handlers.find((candidate) => candidate.format === options.format);
    if (!handler) throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `format ${options.format} is not supported`, { path });
    return handler.open(path, resolved);
  }
  const { head, tail, isBlockDevice } = await sniff(path);
  // A block device is a disk of its own bytes, whatever they hold: a VHD written onto one is
  // not opened as a VHD (its file formats need a regular file; docs/architecture.md).
  if (isBlockDevice) return RawImage.open(path, resolved.readOnly);
  await loadFormatsFor(head, tail);
  for (const handler of handlers) {
    if (handler.detect(head, tail)) return handler.open(path, { ...resolved, format: handler.format });
  }
  return RawImage.open(path, resolved.readOnly);
}
