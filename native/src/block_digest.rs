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

    /// Writes the canonical digests of `blocks` (each at least `shortest_block()` bytes) into
    /// consecutive slots of `out`, two at a time where two have one length (SHA-256 then runs
    /// the two messages interleaved, ~1.4x the speed of one after the other).
    pub fn digest_all<'a>(&self, blocks: impl Iterator<Item = &'a [u8]>, out: &mut [u8]) {
        let mut slots = out.chunks_exact_mut(self.algorithm.digest_bytes());
        if self.algorithm != Algorithm::Sha256 {
            blocks.for_each(|block| self.digest(block, slots.next().expect("a digest slot per block")));
            return;
        }
        let mut waiting: Option<(&[u8], &mut [u8])> = None;
        for block in blocks {
            let slot = slots.next().expect("a digest slot per block");
            match waiting.take() {
                Some((first, first_slot)) if first.len() == block.len() => {
                    sha256::digest_pair(self.sha, [first, block], [first_slot, slot]);
                }
                Some((first, first_slot)) => {
                    self.digest(first, first_slot);
                    waiting = Some((block, slot));
                }
                None => waiting = Some((block, slot)),
            }
        }
        if let Some((block, slot)) = waiting {
            self.digest(block, slot);
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
