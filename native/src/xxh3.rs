//! Per-block XXH3-64 / XXH3-128 of blocks in a caller's memory (the digest-frame hasher of
//! `checksum` and `resync --target-digest`), for blocks longer than 240 bytes: the "large input"
//! algorithm of xxhash_spec.md with AVX-512 or AVX2 when the CPU has it (checked at run time), portable
//! 64-bit arithmetic otherwise. Results are bit-identical to the WASM kernels (hash_blocks_nonzero;
//! the addon's is block_digest::hash_blocks_nonzero):
//! one zero flag per block, and for non-zero blocks the canonical (big-endian) digest.

use crate::args::{buffer_range, stream_state};
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

pub(crate) const SECRET_BYTES: usize = 192;
const INITIAL_ACCUMULATORS: [u64; 8] = [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1];
const STRIPE_BYTES: usize = 64;
const STRIPES_PER_BLOCK: usize = (SECRET_BYTES - STRIPE_BYTES) / 8;
/// How far ahead of the stripe being accumulated the SIMD kernels prefetch.
#[cfg(target_arch = "x86_64")]
const PREFETCH_BYTES: usize = 384;
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

/// The stripe schedule of the SIMD kernels, expanded inside each (so that their intrinsics
/// inline): `count` stripes from `$base` as stripes `$first`, `$first + 1`, ... of the input,
/// keyed at (g % 16) * 8 bytes into `$key`, with a scramble after every 16th. The stripes
/// before a scramble go in pairs, even ones into `$acc` and odd ones into a second set added
/// in before the scramble (adds are modulo 2^64, so the sum is the same): with one set LLVM
/// chains both adds of every stripe on the accumulator. `$stripe_sum(data, key)` is what one
/// stripe adds, `$add`, `$zero` and `$scramble(acc, key) -> acc` work on the accumulator type.
#[cfg(target_arch = "x86_64")]
macro_rules! accumulate_in_pairs {
    ($acc:ident, $base:expr, $key:expr, $first:expr, $count:expr, $zero:expr, $add:ident, $stripe_sum:ident, $scramble:ident) => {{
        let (base, key, count): (*const u8, *const u8, usize) = ($base, $key, $count);
        let mut in_block = ($first % STRIPES_PER_BLOCK as u64) as usize;
        let mut n = 0;
        while n < count {
            let run = (STRIPES_PER_BLOCK - in_block).min(count - n);
            let mut other = $zero;
            let mut i = 0;
            while i < run {
                // A hint only (never faults): the stripes 6 ahead, as xxHash's own kernels do.
                _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add((n + i) * STRIPE_BYTES + PREFETCH_BYTES) as *const i8);
                // SAFETY: stripes n + i (and n + i + 1 when i + 1 < run) lie inside the data (the
                // caller asserted count stripes); key offsets stay inside the secret (in_block + i < 16).
                $acc = $add($acc, unsafe { $stripe_sum(base.add((n + i) * STRIPE_BYTES), key.add((in_block + i) * 8)) });
                if i + 1 < run {
                    other = $add(other, unsafe { $stripe_sum(base.add((n + i + 1) * STRIPE_BYTES), key.add((in_block + i + 1) * 8)) });
                }
                i += 2;
            }
            $acc = $add($acc, other);
            n += run;
            in_block += run;
            if in_block == STRIPES_PER_BLOCK {
                // SAFETY: the last 64 bytes of the secret.
                $acc = unsafe { $scramble($acc, key.add(SECRET_BYTES - STRIPE_BYTES)) };
                in_block = 0;
            }
        }
    }};
}

