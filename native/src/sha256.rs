//! SHA-256 (FIPS 180-4) of one block in a caller's memory (the per-block digest of digest files
//! made with `--hash sha256`), and of a stream fed in pieces whose state lives in a caller's
//! buffer (the checksums of digest files themselves; src/hash/sha256.ts, which resets it
//! before feeding it). The compression function runs on the CPU's SHA extensions
//! (SHA-NI: `sha256rnds2`, `sha256msg1`, `sha256msg2`) when it has them, checked at run time,
//! and in portable 32-bit arithmetic otherwise; both give the same digest, and the tests check
//! them against each other, the standard's examples and Node's `crypto`.

use crate::args::{buffer_range, stream_state};
use crate::failure::Outcome;

const INITIAL_STATE: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The round constants: the first 32 bits of the fractional parts of the cube roots of the
/// first 64 primes (a test derives them again).
const ROUND_CONSTANTS: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, //
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, //
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, //
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, //
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, //
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, //
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, //
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2, //
];

const CHUNK_BYTES: usize = 64;

/// How the 64-byte chunks are compressed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Engine {
    Portable,
    /// The x86 SHA extensions (with SSSE3 and SSE4.1 for the shuffles and blends around them).
    ShaNi,
}

impl Engine {
    /// The fastest engine this CPU runs.
    pub fn best() -> Engine {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("ssse3")
                && std::arch::is_x86_feature_detected!("sse4.1")
            {
                return Engine::ShaNi;
            }
        }
        Engine::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Portable => "portable",
            Engine::ShaNi => "sha-ni",
        }
    }

    /// Compresses whole 64-byte chunks of each input into its state (N independent messages of
    /// one length: SHA-NI then interleaves their rounds, which hides the latency of each).
    fn compress<const N: usize>(self, states: &mut [[u32; 8]; N], inputs: [&[u8]; N]) {
        debug_assert!(inputs.iter().all(|input| input.len() % CHUNK_BYTES == 0 && input.len() == inputs[0].len()));
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: ShaNi is only chosen (best()) or asked for (tests, after the same check)
            // on a CPU that has the SHA, SSSE3 and SSE4.1 extensions; the inputs hold whole
            // chunks of one length (checked above in debug builds, by the callers here).
            Engine::ShaNi => unsafe { compress_sha_ni(states, inputs) },
            _ => {
                for (state, input) in states.iter_mut().zip(inputs) {
                    input.chunks_exact(CHUNK_BYTES).for_each(|chunk| compress_portable(state, chunk));
                }
            }
        }
    }
}

/// Writes the SHA-256 of each input (32 bytes) at its `outs` slot; the inputs have one length.
fn digest_lanes<const N: usize>(engine: Engine, inputs: [&[u8]; N], outs: [&mut [u8]; N]) {
    let length = inputs[0].len();
    assert!(inputs.iter().all(|input| input.len() == length), "the inputs must have one length");
    let mut states = [INITIAL_STATE; N];
    let whole = length / CHUNK_BYTES * CHUNK_BYTES;
    engine.compress(&mut states, inputs.map(|input| &input[..whole]));
    let tails = inputs.map(|input| Tail::of(&input[whole..], length as u64));
    engine.compress(&mut states, std::array::from_fn(|lane| tails[lane].chunks()));
    for (state, out) in states.iter().zip(outs) {
        write_digest(state, out);
    }
}

/// The last one or two chunks of a message: the `rest` of its data after its whole chunks,
/// 0x80, zeros, and the message's length in bits (big-endian) at the end; two chunks when
/// fewer than 9 bytes are left after the rest.
struct Tail {
    bytes: [u8; 2 * CHUNK_BYTES],
    length: usize,
}

