//! Test data and files for the crate's unit tests (no crates to draw random bytes from).

use crate::scan::ActiveRange;

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

/// A file holding `bytes` in the temporary directory, removed when dropped.
pub struct TempFile(pub std::path::PathBuf, std::fs::File);

impl TempFile {
    pub fn new(name: &str, bytes: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("vhdsync-native-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        TempFile(path, file)
    }

    pub fn fd(&self) -> std::os::raw::c_int {
        use std::os::fd::AsRawFd;
        self.1.as_raw_fd()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Small ranges (one to three 4 KiB blocks) with gaps of 0 to 68 KiB between them, some
/// reading as zeros in the source: what a fragmented sparse pair gives.
pub fn fragmented_ranges(seed: u64, size: u64, source_shift: u64) -> Vec<ActiveRange> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut active = Vec::new();
    let mut at = next() % 4 * 4096;
    while at < size {
        let to = size.min(at + (1 + next() % 3) * 4096);
        let source_at = if next() % 6 == 0 { None } else { Some(at + source_shift) };
        active.push(ActiveRange { from: at, to, source_at, target_at: Some(at) });
        at = to + [0, 4096, 4096, 8192, 65536, 69632][(next() % 6) as usize];
    }
    active
}
