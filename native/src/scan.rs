//! Direct compare of one segment of two images whose data lies in their files in plain runs,
//! run whole on one thread of the libuv pool: flat images (raw files, block devices, fixed
//! VHDs: the virtual disk is the file's first bytes) and dynamic VHDs (each allocated block's
//! data is one run of the file). The caller says, for each range either side has allocated
//! (unit-aligned byte ranges of the virtual disk), where that range lies in each file, or
//! that a side reads as zeros there. Those runs are read window by window (copied into two
//! small buffers of the job with pread, or mapped read-only from the page cache: see
//! `ReadMode`), compared unit by unit with a zero check of the source in the same pass, and
//! the differing data is written to the target from the source's window (pwrite). The caller
//! gets the changed ranges (zero ones included, for it to punch or zero) and the block
//! counts. This is the same scan as the WASM scanner's compare mode
//! (src/sync/segment-scanner.ts), without a Node worker's boot or a copy.

use std::os::raw::{c_int, c_void};

use crate::appender::pwrite_all;
use crate::buffers::{zeros, WindowBuffer};
use crate::failure::{Failure, Outcome};
use crate::gather::Gather;
use crate::map::{guard_range, page_size, size_of, unguard_range};
use crate::spans::{spans, MAP_JOIN_GAP_BYTES, READ_JOIN_GAP_BYTES};
use crate::sys;

/// Bytes of each image mapped at a time (rounded down to whole units, at least one).
const MAP_WINDOW_BYTES: u64 = 4 << 20;
/// Bytes of each image read at a time: two such buffers stay in a core's L2 cache.
const READ_WINDOW_BYTES: u64 = 256 << 10;

/// How a scan job takes file data: copied into a buffer of the job with pread (`Read`), or
/// mapped read-only from the page cache (`Map`, `VHDSYNC_SCAN_MMAP=1` on the JS side). Which
/// is faster depends on the kernel and the machine: on the hosts of the sixth to eleventh
/// sessions, mapping 4 MiB windows compared a 2 GiB pair in 0.35–0.46 s against 0.47–0.51 s
/// for pread; on the twelfth session's (Linux 6.18) pread of 256 KiB windows took 0.105 s
/// against 0.18 s (docs/native.md "Reading the files").
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadMode {
    Read,
    Map,
}

impl ReadMode {
    /// A window of whole units (at least one).
    pub(crate) fn window(self, unit: u64) -> u64 {
        let bytes = match self {
            ReadMode::Read => READ_WINDOW_BYTES,
            ReadMode::Map => MAP_WINDOW_BYTES,
        };
        (bytes / unit).max(1) * unit
    }

    /// Largest gap between ranges read (or mapped) together (spans.rs).
    pub(crate) fn join_gap(self) -> u64 {
        match self {
            ReadMode::Read => READ_JOIN_GAP_BYTES,
            ReadMode::Map => MAP_JOIN_GAP_BYTES,
        }
    }

    /// A window buffer for one side (empty when mapping).
    pub(crate) fn buffer(self, window: u64) -> WindowBuffer {
        match self {
            ReadMode::Read => WindowBuffer::take(window as usize),
            ReadMode::Map => WindowBuffer::take(0),
        }
    }
}

/// One segment's compare, validated on the main thread.
pub struct CompareJob {
    pub source_fd: c_int,
    pub target_fd: c_int,
    pub block: u64,
    /// Compare granularity: the block, or a part of it for blocks larger than a window.
    pub unit: u64,
    pub start: u64,
    pub end: u64,
    /// Byte ranges to read and compare, in order, disjoint, unit-aligned from `start`.
    pub active: Vec<ActiveRange>,
    /// Write the differing non-zero data to the target (zero runs are left to the caller).
    pub write: bool,
    /// The target reads as zeros (a freshly created one: `copy`): the source is compared against
    /// zeros, and differing data is still written at the ranges' target offsets.
    pub target_zeros: bool,
    /// Lent memory for the changes: f64 triples (offset, length, 1 if the source reads as zeros).
    pub out: (usize, usize),
    pub read: ReadMode,
    /// The target's bytes in the caller's memory (lent until the job settles), for targets
    /// whose data is not in plain runs of one file (differencing disks: the caller reads them
    /// through the format): the ranges' target offsets are then offsets into it, and
    /// `target_fd` is not used. Never with `write` or `target_zeros`.
    pub target_memory: Option<(usize, usize)>,
    /// The source's bytes in the caller's memory, as `target_memory` (differencing sources):
    /// the ranges' source offsets are offsets into it, and `source_fd` is not used. Writes
    /// take the differing data from it.
    pub source_memory: Option<(usize, usize)>,
    /// The source's bytes gathered from the runs of several files (a differencing disk and its
    /// parents, gather.rs): the ranges' source offsets are their own virtual offsets, and
    /// `source_fd` is not used.
    pub source_gather: Option<Gather>,
    /// The target's, likewise (never with `write` or `target_zeros`).
    pub target_gather: Option<Gather>,
}

/// A range of the virtual disk to compare, and where it lies in each file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActiveRange {
    pub from: u64,
    pub to: u64,
    /// File offset of `from` in the source, or None where the source reads as zeros.
    pub source_at: Option<u64>,
    /// File offset of `from` in the target, or None where the target reads as zeros.
    pub target_at: Option<u64>,
}

impl ActiveRange {
    /// A range that lies at the same offsets in both files (flat images).
    #[cfg(test)]
    fn flat(from: u64, to: u64) -> ActiveRange {
        ActiveRange { from, to, source_at: Some(from), target_at: Some(from) }
    }
}

/// What a segment's compare found.
#[derive(Debug, Default, PartialEq)]
pub struct CompareCounts {
    /// Blocks that start in an active range.
    pub blocks_compared: u64,
    /// Blocks with at least one differing unit.
    pub blocks_changed: u64,
    /// Blocks with at least one non-zero unit in the source.
    pub blocks_non_zero: u64,
    pub bytes_written: u64,
    /// Triples written to `out`.
    pub changes: u64,
}