impl Tail {
    fn of(rest: &[u8], message_length: u64) -> Tail {
        debug_assert!(rest.len() < CHUNK_BYTES);
        let length = if rest.len() + 9 <= CHUNK_BYTES { CHUNK_BYTES } else { 2 * CHUNK_BYTES };
        let mut bytes = [0u8; 2 * CHUNK_BYTES];
        bytes[..rest.len()].copy_from_slice(rest);
        bytes[rest.len()] = 0x80;
        bytes[length - 8..length].copy_from_slice(&message_length.wrapping_mul(8).to_be_bytes());
        Tail { bytes, length }
    }

    fn chunks(&self) -> &[u8] {
        &self.bytes[..self.length]
    }
}

/// The digest of a final state: its words, big-endian.
fn write_digest(state: &[u32; 8], out: &mut [u8]) {
    for (word, slot) in state.iter().zip(out[..32].chunks_exact_mut(4)) {
        slot.copy_from_slice(&word.to_be_bytes());
    }
}

/// Bytes of a stream's state in a caller's buffer (sha256StreamReset/Update/Digest): the eight
/// words (little-endian) at 0, the count of bytes fed (u64, little-endian) at STREAM_FED, the
/// partial chunk at STREAM_PARTIAL, and the digest, once asked for, at STREAM_DIGEST.
pub const STREAM_STATE_BYTES: usize = 136;
const STREAM_FED: usize = 32;
const STREAM_PARTIAL: usize = 40;
pub const STREAM_DIGEST: usize = 104;

fn stream_words(state: &[u8]) -> [u32; 8] {
    std::array::from_fn(|index| u32::from_le_bytes(state[index * 4..index * 4 + 4].try_into().expect("4 bytes")))
}

fn store_stream_words(state: &mut [u8], words: &[u32; 8]) {
    for (word, slot) in words.iter().zip(state[..32].chunks_exact_mut(4)) {
        slot.copy_from_slice(&word.to_le_bytes());
    }
}

fn stream_fed(state: &[u8]) -> u64 {
    u64::from_le_bytes(state[STREAM_FED..STREAM_FED + 8].try_into().expect("8 bytes"))
}

/// Starts a SHA-256 stream in `state` (STREAM_STATE_BYTES long).
pub fn stream_reset(state: (usize, usize)) -> Outcome<()> {
    // SAFETY: the buffer comes from Args::array_buffer of the current synchronous call.
    let state = unsafe { stream_state(state, None, STREAM_STATE_BYTES)? };
    state.fill(0);
    store_stream_words(state, &INITIAL_STATE);
    Ok(())
}

/// Feeds the `length` bytes at `data` in `memory` (pieces of any length) to the stream in `state`.
pub fn stream_update(engine: Engine, memory: (usize, usize), data: u64, length: u64, state: (usize, usize)) -> Outcome<()> {
    // SAFETY: the buffers come from Args::array_buffer of the current synchronous call and are
    // distinct (checked), so the two slices do not alias.
    let input = unsafe { buffer_range(memory, data, length)? };
    let state = unsafe { stream_state(state, Some(memory), STREAM_STATE_BYTES)? };
    feed(engine, state, input);
    Ok(())
}

fn feed(engine: Engine, state: &mut [u8], mut input: &[u8]) {
    let fed = stream_fed(state);
    let mut words = [stream_words(state)];
    let pending = (fed % CHUNK_BYTES as u64) as usize;
    state[STREAM_FED..STREAM_FED + 8].copy_from_slice(&fed.wrapping_add(input.len() as u64).to_le_bytes());
    if pending > 0 {
        let take = input.len().min(CHUNK_BYTES - pending);
        state[STREAM_PARTIAL + pending..STREAM_PARTIAL + pending + take].copy_from_slice(&input[..take]);
        input = &input[take..];
        if pending + take < CHUNK_BYTES {
            return; // the chunk is still partial, and nothing else was fed
        }
        let mut chunk = [0u8; CHUNK_BYTES];
        chunk.copy_from_slice(&state[STREAM_PARTIAL..STREAM_PARTIAL + CHUNK_BYTES]);
        engine.compress(&mut words, [&chunk[..]]);
    }
    let whole = input.len() / CHUNK_BYTES * CHUNK_BYTES;
    engine.compress(&mut words, [&input[..whole]]);
    state[STREAM_PARTIAL..STREAM_PARTIAL + input.len() - whole].copy_from_slice(&input[whole..]);
    store_stream_words(state, &words[0]);
}

