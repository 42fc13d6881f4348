// Streaming (incremental) hashing: the xxHash state lives in an arena block of WASM memory,
// so feeding data that already sits in WASM memory (updateAt) copies nothing. Any chunking
// gives the one-shot digest.

import { createSha256, type Sha256 } from "./sha256.js";
import { VhdsyncError } from "../errors.js";
import { getWasm, type WasmInstance } from "../wasm/driver.js";
import { checkStatus } from "../wasm/status.js";
import { digestLength, toSeed, wasmAlgorithmId, type HashAlgorithm } from "./algorithm.js";

/** Largest slice of a JS buffer copied into WASM memory per hash_update call. */
const UPDATE_SLICE_BYTES = 4 * 1024 * 1024;

/** An incremental hasher. Call dispose() when done to return its WASM state to the arena. */
export interface Hasher {
  readonly algorithm: HashAlgorithm;
  /** Feeds bytes (copied into WASM memory in slices unless they already live there). */
  update(bytes: Uint8Array): Hasher;
  /** Feeds `lengthBytes` bytes at WASM address `address` without copying. Not for sha256 outside WASM views. */
  updateAt(address: number, lengthBytes: number): Hasher;
  /** Canonical digest of everything fed so far; the hasher may keep going. */
  digest(): Uint8Array;
  /** Releases the WASM state; the hasher is unusable afterwards. */
  dispose(): void;
}

const released = new FinalizationRegistry<{ wasm: WasmInstance; address: number }>(({ wasm, address }) => wasm.release(address));

class XxHasher implements Hasher {
  private state: number;
  private readonly wasm = getWasm();
  private readonly token = {};

  constructor(readonly algorithm: HashAlgorithm, private readonly id: number, seed: bigint) {
    this.state = this.wasm.alloc(this.wasm.exports.hash_stateSize(id), 16);
    released.register(this, { wasm: this.wasm, address: this.state }, this.token);
    checkStatus(this.wasm.exports.hash_init(id, this.state, seed), "hash init");
  }

  update(bytes: Uint8Array): Hasher {
    if (bytes.buffer === this.wasm.memory.buffer) return this.updateAt(bytes.byteOffset, bytes.length);
    for (let offset = 0; offset < bytes.length; offset += UPDATE_SLICE_BYTES) {
      this.wasm.withCopy(bytes.subarray(offset, offset + UPDATE_SLICE_BYTES), (address, length) => this.updateAt(address, length));
    }
    return this;
  }

  updateAt(address: number, lengthBytes: number): Hasher {
    checkStatus(this.wasm.exports.hash_update(this.id, this.live(), address, lengthBytes), "hash update", { lengthBytes });
    return this;
  }

  digest(): Uint8Array {
    const state = this.live();
    return this.wasm.withScratch(digestLength(this.algorithm), (out, view) => {
      checkStatus(this.wasm.exports.hash_digest(this.id, state, out), "hash digest");
      return view.slice();
    });
  }

  dispose(): void {
    if (this.state < 0) return;
    released.unregister(this.token);
    this.wasm.release(this.state);
    this.state = -1;
  }

  private live(): number {
    if (this.state < 0) throw new VhdsyncError("VHDSYNC_INTERNAL", "hasher used after dispose()");
    return this.state;
  }
}

class Sha256Hasher implements Hasher {
  readonly algorithm = "sha256" as const;
  private readonly hash: Sha256 = createSha256();

  update(bytes: Uint8Array): Hasher {
    this.hash.update(bytes);
    return this;
  }

  updateAt(address: number, lengthBytes: number): Hasher {
    return this.update(getWasm().view(address, lengthBytes));
  }

  digest(): Uint8Array {
    return this.hash.digest();
  }

  dispose(): void {}
}

/**
 * Starts an incremental hash.
 * @param seed xxHash seed (default 0; sha256 ignores it)
 * @throws VHDSYNC_INVALID_ARGUMENT (unknown algorithm, bad seed), VHDSYNC_NO_MEMORY (arena full)
 */
export function createHasher(algorithm: HashAlgorithm, seed: number | bigint = 0): Hasher {
  const id = wasmAlgorithmId(algorithm);
  const seedValue = toSeed(seed);
  return id === undefined ? new Sha256Hasher() : new XxHasher(algorithm, id, seedValue);
}