impl CompareJob {
    /// Checks the job's shape; the memory and descriptors are the caller's to keep valid.
    pub fn validate(&self) -> Outcome<()> {
        if self.block == 0 || !self.block.is_power_of_two() || self.unit == 0 || self.block % self.unit != 0 {
            return Err(Failure::Invalid(format!(
                "blockSize {} must be a power of two and a multiple of unitSize {}",
                self.block, self.unit
            )));
        }
        if self.start % self.block != 0 || self.end < self.start {
            return Err(Failure::Invalid(format!("segment {}..{} must start on a block boundary", self.start, self.end)));
        }
        // Ranges start on a unit boundary; the last unit of a range may be partial only at the segment's end.
        check_ranges(&self.active, self.start, self.end, self.write, |from, _| (from - self.start) % self.unit == 0)?;
        if (self.target_memory.is_some() || self.target_gather.is_some()) && (self.write || self.target_zeros) {
            return Err(Failure::Invalid("a target in memory or gathered is only compared: no write, no zero target".into()));
        }
        check_side(&self.active, Origin::SOURCE, self.source_memory, self.source_gather.as_ref())?;
        check_side(&self.active, Origin::TARGET, self.target_memory, self.target_gather.as_ref())?;
        let units: u64 = self.active.iter().map(|range| (range.to - range.from).div_ceil(self.unit)).sum();
        if (self.out.1 as u64) < units * 24 || self.out.0 % 8 != 0 {
            return Err(Failure::Invalid(format!("the changes buffer needs {} bytes, 8-aligned", units * 24)));
        }
        Ok(())
    }
}

/// Checks a job's ranges: in order, disjoint, not empty, inside [start, end], `aligned(from,
/// to)`, placed in the target when writing, and inside the largest file offset.
pub(crate) fn check_ranges(
    active: &[ActiveRange],
    start: u64,
    end: u64,
    write: bool,
    aligned: impl Fn(u64, u64) -> bool,
) -> Outcome<()> {
    let mut cursor = start;
    for range in active {
        let ActiveRange { from, to, .. } = *range;
        if from < cursor || to <= from || to > end || !aligned(from, to) {
            return Err(Failure::Invalid(format!(
                "range {from}..{to} is out of order, empty, outside the segment or not aligned"
            )));
        }
        if write && range.target_at.is_none() {
            return Err(Failure::Invalid(format!("range {from}..{to} has no place in the target to write to")));
        }
        for at in [range.source_at, range.target_at].into_iter().flatten() {
            if at.checked_add(to - from).is_none_or(|end| end > i64::MAX as u64) {
                return Err(Failure::Invalid(format!("range {from}..{to} lies past the largest file offset")));
            }
        }
        cursor = to;
    }
    Ok(())
}

/// Changed ranges, merged with the previous one when adjacent and of the same kind, as f64
/// triples in the lent buffer.
pub(crate) struct Changes<'a> {
    pub(crate) out: &'a mut [f64],
    pub(crate) count: usize,
}

impl Changes<'_> {
    pub(crate) fn add(&mut self, offset: u64, length: u64, zero: bool) {
        let kind = f64::from(u8::from(zero));
        if self.count > 0 {
            let last = &mut self.out[(self.count - 1) * 3..self.count * 3];
            if last[0] as u64 + last[1] as u64 == offset && last[2] == kind {
                last[1] += length as f64;
                return;
            }
        }
        self.out[self.count * 3..self.count * 3 + 3].copy_from_slice(&[offset as f64, length as f64, kind]);
        self.count += 1;
    }
}

/// A read-only shared mapping of [offset, offset+length) of a file, SIGBUS-guarded while it lives.
pub(crate) struct Mapping {
    base: *mut c_void,
    size: usize,
    /// Where `offset` lies in the mapping (the mapping starts on a page boundary).
    skew: usize,
    length: usize,
}

impl Mapping {
    fn new(fd: c_int, offset: u64, length: u64) -> Outcome<Mapping> {
        let page = page_size();
        let aligned = offset - offset % page;
        let skew = (offset - aligned) as usize;
        let size = skew + length as usize;
        // SAFETY: a fresh mapping chosen by the kernel; nothing else is touched.
        let base = unsafe { sys::mmap(std::ptr::null_mut(), size, sys::PROT_READ, sys::MAP_SHARED, fd, aligned as i64) };
        if base as isize == -1 {
            return Err(Failure::last_os("mmap"));
        }
        if let Err(failure) = guard_range(base as usize, size) {
            // SAFETY: the mapping made above, not yet shared.
            unsafe { sys::munmap(base, size) };
            return Err(failure);
        }
        Ok(Mapping { base, size, skew, length: length as usize })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping covers skew + length readable bytes while self lives.
        unsafe { std::slice::from_raw_parts((self.base as *const u8).add(self.skew), self.length) }
    }
}

/// One side of a window: bytes read into the job's buffer, mapped file pages, or zeros where
/// that side has no data.
pub(crate) enum Side<'z> {
    Read(&'z [u8]),
    Mapped(Mapping),
    Zeros(&'z [u8]),
}

impl<'z> Side<'z> {
    /// [at, at+length) of `fd` (into `buffer` when reading), or `length` zeros when `at` is None.
    pub(crate) fn new(
        mode: ReadMode,
        fd: c_int,
        at: Option<u64>,
        length: u64,
        zeros: &'z [u8],
        buffer: &'z mut [u8],
    ) -> Outcome<Side<'z>> {
        match (at, mode) {
            (Some(at), ReadMode::Map) => Mapping::new(fd, at, length).map(Side::Mapped),
            (Some(at), ReadMode::Read) => {
                let buffer = &mut buffer[..length as usize];
                read_exact(fd, at, buffer)?;
                Ok(Side::Read(buffer))
            }
            (None, _) => Ok(Side::Zeros(&zeros[..length as usize])),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Side::Read(bytes) | Side::Zeros(bytes) => bytes,
            Side::Mapped(mapping) => mapping.bytes(),
        }
    }
}