/// The AVX2 kernel: the whole accumulation in one function, accumulators in registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PREFETCH_BYTES, SECRET_BYTES, STRIPES_PER_BLOCK, STRIPE_BYTES};
    use std::arch::x86_64::*;

    /// What one stripe adds to the two accumulator vectors (lanes 0-3 and 4-7): value[i] to
    /// lane i ^ 1, low32(mixed) * high32(mixed) to lane i. Separate from the accumulators, as in
    /// the AVX-512 kernel (avx512::stripe_sum).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn stripe_sum(data: *const u8, key: *const u8) -> [__m256i; 2] {
        std::array::from_fn(|half| {
            // SAFETY: the caller guarantees 64 readable bytes at data and key.
            let (value, key) = unsafe { (_mm256_loadu_si256(data.add(half * 32) as *const __m256i), _mm256_loadu_si256(key.add(half * 32) as *const __m256i)) };
            let mixed = _mm256_xor_si256(value, key);
            let product = _mm256_mul_epu32(mixed, _mm256_shuffle_epi32::<0x31>(mixed));
            // acc[i ^ 1] += value[i]: swap the 64-bit halves of each 128-bit lane.
            _mm256_add_epi64(_mm256_shuffle_epi32::<0x4E>(value), product)
        })
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        [_mm256_add_epi64(a[0], b[0]), _mm256_add_epi64(a[1], b[1])]
    }

    /// acc ^= acc >> 47; acc ^= key; acc *= PRIME32_1 (the multiply split into 32-bit halves).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn scramble(acc: [__m256i; 2], key: *const u8) -> [__m256i; 2] {
        let prime = _mm256_set1_epi32(super::PRIME32_1 as i32);
        std::array::from_fn(|half| {
            let value = acc[half];
            // SAFETY: 64 readable bytes at key (the caller's secret).
            let key = unsafe { _mm256_loadu_si256(key.add(half * 32) as *const __m256i) };
            let mixed = _mm256_xor_si256(_mm256_xor_si256(value, _mm256_srli_epi64::<47>(value)), key);
            let low = _mm256_mul_epu32(mixed, prime);
            let high = _mm256_mul_epu32(_mm256_shuffle_epi32::<0x31>(mixed), prime);
            _mm256_add_epi64(low, _mm256_slli_epi64::<32>(high))
        })
    }

    /// super::accumulate_stripes_portable with AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2; `data` must hold `count` stripes of 64 bytes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn accumulate_stripes(acc_out: &mut [u64; 8], data: &[u8], first: u64, count: usize, secret: &[u8; SECRET_BYTES]) {
        assert!(data.len() >= count * STRIPE_BYTES);
        // SAFETY: acc_out holds 64 bytes.
        let mut acc = unsafe { [_mm256_loadu_si256(acc_out.as_ptr() as *const __m256i), _mm256_loadu_si256(acc_out.as_ptr().add(4) as *const __m256i)] };
        accumulate_in_pairs!(acc, data.as_ptr(), secret.as_ptr(), first, count, [_mm256_setzero_si256(); 2], add, stripe_sum, scramble);
        // SAFETY: acc_out holds 64 bytes.
        unsafe {
            _mm256_storeu_si256(acc_out.as_mut_ptr() as *mut __m256i, acc[0]);
            _mm256_storeu_si256(acc_out.as_mut_ptr().add(4) as *mut __m256i, acc[1]);
        }
    }

    /// The last stripe (spec step 3) with AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2; `last` must hold 64 bytes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn last_stripe(acc_out: &mut [u64; 8], last: &[u8], secret: &[u8; SECRET_BYTES]) {
        assert!(last.len() >= STRIPE_BYTES);
        // SAFETY: as in accumulate_stripes.
        unsafe {
            let mut acc = [_mm256_loadu_si256(acc_out.as_ptr() as *const __m256i), _mm256_loadu_si256(acc_out.as_ptr().add(4) as *const __m256i)];
            acc = add(acc, stripe_sum(last.as_ptr(), secret.as_ptr().add(SECRET_BYTES - STRIPE_BYTES - 7)));
            _mm256_storeu_si256(acc_out.as_mut_ptr() as *mut __m256i, acc[0]);
            _mm256_storeu_si256(acc_out.as_mut_ptr().add(4) as *mut __m256i, acc[1]);
        }
    }
}

