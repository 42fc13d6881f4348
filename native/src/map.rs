//! Mapping file pages into a caller's memory (a WebAssembly.Memory buffer) so that kernels read
//! page-cache data in place instead of copying it: mmap(MAP_FIXED | MAP_PRIVATE) over a
//! page-aligned range of the buffer, and back to anonymous zero pages when done. Only whole
//! pages that lie inside the file (or device) are mapped, so no access can fault past its end
//! unless the file shrinks while mapped.

use std::os::raw::{c_int, c_void};

use crate::failure::{Failure, Outcome};
use crate::sys;

/// The system page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { sys::sysconf(sys::SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

fn check_aligned(value: u64, what: &str, page: u64) -> Outcome<()> {
    if value % page != 0 {
        return Err(Failure::Invalid(format!("{what} must be a multiple of the page size ({page}), got {value}")));
    }
    Ok(())
}

/// Checks that [memory_offset, +length) lies inside a buffer of `buffer_length` bytes at
/// `buffer_address` and is page-aligned there.
fn check_target(buffer_address: usize, buffer_length: usize, memory_offset: u64, length: u64) -> Outcome<u64> {
    let page = page_size();
    if length == 0 {
        return Err(Failure::Invalid("length must be positive".into()));
    }
    if memory_offset + length > buffer_length as u64 {
        return Err(Failure::Invalid(format!(
            "range {memory_offset}+{length} is outside the buffer of {buffer_length} bytes"
        )));
    }
    check_aligned(buffer_address as u64 + memory_offset, "the buffer address + memoryOffset", page)?;
    check_aligned(length, "length", page)?;
    Ok(page)
}

/// Size of the file or device behind `fd` (lseek to the end; the file position is restored).
pub fn size_of(fd: c_int) -> Outcome<u64> {
    // SAFETY: plain system calls on a caller-owned descriptor.
    unsafe {
        let position = sys::lseek(fd, 0, sys::SEEK_CUR);
        if position < 0 {
            return Err(Failure::last_os("lseek"));
        }
        let end = sys::lseek(fd, 0, sys::SEEK_END);
        let failure = if end < 0 { Some(Failure::last_os("lseek")) } else { None };
        sys::lseek(fd, position, sys::SEEK_SET);
        match failure {
            Some(failure) => Err(failure),
            None => Ok(end as u64),
        }
    }
}

/// Maps `length` bytes of `fd` from `file_offset` over the buffer at `memory_offset`.
pub fn map_file(buffer: (usize, usize), memory_offset: u64, fd: c_int, file_offset: u64, length: u64) -> Outcome<()> {
    let page = check_target(buffer.0, buffer.1, memory_offset, length)?;
    check_aligned(file_offset, "fileOffset", page)?;
    let size = size_of(fd)?;
    let mapped_end = size.div_ceil(page) * page;
    if file_offset + length > mapped_end {
        // Not a caller's mistake but a file shorter than expected (it may have shrunk since its
        // size was read): ENXIO, like a read past the end of a device; callers then read instead.
        return Err(Failure::Os { errno: sys::ENXIO, syscall: "mmap (range past the end of the file)" });
    }
    guard_buffer(buffer.0, buffer.1)?;
    let flags = sys::MAP_PRIVATE | sys::MAP_FIXED;
    let address = (buffer.0 as u64 + memory_offset) as *mut c_void;
    // SAFETY: the range lies inside the caller's buffer (checked above) and is replaced in place;
    // the buffer stays valid memory of the same length whatever the mapping behind it.
    let result = unsafe { sys::mmap(address, length as usize, sys::PROT_READ | sys::PROT_WRITE, flags, fd, file_offset as i64) };
    if result as isize == -1 {
        return Err(Failure::last_os("mmap"));
    }
    Ok(())
}

/// Puts anonymous zero pages back over [memory_offset, +length) of the buffer.
pub fn unmap_file(buffer: (usize, usize), memory_offset: u64, length: u64) -> Outcome<()> {
    check_target(buffer.0, buffer.1, memory_offset, length)?;
    let address = (buffer.0 as u64 + memory_offset) as *mut c_void;
    let flags = sys::MAP_PRIVATE | sys::MAP_FIXED | sys::MAP_ANONYMOUS;
    // SAFETY: as in map_file; anonymous pages read as zeros.
    let result = unsafe { sys::mmap(address, length as usize, sys::PROT_READ | sys::PROT_WRITE, flags, -1, 0) };
    if result as isize == -1 {
        return Err(Failure::last_os("mmap"));
    }
    Ok(())
}