/// Fills `buffer` from `fd` at `position`; a file that ends first is ENXIO (as a mapping past
/// the end would be).
pub(crate) fn read_exact(fd: c_int, position: u64, buffer: &mut [u8]) -> Outcome<()> {
    let mut done = 0usize;
    while done < buffer.len() {
        // SAFETY: `buffer[done..]` is writable memory of the stated length; pread does not keep it.
        let read =
            unsafe { sys::pread(fd, buffer[done..].as_mut_ptr().cast(), buffer.len() - done, (position + done as u64) as i64) };
        if read < 0 {
            if sys::errno() == sys::EINTR {
                continue;
            }
            return Err(Failure::last_os("pread"));
        }
        if read == 0 {
            return Err(Failure::Os { errno: sys::ENXIO, syscall: "pread (range past the end of the file)" });
        }
        done += read as usize;
    }
    Ok(())
}

impl Drop for Mapping {
    fn drop(&mut self) {
        unguard_range(self.base as usize);
        // SAFETY: our own mapping; no slice of it outlives self.
        unsafe { sys::munmap(self.base, self.size) };
    }
}

/// Runs the compare (validating the job first: its lent buffer must hold the changes).
pub fn compare_segment(job: &CompareJob) -> Outcome<CompareCounts> {
    job.validate()?;
    // SAFETY: validated as 8-aligned and long enough; the caller lends it until the job settles.
    let out = unsafe { std::slice::from_raw_parts_mut(job.out.0 as *mut f64, job.out.1 / 8) };
    let mut changes = Changes { out, count: 0 };
    let mut counts = CompareCounts::default();
    // A file shorter than the range would fault (SIGBUS) past its end: refuse instead.
    // SAFETY: validate() checked every range against the lent memory, which the caller keeps
    // alive and unchanged until the job settles.
    let (source_origin, target_origin) = unsafe {
        (
            Origin::of(job.source_fd, job.source_memory, job.source_gather.as_ref()),
            Origin::of(job.target_fd, job.target_memory, job.target_gather.as_ref()),
        )
    };
    check_files_hold([source_origin, target_origin], &job.active)?;
    // Windows of whole units, read (or mapped) one at a time: mapped pages count as the
    // process's memory while mapped.
    let mode = job.read;
    let window = mode.window(job.unit);
    let (mut source_buffer, mut target_buffer) = (source_origin.buffer(mode, window), target_origin.buffer(mode, window));
    // What a side without data reads as.
    let needs_zeros = job.target_zeros || job.active.iter().any(|range| range.source_at.is_none() || range.target_at.is_none());
    let zeros = zeros(if needs_zeros { window as usize } else { 0 });
    let mut last_changed = u64::MAX;
    let mut last_non_zero = u64::MAX;
    // Blocks before this index are counted as compared: a block is compared when any part of
    // it is (a write-mode unit is 4 KiB, smaller than the block, and may start inside it).
    let mut counted_blocks = job.start / job.block;
    let mut written: Option<(u64, u64)> = None; // file range of the target written to
    let joinable = [source_origin.joinable(), target_origin.joinable()];
    for span in spans(&job.active, window, mode.join_gap(), joinable) {
        let length = span.to - span.from;
        let source = source_origin.side(mode, span.source_at, length, &zeros, &mut source_buffer)?;
        let target_side = if job.target_zeros { None } else { span.target_at };
        let target = target_origin.side(mode, target_side, length, &zeros, &mut target_buffer)?;
        let (a, b) = (source.bytes(), target.bytes());
        let place = Place { window_start: span.from, target_at: span.target_at };
        for (from, to) in span.parts(&job.active) {
            let first_block = (from / job.block).max(counted_blocks);
            counts.blocks_compared += to.div_ceil(job.block).saturating_sub(first_block);
            counted_blocks = counted_blocks.max(to.div_ceil(job.block));
            // The data run being gathered, written when it ends (or its part does). Runs never
            // span two parts: what lies between ranges is unallocated on both sides, so equal.
            let mut run: Option<(u64, u64)> = None;
            let mut at = (from - span.from) as usize;
            let end = (to - span.from) as usize;
            while at < end {
                let length = (job.unit as usize).min(end - at);
                let (differ, zero) = compare_zero(&a[at..at + length], &b[at..at + length]);
                let offset = span.from + at as u64;
                let block = offset / job.block;
                if !zero && block != last_non_zero {
                    last_non_zero = block;
                    counts.blocks_non_zero += 1;
                }
                if differ {
                    if block != last_changed {
                        last_changed = block;
                        counts.blocks_changed += 1;
                    }
                    changes.add(offset, length as u64, zero);
                }
                let extends = differ && !zero && run.is_some_and(|(start, size)| start + size == offset);
                if extends {
                    run = run.map(|(start, size)| (start, size + length as u64));
                } else {
                    if let Some(done) = run.take() {
                        counts.bytes_written += write_run(job.target_fd, job.write, done, a, &place, &mut written)?;
                    }
                    if differ && !zero {
                        run = Some((offset, length as u64));
                    }
                }
                at += length;
            }
            // The part ends (its range, or the span's window): write what was gathered from it.
            if let Some(done) = run.take() {
                counts.bytes_written += write_run(job.target_fd, job.write, done, a, &place, &mut written)?;
            }
        }
    }
    if let Some((low, high)) = written {
        start_writeback(job.target_fd, low, high);
    }
    counts.changes = changes.count as u64;
    Ok(counts)
}

/// Refuses (ENXIO) ranges that lie past the end of either side's file (the source's, the
/// target's; gathered sides: each piece's file; memory was checked by validate()): touching a
/// mapping there would fault (SIGBUS), a read would come up short.
pub(crate) fn check_files_hold(origins: [Origin; 2], active: &[ActiveRange]) -> Outcome<()> {
    for (side, origin) in origins.into_iter().enumerate() {
        let fd = match origin {
            Origin::File(fd) => fd,
            Origin::Gathered(gather) => {
                gather.check_files_hold()?;
                continue;
            }
            Origin::Memory(_) => continue,
        };
        let needed = active
            .iter()
            .filter_map(|range| [range.source_at, range.target_at][side].map(|at| at + (range.to - range.from)))
            .max();
        if let Some(needed) = needed {
            if size_of(fd)? < needed {
                return Err(Failure::Os { errno: sys::ENXIO, syscall: "mmap (range past the end of the file)" });
            }
        }
    }
    Ok(())
}

