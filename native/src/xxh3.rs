//! Per-block XXH3-64 / XXH3-128 of blocks in a caller's memory (the digest-frame hasher of
//! `checksum` and `resync --target-digest`), for blocks longer than 240 bytes: the "large input"
//! algorithm of xxhash_spec.md with AVX2 when the CPU has it (checked at run time), portable
//! 64-bit arithmetic otherwise. Results are bit-identical to the WASM kernels (hash_blocks_nonzero):
//! one zero flag per block, and for non-zero blocks the canonical (big-endian) digest.

use crate::failure::{Failure, Outcome};

const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;
const PRIME_MX1: u64 = 0x1656_6791_9E37_79F9;

const SECRET_BYTES: usize = 192;
const INITIAL_ACCUMULATORS: [u64; 8] = [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1];
const STRIPE_BYTES: usize = 64;
const STRIPES_PER_BLOCK: usize = (SECRET_BYTES - STRIPE_BYTES) / 8;
const BLOCK_BYTES: usize = STRIPE_BYTES * STRIPES_PER_BLOCK;
/// Inputs up to this length take the short/medium paths, which only the WASM kernels implement.
pub const MIDSIZE_MAX_BYTES: usize = 240;

/// The default secret (xxhash_spec.md, "Seed and Secret").
const DEFAULT_SECRET: [u8; SECRET_BYTES] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, //
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, //
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21, //
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c, //
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, //
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8, //
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, //
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, //
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, //
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, //
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, //
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e, //
];

/// Which digest to write: ids as in the WASM kernels (`xxhsum -H<n>`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Xxh3_128,
    Xxh3_64,
}

impl Variant {
    pub fn from_id(id: u64) -> Outcome<Variant> {
        match id {
            2 => Ok(Variant::Xxh3_128),
            3 => Ok(Variant::Xxh3_64),
            _ => Err(Failure::Invalid(format!("algorithm must be 2 (xxh3-128) or 3 (xxh3-64), got {id}"))),
        }
    }

    fn digest_bytes(self) -> usize {
        match self {
            Variant::Xxh3_128 => 16,
            Variant::Xxh3_64 => 8,
        }
    }
}

#[inline(always)]
fn read64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn mul_fold64(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(PRIME_MX1);
    h ^ (h >> 32)
}

/// One stripe into the accumulators, portable 64-bit arithmetic (spec step 2-1).
fn accumulate_portable(acc: &mut [u64; 8], data: &[u8], key: &[u8]) {
    for lane in 0..8 {
        let value = read64(data, lane * 8);
        let mixed = value ^ read64(key, lane * 8);
        acc[lane ^ 1] = acc[lane ^ 1].wrapping_add(value);
        acc[lane] = acc[lane].wrapping_add((mixed & 0xFFFF_FFFF).wrapping_mul(mixed >> 32));
    }
}

/// The per-block scramble with the last 64 bytes of the secret (spec step 2-2).
fn scramble_portable(acc: &mut [u64; 8], secret: &[u8; SECRET_BYTES]) {
    for (lane, value) in acc.iter_mut().enumerate() {
        let mut a = *value;
        a ^= a >> 47;
        a ^= read64(secret, SECRET_BYTES - STRIPE_BYTES + lane * 8);
        *value = a.wrapping_mul(PRIME32_1);
    }
}

