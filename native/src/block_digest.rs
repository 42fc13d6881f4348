//! The per-block digests of digest frames (hash_scan.rs): the four algorithms a digest file can
//! name, with the ids the TypeScript side passes (`xxhsum -H<n>` numbering for the xxHash ones,
//! 4 for SHA-256), and one digester per job holding what each needs (XXH3's kernel and secret,
//! SHA-256's engine).

use crate::failure::{Failure, Outcome};
use crate::sha256;
use crate::xxh3::{self, MIDSIZE_MAX_BYTES, SECRET_BYTES};
use crate::xxh64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Algorithm {
    Xxh64,
    Xxh3_128,
    Xxh3_64,
    Sha256,
}

/// The algorithms by name, as `hashScanAlgorithms` lists them for the TypeScript side.
pub const NAMES: &str = "xxh64,xxh3-128,xxh3-64,sha256";

impl Algorithm {
    pub fn from_id(id: u64) -> Outcome<Algorithm> {
        match id {
            1 => Ok(Algorithm::Xxh64),
            2 => Ok(Algorithm::Xxh3_128),
            3 => Ok(Algorithm::Xxh3_64),
            4 => Ok(Algorithm::Sha256),
            _ => Err(Failure::Invalid(format!("algorithm must be 1 (xxh64), 2 (xxh3-128), 3 (xxh3-64) or 4 (sha256), got {id}"))),
        }
    }

    pub fn digest_bytes(self) -> usize {
        match self {
            Algorithm::Xxh64 | Algorithm::Xxh3_64 => 8,
            Algorithm::Xxh3_128 => 16,
            Algorithm::Sha256 => 32,
        }
    }

    /// The shortest block it digests here: XXH3 only has its long-input path natively (the
    /// WASM kernels take shorter last blocks), the others take any length.
    pub fn shortest_block(self) -> u64 {
        match self {
            Algorithm::Xxh3_128 | Algorithm::Xxh3_64 => MIDSIZE_MAX_BYTES as u64 + 1,
            Algorithm::Xxh64 | Algorithm::Sha256 => 1,
        }
    }
}

/// The SHA-256 engine in use: the CPU's best, or the portable one when
/// VHDSYNC_NATIVE_HASH_KERNEL=portable asks for portable code (as for XXH3).
pub fn sha_engine() -> sha256::Engine {
    if xxh3::Kernel::get() == xxh3::Kernel::Portable {
        sha256::Engine::Portable
    } else {
        sha256::Engine::best()
    }
}

/// Digests blocks with one algorithm.
pub struct BlockDigester {
    algorithm: Algorithm,
    kernel: xxh3::Kernel,
    secret: [u8; SECRET_BYTES],
    sha: sha256::Engine,
}

impl BlockDigester {
    pub fn new(algorithm: Algorithm) -> BlockDigester {
        BlockDigester { algorithm, kernel: xxh3::Kernel::get(), secret: xxh3::secret_for(0), sha: sha_engine() }
    }

    /// Writes the canonical digest of each block (at least `shortest_block()` bytes) into its
    /// slot, two at a time (digest_two).
    pub fn digest_all<'a>(&self, blocks: impl Iterator<Item = (&'a [u8], &'a mut [u8])>) {
        let mut waiting: Option<(&[u8], &mut [u8])> = None;
        for (block, slot) in blocks {
            match waiting.take() {
                Some((first, first_slot)) => self.digest_two([first, block], [first_slot, slot]),
                None => waiting = Some((block, slot)),
            }
        }
        if let Some((block, slot)) = waiting {
            self.digest(block, slot);
        }
    }

    /// Writes the digests of two blocks: SHA-256 runs the two messages interleaved when they
    /// have one length (~1.4x the speed of one after the other).
    pub fn digest_two(&self, blocks: [&[u8]; 2], outs: [&mut [u8]; 2]) {
        let [first_out, second_out] = outs;
        if self.algorithm == Algorithm::Sha256 && blocks[0].len() == blocks[1].len() {
            sha256::digest_pair(self.sha, blocks, [first_out, second_out]);
        } else {
            self.digest(blocks[0], first_out);
            self.digest(blocks[1], second_out);
        }
    }

    /// Writes the canonical digest of `data` (at least `shortest_block()` bytes) into `out`.
    pub fn digest(&self, data: &[u8], out: &mut [u8]) {
        match self.algorithm {
            Algorithm::Xxh3_128 => xxh3::digest_long(xxh3::Variant::Xxh3_128, self.kernel, data, &self.secret, out),
            Algorithm::Xxh3_64 => xxh3::digest_long(xxh3::Variant::Xxh3_64, self.kernel, data, &self.secret, out),
            Algorithm::Xxh64 => out[..8].copy_from_slice(&xxh64::hash(data).to_be_bytes()),
            Algorithm::Sha256 => sha256::digest(self.sha, data, out),
        }
    }
}