/// Checks one side (Origin::SOURCE or Origin::TARGET) taken from lent memory or gathered:
/// not both, no range past the end of the memory, every range covered by the pieces.
pub(crate) fn check_side(active: &[ActiveRange], side: usize, memory: Option<(usize, usize)>, gather: Option<&Gather>) -> Outcome<()> {
    let name = ["source", "target"][side];
    if let Some(gather) = gather {
        if memory.is_some() {
            return Err(Failure::Invalid(format!("the {name} is either in memory or gathered, not both")));
        }
        gather.check_covers(active, side)?;
    }
    let Some((_, length)) = memory else { return Ok(()) };
    let past = active.iter().any(|range| [range.source_at, range.target_at][side].is_some_and(|at| at + (range.to - range.from) > length as u64));
    if past {
        return Err(Failure::Invalid(format!("a range lies past the end of the {name}'s memory ({length} bytes)")));
    }
    Ok(())
}

/// Where one side's bytes come from: its file, or memory the caller lent (the ranges' offsets
/// on that side are then offsets into it).
#[derive(Clone, Copy)]
pub(crate) enum Origin<'m> {
    File(c_int),
    Memory(&'m [u8]),
    /// Pieces in several files (gather.rs), read into the job's buffer.
    Gathered(&'m Gather),
}

impl<'m> Origin<'m> {
    pub(crate) const SOURCE: usize = 0;
    pub(crate) const TARGET: usize = 1;

    /// The file `fd`, or the lent `memory` (address, length) when there is one.
    ///
    /// # Safety
    /// `memory` must be readable for its length, and stay alive and unchanged for 'm.
    pub(crate) unsafe fn of(fd: c_int, memory: Option<(usize, usize)>, gather: Option<&'m Gather>) -> Origin<'m> {
        match (memory, gather) {
            (Some((address, length)), _) => Origin::Memory(std::slice::from_raw_parts(address as *const u8, length)),
            (None, Some(gather)) => Origin::Gathered(gather),
            (None, None) => Origin::File(fd),
        }
    }

    /// Whether this side's ranges may be read together (spans.rs): a file's, whose bytes
    /// between close ranges are there to read; lent memory costs no call per range, and
    /// gathered pieces cover only the ranges.
    pub(crate) fn joinable(self) -> bool {
        matches!(self, Origin::File(_))
    }

    /// The job's window buffer for this side: gathered pieces are always read into one.
    pub(crate) fn buffer(self, mode: ReadMode, window: u64) -> WindowBuffer {
        match self {
            Origin::Gathered(_) => WindowBuffer::take(window as usize),
            _ => mode.buffer(window),
        }
    }

    /// [at, at+length) of this side (see Side::new), or `length` zeros when `at` is None.
    pub(crate) fn side<'z>(self, mode: ReadMode, at: Option<u64>, length: u64, zeros: &'z [u8], buffer: &'z mut [u8]) -> Outcome<Side<'z>>
    where
        'm: 'z,
    {
        match (self, at) {
            (Origin::Memory(memory), Some(at)) => Ok(Side::Read(&memory[at as usize..(at + length) as usize])),
            (Origin::Gathered(gather), Some(at)) => {
                let buffer = &mut buffer[..length as usize];
                gather.read(at, buffer)?;
                Ok(Side::Read(buffer))
            }
            (Origin::Memory(_) | Origin::Gathered(_), None) => Ok(Side::Zeros(&zeros[..length as usize])),
            (Origin::File(fd), at) => Side::new(mode, fd, at, length, zeros, buffer),
        }
    }
}

/// Starts writing the segment's dirty target pages back (sync_file_range WRITE: no wait, no
/// device cache flush), so that the fdatasync before success finds them on their way. A hint
/// only: a failure here surfaces at that fdatasync.
pub(crate) fn start_writeback(fd: c_int, start: u64, end: u64) {
    // SAFETY: a plain system call on a caller-owned descriptor.
    unsafe { sys::sync_file_range(fd, start as i64, (end - start) as i64, sys::SYNC_FILE_RANGE_WRITE) };
}

/// Where a window lies: its first byte on the virtual disk and in the target file.
pub(crate) struct Place {
    pub(crate) window_start: u64,
    pub(crate) target_at: Option<u64>,
}

/// Writes the data run `run` (virtual offsets inside the window whose source bytes are
/// `window`) to the target, and widens `written` (the target file range written) to cover it.
pub(crate) fn write_run(
    target_fd: c_int,
    write: bool,
    run: (u64, u64),
    window: &[u8],
    place: &Place,
    written: &mut Option<(u64, u64)>,
) -> Outcome<u64> {
    if !write {
        return Ok(0);
    }
    // validate() refuses writing jobs with a range that has no place in the target.
    let Some(target_at) = place.target_at else { return Err(Failure::Invalid("no place in the target to write to".into())) };
    let skip = run.0 - place.window_start;
    let data = &window[skip as usize..(skip + run.1) as usize];
    let position = target_at + skip;
    *written = Some(written.map_or((position, position + run.1), |(low, high)| (low.min(position), high.max(position + run.1))));
    pwrite_all(target_fd, data, position)?;
    Ok(run.1)
}

/// (whether `a` and `b` differ, whether `a` is all zeros), in one pass over both.
fn compare_zero(a: &[u8], b: &[u8]) -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    if crate::xxh3::uses_avx2() {
        // SAFETY: the CPU has AVX2 (checked once at run time).
        return unsafe { compare_zero_avx2(a, b) };
    }
    compare_zero_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn compare_zero_avx2(a: &[u8], b: &[u8]) -> (bool, bool) {
    compare_zero_portable(a, b)
}

/// OR-folds a^b and a over 64-byte chunks into eight independent lanes (which the compiler
/// vectorizes; one accumulator would chain every step), then the tail.
#[inline(always)]
fn compare_zero_portable(a: &[u8], b: &[u8]) -> (bool, bool) {
    let mut differ = [0u64; 8];
    let mut any = [0u64; 8];
    let chunks_a = a.chunks_exact(64);
    let chunks_b = b.chunks_exact(64);
    let (tail_a, tail_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..8 {
            let p = u64::from_ne_bytes(x[lane * 8..lane * 8 + 8].try_into().unwrap_or([0; 8]));
            let q = u64::from_ne_bytes(y[lane * 8..lane * 8 + 8].try_into().unwrap_or([0; 8]));
            differ[lane] |= p ^ q;
            any[lane] |= p;
        }
    }
    let mut differ = differ.iter().fold(0, |all, lane| all | lane);
    let mut any = any.iter().fold(0, |all, lane| all | lane);
    for (x, y) in tail_a.iter().zip(tail_b) {
        differ |= u64::from(x ^ y);
        any |= u64::from(*x);
    }
    (differ != 0, any == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bytes::{fragmented_ranges, xorshift_bytes as bytes, TempFile};

    /// A compare of [0, end) in `block`-sized units over `active`, changes into `out`; no writes.
    fn job_over(
        source_fd: c_int,
        target_fd: c_int,
        block: u64,
        end: u64,
        active: Vec<ActiveRange>,
        out: &mut [f64],
    ) -> CompareJob {
        CompareJob {
            source_fd,
            target_fd,
            block,
            unit: block,
            start: 0,
            end,
            active,
            write: false,
            target_zeros: false,
            out: (out.as_mut_ptr() as usize, out.len() * 8),
            read: ReadMode::Read,
            target_memory: None,
            source_memory: None,
            source_gather: None,
            target_gather: None,
        }
    }

    #[test]
    fn compare_zero_finds_every_difference_and_zero_run() {
        for length in [0usize, 1, 63, 64, 65, 4095, 4096, 4097, 10000] {
            let a = bytes(length as u64 + 7, length);
            assert_eq!(compare_zero(&a, &a), (false, a.iter().all(|&x| x == 0)), "length {length}");
            let zeros = vec![0u8; length];
            assert_eq!(compare_zero(&zeros, &zeros), (false, true), "zeros, length {length}");
            for at in [0, length / 2, length.saturating_sub(1)] {
                if length == 0 {
                    continue;
                }
                let mut b = a.clone();
                b[at] ^= 0x10;
                assert_eq!(compare_zero(&a, &b).0, true, "length {length}, byte {at}");
                let mut one = zeros.clone();
                one[at] = 1;
                assert_eq!(compare_zero(&one, &zeros), (true, false), "one byte at {at} of {length}");
                assert_eq!(compare_zero_portable(&one, &zeros), compare_zero(&one, &zeros));
            }
        }
    }

    #[test]
    fn changes_merge_adjacent_ranges_of_one_kind() {
        let mut out = vec![0f64; 12];
        let mut changes = Changes { out: &mut out, count: 0 };
        changes.add(0, 4096, false);
        changes.add(4096, 4096, false);
        changes.add(8192, 4096, true);
        changes.add(12288, 4096, true);
        changes.add(20480, 4096, true);
        assert_eq!(changes.count, 3);
        assert_eq!(&out[..9], &[0.0, 8192.0, 0.0, 8192.0, 8192.0, 1.0, 20480.0, 4096.0, 1.0]);
    }

    #[test]
    fn validate_refuses_bad_shapes() {
        let mut out = vec![0f64; 3 * 4];
        let job = |active: Vec<(u64, u64)>, unit: u64, out: &mut Vec<f64>| CompareJob {
            unit,
            ..job_over(0, 0, 4096, 16384, active.into_iter().map(|(from, to)| ActiveRange::flat(from, to)).collect(), out)
        };
        assert!(job(vec![(0, 16384)], 4096, &mut out).validate().is_ok());
        assert!(job(vec![(4096, 8192), (0, 4096)], 4096, &mut out).validate().is_err(), "out of order");
        assert!(job(vec![(100, 4096)], 4096, &mut out).validate().is_err(), "not unit-aligned");
        assert!(job(vec![(0, 20000)], 4096, &mut out).validate().is_err(), "past the segment");
        assert!(job(vec![(0, 16384)], 3000, &mut out).validate().is_err(), "unit does not divide the block");
        let mut small = vec![0f64; 3];
        assert!(job(vec![(0, 16384)], 4096, &mut small).validate().is_err(), "changes buffer too small");
    }

    #[test]
    fn placed_ranges_read_and_write_where_the_caller_says() {
        const B: u64 = 4096;
        // The source's virtual blocks 0..4 lie at file offset 512 + B (a dynamic VHD's block
        // data after its bitmap: not page-aligned); block 4..6 reads as zeros.
        let virtual_source = bytes(11, 6 * B as usize);
        let mut source_file = vec![0xEEu8; 512 + B as usize];
        source_file.extend_from_slice(&virtual_source[..4 * B as usize]);
        let source = TempFile::new("placed-source", &source_file);
        let mut target_bytes = virtual_source.clone();
        target_bytes[10] ^= 1; // block 0 differs
        target_bytes[3 * B as usize..4 * B as usize].fill(0); // block 3 zero in the target
        target_bytes[4 * B as usize + 5] = 9; // block 4: non-zero where the source has zeros
        let target = TempFile::new("placed-target", &target_bytes);
        let mut out = vec![0f64; 3 * 6];
        let active = vec![
            ActiveRange { from: 0, to: 4 * B, source_at: Some(512 + B), target_at: Some(0) },
            ActiveRange { from: 4 * B, to: 6 * B, source_at: None, target_at: Some(4 * B) },
        ];
        let job = CompareJob { write: true, ..job_over(source.fd(), target.fd(), B, 6 * B, active, &mut out) };
        let counts = compare_segment(&job).unwrap();
        assert_eq!(
            counts,
            CompareCounts { blocks_compared: 6, blocks_changed: 4, blocks_non_zero: 4, bytes_written: 2 * B, changes: 3 }
        );
        // Blocks 4 and 5 read as zeros in the source and hold data in the target: one zero run.
        assert_eq!(&out[..9], &[0.0, B as f64, 0.0, 3.0 * B as f64, B as f64, 0.0, 4.0 * B as f64, 2.0 * B as f64, 1.0]);
        let now = std::fs::read(&target.0).unwrap();
        assert_eq!(&now[..4 * B as usize], &virtual_source[..4 * B as usize], "data blocks written from the placed source");
        assert_eq!(now[4 * B as usize + 5], 9, "zero runs are left to the caller");
        // A target that reads as zeros where it has no data (verify against a dynamic VHD).
        let job = CompareJob {
            write: false,
            active: vec![ActiveRange { from: 0, to: 4 * B, source_at: Some(512 + B), target_at: None }],
            ..job
        };
        let counts = compare_segment(&job).unwrap();
        assert_eq!((counts.blocks_changed, counts.bytes_written), (4, 0));
        // Past the end of the source file: refused, not faulted.
        let job =
            CompareJob { active: vec![ActiveRange { from: 0, to: 6 * B, source_at: Some(512 + B), target_at: Some(0) }], ..job };
        assert!(matches!(compare_segment(&job), Err(Failure::Os { errno: sys::ENXIO, .. })));
        // Writing needs a place in the target.
        let job =
            CompareJob { write: true, active: vec![ActiveRange { from: 0, to: B, source_at: Some(0), target_at: None }], ..job };
        assert!(matches!(job.validate(), Err(Failure::Invalid(_))));
    }

    /// A pair of 3 MiB + 1000 bytes (windows of both modes end inside it, and units and runs of
    /// differing data cross the read windows' edges) with differences of every kind.
    fn multi_window_pair() -> (Vec<u8>, Vec<u8>) {
        let size = (3 << 20) + 1000;
        let source = bytes(41, size);
        let mut target = source.clone();
        for at in [0usize, 4095, 4096, (256 << 10) - 1, 256 << 10, (1 << 20) + 77, size - 1] {
            target[at] ^= 0x5A;
        }
        // A differing run across the first read window's edge and one across the map window's.
        for range in [(250 << 10)..(270 << 10), ((4 << 20) - (3 << 20))..((4 << 20) - (3 << 20) + 8192)] {
            target[range].fill(0xC3);
        }
        let mut source = source;
        source[(2 << 20)..(2 << 20) + 65536].fill(0); // zeros in the source where the target has data
        (source, target)
    }

    #[test]
    fn reading_and_mapping_give_the_same_changes_counts_and_writes() {
        let (source_bytes, target_bytes) = multi_window_pair();
        let size = source_bytes.len() as u64;
        for (block, unit) in [(4096u64, 4096u64), (65536, 65536), (8 << 20, 4 << 20), (8 << 20, 256 << 10)] {
            let end = size.min(size.div_ceil(block) * block);
            let mut results = Vec::new();
            for read in [ReadMode::Read, ReadMode::Map] {
                let source = TempFile::new(&format!("modes-source-{block}-{unit}-{read:?}"), &source_bytes);
                let target = TempFile::new(&format!("modes-target-{block}-{unit}-{read:?}"), &target_bytes);
                let mut out = vec![0f64; 3 * (size.div_ceil(unit) as usize)];
                let active = vec![ActiveRange { from: 0, to: end, source_at: Some(0), target_at: Some(0) }];
                let job =
                    CompareJob { unit, write: true, read, ..job_over(source.fd(), target.fd(), block, end, active, &mut out) };
                let counts = compare_segment(&job).unwrap();
                let changes = out[..counts.changes as usize * 3].to_vec();
                let now = std::fs::read(&target.0).unwrap();
                // Everything but the zero runs (the caller's part) now equals the source.
                let mut expected = source_bytes.clone();
                for triple in changes.chunks(3).filter(|triple| triple[2] == 1.0) {
                    let (from, to) = (triple[0] as usize, (triple[0] + triple[1]) as usize);
                    expected[from..to].copy_from_slice(&target_bytes[from..to]);
                }
                assert!(now == expected, "{read:?}, {block}-byte blocks, {unit}-byte units: the target after the writes");
                results.push((counts, changes));
            }
            assert_eq!(results[0], results[1], "{block}-byte blocks, {unit}-byte units: both modes agree");
            assert!(results[0].0.blocks_changed > 0 && results[0].0.bytes_written > 0);
        }
    }

    #[test]
    fn small_ranges_read_together_give_each_ranges_results_and_write_nothing_between_them() {
        const B: u64 = 4096;
        let size = (1 << 20) + 1000;
        for seed in 1..6u64 {
            let shift = if seed % 2 == 0 { 512 } else { 0 }; // the source's disk after a 512-byte header
            let virtual_source = bytes(seed * 7, size as usize);
            let mut target_bytes = virtual_source.clone();
            let mut flip = bytes(seed * 13, size as usize / 512);
            for (i, byte) in flip.iter_mut().enumerate() {
                if *byte < 24 {
                    target_bytes[i * 512 + (*byte as usize)] ^= 0x77; // differences in ranges and in gaps
                }
            }
            let mut source_virtual = virtual_source.clone();
            source_virtual[(B * 40) as usize..(B * 48) as usize].fill(0); // zero blocks in the source
            let mut source_file = vec![0xEEu8; shift as usize];
            source_file.extend_from_slice(&source_virtual);
            let active = fragmented_ranges(seed, size, shift);
            // What each range alone gives, unit by unit: the reference.
            let reads_as = |range: &ActiveRange, at: u64| -> u8 { range.source_at.map_or(0, |_| source_virtual[at as usize]) };
            let mut expected_changes: Vec<f64> = Vec::new();
            let mut expected_target = target_bytes.clone();
            let mut expected_counts = CompareCounts::default();
            for range in &active {
                expected_counts.blocks_compared += (range.to - range.from).div_ceil(B);
                for unit in (range.from..range.to).step_by(B as usize) {
                    let end = range.to.min(unit + B);
                    let source: Vec<u8> = (unit..end).map(|at| reads_as(range, at)).collect();
                    let target = &target_bytes[unit as usize..end as usize];
                    let zero = source.iter().all(|&byte| byte == 0);
                    expected_counts.blocks_non_zero += u64::from(!zero);
                    if source[..] != target[..] {
                        expected_counts.blocks_changed += 1;
                        let kind = f64::from(u8::from(zero));
                        let n = expected_changes.len();
                        if n > 0 && expected_changes[n - 3] + expected_changes[n - 2] == unit as f64 && expected_changes[n - 1] == kind {
                            expected_changes[n - 2] += (end - unit) as f64;
                        } else {
                            expected_changes.extend([unit as f64, (end - unit) as f64, kind]);
                        }
                        if !zero {
                            expected_target[unit as usize..end as usize].copy_from_slice(&source);
                            expected_counts.bytes_written += end - unit;
                        }
                    }
                }
            }
            expected_counts.changes = expected_changes.len() as u64 / 3;
            for read in [ReadMode::Read, ReadMode::Map] {
                let source = TempFile::new(&format!("joined-source-{seed}-{read:?}"), &source_file);
                let target = TempFile::new(&format!("joined-target-{seed}-{read:?}"), &target_bytes);
                let mut out = vec![0f64; 3 * size.div_ceil(B) as usize];
                let job = CompareJob { write: true, read, ..job_over(source.fd(), target.fd(), B, size, active.clone(), &mut out) };
                let counts = compare_segment(&job).unwrap();
                assert_eq!(counts, expected_counts, "seed {seed}, {read:?}: counts");
                assert_eq!(&out[..counts.changes as usize * 3], &expected_changes[..], "seed {seed}, {read:?}: changes");
                let now = std::fs::read(&target.0).unwrap();
                assert!(now == expected_target, "seed {seed}, {read:?}: the target holds the ranges' writes and nothing else");
            }
        }
    }

    #[test]
    fn a_target_in_memory_gives_the_results_of_the_same_bytes_in_a_file() {
        let (source_bytes, target_bytes) = multi_window_pair();
        let size = source_bytes.len() as u64;
        let block = 4096u64;
        let source = TempFile::new("memory-source", &source_bytes);
        let target = TempFile::new("memory-target", &target_bytes);
        // The target's bytes from `size / 3` on, placed at offset 100 of the memory (as a
        // segment's buffer would hold them); the source side of one range reads as zeros.
        let from = (size / 3 / block) * block;
        let mut memory = vec![0xAAu8; 100];
        memory.extend_from_slice(&target_bytes[from as usize..]);
        let middle = from + 40 * block;
        let ranges = |memory: bool| {
            let at = |offset: u64| Some(if memory { offset - from + 100 } else { offset });
            vec![
                ActiveRange { from, to: middle, source_at: Some(from), target_at: at(from) },
                ActiveRange { from: middle, to: middle + 3 * block, source_at: None, target_at: at(middle) },
                ActiveRange { from: middle + 5 * block, to: size, source_at: Some(middle + 5 * block), target_at: at(middle + 5 * block) },
            ]
        };
        let mut results = Vec::new();
        for in_memory in [false, true] {
            let mut out = vec![0f64; 3 * (size / block) as usize];
            let job = CompareJob {
                start: 0,
                target_memory: in_memory.then(|| (memory.as_ptr() as usize, memory.len())),
                ..job_over(source.fd(), if in_memory { -1 } else { target.fd() }, block, size, ranges(in_memory), &mut out)
            };
            let counts = compare_segment(&job).unwrap();
            results.push((counts, out));
        }
        assert!(results[0].0.blocks_changed > 0);
        assert!(results[0] == results[1], "the same counts and changes from memory as from the file");
        let mut out = vec![0f64; 3 * (size / block) as usize];
        let mut memory_job = |active, write| CompareJob {
            write,
            target_memory: Some((memory.as_ptr() as usize, memory.len())),
            ..job_over(source.fd(), target.fd(), block, size, active, &mut out)
        };
        assert!(memory_job(ranges(true), true).validate().is_err(), "no writes from a job comparing against memory");
        let past = vec![ActiveRange { from, to: size, source_at: Some(from), target_at: Some(200) }];
        assert!(memory_job(past, false).validate().is_err(), "a range past the end of the memory");
    }

    #[test]
    fn a_source_in_memory_gives_the_results_and_writes_of_the_same_bytes_in_a_file() {
        let (source_bytes, target_bytes) = multi_window_pair();
        let size = source_bytes.len() as u64;
        let block = 4096u64;
        let source = TempFile::new("memory-source-side", &source_bytes);
        // The source's bytes from `from` on at offset 100 of the memory (a chunk's buffer);
        // the source side of one range reads as zeros.
        let from = (size / 3 / block) * block;
        let mut memory = vec![0xAAu8; 100];
        memory.extend_from_slice(&source_bytes[from as usize..]);
        let middle = from + 40 * block;
        let ranges = |memory: bool| {
            let at = |offset: u64| Some(if memory { offset - from + 100 } else { offset });
            vec![
                ActiveRange { from, to: middle, source_at: at(from), target_at: Some(from) },
                ActiveRange { from: middle, to: middle + 3 * block, source_at: None, target_at: Some(middle) },
                ActiveRange { from: middle + 5 * block, to: size, source_at: at(middle + 5 * block), target_at: Some(middle + 5 * block) },
            ]
        };
        let mut results = Vec::new();
        for in_memory in [false, true] {
            let target = TempFile::new(&format!("memory-source-target-{in_memory}"), &target_bytes);
            let mut out = vec![0f64; 3 * (size / block) as usize];
            let job = CompareJob {
                start: 0,
                write: true,
                source_memory: in_memory.then(|| (memory.as_ptr() as usize, memory.len())),
                ..job_over(if in_memory { 0 } else { source.fd() }, target.fd(), block, size, ranges(in_memory), &mut out)
            };
            let counts = compare_segment(&job).unwrap();
            results.push((counts, out, std::fs::read(&target.0).unwrap()));
        }
        assert!(results[0].0.blocks_changed > 0 && results[0].0.bytes_written > 0);
        assert!(results[0] == results[1], "the same counts, changes and target writes from memory as from the file");
        let mut out = vec![0f64; 3 * (size / block) as usize];
        let past = vec![ActiveRange { from, to: size, source_at: Some(200), target_at: Some(from) }];
        let job = CompareJob { source_memory: Some((memory.as_ptr() as usize, memory.len())), ..job_over(0, source.fd(), block, size, past, &mut out) };
        assert!(job.validate().is_err(), "a range past the end of the source's memory");
    }

    #[test]
    fn a_gathered_source_gives_the_results_and_writes_of_the_same_bytes_in_a_file() {
        let (source_bytes, target_bytes) = multi_window_pair();
        let size = source_bytes.len() as u64;
        let block = 4096u64;
        let whole = TempFile::new("gather-whole", &source_bytes);
        // The same bytes in pieces: [0, x) from `whole`, [x, y) from another file at 777 (a
        // run that starts and ends inside windows), [y, size) from `whole` again.
        let (x, y) = (300_000u64, 1_500_123u64);
        let mut other_bytes = vec![0x11u8; 777];
        other_bytes.extend_from_slice(&source_bytes[x as usize..y as usize]);
        let other = TempFile::new("gather-other", &other_bytes);
        let gather = || {
            let values = [2.0, whole.fd() as f64, other.fd() as f64, 0.0, x as f64, 0.0, 0.0, x as f64, (y - x) as f64, 1.0, 777.0, y as f64, (size - y) as f64, 0.0, y as f64];
            crate::gather::Gather::parse(&values).unwrap()
        };
        let mut results = Vec::new();
        for gathered in [false, true] {
            let target = TempFile::new(&format!("gather-target-{gathered}"), &target_bytes);
            let mut out = vec![0f64; 3 * size.div_ceil(block) as usize + 3];
            let ranges = vec![ActiveRange::flat(0, size)];
            let job = CompareJob {
                write: true,
                source_gather: gathered.then(gather),
                ..job_over(if gathered { 0 } else { whole.fd() }, target.fd(), block, size, ranges, &mut out)
            };
            let counts = compare_segment(&job).unwrap();
            results.push((counts, out, std::fs::read(&target.0).unwrap()));
        }
        assert!(results[0].0.blocks_changed > 0 && results[0].0.bytes_written > 0);
        assert!(results[0] == results[1], "the same counts, changes and target writes gathered as from one file");
        let mut out = vec![0f64; 3 * size.div_ceil(block) as usize + 3];
        let uncovered = CompareJob { source_gather: Some(gather()), ..job_over(0, whole.fd(), block, size + 4096, vec![ActiveRange::flat(0, size + 4096)], &mut out) };
        assert!(uncovered.validate().is_err(), "a range the pieces do not cover");
        let written = CompareJob { target_gather: Some(gather()), write: true, ..job_over(whole.fd(), 0, block, size, vec![ActiveRange::flat(0, size)], &mut out) };
        assert!(written.validate().is_err(), "no writes to a gathered target");
    }

    #[test]
    fn a_read_past_the_end_of_the_file_is_enxio() {
        let file = TempFile::new("read-past-end", &bytes(3, 5000));
        let mut buffer = vec![0u8; 4096];
        assert!(read_exact(file.fd(), 0, &mut buffer).is_ok());
        assert_eq!(buffer[..], bytes(3, 5000)[..4096]);
        assert!(matches!(read_exact(file.fd(), 1000, &mut buffer), Err(Failure::Os { errno: sys::ENXIO, .. })));
        assert!(matches!(read_exact(-1, 0, &mut buffer), Err(Failure::Os { errno: 9, .. })));
    }

    #[test]
    fn a_target_that_reads_as_zeros_gets_the_source_data_without_being_read() {
        const B: u64 = 4096;
        let mut disk = bytes(31, 6 * B as usize);
        disk[B as usize..2 * B as usize].fill(0); // block 1: zeros
        let source = TempFile::new("zeros-source", &disk);
        // The target holds other bytes everywhere; as a fresh target it is taken to read as zeros.
        let target = TempFile::new("zeros-target", &vec![0x77u8; 6 * B as usize]);
        let mut out = vec![0f64; 3 * 6];
        let flat = |from, to| ActiveRange { from, to, source_at: Some(from), target_at: Some(from) };
        let active = vec![flat(0, 4 * B), flat(5 * B, 6 * B)];
        let job =
            CompareJob { write: true, target_zeros: true, ..job_over(source.fd(), target.fd(), B, 6 * B, active, &mut out) };
        let counts = compare_segment(&job).unwrap();
        assert_eq!(
            counts,
            CompareCounts { blocks_compared: 5, blocks_changed: 4, blocks_non_zero: 4, bytes_written: 4 * B, changes: 3 }
        );
        let b = B as f64;
        assert_eq!(
            &out[..9],
            &[0.0, b, 0.0, 2.0 * b, 2.0 * b, 0.0, 5.0 * b, b, 0.0],
            "data runs only: zeros equal the target's zeros"
        );
        let now = std::fs::read(&target.0).unwrap();
        assert!(
            now[..B as usize] == disk[..B as usize]
                && now[2 * B as usize..4 * B as usize] == disk[2 * B as usize..4 * B as usize]
        );
        assert!(now[B as usize..2 * B as usize].iter().all(|&x| x == 0x77), "a zero source block is not written");
        assert!(now[4 * B as usize..5 * B as usize].iter().all(|&x| x == 0x77), "nothing outside the ranges is touched");
    }
}
