//! Window buffers kept between jobs, and the zeros that sides without data read as.
//!
//! A job used to allocate its window buffers (256 KiB per side) and free them when it ended.
//! glibc gives such blocks back to the kernel as soon as they are freed (`madvise(DONTNEED)` on
//! the pool thread's arena, which flushes the other cores' TLBs), so the next job took page
//! faults and zeroed them again: a fifth of the CPU time of a resync of a sparse VHD, whose
//! segments hold little data. Each thread now keeps a few buffers for its next job.
//!
//! The buffers are 4 KiB-aligned: `pread` copies from the page cache into a buffer 16, 32 or
//! 48 bytes past a 64-byte boundary about a fifth slower here than into an aligned one (a C
//! test: 1 GiB in 256 KiB reads, 49 against 41 ms), and a heap block is aligned to 16 only.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Largest buffer a thread keeps for its next job (larger windows, for blocks over 1 MiB, are
/// allocated per job).
const KEEP_BYTES: usize = 1 << 20;

/// Buffers a thread keeps: a compare job uses two (source, target).
const KEEP_COUNT: usize = 2;

/// Bytes all threads keep together at most. The bin sizes libuv's pool at twice the cores
/// (docs/native.md "Jobs per thread"): on 64 cores, 128 threads keeping two 256 KiB buffers
/// each would hold 64 MiB. Past this, buffers are freed as before.
const KEEP_TOTAL_BYTES: usize = 16 << 20;

/// Bytes kept by all threads' spares.
static KEPT_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Alignment of the buffers: the smallest page size, and well past the 64 bytes the copy needs
/// (map.rs's page_size() is not wanted here: these buffers are never mapped over).
const ALIGN: usize = 4096;

/// Zeroed bytes at an ALIGN boundary, freed when dropped.
struct Aligned {
    start: NonNull<u8>,
    length: usize,
}

// SAFETY: the bytes are owned and reached only through the owner.
unsafe impl Send for Aligned {}

impl Aligned {
    fn zeroed(length: usize) -> Aligned {
        if length == 0 {
            return Aligned { start: NonNull::dangling(), length };
        }
        let layout = Layout::from_size_align(length, ALIGN).expect("a window's length");
        // SAFETY: the layout's size is not zero.
        let start = unsafe { alloc_zeroed(layout) };
        Aligned { start: NonNull::new(start).unwrap_or_else(|| handle_alloc_error(layout)), length }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        if self.length > 0 {
            // SAFETY: allocated in zeroed() with this layout.
            unsafe { dealloc(self.start.as_ptr(), Layout::from_size_align_unchecked(self.length, ALIGN)) };
        }
    }
}

/// A thread's spares; when the thread ends they are freed and no longer count.
struct Spares(Vec<Aligned>);

impl Drop for Spares {
    fn drop(&mut self) {
        let bytes: usize = self.0.iter().map(|spare| spare.length).sum();
        KEPT_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    }
}

thread_local! {
    static SPARES: RefCell<Spares> = const { RefCell::new(Spares(Vec::new())) };
}

/// A job's window buffer. Its bytes are left from an earlier job: every use writes the part it
/// reads. Dropped, it goes back to its thread's spares.
pub(crate) struct WindowBuffer(Option<Aligned>);

impl WindowBuffer {
    /// A buffer of exactly `length` bytes, a spare of this thread's when one fits.
    pub(crate) fn take(length: usize) -> WindowBuffer {
        if length == 0 || length > KEEP_BYTES {
            return WindowBuffer(Some(Aligned::zeroed(length)));
        }
        let spare = SPARES
            .try_with(|spares| {
                let spares = &mut spares.borrow_mut().0;
                let index = spares.iter().position(|spare| spare.length == length)?;
                KEPT_BYTES.fetch_sub(length, Ordering::Relaxed);
                Some(spares.swap_remove(index))
            })
            .ok()
            .flatten();
        WindowBuffer(Some(spare.unwrap_or_else(|| Aligned::zeroed(length))))
    }

    /// Buffers this thread keeps (tests).
    #[cfg(test)]
    fn kept() -> usize {
        SPARES.with(|spares| spares.borrow().0.len())
    }
}

impl Deref for WindowBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let bytes = self.0.as_ref().expect("a buffer until dropped");
        // SAFETY: `length` initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts(bytes.start.as_ptr(), bytes.length) }
    }
}

impl DerefMut for WindowBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        let bytes = self.0.as_mut().expect("a buffer until dropped");
        // SAFETY: as deref(), borrowed mutably through &mut self.
        unsafe { std::slice::from_raw_parts_mut(bytes.start.as_ptr(), bytes.length) }
    }
}