/// The AVX-512 kernel: the eight accumulators in one register, one stripe per step.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PREFETCH_BYTES, SECRET_BYTES, STRIPES_PER_BLOCK, STRIPE_BYTES};
    use std::arch::x86_64::*;

    /// What one stripe adds to the accumulators: value[i] to lane i ^ 1, low32(mixed) *
    /// high32(mixed) to lane i. Separate from the accumulators, so that two of them can take
    /// every other stripe (their sums are added before the scramble): one chain of adds would
    /// hold the kernel to two adds' latency per stripe.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn stripe_sum(data: *const u8, key: *const u8) -> __m512i {
        // SAFETY: the caller guarantees 64 readable bytes at data and key.
        let (value, key) = unsafe { (_mm512_loadu_si512(data as *const __m512i), _mm512_loadu_si512(key as *const __m512i)) };
        let mixed = _mm512_xor_si512(value, key);
        let product = _mm512_mul_epu32(mixed, _mm512_shuffle_epi32::<0x31>(mixed));
        _mm512_add_epi64(_mm512_shuffle_epi32::<0x4E>(value), product)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi64(a, b)
    }

    /// acc ^= acc >> 47; acc ^= key; acc *= PRIME32_1 (the multiply split into 32-bit halves).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn scramble(acc: __m512i, key: *const u8) -> __m512i {
        // SAFETY: 64 readable bytes at key (the caller's secret).
        let key = unsafe { _mm512_loadu_si512(key as *const __m512i) };
        let mixed = _mm512_xor_si512(_mm512_xor_si512(acc, _mm512_srli_epi64::<47>(acc)), key);
        let prime = _mm512_set1_epi32(super::PRIME32_1 as i32);
        let low = _mm512_mul_epu32(mixed, prime);
        let high = _mm512_mul_epu32(_mm512_shuffle_epi32::<0x31>(mixed), prime);
        _mm512_add_epi64(low, _mm512_slli_epi64::<32>(high))
    }

    /// super::accumulate_stripes_portable with AVX-512.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `data` must hold `count` stripes of 64 bytes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn accumulate_stripes(acc_out: &mut [u64; 8], data: &[u8], first: u64, count: usize, secret: &[u8; SECRET_BYTES]) {
        assert!(data.len() >= count * STRIPE_BYTES);
        // SAFETY: acc_out holds 64 bytes.
        let mut acc = unsafe { _mm512_loadu_si512(acc_out.as_ptr() as *const __m512i) };
        accumulate_in_pairs!(acc, data.as_ptr(), secret.as_ptr(), first, count, _mm512_setzero_si512(), add, stripe_sum, scramble);
        // SAFETY: acc_out holds 64 bytes.
        unsafe { _mm512_storeu_si512(acc_out.as_mut_ptr() as *mut __m512i, acc) };
    }

    /// The last stripe (spec step 3) with AVX-512.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `last` must hold 64 bytes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn last_stripe(acc_out: &mut [u64; 8], last: &[u8], secret: &[u8; SECRET_BYTES]) {
        assert!(last.len() >= STRIPE_BYTES);
        // SAFETY: as in accumulate_stripes.
        unsafe {
            let acc = _mm512_loadu_si512(acc_out.as_ptr() as *const __m512i);
            let acc = _mm512_add_epi64(acc, stripe_sum(last.as_ptr(), secret.as_ptr().add(SECRET_BYTES - STRIPE_BYTES - 7)));
            _mm512_storeu_si512(acc_out.as_mut_ptr() as *mut __m512i, acc);
        }
    }
}

/// Accumulates `count` stripes of 64 bytes from the start of `data` as stripes `first`,
/// `first + 1`, ... of an input: stripe g is keyed at (g % 16) * 8 bytes into the secret, and
/// a scramble follows every 16th (spec step 2). Portable 64-bit arithmetic.
fn accumulate_stripes_portable(acc: &mut [u64; 8], data: &[u8], first: u64, count: usize, secret: &[u8; SECRET_BYTES]) {
    let mut in_block = (first % STRIPES_PER_BLOCK as u64) as usize;
    for n in 0..count {
        accumulate_portable(acc, &data[n * STRIPE_BYTES..(n + 1) * STRIPE_BYTES], &secret[in_block * 8..]);
        in_block += 1;
        if in_block == STRIPES_PER_BLOCK {
            scramble_portable(acc, secret);
            in_block = 0;
        }
    }
}

/// accumulate_stripes_portable with `kernel`.
fn accumulate_stripes(kernel: Kernel, acc: &mut [u64; 8], data: &[u8], first: u64, count: usize, secret: &[u8; SECRET_BYTES]) {
    match kernel {
        // SAFETY: Kernel::get never picks a kernel the CPU lacks; the kernels check the length.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { avx512::accumulate_stripes(acc, data, first, count, secret) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2::accumulate_stripes(acc, data, first, count, secret) },
        _ => accumulate_stripes_portable(acc, data, first, count, secret),
    }
}