/// Writes the digest of what the stream in `state` was fed at STREAM_DIGEST. The stream stays
/// as it was: more may be fed, and a later digest covers that too.
pub fn stream_digest(engine: Engine, state: (usize, usize)) -> Outcome<()> {
    // SAFETY: the buffer comes from Args::array_buffer of the current synchronous call.
    let state = unsafe { stream_state(state, None, STREAM_STATE_BYTES)? };
    let fed = stream_fed(state);
    let pending = (fed % CHUNK_BYTES as u64) as usize;
    let mut words = [stream_words(state)];
    let tail = Tail::of(&state[STREAM_PARTIAL..STREAM_PARTIAL + pending], fed);
    engine.compress(&mut words, [tail.chunks()]);
    write_digest(&words[0], &mut state[STREAM_DIGEST..STREAM_DIGEST + 32]);
    Ok(())
}

/// Writes the SHA-256 of `data` (32 bytes) at `out`.
pub fn digest(engine: Engine, data: &[u8], out: &mut [u8]) {
    digest_lanes(engine, [data], [out]);
}

/// Writes the SHA-256s of two inputs of one length at once (twice as fast with SHA-NI).
pub fn digest_pair(engine: Engine, inputs: [&[u8]; 2], outs: [&mut [u8]; 2]) {
    digest_lanes(engine, inputs, outs);
}