impl Drop for WindowBuffer {
    fn drop(&mut self) {
        let Some(buffer) = self.0.take() else { return };
        if buffer.length == 0 || buffer.length > KEEP_BYTES {
            return;
        }
        // While the thread ends its locals are gone: the buffer is freed instead.
        let _ = SPARES.try_with(|spares| {
            let spares = &mut spares.borrow_mut().0;
            if spares.len() < KEEP_COUNT && reserve(buffer.length) {
                spares.push(buffer);
            }
        });
    }
}

/// Counts `length` more bytes kept, unless that would pass KEEP_TOTAL_BYTES.
fn reserve(length: usize) -> bool {
    KEPT_BYTES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| (kept + length <= KEEP_TOTAL_BYTES).then_some(kept + length)).is_ok()
}

/// `length` zero bytes: shared and never written for windows up to 1 MiB (calloc'd: where glibc
/// maps it fresh, its pages are the kernel's zero page), allocated otherwise.
pub(crate) fn zeros(length: usize) -> Cow<'static, [u8]> {
    static ZEROS: OnceLock<Box<[u8]>> = OnceLock::new();
    if length > KEEP_BYTES {
        return Cow::Owned(vec![0u8; length]);
    }
    Cow::Borrowed(&ZEROS.get_or_init(|| vec![0u8; KEEP_BYTES].into_boxed_slice())[..length])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests below share KEPT_BYTES: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn a_thread_reuses_up_to_two_buffers_of_the_same_length() {
        let _serial = serial();
        std::thread::spawn(|| {
            let mut first = WindowBuffer::take(4096);
            assert!(first.iter().all(|&byte| byte == 0), "a new buffer is zeroed");
            first[4095] = 7;
            let address = first.as_ptr();
            assert_eq!(address as usize % ALIGN, 0, "4 KiB-aligned");
            drop(first);
            assert_eq!(WindowBuffer::kept(), 1);
            let again = WindowBuffer::take(4096);
            assert_eq!(again.as_ptr(), address, "the spare is taken again");
            assert_eq!(WindowBuffer::kept(), 0);
            let other = WindowBuffer::take(8192);
            assert_eq!(other.len(), 8192, "another length is a new buffer");
            let third = WindowBuffer::take(4096);
            drop((again, other, third));
            assert_eq!(WindowBuffer::kept(), KEEP_COUNT, "at most {KEEP_COUNT} are kept");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn large_buffers_are_not_kept() {
        let _serial = serial();
        std::thread::spawn(|| {
            let large = WindowBuffer::take(KEEP_BYTES + 4096);
            assert!(large.iter().all(|&byte| byte == 0));
            assert_eq!(large.as_ptr() as usize % ALIGN, 0);
            drop(large);
            assert_eq!(WindowBuffer::kept(), 0);
            drop(WindowBuffer::take(0));
            assert_eq!(WindowBuffer::kept(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn all_threads_together_keep_at_most_the_total() {
        let _serial = serial();
        // Threads that each keep two buffers of 1 MiB: more of them than the total allows.
        let threads = 2 * KEEP_TOTAL_BYTES / (KEEP_COUNT * KEEP_BYTES);
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        let (kept_tx, kept_rx) = std::sync::mpsc::channel();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (wait, kept_tx) = (wait.clone(), kept_tx.clone());
                std::thread::spawn(move || {
                    drop((WindowBuffer::take(KEEP_BYTES), WindowBuffer::take(KEEP_BYTES)));
                    kept_tx.send(WindowBuffer::kept()).unwrap();
                    // Stay alive (keeping the spares) until every thread has counted.
                    let _ = wait.lock().unwrap().recv();
                })
            })
            .collect();
        let kept: usize = (0..threads).map(|_| kept_rx.recv().unwrap()).sum();
        // Other tests' threads may keep some of the total meanwhile.
        assert!(kept * KEEP_BYTES <= KEEP_TOTAL_BYTES, "{kept} MiB kept");
        assert!(kept < threads * KEEP_COUNT, "not every thread kept its buffers");
        drop(done);
        for handle in handles {
            handle.join().unwrap();
        }
        // The threads have ended: what they kept no longer counts.
        let after = std::thread::spawn(|| {
            drop((WindowBuffer::take(KEEP_BYTES), WindowBuffer::take(KEEP_BYTES)));
            WindowBuffer::kept()
        });
        assert_eq!(after.join().unwrap(), KEEP_COUNT, "room again once the keeping threads ended");
    }

    #[test]
    fn zeros_are_zeros_of_the_length_asked() {
        for length in [0, 1, 4096, KEEP_BYTES, KEEP_BYTES + 1] {
            let zeros = zeros(length);
            assert_eq!(zeros.len(), length);
            assert!(zeros.iter().all(|&byte| byte == 0));
        }
    }
}