// A SIGBUS guard. Touching a mapped page whose file has since been truncated raises SIGBUS,
// which would kill the process with no word of why. While buffers have mappings, a handler
// tells faults inside them from any other SIGBUS: ours end the process with the usual coded
// error line and exit status 4 (recoverable: state files are already consistent, a rerun
// resumes); any other is handed back to the previous disposition.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const GUARDED_SLOTS: usize = 64;
const EMPTY: AtomicUsize = AtomicUsize::new(0);
/// [start, end) address pairs of buffers that have (or had) file mappings.
static GUARDED: [AtomicUsize; GUARDED_SLOTS * 2] = [EMPTY; GUARDED_SLOTS * 2];
static INSTALLED: AtomicBool = AtomicBool::new(false);
static mut PREVIOUS: sys::SigAction = sys::SigAction { handler: 0, mask: [0; 16], flags: 0, restorer: 0 };

const SIGBUS_MESSAGE: &[u8] =
    b"vhdsync: VHDSYNC_IO: an image changed size or failed while mapped for reading (SIGBUS); rerun to resume\n";

fn is_guarded(address: usize) -> bool {
    (0..GUARDED_SLOTS).any(|slot| {
        let start = GUARDED[slot * 2].load(Ordering::Acquire);
        start != 0 && address >= start && address < GUARDED[slot * 2 + 1].load(Ordering::Acquire)
    })
}

extern "C" fn on_sigbus(_signal: c_int, info: *mut sys::SigInfo, _context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; write, _exit and
    // sigaction are async-signal-safe.
    unsafe {
        // si_code > 0: raised by the kernel for a fault (not sent with kill), so the address is real.
        if !info.is_null() && (*info).code > 0 && is_guarded((*info).fault_address) {
            sys::write(2, SIGBUS_MESSAGE.as_ptr().cast(), SIGBUS_MESSAGE.len());
            sys::_exit(4);
        }
        // Not ours: restore what was there. A fault repeats under it when we return; a signal
        // that was sent is sent again (held until we return).
        sys::sigaction(sys::SIGBUS, std::ptr::addr_of!(PREVIOUS), std::ptr::null_mut());
        if info.is_null() || (*info).code <= 0 {
            sys::raise(sys::SIGBUS);
        }
    }
}

/// Installs the handler once.
fn install_handler() -> Outcome<()> {
    if !INSTALLED.swap(true, Ordering::AcqRel) {
        let action = sys::SigAction { handler: on_sigbus as extern "C" fn(c_int, *mut sys::SigInfo, *mut c_void) as usize, mask: [0; 16], flags: sys::SA_SIGINFO, restorer: 0 };
        // SAFETY: PREVIOUS is written once, here, before the handler can run.
        if unsafe { sys::sigaction(sys::SIGBUS, &action, std::ptr::addr_of_mut!(PREVIOUS)) } != 0 {
            INSTALLED.store(false, Ordering::Release);
            return Err(Failure::last_os("sigaction"));
        }
    }
    Ok(())
}

/// Claims a free slot for [start, start + length).
fn claim_slot(start: usize, length: usize) -> Outcome<()> {
    for slot in 0..GUARDED_SLOTS {
        if GUARDED[slot * 2].compare_exchange(0, start, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            GUARDED[slot * 2 + 1].store(start + length, Ordering::Release);
            return Ok(());
        }
    }
    Err(Failure::Invalid(format!("more than {GUARDED_SLOTS} buffers have file mappings")))
}

/// Registers the buffer [start, start + length) for good and installs the handler once.
fn guard_buffer(start: usize, length: usize) -> Outcome<()> {
    install_handler()?;
    if is_guarded(start) {
        return Ok(());
    }
    claim_slot(start, length)
}

/// Registers a mapping [start, start + length) until `unguard_range(start)`.
pub fn guard_range(start: usize, length: usize) -> Outcome<()> {
    install_handler()?;
    claim_slot(start, length)
}

/// Forgets the mapping registered at `start` (before it is unmapped).
pub fn unguard_range(start: usize) {
    for slot in 0..GUARDED_SLOTS {
        if GUARDED[slot * 2].load(Ordering::Acquire) == start {
            GUARDED[slot * 2 + 1].store(start, Ordering::Release);
            GUARDED[slot * 2].store(0, Ordering::Release);
            return;
        }
    }
}
