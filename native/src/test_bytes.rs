//! Test data for the crate's unit tests (no crates to draw random bytes from).

/// `length` pseudo-random bytes from a xorshift generator seeded with `seed`.
pub fn xorshift_bytes(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