/// The AVX2 kernel: the whole accumulation in one function, accumulators in registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK_BYTES, SECRET_BYTES, STRIPES_PER_BLOCK, STRIPE_BYTES};
    use std::arch::x86_64::*;

    /// One stripe into the two accumulator vectors (lanes 0-3 and 4-7).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn stripe(acc: &mut [__m256i; 2], data: *const u8, key: *const u8) {
        for half in 0..2 {
            // SAFETY: the caller guarantees 64 readable bytes at data and key.
            let value = unsafe { _mm256_loadu_si256(data.add(half * 32) as *const __m256i) };
            let key = unsafe { _mm256_loadu_si256(key.add(half * 32) as *const __m256i) };
            let mixed = _mm256_xor_si256(value, key);
            // low32(mixed) * high32(mixed) per 64-bit lane.
            let product = _mm256_mul_epu32(mixed, _mm256_shuffle_epi32::<0x31>(mixed));
            // acc[i ^ 1] += value[i]: swap the 64-bit halves of each 128-bit lane.
            let swapped = _mm256_shuffle_epi32::<0x4E>(value);
            acc[half] = _mm256_add_epi64(acc[half], _mm256_add_epi64(swapped, product));
        }
    }

    /// acc ^= acc >> 47; acc ^= key; acc *= PRIME32_1 (the multiply split into 32-bit halves).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn scramble(acc: &mut [__m256i; 2], key: *const u8) {
        let prime = _mm256_set1_epi32(super::PRIME32_1 as i32);
        for half in 0..2 {
            let value = acc[half];
            // SAFETY: 64 readable bytes at key (the caller's secret).
            let key = unsafe { _mm256_loadu_si256(key.add(half * 32) as *const __m256i) };
            let mixed = _mm256_xor_si256(_mm256_xor_si256(value, _mm256_srli_epi64::<47>(value)), key);
            let low = _mm256_mul_epu32(mixed, prime);
            let high = _mm256_mul_epu32(_mm256_shuffle_epi32::<0x31>(mixed), prime);
            acc[half] = _mm256_add_epi64(low, _mm256_slli_epi64::<32>(high));
        }
    }

    /// super::accumulate_long with AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2; `data` must be longer than 240 bytes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn accumulate_long(data: &[u8], secret: &[u8; SECRET_BYTES], initial: &[u64; 8]) -> [u64; 8] {
        // SAFETY: initial holds 64 bytes.
        let mut acc = unsafe {
            [_mm256_loadu_si256(initial.as_ptr() as *const __m256i), _mm256_loadu_si256(initial.as_ptr().add(4) as *const __m256i)]
        };
        let length = data.len();
        let blocks = (length - 1) / BLOCK_BYTES;
        let base = data.as_ptr();
        let key = secret.as_ptr();
        // SAFETY (all the stripes below): every stripe lies inside data (see super::accumulate_long)
        // and every key offset inside the 192-byte secret.
        for block in 0..blocks {
            for n in 0..STRIPES_PER_BLOCK {
                unsafe { stripe(&mut acc, base.add(block * BLOCK_BYTES + n * STRIPE_BYTES), key.add(n * 8)) };
            }
            unsafe { scramble(&mut acc, key.add(SECRET_BYTES - STRIPE_BYTES)) };
        }
        let stripes = (length - 1 - blocks * BLOCK_BYTES) / STRIPE_BYTES;
        for n in 0..stripes {
            unsafe { stripe(&mut acc, base.add(blocks * BLOCK_BYTES + n * STRIPE_BYTES), key.add(n * 8)) };
        }
        unsafe { stripe(&mut acc, base.add(length - STRIPE_BYTES), key.add(SECRET_BYTES - STRIPE_BYTES - 7)) };
        let mut out = [0u64; 8];
        // SAFETY: out holds 64 bytes.
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, acc[0]);
            _mm256_storeu_si256(out.as_mut_ptr().add(4) as *mut __m256i, acc[1]);
        }
        out
    }
}

/// Accumulators after all of `data` (longer than 240 bytes): spec steps 1-3.
fn accumulate_long(data: &[u8], secret: &[u8; SECRET_BYTES]) -> [u64; 8] {
    let mut acc = INITIAL_ACCUMULATORS;
    let length = data.len();
    let blocks = (length - 1) / BLOCK_BYTES;
    for block in 0..blocks {
        for stripe in 0..STRIPES_PER_BLOCK {
            let at = block * BLOCK_BYTES + stripe * STRIPE_BYTES;
            accumulate_portable(&mut acc, &data[at..at + STRIPE_BYTES], &secret[stripe * 8..]);
        }
        scramble_portable(&mut acc, secret);
    }
    let stripes = (length - 1 - blocks * BLOCK_BYTES) / STRIPE_BYTES;
    for stripe in 0..stripes {
        let at = blocks * BLOCK_BYTES + stripe * STRIPE_BYTES;
        accumulate_portable(&mut acc, &data[at..at + STRIPE_BYTES], &secret[stripe * 8..]);
    }
    accumulate_portable(&mut acc, &data[length - STRIPE_BYTES..], &secret[SECRET_BYTES - STRIPE_BYTES - 7..]);
    acc
}

fn merge(acc: &[u64; 8], secret: &[u8; SECRET_BYTES], key_offset: usize, initial: u64) -> u64 {
    let mut result = initial;
    for pair in 0..4 {
        let at = key_offset + pair * 16;
        result = result.wrapping_add(mul_fold64(acc[pair * 2] ^ read64(secret, at), acc[pair * 2 + 1] ^ read64(secret, at + 8)));
    }
    avalanche(result)
}

/// The secret for `seed` (spec "Seed and Secret"; seed 0 gives the default secret).
fn secret_for(seed: u64) -> [u8; SECRET_BYTES] {
    let mut secret = [0u8; SECRET_BYTES];
    for at in (0..SECRET_BYTES).step_by(16) {
        secret[at..at + 8].copy_from_slice(&read64(&DEFAULT_SECRET, at).wrapping_add(seed).to_le_bytes());
        secret[at + 8..at + 16].copy_from_slice(&read64(&DEFAULT_SECRET, at + 8).wrapping_sub(seed).to_le_bytes());
    }
    secret
}