/// Hashes the blocks of `length` bytes at `data` into `memory`: zero flags at `zero_out`,
/// digests of non-zero blocks at `out` (slot i for block i; zero blocks' slots are left as
/// they were). Every block, the last one included, must be at least the algorithm's
/// `shortest_block()` long. Returns the number of non-zero blocks. (`hashBlocksNonZero`: the
/// WASM scanners' per-window hashing, src/hash/hash-bytes.ts.)
pub fn hash_blocks_nonzero(memory: (usize, usize), algorithm: Algorithm, data: u64, length: u64, block_size: u64, out: u64, zero_out: u64) -> Outcome<u64> {
    if block_size == 0 || !block_size.is_power_of_two() {
        return Err(Failure::Invalid(format!("blockSize must be a power of two, got {block_size}")));
    }
    let blocks = length.div_ceil(block_size);
    let tail = length % block_size;
    let shortest = algorithm.shortest_block();
    if block_size < shortest || (tail != 0 && tail < shortest) {
        return Err(Failure::Invalid(format!("every block must be at least {shortest} bytes long (block size {block_size}, last block {tail})")));
    }
    let digest_bytes = algorithm.digest_bytes() as u64;
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
    let blocks = input.chunks(block_size as usize);
    for (flag, block) in flags.iter_mut().zip(blocks.clone()) {
        *flag = u8::from(xxh3::is_zero(block));
    }
    // Slot i for block i: the non-zero blocks with their own slots.
    let slots = blocks.zip(digests.chunks_exact_mut(digest_bytes as usize));
    BlockDigester::new(algorithm).digest_all(slots.zip(flags.iter()).filter(|(_, &zero)| zero == 0).map(|(pair, _)| pair));
    Ok(flags.iter().filter(|&&zero| zero == 0).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bytes::xorshift_bytes;

    const ALL: [Algorithm; 4] = [Algorithm::Xxh64, Algorithm::Xxh3_128, Algorithm::Xxh3_64, Algorithm::Sha256];

    #[test]
    fn blocks_get_zero_flags_and_each_its_own_digest() {
        // Nine blocks of 4 KiB and a last one of 700 bytes; blocks 1, 4 and 5 are zeros, so the
        // data blocks pair up across them and one is left over.
        const B: usize = 4096;
        let length = 9 * B + 700;
        let mut memory = xorshift_bytes(11, length);
        for zero in [1, 4, 5] {
            memory[zero * B..(zero + 1) * B].fill(0);
        }
        let input = memory.clone();
        for algorithm in ALL {
            let size = algorithm.digest_bytes();
            let (out, zero_out) = (length, length + 10 * size);
            memory.resize(zero_out + 10, 0xAA);
            memory[length..].fill(0xAA);
            let count = hash_blocks_nonzero((memory.as_ptr() as usize, memory.len()), algorithm, 0, length as u64, B as u64, out as u64, zero_out as u64);
            assert_eq!(count.ok(), Some(7), "{algorithm:?}: non-zero blocks");
            let digester = BlockDigester::new(algorithm);
            for (index, block) in input.chunks(B).enumerate() {
                let zero = [1, 4, 5].contains(&index);
                assert_eq!(memory[zero_out + index], u8::from(zero), "{algorithm:?}: block {index}'s flag");
                let slot = &memory[out + index * size..out + (index + 1) * size];
                if zero {
                    assert!(slot.iter().all(|&byte| byte == 0xAA), "{algorithm:?}: a zero block's slot is left as it was");
                } else {
                    let mut expected = vec![0u8; size];
                    digester.digest(block, &mut expected);
                    assert_eq!(slot, &expected[..], "{algorithm:?}: block {index}'s digest");
                }
            }
        }
    }

    #[test]
    fn only_xxh3_refuses_short_blocks() {
        let mut memory = vec![1u8; 4096 + 100 + 2 * 32 + 2];
        let buffer = (memory.as_mut_ptr() as usize, memory.len());
        for algorithm in ALL {
            let result = hash_blocks_nonzero(buffer, algorithm, 0, 4096 + 100, 4096, 4196, 4196 + 64);
            let xxh3 = matches!(algorithm, Algorithm::Xxh3_128 | Algorithm::Xxh3_64);
            assert_eq!(result.is_err(), xxh3, "{algorithm:?} and a 100-byte last block");
        }
        assert!(hash_blocks_nonzero(buffer, Algorithm::Sha256, 0, 4096, 4096, 100, 4196).is_err(), "digests over the data");
        assert!(Algorithm::from_id(5).is_err() && Algorithm::from_id(0).is_err());
    }
}
