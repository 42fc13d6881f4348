// Streaming XXH3 (64 and 128 share one state): the state lives in caller-provided memory of
// XXH3_STATE_BYTES (16-byte aligned) and any chunking gives the one-shot digest. A stripe is
// only accumulated once at least one more input byte exists, as the one-shot path never
// accumulates the final stripe normally (xxhash_spec.md "Step 3. Process the last block").

import { DEFAULT_SECRET, MIDSIZE_MAX_BYTES, STRIPE_BYTES, storeCanonical64 } from "./constants";
import {
  LAST_STRIPE_SECRET_OFFSET, accumulateStripes, consumeStripes, deriveSecret, initLongAccumulators,
  mergeHigh, mergeLow,
} from "./xxh3-long";
import { shortHigh, xxh3_128_short, xxh3_64_short } from "./xxh3-short";

const BUFFER_BYTES: usize = 256;
// State layout (bytes): 0 accumulators[8] u64 | 64 secret[192] | 256 buffer[256] |
// 512 last accumulated stripe[64] | 576 digest scratch accumulators[64] | 640 digest scratch
// stripe[64] | 704 total length u64 | 712 seed u64 | 720 buffered u32 | 724 stripes in block u32.
const STATE_SECRET: usize = 64;
const STATE_BUFFER: usize = 256;
const STATE_LAST_STRIPE: usize = 512;
const STATE_SCRATCH_ACCUMULATORS: usize = 576;
const STATE_SCRATCH_STRIPE: usize = 640;
const STATE_TOTAL: usize = 704;
const STATE_SEED: usize = 712;
const STATE_BUFFERED: usize = 720;
const STATE_STRIPES_IN_BLOCK: usize = 724;
export const XXH3_STATE_BYTES: usize = 736;

/** Size in bytes of an XXH3 streaming state (shared by XXH3-64 and XXH3-128). */
export function xxh3_stateSize(): usize {
  return XXH3_STATE_BYTES;
}

/** Starts an XXH3 stream with `seed` in the state at `state`. */
export function xxh3_init(state: usize, seed: u64): void {
  initLongAccumulators(state);
  deriveSecret(state + STATE_SECRET, seed);
  store<u64>(state, 0, STATE_TOTAL);
  store<u64>(state, seed, STATE_SEED);
  store<u32>(state, 0, STATE_BUFFERED);
  store<u32>(state, 0, STATE_STRIPES_IN_BLOCK);
}

/** Accumulates `stripeCount` stripes at `data` into the state and remembers the last one. */
function consume(state: usize, data: usize, stripeCount: usize): void {
  if (stripeCount == 0) return;
  const filled = consumeStripes(state, <usize>load<u32>(state, STATE_STRIPES_IN_BLOCK), data, stripeCount, state + STATE_SECRET);
  store<u32>(state, <u32>filled, STATE_STRIPES_IN_BLOCK);
  memory.copy(state + STATE_LAST_STRIPE, data + (stripeCount - 1) * STRIPE_BYTES, STRIPE_BYTES);
}

/** Feeds `lengthBytes` bytes at `data` into the stream at `state`. */
export function xxh3_update(state: usize, data: usize, lengthBytes: usize): void {
  if (lengthBytes == 0) return;
  store<u64>(state, load<u64>(state, STATE_TOTAL) + lengthBytes, STATE_TOTAL);
  const buffered = <usize>load<u32>(state, STATE_BUFFERED);
  if (buffered + lengthBytes <= BUFFER_BYTES) {
    memory.copy(state + STATE_BUFFER + buffered, data, lengthBytes);
    store<u32>(state, <u32>(buffered + lengthBytes), STATE_BUFFERED);
    return;
  }
  let pointer = data;
  let remaining = lengthBytes;
  if (buffered > 0) {
    // Complete the buffer; at least one input byte follows it, so all of it can be accumulated.
    const fill = BUFFER_BYTES - buffered;
    memory.copy(state + STATE_BUFFER + buffered, pointer, fill);
    consume(state, state + STATE_BUFFER, BUFFER_BYTES / STRIPE_BYTES);
    pointer += fill;
    remaining -= fill;
  }
  // Keep 1..64 bytes back: the final stripe is only known at digest time.
  const stripeCount = (remaining - 1) / STRIPE_BYTES;
  consume(state, pointer, stripeCount);
  const kept = remaining - stripeCount * STRIPE_BYTES;
  memory.copy(state + STATE_BUFFER, pointer + stripeCount * STRIPE_BYTES, kept);
  store<u32>(state, <u32>kept, STATE_BUFFERED);
}

/** Runs the buffered tail through scratch accumulators, leaving the state untouched. */
function finishLong(state: usize): usize {
  const accumulators = state + STATE_SCRATCH_ACCUMULATORS;
  const secret = state + STATE_SECRET;
  const buffered = <usize>load<u32>(state, STATE_BUFFERED);
  memory.copy(accumulators, state, 64);
  const stripeCount = (buffered - 1) / STRIPE_BYTES;
  consumeStripes(accumulators, <usize>load<u32>(state, STATE_STRIPES_IN_BLOCK), state + STATE_BUFFER, stripeCount, secret);
  let lastStripe = state + STATE_BUFFER + buffered - STRIPE_BYTES;
  if (buffered < STRIPE_BYTES) {
    // The last 64 input bytes straddle the previously accumulated stripe and the buffer.
    lastStripe = state + STATE_SCRATCH_STRIPE;
    const carried = STRIPE_BYTES - buffered;
    memory.copy(lastStripe, state + STATE_LAST_STRIPE + buffered, carried);
    memory.copy(lastStripe + carried, state + STATE_BUFFER, buffered);
  }
  accumulateStripes(accumulators, lastStripe, secret + LAST_STRIPE_SECRET_OFFSET, 1);
  return accumulators;
}

/** The XXH3-64 digest of everything fed so far (the state stays usable). */
export function xxh3_64_digest(state: usize): u64 {
  const total = load<u64>(state, STATE_TOTAL);
  if (total <= <u64>MIDSIZE_MAX_BYTES) {
    return xxh3_64_short(state + STATE_BUFFER, <usize>total, DEFAULT_SECRET, load<u64>(state, STATE_SEED));
  }
  return mergeLow(finishLong(state), state + STATE_SECRET, total);
}

/** Writes the XXH3-128 digest so far as 16 canonical bytes (high64 then low64) at `out`. */
export function xxh3_128_digest(state: usize, out: usize): void {
  const total = load<u64>(state, STATE_TOTAL);
  let low: u64;
  let high: u64;
  if (total <= <u64>MIDSIZE_MAX_BYTES) {
    low = xxh3_128_short(state + STATE_BUFFER, <usize>total, DEFAULT_SECRET, load<u64>(state, STATE_SEED));
    high = shortHigh;
  } else {
    const accumulators = finishLong(state);
    low = mergeLow(accumulators, state + STATE_SECRET, total);
    high = mergeHigh(accumulators, state + STATE_SECRET, total);
  }
  storeCanonical64(out, high);
  storeCanonical64(out + 8, low);
}

