// The one WASM driver: compiles the AssemblyScript module once per process, instantiates it
// once per thread with a fixed-size imported memory (never grown, so views stay valid), and
// hands out arena blocks that file I/O reads straight into. VHDSYNC_WASM=debug selects the
// build with assertions on.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Arena, roundUp } from "./arena.js";
import { VhdsyncError } from "../errors.js";

const PAGE_BYTES = 65536;
/** Default arena size: enough for double-buffered 16 MiB batches plus digests and scratch. */
export const DEFAULT_ARENA_BYTES = 128 * 1024 * 1024;
/** Arena of the small instance (wasmFor): image headers, tables and bitmaps. */
export const SMALL_ARENA_BYTES = 4 * 1024 * 1024;

/** Raw exports of the WASM module (numbers are i32/usize; u64 results are bigint). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type WasmExports = Record<string, any> & { heapBase(): number };

/** Which build of the module to load. */
export type WasmVariant = "release" | "debug";

/** One instance of the vhdsync WASM module with its memory and arena. */
export class WasmInstance {
  readonly memory: WebAssembly.Memory;
  readonly exports: WasmExports;
  readonly arena: Arena;
  readonly variant: WasmVariant;
  /** A byte view over the whole memory (valid for the instance's lifetime). */
  readonly bytes: Uint8Array;

  constructor(module: WebAssembly.Module, variant: WasmVariant, arenaBytes: number) {
    this.variant = variant;
    const heapBase = heapBaseOf(module);
    const arenaStart = roundUp(heapBase, PAGE_BYTES);
    const pages = Math.ceil((arenaStart + arenaBytes) / PAGE_BYTES);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(module, imports(this.memory));
    this.exports = instance.exports as WasmExports;
    this.bytes = new Uint8Array(this.memory.buffer);
    this.arena = new Arena(arenaStart, pages * PAGE_BYTES - arenaStart);
  }

  /** A Uint8Array view of `length` bytes at `address` (no copy). */
  view(address: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, address, length);
  }

  /** A DataView of `length` bytes at `address` (no copy). */
  dataView(address: number, length: number): DataView {
    return new DataView(this.memory.buffer, address, length);
  }

  /** Allocates an arena block; see Arena.alloc. @throws VHDSYNC_NO_MEMORY */
  alloc(sizeBytes: number, alignBytes = 64): number {
    return this.arena.alloc(sizeBytes, alignBytes);
  }

  /** Frees an arena block. */
  release(address: number): void {
    this.arena.release(address);
  }

  /** Runs `fn` with a temporary arena block of `sizeBytes`, freed afterwards. */
  withScratch<T>(sizeBytes: number, fn: (address: number, view: Uint8Array) => T): T {
    const address = this.alloc(sizeBytes);
    try {
      return fn(address, this.view(address, sizeBytes));
    } finally {
      this.release(address);
    }
  }

  /** Copies `data` into a fresh arena block, runs `fn`, frees the block. */
  withCopy<T>(data: Uint8Array, fn: (address: number, length: number) => T): T {
    return this.withScratch(data.length, (address, view) => {
      view.set(data);
      return fn(address, data.length);
    });
  }
}

const heapBases = new WeakMap<WebAssembly.Module, number>();

/** Where the module's static data ends, from a probe instance (once per module). */
function heapBaseOf(module: WebAssembly.Module): number {
  let heapBase = heapBases.get(module);
  if (heapBase === undefined) {
    const probe = new WebAssembly.Instance(module, imports(new WebAssembly.Memory({ initial: 64 })));
    heapBase = (probe.exports as WasmExports).heapBase();
    heapBases.set(module, heapBase);
  }
  return heapBase;
}

function imports(memory: WebAssembly.Memory): WebAssembly.Imports {
  return {
    env: {
      memory,
      abort(messagePtr: number, filePtr: number, line: number, column: number): never {
        throw new VhdsyncError(
          "VHDSYNC_INTERNAL",
          `WASM assertion failed at ${readAsString(memory, filePtr)}:${line}:${column}: ${readAsString(memory, messagePtr)}`,
        );
      },
    },
  };
}