/// The last 64 bytes of an input into the accumulators, with the key of spec step 3.
fn last_stripe(kernel: Kernel, acc: &mut [u64; 8], last: &[u8], secret: &[u8; SECRET_BYTES]) {
    match kernel {
        // SAFETY: as in accumulate_stripes.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { avx512::last_stripe(acc, last, secret) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2::last_stripe(acc, last, secret) },
        _ => accumulate_portable(acc, &last[..STRIPE_BYTES], &secret[SECRET_BYTES - STRIPE_BYTES - 7..]),
    }
}

/// Accumulators after all of `data` (longer than 240 bytes): spec steps 1-3. The stripes
/// before the end are those that start before its last byte: (length - 1) / 64 of them.
fn accumulate_long(kernel: Kernel, data: &[u8], secret: &[u8; SECRET_BYTES]) -> [u64; 8] {
    let mut acc = INITIAL_ACCUMULATORS;
    let length = data.len();
    accumulate_stripes(kernel, &mut acc, data, 0, (length - 1) / STRIPE_BYTES, secret);
    last_stripe(kernel, &mut acc, &data[length - STRIPE_BYTES..], secret);
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
pub(crate) fn secret_for(seed: u64) -> [u8; SECRET_BYTES] {
    let mut secret = [0u8; SECRET_BYTES];
    for at in (0..SECRET_BYTES).step_by(16) {
        secret[at..at + 8].copy_from_slice(&read64(&DEFAULT_SECRET, at).wrapping_add(seed).to_le_bytes());
        secret[at + 8..at + 16].copy_from_slice(&read64(&DEFAULT_SECRET, at + 8).wrapping_sub(seed).to_le_bytes());
    }
    secret
}

/// Writes the canonical digest of `data` (> 240 bytes) at `out`.
pub(crate) fn digest_long(variant: Variant, kernel: Kernel, data: &[u8], secret: &[u8; SECRET_BYTES], out: &mut [u8]) {
    let acc = accumulate_long(kernel, data, secret);
    finish_long(variant, &acc, data.len() as u64, secret, out);
}

/// The canonical digest from the final accumulators of a `length`-byte input (spec step 4).
fn finish_long(variant: Variant, acc: &[u64; 8], length: u64, secret: &[u8; SECRET_BYTES], out: &mut [u8]) {
    let low = merge(acc, secret, 11, length.wrapping_mul(PRIME64_1));
    match variant {
        Variant::Xxh3_64 => out[..8].copy_from_slice(&low.to_be_bytes()),
        Variant::Xxh3_128 => {
            let high = merge(acc, secret, SECRET_BYTES - STRIPE_BYTES - 11, !length.wrapping_mul(PRIME64_2));
            out[..8].copy_from_slice(&high.to_be_bytes());
            out[8..16].copy_from_slice(&low.to_be_bytes());
        }
    }
}

pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(256);
    for chunk in &mut chunks {
        if chunk.iter().fold(0u8, |any, &byte| any | byte) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&byte| byte == 0)
}

/// The accumulation kernel XXH3 runs with: the widest the CPU has, unless
/// VHDSYNC_NATIVE_HASH_KERNEL names a narrower one ("avx2" or "portable": the tests' way to check
/// every kernel against the WASM one on one CPU).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kernel {
    Portable,
    Avx2,
    Avx512,
}

impl Kernel {
    pub fn get() -> Kernel {
        static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(|| {
            let widest = Kernel::widest();
            match std::env::var("VHDSYNC_NATIVE_HASH_KERNEL").as_deref() {
                Ok("portable") => Kernel::Portable,
                Ok("avx2") => widest.min(Kernel::Avx2),
                _ => widest,
            }
        })
    }

    /// The widest kernel this CPU runs.
    pub fn widest() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }
}

