//! XXH64 with seed 0 of one block in a caller's memory (xxhash_spec.md, "XXH64"): the per-block
//! digest of digest files made with `--hash xxh64`, written canonical (big-endian) like
//! `xxhsum -H1` prints it. Four 64-bit lanes over 32-byte stripes, then the tail.

const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn read64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[inline(always)]
fn round(lane: u64, input: u64) -> u64 {
    lane.wrapping_add(input.wrapping_mul(PRIME64_2)).rotate_left(31).wrapping_mul(PRIME64_1)
}

#[inline(always)]
fn merge_lane(hash: u64, lane: u64) -> u64 {
    (hash ^ round(0, lane)).wrapping_mul(PRIME64_1).wrapping_add(PRIME64_4)
}

/// The XXH64 (seed 0) of `data`.
pub fn hash(data: &[u8]) -> u64 {
    let stripes = data.len() / 32 * 32;
    let mut hash = if data.len() >= 32 {
        let mut lanes = [PRIME64_1.wrapping_add(PRIME64_2), PRIME64_2, 0, PRIME64_1.wrapping_neg()];
        for stripe in data[..stripes].chunks_exact(32) {
            for (index, lane) in lanes.iter_mut().enumerate() {
                *lane = round(*lane, read64(stripe, index * 8));
            }
        }
        let [a, b, c, d] = lanes;
        let joined = a.rotate_left(1).wrapping_add(b.rotate_left(7)).wrapping_add(c.rotate_left(12)).wrapping_add(d.rotate_left(18));
        lanes.iter().fold(joined, |hash, &lane| merge_lane(hash, lane))
    } else {
        PRIME64_5
    };
    hash = hash.wrapping_add(data.len() as u64);
    let mut rest = &data[stripes..];
    while rest.len() >= 8 {
        hash = (hash ^ round(0, read64(rest, 0))).rotate_left(27).wrapping_mul(PRIME64_1).wrapping_add(PRIME64_4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        let word = u64::from(u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")));
        hash = (hash ^ word.wrapping_mul(PRIME64_1)).rotate_left(23).wrapping_mul(PRIME64_2).wrapping_add(PRIME64_3);
        rest = &rest[4..];
    }
    for &byte in rest {
        hash = (hash ^ u64::from(byte).wrapping_mul(PRIME64_5)).rotate_left(11).wrapping_mul(PRIME64_1);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(PRIME64_2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(PRIME64_3);
    hash ^ (hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // The empty input's digest is the spec's; the others were printed by `xxhsum -H1`
        // (xxHash 0.8.1) for the same bytes.
        assert_eq!(hash(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(hash(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(hash(b"abc"), 0x44BC_2CF5_AD77_0999);
        // Stripes, then 8-, 4- and 1-byte tails: bytes (i * 7) % 251.
        let pattern = |length: usize| (0..length).map(|i| ((i * 7) % 251) as u8).collect::<Vec<u8>>();
        assert_eq!(hash(&pattern(45)), 0x90BE_FE4F_FD33_063B);
        assert_eq!(hash(&pattern(4109)), 0x4842_7B71_D40F_2EB4);
    }
}
