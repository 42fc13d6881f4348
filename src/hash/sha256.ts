// SHA-256 of bytes in memory, fed in pieces: the checksums of digest files (their header and
// their frames) and `--hash sha256` where the WASM core has no SHA-256. The addon computes it
// (SHA-NI when the CPU has it): node:crypto costs a fresh process ~1.3 ms to load and brings
// Node's stream modules (~1.6 ms) with it, into every `checksum` and `--target-digest` run.
// Without the addon, or with VHDSYNC_NO_NATIVE_HASH=1, node:crypto computes it.

import type { Hash } from "node:crypto";
import { nodeCrypto } from "../io/node-crypto.js";
import { callNative, nativeAddon, type NativeAddon } from "../io/native-addon.js";

/** An incremental SHA-256. */
export interface Sha256 {
  /** Feeds `bytes` (any length). */
  update(bytes: Uint8Array): Sha256;
  /** The digest of everything fed so far (32 bytes); more may be fed after. */
  digest(): Uint8Array;
}

type Sha256Addon = Required<Pick<NativeAddon, "sha256StreamReset" | "sha256StreamUpdate" | "sha256StreamDigest" | "sha256StreamStateBytes" | "sha256StreamDigestOffset">>;

/** The addon when it streams SHA-256 and VHDSYNC_NO_NATIVE_HASH=1 does not turn it off. */
function sha256Addon(): Sha256Addon | undefined {
  if (process.env.VHDSYNC_NO_NATIVE_HASH === "1") return undefined;
  const addon = nativeAddon();
  return addon && typeof addon.sha256StreamUpdate === "function" ? (addon as unknown as Sha256Addon) : undefined;
}

class NativeSha256 implements Sha256 {
  private readonly state: ArrayBuffer;

  constructor(private readonly addon: Sha256Addon) {
    this.state = new ArrayBuffer(addon.sha256StreamStateBytes);
    callNative(() => addon.sha256StreamReset(this.state));
  }

  update(bytes: Uint8Array): Sha256 {
    // The addon takes ArrayBuffers only: bytes in a SharedArrayBuffer are copied first.
    const data = bytes.buffer instanceof ArrayBuffer ? bytes : bytes.slice();
    callNative(() => this.addon.sha256StreamUpdate(data.buffer as ArrayBuffer, data.byteOffset, data.length, this.state));
    return this;
  }

  digest(): Uint8Array {
    callNative(() => this.addon.sha256StreamDigest(this.state));
    return new Uint8Array(this.state, this.addon.sha256StreamDigestOffset, 32).slice();
  }
}

class CryptoSha256 implements Sha256 {
  private readonly hash: Hash = nodeCrypto().createHash("sha256");

  update(bytes: Uint8Array): Sha256 {
    this.hash.update(bytes);
    return this;
  }

  digest(): Uint8Array {
    return new Uint8Array(this.hash.copy().digest());
  }
}

/** Starts an incremental SHA-256 (the addon's, else node:crypto's). */
export function createSha256(): Sha256 {
  const addon = sha256Addon();
  return addon ? new NativeSha256(addon) : new CryptoSha256();
}

/** The SHA-256 of `bytes`. */
export function sha256(bytes: Uint8Array): Uint8Array {
  return createSha256().update(bytes).digest();
}