/** Reads an AssemblyScript string (UTF-16, length in the header 4 bytes before) for abort messages. */
function readAsString(memory: WebAssembly.Memory, pointer: number): string {
  if (!pointer) return "?";
  const lengthBytes = new Uint32Array(memory.buffer, pointer - 4, 1)[0];
  return Buffer.from(new Uint8Array(memory.buffer, pointer, lengthBytes)).toString("utf16le");
}

const modules = new Map<WasmVariant, WebAssembly.Module>();
let shared: WasmInstance | undefined;
let small: WasmInstance | undefined;

/** The build selected by VHDSYNC_WASM (release unless it says "debug"). */
export function selectedVariant(): WasmVariant {
  return process.env.VHDSYNC_WASM === "debug" ? "debug" : "release";
}

/** Path of a compiled module. */
export function wasmPath(variant: WasmVariant): string {
  return fileURLToPath(new URL(`../../build/vhdsync.${variant}.wasm`, import.meta.url));
}

/** The compiled module for a variant (compiled once per thread, cached). */
export function compiledModule(variant: WasmVariant = selectedVariant()): WebAssembly.Module {
  let module = modules.get(variant);
  if (!module) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(wasmPath(variant));
    } catch (error) {
      throw new VhdsyncError("VHDSYNC_INTERNAL", `WASM module not built (${wasmPath(variant)}): run npm run build`, {}, { cause: error });
    }
    module = new WebAssembly.Module(new Uint8Array(bytes));
    modules.set(variant, module);
  }
  return module;
}

/**
 * The thread's shared WASM instance, created on first use.
 * @param arenaBytes arena size for the first call (default 128 MiB; VHDSYNC_ARENA_MIB overrides)
 */
export function getWasm(arenaBytes?: number): WasmInstance {
  if (!shared) {
    const fromEnv = Number(process.env.VHDSYNC_ARENA_MIB) * 1024 * 1024;
    const size = arenaBytes ?? (fromEnv > 0 ? fromEnv : DEFAULT_ARENA_BYTES);
    shared = new WasmInstance(compiledModule(), selectedVariant(), size);
  }
  return shared;
}

/**
 * An instance for work that needs at most `arenaBytes` of arena at once. Before the thread has
 * made its shared instance, that is a small one (SMALL_ARENA_BYTES) whenever it has the room:
 * a 128 MiB WebAssembly.Memory counts as external memory and makes V8 collect garbage at once
 * (~10 ms of every command that only opens a VHD), a 4 MiB one does not. Later, and for more,
 * the shared instance. A kernel's addresses belong to the instance they came from: callers that
 * keep arena blocks keep the instance with them.
 */
export function wasmFor(arenaBytes: number): WasmInstance {
  if (shared) return shared;
  small ??= new WasmInstance(compiledModule(), selectedVariant(), SMALL_ARENA_BYTES);
  return small.arena.fits(arenaBytes) ? small : getWasm();
}

/** Arena a block's holder may also take at once for scratch (withScratch/withCopy of field blocks). */
const SCRATCH_SLACK_BYTES = 256;

/**
 * Allocates `sizeBytes` (at `alignBytes`) in the instance wasmFor() picks for it, with room
 * for a little scratch beside it. Release the address through the returned instance.
 */
export function allocWasm(sizeBytes: number, alignBytes = 64): { wasm: WasmInstance; address: number } {
  const wasm = wasmFor(sizeBytes + alignBytes + SCRATCH_SLACK_BYTES);
  return { wasm, address: wasm.alloc(sizeBytes, alignBytes) };
}

/** Whether this thread has made its shared (scan-sized) instance yet. */
export function hasSharedWasm(): boolean {
  return shared !== undefined;
}
