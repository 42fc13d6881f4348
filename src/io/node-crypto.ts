// node:crypto, loaded on first use. Loading it costs ~1.3 ms of every run's start-up (it
// brings ~15 internal modules), and most commands (resync, verify, copy, diff of images) never
// hash with it: only digest files, SHA-256 block digests, log ids and new VHD ids need it.

import { createRequire } from "node:module";

type NodeCrypto = typeof import("node:crypto");

const load = createRequire(import.meta.url);
let crypto: NodeCrypto | undefined;

/** The node:crypto module (loaded by the first call). */
export function nodeCrypto(): NodeCrypto {
  return (crypto ??= load("node:crypto") as NodeCrypto);
}
