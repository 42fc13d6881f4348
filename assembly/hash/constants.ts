// Constants shared by the xxHash kernels (xxhash_spec.md: "XXH64 algorithm description" and
// "XXH3 algorithm overview"): the primes, the default 192-byte XXH3 secret, algorithm ids and
// the u64 x u64 -> u128 multiply every XXH3 path needs.

export const PRIME32_1: u64 = 0x9E3779B1;
export const PRIME32_2: u64 = 0x85EBCA77;
export const PRIME32_3: u64 = 0xC2B2AE3D;
export const PRIME64_1: u64 = 0x9E3779B185EBCA87;
export const PRIME64_2: u64 = 0xC2B2AE3D27D4EB4F;
export const PRIME64_3: u64 = 0x165667B19E3779F9;
export const PRIME64_4: u64 = 0x85EBCA77C2B2AE63;
export const PRIME64_5: u64 = 0x27D4EB2F165667C5;
export const PRIME_MX1: u64 = 0x165667919E3779F9;
export const PRIME_MX2: u64 = 0x9FB21C651E98DF25;

/** Algorithm ids of the generic exports; numbered like `xxhsum -H<n>`. */
export const ALGORITHM_XXH64: i32 = 1;
export const ALGORITHM_XXH3_128: i32 = 2;
export const ALGORITHM_XXH3_64: i32 = 3;

/** XXH3 secret length in bytes (we only use the default secret or one derived from a seed). */
export const SECRET_BYTES: usize = 192;
/** XXH3 stripe: 64 bytes = 8 lanes of 64 bits. */
export const STRIPE_BYTES: usize = 64;
/** Stripes per XXH3 block for a 192-byte secret: (192 - 64) / 8. */
export const STRIPES_PER_BLOCK: usize = 16;
/** XXH3 block: 1024 bytes for a 192-byte secret. */
export const BLOCK_BYTES: usize = 1024;
/** Inputs up to this length take the XXH3 short/medium paths. */
export const MIDSIZE_MAX_BYTES: usize = 240;

/** The default XXH3 secret (xxhash_spec.md "Seed and Secret"). */
export const DEFAULT_SECRET: usize = memory.data<u8>([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
], 16);

/** High 64 bits of the last mul128() product (a global: the stub runtime cannot return pairs). */
export let mulHigh: u64 = 0;

/** Full 64x64 -> 128-bit multiply: returns the low half, leaves the high half in `mulHigh`. */
@inline
export function mul128(a: u64, b: u64): u64 {
  const aLow = a & 0xFFFFFFFF;
  const aHigh = a >> 32;
  const bLow = b & 0xFFFFFFFF;
  const bHigh = b >> 32;
  const lowLow = aLow * bLow;
  const highLow = aHigh * bLow;
  const lowHigh = aLow * bHigh;
  const cross = (lowLow >> 32) + (highLow & 0xFFFFFFFF) + lowHigh;
  mulHigh = (highLow >> 32) + (cross >> 32) + aHigh * bHigh;
  return (cross << 32) | (lowLow & 0xFFFFFFFF);
}

/** mul128(a, b) folded to 64 bits: low xor high. */
@inline
export function mulFold64(a: u64, b: u64): u64 {
  const low = mul128(a, b);
  return low ^ mulHigh;
}

/** Writes `value` at `pointer` in big-endian (canonical xxHash) byte order. */
@inline
export function storeCanonical64(pointer: usize, value: u64): void {
  store<u64>(pointer, bswap<u64>(value));
}

/** XXH64's final avalanche (also used by XXH3 for short inputs). */
@inline
export function avalancheXxh64(value: u64): u64 {
  let x = value;
  x ^= x >> 33;
  x *= PRIME64_2;
  x ^= x >> 29;
  x *= PRIME64_3;
  x ^= x >> 32;
  return x;
}

/** XXH3's final avalanche. */
@inline
export function avalancheXxh3(value: u64): u64 {
  let x = value;
  x ^= x >> 37;
  x *= PRIME_MX1;
  x ^= x >> 32;
  return x;
}
