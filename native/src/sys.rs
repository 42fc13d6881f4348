//! The Linux/glibc calls this addon makes, declared by hand (no libc crate), with errno
//! access and errno names. x86_64/aarch64 Linux only: off_t and loff_t are 64-bit there.

use std::os::raw::{c_int, c_long, c_uint, c_ulong, c_void};

pub const SEEK_CUR: c_int = 1;
pub const SEEK_SET: c_int = 0;
pub const SEEK_DATA: c_int = 3;
pub const SEEK_HOLE: c_int = 4;

pub const FALLOC_FL_KEEP_SIZE: c_int = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: c_int = 0x02;
pub const FALLOC_FL_ZERO_RANGE: c_int = 0x10;

pub const FICLONE: c_ulong = 0x4004_9409;
pub const BLKGETSIZE64: c_ulong = 0x8008_1272;
pub const BLKSSZGET: c_ulong = 0x1268;
pub const BLKPBSZGET: c_ulong = 0x127b;

pub const SEEK_END: c_int = 2;

pub const PROT_READ: c_int = 1;
pub const PROT_WRITE: c_int = 2;
pub const MAP_SHARED: c_int = 0x01;
pub const MAP_PRIVATE: c_int = 0x02;
pub const MAP_FIXED: c_int = 0x10;
pub const MAP_ANONYMOUS: c_int = 0x20;
pub const SC_PAGESIZE: c_int = 30;

pub const SIGBUS: c_int = 7;
pub const SA_SIGINFO: c_int = 4;

pub const EINTR: c_int = 4;
pub const EIO: c_int = 5;
pub const ENXIO: c_int = 6;
pub const EAGAIN: c_int = 11;
pub const EINVAL: c_int = 22;
pub const ENOTTY: c_int = 25;
pub const EBADR: c_int = 53;
pub const EOPNOTSUPP: c_int = 95;

pub const SCHED_IDLE: c_int = 5;

pub const AF_UNIX: c_int = 1;
pub const SOCK_STREAM: c_int = 1;
pub const SOCK_CLOEXEC: c_int = 0o2000000;
pub const EADDRINUSE: c_int = 98;

/// `struct sockaddr_un`: family, then 108 bytes of path (abstract names start with a NUL).
#[repr(C)]
pub struct SockaddrUn {
    pub family: u16,
    pub path: [u8; 108],
}

pub const SYNC_FILE_RANGE_WRITE: c_uint = 2;

/// FS_IOC_FIEMAP: _IOWR('f', 11, struct fiemap), a 32-byte header.
pub const FS_IOC_FIEMAP: c_ulong = 0xC020_660B;
/// `struct fiemap_extent`'s fe_flags bits that matter here.
pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
/// statfs f_type of the filesystems whose FIEMAP reports dirty, not yet allocated data
/// (delayed allocation) as extents: ext2/3/4 (one magic) and XFS.
pub const EXT4_SUPER_MAGIC: i64 = 0xEF53;
pub const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// `struct sched_param`.
#[repr(C)]
pub struct SchedParam {
    pub sched_priority: c_int,
}

extern "C" {
    pub fn lseek(fd: c_int, offset: i64, whence: c_int) -> i64;
    pub fn fallocate(fd: c_int, mode: c_int, offset: i64, len: i64) -> c_int;
    /// `buf` is a `struct statfs` (120 bytes on x86_64 and aarch64; f_type, a long, first).
    pub fn fstatfs(fd: c_int, buf: *mut c_void) -> c_int;
    pub fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    pub fn copy_file_range(fd_in: c_int, off_in: *mut i64, fd_out: c_int, off_out: *mut i64, len: usize, flags: c_uint) -> isize;
    pub fn fdatasync(fd: c_int) -> c_int;
    pub fn posix_fadvise(fd: c_int, offset: i64, len: i64, advice: c_int) -> c_int;
    pub fn mmap(addr: *mut c_void, length: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) -> *mut c_void;
    pub fn sync_file_range(fd: c_int, offset: i64, nbytes: i64, flags: c_uint) -> c_int;
    pub fn munmap(addr: *mut c_void, length: usize) -> c_int;
    pub fn sysconf(name: c_int) -> c_long;
    pub fn sigaction(signum: c_int, action: *const SigAction, old: *mut SigAction) -> c_int;
    pub fn raise(signal: c_int) -> c_int;
    pub fn write(fd: c_int, buffer: *const c_void, count: usize) -> isize;
    pub fn pread(fd: c_int, buffer: *mut c_void, count: usize, offset: i64) -> isize;
    pub fn pwrite(fd: c_int, buffer: *const c_void, count: usize, offset: i64) -> isize;
    pub fn sched_setscheduler(pid: c_int, policy: c_int, param: *const SchedParam) -> c_int;
    pub fn _exit(status: c_int) -> !;
    pub fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    pub fn bind(fd: c_int, address: *const c_void, length: u32) -> c_int;
    pub fn close(fd: c_int) -> c_int;
    fn __errno_location() -> *mut c_int;
}

/// glibc's `struct sigaction` on x86_64 and aarch64 Linux: handler, 1024-bit mask, flags,
/// restorer.
#[repr(C)]
pub struct SigAction {
    pub handler: usize,
    pub mask: [u64; 16],
    pub flags: c_int,
    pub restorer: usize,
}

/// The start of glibc's `siginfo_t`; for SIGBUS the faulting address follows at offset 16.
#[repr(C)]
pub struct SigInfo {
    pub signo: c_int,
    pub errno: c_int,
    pub code: c_int,
    pub fault_address: usize,
}

/// The calling thread's errno.
pub fn errno() -> c_int {
    // SAFETY: glibc returns a valid pointer to the thread-local errno.
    unsafe { *__errno_location() }
}

/// errno number → (name, description) for the errors these calls can return.
const ERRNO_TABLE: &[(c_int, &str, &str)] = &[
    (1, "EPERM", "operation not permitted"),
    (2, "ENOENT", "no such file or directory"),
    (4, "EINTR", "interrupted system call"),
    (5, "EIO", "input/output error"),
    (6, "ENXIO", "no such device or address"),
    (9, "EBADF", "bad file descriptor"),
    (11, "EAGAIN", "resource temporarily unavailable"),
    (12, "ENOMEM", "out of memory"),
    (13, "EACCES", "permission denied"),
    (14, "EFAULT", "bad address"),
    (16, "EBUSY", "device or resource busy"),
    (18, "EXDEV", "cross-device operation not supported"),
    (19, "ENODEV", "no such device"),
    (21, "EISDIR", "is a directory"),
    (22, "EINVAL", "invalid argument"),
    (25, "ENOTTY", "inappropriate ioctl for device"),
    (26, "ETXTBSY", "text file busy"),
    (27, "EFBIG", "file too large"),
    (28, "ENOSPC", "no space left on device"),
    (29, "ESPIPE", "illegal seek"),
    (30, "EROFS", "read-only file system"),
    (38, "ENOSYS", "function not implemented"),
    (75, "EOVERFLOW", "value too large for defined data type"),
    (95, "EOPNOTSUPP", "operation not supported"),
    (98, "EADDRINUSE", "address already in use"),
    (122, "EDQUOT", "disk quota exceeded"),
];

/// The errno's symbolic name ("ENOSPC") and description; unknown numbers give ("EUNKNOWN", ...).
pub fn errno_name(code: c_int) -> (&'static str, &'static str) {
    ERRNO_TABLE.iter().find(|entry| entry.0 == code).map(|entry| (entry.1, entry.2)).unwrap_or(("EUNKNOWN", "unknown error"))
}