impl PartialOrd for Kernel {
    fn partial_cmp(&self, other: &Kernel) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kernel {
    fn cmp(&self, other: &Kernel) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// Whether AVX2 code may run (the zero-and-compare kernel of scan.rs): the CPU has it and the
/// portable kernel was not asked for.
pub fn uses_avx2() -> bool {
    Kernel::get() >= Kernel::Avx2
}

/// Bytes of a whole-input XXH3 stream's state (a caller's ArrayBuffer, little-endian):
/// accumulators [0, 64), total length [64, 72), bytes fed [72, 80), the last 64 bytes fed
/// [80, 144), the canonical digest once finished [144, 160).
pub const STREAM_STATE_BYTES: usize = 160;
const STREAM_TOTAL: usize = 64;
const STREAM_FED: usize = 72;
const STREAM_CARRY: usize = 80;
pub const STREAM_DIGEST: usize = 144;

fn accumulators_of(state: &[u8]) -> [u64; 8] {
    std::array::from_fn(|lane| read64(state, lane * 8))
}

/// Starts an XXH3 stream (default secret, seed 0) over an input of `total` bytes, which must
/// be longer than 240 (shorter inputs take paths only the WASM kernels implement).
pub fn stream_reset(state: (usize, usize), total: u64) -> Outcome<()> {
    if total as usize <= MIDSIZE_MAX_BYTES {
        return Err(Failure::Invalid(format!("a stream must be longer than {MIDSIZE_MAX_BYTES} bytes, got {total}")));
    }
    // SAFETY: the buffer comes from Args::array_buffer of the current synchronous call.
    let state = unsafe { stream_state(state, None, STREAM_STATE_BYTES)? };
    state.fill(0);
    for (lane, value) in INITIAL_ACCUMULATORS.iter().enumerate() {
        state[lane * 8..lane * 8 + 8].copy_from_slice(&value.to_le_bytes());
    }
    state[STREAM_TOTAL..STREAM_TOTAL + 8].copy_from_slice(&total.to_le_bytes());
    Ok(())
}

/// Feeds the next `length` bytes at `data` in `memory`. Every piece but the last must be a
/// multiple of 64 bytes, and the pieces must not add up to more than the stream's total.
pub fn stream_update(memory: (usize, usize), data: u64, length: u64, state: (usize, usize)) -> Outcome<()> {
    // SAFETY: the buffers come from Args::array_buffer of the current synchronous call and are
    // distinct (checked), so the two slices do not alias.
    let input = unsafe { buffer_range(memory, data, length)? };
    let state = unsafe { stream_state(state, Some(memory), STREAM_STATE_BYTES)? };
    let total = read64(state, STREAM_TOTAL);
    let fed = read64(state, STREAM_FED);
    if total == 0 {
        return Err(Failure::Invalid("the stream was not started".to_string()));
    }
    if fed.checked_add(length).is_none_or(|end| end > total) {
        return Err(Failure::Invalid(format!("{length} more bytes would pass the stream's total of {total} ({fed} fed)")));
    }
    if fed + length < total && length % STRIPE_BYTES as u64 != 0 {
        return Err(Failure::Invalid(format!("every piece but the last must be a multiple of {STRIPE_BYTES} bytes, got {length}")));
    }
    // Stripes that start before the input's last byte are accumulated as they come; the last
    // 64 bytes are kept for the final stripe.
    let first = fed / STRIPE_BYTES as u64;
    let normal = (total - 1) / STRIPE_BYTES as u64;
    let count = (length / STRIPE_BYTES as u64).min(normal.saturating_sub(first)) as usize;
    let mut acc = accumulators_of(state);
    accumulate_stripes(Kernel::get(), &mut acc, input, first, count, &secret_for(0));
    for (lane, value) in acc.iter().enumerate() {
        state[lane * 8..lane * 8 + 8].copy_from_slice(&value.to_le_bytes());
    }
    let carry = &mut state[STREAM_CARRY..STREAM_CARRY + STRIPE_BYTES];
    let kept = input.len().min(STRIPE_BYTES);
    carry.copy_within(kept.., 0);
    carry[STRIPE_BYTES - kept..].copy_from_slice(&input[input.len() - kept..]);
    state[STREAM_FED..STREAM_FED + 8].copy_from_slice(&(fed + length).to_le_bytes());
    Ok(())
}

/// Finishes the stream: writes the canonical `variant` digest at [144, 144 + 8 or 16) of the
/// state. Every byte of the total must have been fed.
pub fn stream_digest(state: (usize, usize), variant: Variant) -> Outcome<()> {
    // SAFETY: the buffer comes from Args::array_buffer of the current synchronous call.
    let state = unsafe { stream_state(state, None, STREAM_STATE_BYTES)? };
    let total = read64(state, STREAM_TOTAL);
    let fed = read64(state, STREAM_FED);
    if total == 0 || fed != total {
        return Err(Failure::Invalid(format!("the stream has {fed} of its {total} bytes")));
    }
    let secret = secret_for(0);
    let mut acc = accumulators_of(state);
    let mut last = [0u8; STRIPE_BYTES];
    last.copy_from_slice(&state[STREAM_CARRY..STREAM_CARRY + STRIPE_BYTES]);
    last_stripe(Kernel::get(), &mut acc, &last, &secret);
    finish_long(variant, &acc, total, &secret, &mut state[STREAM_DIGEST..STREAM_DIGEST + 16]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bytes::xorshift_bytes;

    /// Feeds `data` to a stream in pieces of `piece` bytes (the last one shorter).
    fn streamed(data: &[u8], piece: usize, variant: Variant) -> [u8; 16] {
        let mut state = vec![0u8; STREAM_STATE_BYTES];
        let memory = (data.as_ptr() as usize, data.len());
        let state_buffer = (state.as_mut_ptr() as usize, state.len());
        stream_reset(state_buffer, data.len() as u64).unwrap();
        let mut at = 0;
        while at < data.len() {
            let length = piece.min(data.len() - at);
            stream_update(memory, at as u64, length as u64, state_buffer).unwrap();
            at += length;
        }
        stream_digest(state_buffer, variant).unwrap();
        let mut out = [0u8; 16];
        out.copy_from_slice(&state[STREAM_DIGEST..STREAM_DIGEST + 16]);
        out
    }

    #[test]
    fn stream_equals_one_shot() {
        let secret = secret_for(0);
        for length in [241usize, 255, 256, 257, 1023, 1024, 1025, 1088, 1089, 4096, 5000, 65536, 65600, 100_003] {
            let data = xorshift_bytes(length as u64 + 7, length);
            for variant in [Variant::Xxh3_64, Variant::Xxh3_128] {
                let mut expected = [0u8; 16];
                digest_long(variant, Kernel::get(), &data, &secret, &mut expected);
                for piece in [64usize, 128, 1024, 4096, 65536, 1 << 20] {
                    assert_eq!(streamed(&data, piece, variant), expected, "length {length}, pieces of {piece}");
                }
            }
        }
    }

    #[test]
    fn stream_refusals() {
        let data = xorshift_bytes(3, 4096);
        let memory = (data.as_ptr() as usize, data.len());
        let mut state = vec![0u8; STREAM_STATE_BYTES];
        let state_buffer = (state.as_mut_ptr() as usize, state.len());
        assert!(stream_reset(state_buffer, 240).is_err(), "short inputs");
        assert!(stream_update(memory, 0, 64, state_buffer).is_err(), "not started");
        stream_reset(state_buffer, 1000).unwrap();
        assert!(stream_update(memory, 0, 100, state_buffer).is_err(), "a piece that is not the last must be whole stripes");
        assert!(stream_update(memory, 0, 1024, state_buffer).is_err(), "past the total");
        assert!(stream_update(memory, 4000, 128, state_buffer).is_err(), "outside the memory");
        assert!(stream_update((state.as_ptr() as usize, state.len()), 0, 64, state_buffer).is_err(), "state aliasing the data");
        stream_update(memory, 0, 960, state_buffer).unwrap();
        assert!(stream_digest(state_buffer, Variant::Xxh3_128).is_err(), "unfinished");
        let short = (state.as_mut_ptr() as usize, 100);
        assert!(stream_reset(short, 1000).is_err(), "state too small");
    }

    #[test]
    fn every_kernel_the_cpu_has_agrees_with_the_portable_one() {
        let secret = secret_for(0);
        let kernels: Vec<Kernel> = [Kernel::Avx2, Kernel::Avx512].into_iter().filter(|kernel| *kernel <= Kernel::widest()).collect();
        for length in [241usize, 255, 256, 1023, 1024, 1025, 4096, 5000, 65536] {
            let data = xorshift_bytes(length as u64, length);
            for variant in [Variant::Xxh3_64, Variant::Xxh3_128] {
                let mut expected = [0u8; 16];
                digest_long(variant, Kernel::Portable, &data, &secret, &mut expected);
                for kernel in &kernels {
                    let mut got = [0u8; 16];
                    digest_long(variant, *kernel, &data, &secret, &mut got);
                    assert_eq!(got, expected, "{} kernel, length {length}", kernel.name());
                }
            }
        }
    }
}
