//! Test data and files for the crate's unit tests (no crates to draw random bytes from).

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