fn compress_portable(state: &mut [u32; 8], chunk: &[u8]) {
    let mut schedule = [0u32; 64];
    for (word, bytes) in schedule.iter_mut().zip(chunk.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    for t in 16..64 {
        let (w15, w2) = (schedule[t - 15], schedule[t - 2]);
        let sigma0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
        let sigma1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
        schedule[t] = schedule[t - 16].wrapping_add(sigma0).wrapping_add(schedule[t - 7]).wrapping_add(sigma1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for t in 0..64 {
        let big_sigma1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let choose = (e & f) ^ (!e & g);
        let t1 = h.wrapping_add(big_sigma1).wrapping_add(choose).wrapping_add(ROUND_CONSTANTS[t]).wrapping_add(schedule[t]);
        let big_sigma0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let majority = (a & b) ^ (a & c) ^ (b & c);
        let t2 = big_sigma0.wrapping_add(majority);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (word, value) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *word = word.wrapping_add(value);
    }
}

/// The SHA-NI compression of whole chunks of N messages of one length, their rounds
/// interleaved. The instructions keep the working variables in two registers, (A, B, E, F)
/// and (C, D, G, H) from the high lane down; `sha256rnds2` runs two rounds from the low two
/// lanes of its message operand (words plus round constants) and returns the new (A, B, E, F),
/// while the old one becomes the new (C, D, G, H).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress_sha_ni<const N: usize>(states: &mut [[u32; 8]; N], inputs: [&[u8]; N]) {
    use std::arch::x86_64::*;
    // Byte order within each 32-bit word reversed: the message words are big-endian.
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let mut abef = [_mm_setzero_si128(); N];
    let mut cdgh = [_mm_setzero_si128(); N];
    for lane in 0..N {
        // Lanes from the low one: state[0..4] = (a, b, c, d), state[4..8] = (e, f, g, h).
        let badc = _mm_shuffle_epi32::<0xB1>(_mm_loadu_si128(states[lane].as_ptr().cast()));
        let hgfe = _mm_shuffle_epi32::<0x1B>(_mm_loadu_si128(states[lane].as_ptr().add(4).cast()));
        abef[lane] = _mm_alignr_epi8::<8>(badc, hgfe); // (f, e, b, a)
        cdgh[lane] = _mm_blend_epi16::<0xF0>(hgfe, badc); // (h, g, d, c)
    }
    let constants = ROUND_CONSTANTS.as_ptr();
    for chunk in 0..inputs[0].len() / CHUNK_BYTES {
        let (saved_abef, saved_cdgh) = (abef, cdgh);
        // Each message's last 16 words of the schedule, four per register.
        let mut words = [[_mm_setzero_si128(); 4]; N];
        for lane in 0..N {
            let input = inputs[lane].as_ptr().add(chunk * CHUNK_BYTES);
            for (quarter, slot) in words[lane].iter_mut().enumerate() {
                *slot = _mm_shuffle_epi8(_mm_loadu_si128(input.add(quarter * 16).cast()), swap);
            }
        }
        for group in 0..16 {
            let constant = _mm_loadu_si128(constants.add(group * 4).cast());
            for lane in 0..N {
                let next = if group < 4 {
                    words[lane][group]
                } else {
                    // W[t] = W[t-16] + s0(W[t-15]) + W[t-7] + s1(W[t-2]) for the next four t:
                    // msg1 gives the first two terms, the alignment W[t-7], msg2 adds s1 (of
                    // words it makes itself for the last two).
                    let [w0, w1, w2, w3] = words[lane];
                    let next = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8::<4>(w3, w2)), w3);
                    words[lane] = [w1, w2, w3, next];
                    next
                };
                // Four rounds: the first call makes the (A, B, E, F) of two rounds on, which is
                // the second's; the old one is the (C, D, G, H) two rounds on, so the names hold
                // the right registers after.
                let sum = _mm_add_epi32(next, constant);
                cdgh[lane] = _mm_sha256rnds2_epu32(cdgh[lane], abef[lane], sum);
                abef[lane] = _mm_sha256rnds2_epu32(abef[lane], cdgh[lane], _mm_shuffle_epi32::<0x0E>(sum));
            }
        }
        for lane in 0..N {
            abef[lane] = _mm_add_epi32(abef[lane], saved_abef[lane]);
            cdgh[lane] = _mm_add_epi32(cdgh[lane], saved_cdgh[lane]);
        }
    }
    for lane in 0..N {
        let a_b_e_f = _mm_shuffle_epi32::<0x1B>(abef[lane]); // lanes (a, b, e, f)
        let g_h_c_d = _mm_shuffle_epi32::<0xB1>(cdgh[lane]); // lanes (g, h, c, d)
        _mm_storeu_si128(states[lane].as_mut_ptr().cast(), _mm_blend_epi16::<0xF0>(a_b_e_f, g_h_c_d));
        _mm_storeu_si128(states[lane].as_mut_ptr().add(4).cast(), _mm_alignr_epi8::<8>(g_h_c_d, a_b_e_f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bytes::xorshift_bytes;

    fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn hex(engine: Engine, data: &[u8]) -> String {
        let mut out = [0u8; 32];
        digest(engine, data, &mut out);
        to_hex(&out)
    }

    fn engines() -> Vec<Engine> {
        let mut all = vec![Engine::Portable];
        if Engine::best() == Engine::ShaNi {
            all.push(Engine::ShaNi);
        }
        all
    }

    #[test]
    fn the_round_constants_are_the_cube_roots_of_the_primes() {
        let primes = (2u32..).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0));
        for (constant, prime) in ROUND_CONSTANTS.iter().zip(primes) {
            let root = f64::from(prime).cbrt();
            let fraction = ((root - root.floor()) * 4_294_967_296.0) as u32;
            assert_eq!(*constant, fraction, "the constant of the prime {prime}");
        }
    }

    #[test]
    fn the_standards_examples() {
        // FIPS 180-4's examples (the NIST example files): one chunk, two chunks, and a million 'a's.
        for engine in engines() {
            assert_eq!(hex(engine, b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
            assert_eq!(hex(engine, b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
            assert_eq!(
                hex(engine, b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            );
            assert_eq!(hex(engine, &vec![b'a'; 1_000_000]), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        }
    }

    #[test]
    fn the_engines_agree_at_every_padding_length() {
        if Engine::best() != Engine::ShaNi {
            return; // one engine on this CPU
        }
        let data = xorshift_bytes(0x5eed, 4096 + 200);
        for length in (0..300).chain([4095, 4096, 4097, 4096 + 200]) {
            assert_eq!(hex(Engine::Portable, &data[..length]), hex(Engine::ShaNi, &data[..length]), "length {length}");
        }
    }

    /// The stream's digest of `data` fed in pieces of the given lengths (cycled), asked for after
    /// every piece: each must equal the one-shot digest of what was fed so far.
    fn check_stream(engine: Engine, data: &[u8], pieces: &[usize]) {
        let mut state = vec![0u8; STREAM_STATE_BYTES];
        let buffer = (state.as_mut_ptr() as usize, state.len());
        let memory = (data.as_ptr() as usize, data.len());
        stream_reset(buffer).unwrap();
        let (mut at, mut index) = (0, 0);
        while at < data.len() {
            let length = pieces[index % pieces.len()].min(data.len() - at);
            stream_update(engine, memory, at as u64, length as u64, buffer).unwrap();
            at += length;
            index += 1;
            stream_digest(engine, buffer).unwrap();
            assert_eq!(to_hex(&state[STREAM_DIGEST..STREAM_DIGEST + 32]), hex(Engine::Portable, &data[..at]), "{engine:?}, {at} bytes in pieces of {pieces:?}");
        }
    }

    #[test]
    fn a_stream_gives_the_one_shot_digest_at_every_point() {
        let data = xorshift_bytes(0x51a9, 9000);
        for engine in engines() {
            check_stream(engine, &[], &[1]);
            for pieces in [&[1usize][..], &[63], &[64], &[65], &[7, 120, 1, 64, 300], &[4096], &[9000]] {
                check_stream(engine, &data, pieces);
            }
        }
        // An empty stream: the standard's digest of nothing.
        let mut state = vec![0u8; STREAM_STATE_BYTES];
        let buffer = (state.as_mut_ptr() as usize, state.len());
        stream_reset(buffer).unwrap();
        stream_digest(Engine::best(), buffer).unwrap();
        assert_eq!(to_hex(&state[STREAM_DIGEST..STREAM_DIGEST + 32]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn a_stream_refuses_bad_buffers() {
        let data = [0u8; 16];
        let memory = (data.as_ptr() as usize, data.len());
        let mut short = vec![0u8; STREAM_STATE_BYTES - 1];
        let short_buffer = (short.as_mut_ptr() as usize, short.len());
        assert!(matches!(stream_reset(short_buffer), Err(crate::failure::Failure::Invalid(_))));
        let mut state = vec![0u8; STREAM_STATE_BYTES];
        let buffer = (state.as_mut_ptr() as usize, state.len());
        stream_reset(buffer).unwrap();
        assert!(matches!(stream_update(Engine::Portable, memory, 10, 7, buffer), Err(crate::failure::Failure::Invalid(_))), "past the memory's end");
        assert!(matches!(stream_update(Engine::Portable, buffer, 0, 1, buffer), Err(crate::failure::Failure::Invalid(_))), "the state as the data");
        assert_eq!(u64::from_le_bytes(state[STREAM_FED..STREAM_FED + 8].try_into().unwrap()), 0, "nothing fed");
    }

    #[test]
    fn a_pair_gives_each_inputs_digest() {
        let data = xorshift_bytes(0x9a1f, 2 * 4096 + 400);
        for engine in engines() {
            for length in [0, 1, 55, 56, 64, 119, 120, 4096, 4096 + 200] {
                let (first, second) = (&data[..length], &data[4096 + 200..4096 + 200 + length]);
                let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
                digest_pair(engine, [first, second], [&mut a, &mut b]);
                assert_eq!(to_hex(&a), hex(Engine::Portable, first), "{engine:?}, the first of two {length}-byte inputs");
                assert_eq!(to_hex(&b), hex(Engine::Portable, second), "{engine:?}, the second of two {length}-byte inputs");
            }
        }
    }
}