/// Writes the canonical digest of `data` (> 240 bytes) at `out`.
fn digest_long(variant: Variant, avx2: bool, data: &[u8], secret: &[u8; SECRET_BYTES], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: avx2 is only true when the CPU has AVX2 (uses_avx2); data is longer than 240 bytes.
    let acc = if avx2 { unsafe { avx2::accumulate_long(data, secret, &INITIAL_ACCUMULATORS) } } else { accumulate_long(data, secret) };
    #[cfg(not(target_arch = "x86_64"))]
    let acc = {
        let _ = avx2;
        accumulate_long(data, secret)
    };
    let length = data.len() as u64;
    let low = merge(&acc, secret, 11, length.wrapping_mul(PRIME64_1));
    match variant {
        Variant::Xxh3_64 => out[..8].copy_from_slice(&low.to_be_bytes()),
        Variant::Xxh3_128 => {
            let high = merge(&acc, secret, SECRET_BYTES - STRIPE_BYTES - 11, !length.wrapping_mul(PRIME64_2));
            out[..8].copy_from_slice(&high.to_be_bytes());
            out[8..16].copy_from_slice(&low.to_be_bytes());
        }
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(256);
    for chunk in &mut chunks {
        if chunk.iter().fold(0u8, |any, &byte| any | byte) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&byte| byte == 0)
}

/// Whether the AVX2 kernel runs: the CPU has AVX2 and VHDSYNC_NATIVE_HASH_KERNEL is not
/// "portable" (the tests' way to check the portable kernel against the WASM one on any CPU).
pub fn uses_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        let forced_portable = std::env::var("VHDSYNC_NATIVE_HASH_KERNEL").is_ok_and(|kernel| kernel == "portable");
        #[cfg(target_arch = "x86_64")]
        let detected = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let detected = false;
        detected && !forced_portable
    })
}

/// Hashes the blocks of `length` bytes at `data` into `memory`: zero flags at `zero_out`,
/// digests of non-zero blocks at `out` (slot i for block i). Every block, the last one
/// included, must be longer than 240 bytes. Returns the number of non-zero blocks.
pub fn hash_blocks_nonzero(memory: (usize, usize), variant: Variant, data: u64, length: u64, block_size: u64, out: u64, zero_out: u64) -> Outcome<u64> {
    if block_size == 0 || !block_size.is_power_of_two() {
        return Err(Failure::Invalid(format!("blockSize must be a power of two, got {block_size}")));
    }
    let blocks = length.div_ceil(block_size);
    let tail = length % block_size;
    if (block_size as usize) <= MIDSIZE_MAX_BYTES || (tail != 0 && tail as usize <= MIDSIZE_MAX_BYTES) {
        return Err(Failure::Invalid(format!("every block must be longer than {MIDSIZE_MAX_BYTES} bytes (block size {block_size}, last block {tail})")));
    }
    let digest_bytes = variant.digest_bytes() as u64;
    let inside = |start: u64, bytes: u64| start.checked_add(bytes).is_some_and(|end| end <= memory.1 as u64);
    if !inside(data, length) || !inside(out, blocks * digest_bytes) || !inside(zero_out, blocks) {
        return Err(Failure::Invalid(format!("a range lies outside the memory ({} bytes)", memory.1)));
    }
    let apart = |a: u64, a_len: u64, b: u64, b_len: u64| a_len == 0 || b_len == 0 || a + a_len <= b || b + b_len <= a;
    if !apart(data, length, out, blocks * digest_bytes) || !apart(data, length, zero_out, blocks) || !apart(out, blocks * digest_bytes, zero_out, blocks) {
        return Err(Failure::Invalid("data, digests and zero flags must not overlap".to_string()));
    }
    // SAFETY: the three ranges lie inside the buffer and do not overlap (checked above), and the
    // buffer stays valid during this synchronous call on its own thread.
    let (input, digests, flags) = unsafe {
        let base = memory.0 as *mut u8;
        (
            std::slice::from_raw_parts(base.add(data as usize), length as usize),
            std::slice::from_raw_parts_mut(base.add(out as usize), (blocks * digest_bytes) as usize),
            std::slice::from_raw_parts_mut(base.add(zero_out as usize), blocks as usize),
        )
    };
    let secret = secret_for(0);
    let avx2 = uses_avx2();
    let mut non_zero = 0u64;
    for (index, block) in input.chunks(block_size as usize).enumerate() {
        let zero = is_zero(block);
        flags[index] = u8::from(zero);
        if zero {
            continue;
        }
        non_zero += 1;
        let slot = &mut digests[index * digest_bytes as usize..(index + 1) * digest_bytes as usize];
        digest_long(variant, avx2, block, &secret, slot);
    }
    Ok(non_zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(length: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..length)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn avx2_and_portable_agree() {
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let secret = secret_for(0);
        for length in [241usize, 255, 256, 1023, 1024, 1025, 4096, 5000, 65536] {
            let data = sample(length, length as u64);
            for variant in [Variant::Xxh3_64, Variant::Xxh3_128] {
                let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
                digest_long(variant, false, &data, &secret, &mut a);
                digest_long(variant, true, &data, &secret, &mut b);
                assert_eq!(a, b, "length {length}");
            }
        }
    }
}
