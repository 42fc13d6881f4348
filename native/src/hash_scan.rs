//! The digest frame of one segment of an image whose data lies in plain runs of its file (the
//! images scan.rs compares: flat images, dynamic VHDs, clean VHDX files), built whole on one
//! thread of the libuv pool: the allocated block ranges are mapped read-only from the page
//! cache, each block is checked for zeros and, when it has data, hashed (XXH3-128 or XXH3-64,
//! xxh3.rs), and the block states and packed digests are written into the caller's buffers in
//! the layout of a digest file's frame (docs/digest-file.md). With the target's frame for the
//! same blocks (`resync --target-digest`), the job also finds the blocks whose digests differ
//! and, when asked, writes their data to a flat target from the source's mapping. This is the
//! WASM scanner's hash mode (src/sync/segment-scanner.ts, frameWindow in assembly/blocks.ts)
//! without a Node worker's boot or a copy into WASM memory.

use std::os::raw::c_int;

use crate::buffers::zeros;
use crate::failure::{Failure, Outcome};
use crate::gather::Gather;
use crate::scan::{check_files_hold, check_ranges, check_side, start_writeback, write_run, ActiveRange, Changes, Origin, Place, ReadMode};
use crate::spans::spans;
use crate::block_digest::{Algorithm, BlockDigester};
use crate::xxh3;

/// Block states of a digest frame (docs/digest-file.md).
pub const FRAME_UNALLOCATED: u8 = 0;
pub const FRAME_ZERO: u8 = 1;
pub const FRAME_DATA: u8 = 2;

/// A caller's buffer: address and length in bytes, lent until the job settles.
pub type Lent = (usize, usize);

/// The data states (FRAME_DATA) among `states`, or None when one is not a known state: what
/// a digest file's reader checks of every frame before a run writes anything
/// (`countDataStates`; src/sync/digest-format.ts countDataFlags is the portable form).
pub fn data_states(states: &[u8]) -> Option<u64> {
    // Branch-free over chunks (the compiler vectorizes the two sums).
    let (mut data, mut unknown) = (0u64, 0u8);
    for chunk in states.chunks(4096) {
        data += chunk.iter().map(|&state| u64::from(state == FRAME_DATA)).sum::<u64>();
        unknown |= chunk.iter().fold(0u8, |any, &state| any | u8::from(state > FRAME_DATA));
    }
    (unknown == 0).then_some(data)
}

/// data_states() of [offset, offset+length) of a caller's buffer: -1 for an unknown state.
pub fn count_data_states(memory: (usize, usize), offset: u64, length: u64) -> Outcome<f64> {
    if offset.checked_add(length).is_none_or(|end| end > memory.1 as u64) {
        return Err(Failure::Invalid(format!("the range {offset}+{length} lies outside the buffer ({} bytes)", memory.1)));
    }
    // SAFETY: inside the buffer (checked above), which stays valid during this synchronous call.
    let states = unsafe { std::slice::from_raw_parts((memory.0 as *const u8).add(offset as usize), length as usize) };
    Ok(data_states(states).map_or(-1.0, |count| count as f64))
}

/// The target's frame for the segment's blocks: a state per block, and the packed digests of
/// its data blocks.
#[derive(Clone, Copy)]
pub struct TargetFrame {
    pub flags: Lent,
    pub digests: Lent,
}

/// One segment's hashing, validated before it runs.
pub struct HashJob {
    pub source_fd: c_int,
    /// Written to (at the ranges' target offsets) only when `write` is set.
    pub target_fd: c_int,
    pub algorithm: Algorithm,
    pub block: u64,
    pub start: u64,
    pub end: u64,
    /// The block ranges with allocated data (the rest of the segment is unallocated), in order,
    /// disjoint, block-aligned from `start` (the last may end at `end`), each with its file
    /// offset in the source (None: it reads as zeros) and, when writing, in the target.
    pub active: Vec<ActiveRange>,
    /// Write the data of differing blocks to the target (needs `target`).
    pub write: bool,
    /// A state per block (FRAME_*).
    pub flags_out: Lent,
    /// The digests of the data blocks, packed in block order.
    pub digests_out: Lent,
    /// With `target`: the changed ranges as f64 triples (offset, length, 1 if the source reads as zeros).
    pub changes_out: Lent,
    pub target: Option<TargetFrame>,
    pub read: ReadMode,
    /// The source's bytes in the caller's memory (lent until the job settles; differencing
    /// sources, read through their format): the ranges' source offsets are offsets into it,
    /// and `source_fd` is not used.
    pub source_memory: Option<Lent>,
    /// The source's bytes gathered from the runs of several files (gather.rs): the ranges'
    /// source offsets are their own virtual offsets, and `source_fd` is not used.
    pub source_gather: Option<Gather>,
}

/// What a segment's hashing found.
#[derive(Debug, Default, PartialEq)]
pub struct HashCounts {
    pub data_blocks: u64,
    pub unallocated_blocks: u64,
    /// With a target frame: blocks whose state or digest differs.
    pub changed_blocks: u64,
    pub bytes_written: u64,
    /// Triples written to `changes_out`.
    pub changes: u64,
}

impl HashJob {
    fn blocks(&self) -> u64 {
        (self.end - self.start).div_ceil(self.block)
    }

    /// Slots the outputs need: digests (at most one per block that has a place in the source:
    /// the others read as zeros) and change triples (at most one per block that can differ: an
    /// allocated one, or a data block of the target's frame).
    fn output_slots(&self, target_data: u64) -> (u64, u64) {
        let mut sourced = 0;
        let mut active = 0;
        for range in &self.active {
            let blocks = (range.to - range.from).div_ceil(self.block);
            active += blocks;
            sourced += if range.source_at.is_some() { blocks } else { 0 };
        }
        (sourced, self.blocks().min(active + target_data))
    }

    /// Data blocks of the target's frame (validate() checked that it holds a state per block).
    fn target_data(&self) -> u64 {
        self.target.map_or(0, |target| {
            // SAFETY: at least blocks() bytes, lent by the caller; read on this thread now.
            let states = unsafe { std::slice::from_raw_parts(target.flags.0 as *const u8, self.blocks() as usize) };
            states.iter().filter(|&&state| state == FRAME_DATA).count() as u64
        })
    }

    /// Checks the job's shape; the descriptors are the caller's to keep valid. Returns the
    /// digest and change slots the job will use (output_slots).
    pub fn validate(&self) -> Outcome<(u64, u64)> {
        let block = self.block;
        let shortest = self.algorithm.shortest_block();
        if block == 0 || !block.is_power_of_two() || block < shortest {
            return Err(Failure::Invalid(format!("blockSize must be a power of two of at least {shortest}, got {block}")));
        }
        if self.start % block != 0 || self.end < self.start {
            return Err(Failure::Invalid(format!("segment {}..{} must start on a block boundary", self.start, self.end)));
        }
        let tail = (self.end - self.start) % block;
        if tail != 0 && tail < shortest {
            return Err(Failure::Invalid(format!("the last block ({tail} bytes) must be at least {shortest} bytes long")));
        }
        // Ranges are whole blocks, but for the segment's last (partial) block.
        let aligned = |at: u64| (at - self.start) % block == 0;
        check_ranges(&self.active, self.start, self.end, self.write, |from, to| {
            aligned(from) && (aligned(to) || to == self.end)
        })?;
        check_side(&self.active, Origin::SOURCE, self.source_memory, self.source_gather.as_ref())?;
        let blocks = self.blocks();
        let digest_bytes = self.algorithm.digest_bytes() as u64;
        if let Some(target) = self.target {
            if (target.flags.1 as u64) < blocks {
                return Err(Failure::Invalid(format!("the target frame has fewer than {blocks} block states")));
            }
        }
        let target_data = self.target_data();
        let (digest_slots, change_slots) = self.output_slots(target_data);
        if (self.flags_out.1 as u64) < blocks || (self.digests_out.1 as u64) < digest_slots * digest_bytes {
            return Err(Failure::Invalid(format!("the output buffers need {blocks} and {} bytes", digest_slots * digest_bytes)));
        }
        let mut lent = vec![self.flags_out, self.digests_out];
        match self.target {
            Some(target) => {
                if (self.changes_out.1 as u64) < change_slots * 24 || self.changes_out.0 % 8 != 0 {
                    return Err(Failure::Invalid(format!("the changes buffer needs {} bytes, 8-aligned", change_slots * 24)));
                }
                if (target.digests.1 as u64) < target_data * digest_bytes {
                    return Err(Failure::Invalid(format!("the target frame has fewer digests than its {target_data} data blocks")));
                }
                lent.extend([self.changes_out, target.flags, target.digests]);
            }
            None if self.write => return Err(Failure::Invalid("writing needs the target's frame".into())),
            None => {}
        }
        for (i, a) in lent.iter().enumerate() {
            for b in &lent[i + 1..] {
                if a.1 > 0 && b.1 > 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1 {
                    return Err(Failure::Invalid("the frame buffers must not overlap".into()));
                }
            }
        }
        Ok((digest_slots, change_slots))
    }
}

/// The frame being built, block by block in order.
struct Frame<'a> {
    flags: &'a mut [u8],
    digests: &'a mut [u8],
    digest_bytes: usize,
    /// The target's states and packed digests.
    target: Option<(&'a [u8], &'a [u8])>,
    changes: Changes<'a>,
    data: usize,
    /// Target digests consumed.
    used: usize,
    unallocated: u64,
    changed: u64,
}

impl Frame<'_> {
    /// Records block `index` (`length` bytes at `offset`) in state `state` (a data block's
    /// digest is already in the next packed slot); returns whether it differs from the target.
    fn visit(&mut self, index: usize, state: u8, offset: u64, length: u64) -> bool {
        self.flags[index] = state;
        match state {
            FRAME_DATA => self.data += 1,
            FRAME_UNALLOCATED => self.unallocated += 1,
            _ => {}
        }
        let Some((states, digests)) = self.target else { return false };
        let target_data = states[index] == FRAME_DATA;
        let mut same = state != FRAME_DATA && !target_data;
        if target_data {
            if state == FRAME_DATA {
                let size = self.digest_bytes;
                same =
                    digests[self.used * size..(self.used + 1) * size] == self.digests[(self.data - 1) * size..self.data * size];
            }
            self.used += 1;
        }
        if !same {
            self.changed += 1;
            self.changes.add(offset, length, state != FRAME_DATA);
        }
        !same
    }

    /// Blocks [from, to) of the segment are unallocated in the source. They differ only where
    /// the target's frame has data; the runs between those are recorded in bulk (a sparse
    /// image is mostly such runs).
    fn unallocated(&mut self, job: &HashJob, from: usize, to: usize) {
        let target_states = self.target.map(|(states, _)| states);
        let mut index = from;
        while index < to {
            let next_data = target_states.and_then(|states| states[index..to].iter().position(|&state| state == FRAME_DATA));
            let quiet_end = next_data.map_or(to, |found| index + found);
            self.flags[index..quiet_end].fill(FRAME_UNALLOCATED);
            self.unallocated += (quiet_end - index) as u64;
            if quiet_end < to {
                let offset = job.start + quiet_end as u64 * job.block;
                self.visit(quiet_end, FRAME_UNALLOCATED, offset, job.block.min(job.end - offset));
            }
            index = quiet_end + 1;
        }
    }
}

/// Builds the segment's frame (validating the job first).
pub fn hash_segment(job: &HashJob) -> Outcome<HashCounts> {
    let (digest_slots, change_slots) = job.validate()?;
    let (digest_slots, change_slots) = (digest_slots as usize, change_slots as usize);
    let blocks = job.blocks() as usize;
    let digest_bytes = job.algorithm.digest_bytes();
    // SAFETY: validate() checked that every lent buffer holds what is taken here and that they
    // do not overlap; the caller lends them until the job settles.
    let mut frame = unsafe {
        let target = job.target.map(|target| {
            let digests = target.digests.1 / digest_bytes * digest_bytes;
            (
                std::slice::from_raw_parts(target.flags.0 as *const u8, blocks),
                std::slice::from_raw_parts(target.digests.0 as *const u8, digests),
            )
        });
        let changes =
            if target.is_some() { std::slice::from_raw_parts_mut(job.changes_out.0 as *mut f64, change_slots * 3) } else { &mut [] };
        Frame {
            flags: std::slice::from_raw_parts_mut(job.flags_out.0 as *mut u8, blocks),
            // A job with nothing sourced may be lent an empty buffer (whose address may be null).
            digests: if digest_slots == 0 { &mut [] } else { std::slice::from_raw_parts_mut(job.digests_out.0 as *mut u8, digest_slots * digest_bytes) },
            digest_bytes,
            target,
            changes: Changes { out: changes, count: 0 },
            data: 0,
            used: 0,
            unallocated: 0,
            changed: 0,
        }
    };
    // SAFETY: validate() checked every range against the lent memory, which the caller keeps
    // alive and unchanged until the job settles.
    let source_origin = unsafe { Origin::of(job.source_fd, job.source_memory, job.source_gather.as_ref()) };
    // A file shorter than a range would fault (SIGBUS) past its end: refuse instead.
    check_files_hold([source_origin, Origin::File(job.target_fd)], &job.active)?;
    let mode = job.read;
    let window = mode.window(job.block);
    let mut buffer = source_origin.buffer(mode, window);
    let zeros = zeros(if job.active.iter().any(|range| range.source_at.is_none()) { window as usize } else { 0 });
    let digester = BlockDigester::new(job.algorithm);
    let mut zero_blocks: Vec<bool> = Vec::with_capacity(window.div_ceil(job.block) as usize);
    let mut counts = HashCounts::default();
    let mut written: Option<(u64, u64)> = None; // file range of the target written to
    let mut next = 0usize; // the next block to record
    // The target is always a file here (only written to).
    for span in spans(&job.active, window, mode.join_gap(), [source_origin.joinable(), true]) {
        let source = source_origin.side(mode, span.source_at, span.to - span.from, &zeros, &mut buffer)?;
        let bytes = source.bytes();
        let place = Place { window_start: span.from, target_at: span.target_at };
        for (from, to) in span.parts(&job.active) {
            frame.unallocated(job, next, ((from - job.start) / job.block) as usize);
            next = ((from - job.start) / job.block) as usize;
            let part = &bytes[(from - span.from) as usize..(to - span.from) as usize];
            // The digests of the part's data blocks go in their packed slots first, two at a
            // time (SHA-256 interleaves two messages), then the blocks are recorded in order.
            zero_blocks.clear();
            zero_blocks.extend(part.chunks(job.block as usize).map(xxh3::is_zero));
            let data_blocks = part.chunks(job.block as usize).zip(&zero_blocks).filter(|(_, &zero)| !zero).map(|(data, _)| data);
            digester.digest_all(data_blocks.zip(frame.digests[frame.data * digest_bytes..].chunks_exact_mut(digest_bytes)));
            // The run of differing data blocks being gathered, written when it ends (or the part does).
            let mut run: Option<(u64, u64)> = None;
            for (i, data) in part.chunks(job.block as usize).enumerate() {
                let offset = from + i as u64 * job.block;
                let length = data.len() as u64;
                let zero = zero_blocks[i];
                let differs = frame.visit(next, if zero { FRAME_ZERO } else { FRAME_DATA }, offset, length);
                next += 1;
                match run {
                    Some((start, size)) if differs && !zero && start + size == offset => run = Some((start, size + length)),
                    _ => {
                        if let Some(done) = run.take() {
                            counts.bytes_written += write_run(job.target_fd, job.write, done, bytes, &place, &mut written)?;
                        }
                        if differs && !zero {
                            run = Some((offset, length));
                        }
                    }
                }
            }
            // The part ends: write what was gathered from it.
            if let Some(done) = run.take() {
                counts.bytes_written += write_run(job.target_fd, job.write, done, bytes, &place, &mut written)?;
            }
        }
    }
    frame.unallocated(job, next, blocks);
    if let Some((low, high)) = written {
        start_writeback(job.target_fd, low, high);
    }
    counts.data_blocks = frame.data as u64;
    counts.unallocated_blocks = frame.unallocated;
    counts.changed_blocks = frame.changed;
    counts.changes = frame.changes.count as u64;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use crate::test_bytes::{fragmented_ranges, xorshift_bytes as bytes, TempFile};

    const B: u64 = 4096;

    /// Zero flags and per-block digests of `data`, block by block.
    fn reference(algorithm: Algorithm, data: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let digester = BlockDigester::new(algorithm);
        data.chunks(B as usize)
            .map(|block| {
                let mut digest = vec![0u8; algorithm.digest_bytes()];
                digester.digest(block, &mut digest);
                (block.iter().all(|&byte| byte == 0), digest)
            })
            .collect()
    }

    /// A frame's output buffers.
    struct Out {
        flags: Vec<u8>,
        digests: Vec<u8>,
        changes: Vec<f64>,
    }

    impl Out {
        fn new(blocks: usize) -> Out {
            Out { flags: vec![9; blocks], digests: vec![0; blocks * 32], changes: vec![0.0; blocks * 3] }
        }

        /// This frame (its first `blocks` states) as a job's target frame.
        fn as_target(&self, blocks: usize) -> TargetFrame {
            TargetFrame { flags: (self.flags.as_ptr() as usize, blocks), digests: (self.digests.as_ptr() as usize, self.digests.len()) }
        }
    }

    fn job(fd: c_int, algorithm: Algorithm, end: u64, active: Vec<ActiveRange>, out: &mut Out) -> HashJob {
        HashJob {
            source_fd: fd,
            target_fd: fd,
            algorithm,
            block: B,
            start: 0,
            end,
            active,
            write: false,
            flags_out: (out.flags.as_mut_ptr() as usize, out.flags.len()),
            digests_out: (out.digests.as_mut_ptr() as usize, out.digests.len()),
            changes_out: (out.changes.as_mut_ptr() as usize, out.changes.len() * 8),
            target: None,
            read: ReadMode::Read,
            source_memory: None,
            source_gather: None,
        }
    }

    fn range(from: u64, to: u64, source_at: Option<u64>) -> ActiveRange {
        ActiveRange { from, to, source_at, target_at: None }
    }

    /// The XXH3-128 frame of `disk` (data and zero blocks), to diff jobs against.
    fn frame_of(name: &str, disk: &[u8]) -> Out {
        let end = disk.len() as u64;
        let file = TempFile::new(name, disk);
        let mut frame = Out::new(end.div_ceil(B) as usize);
        hash_segment(&job(file.fd(), Algorithm::Xxh3_128, end, vec![range(0, end, Some(0))], &mut frame)).unwrap();
        frame
    }

    /// A job over [0, end) that writes the source's blocks differing from `frame` to `target_fd`.
    fn writing_job(source_fd: c_int, target_fd: c_int, read: ReadMode, frame: &Out, end: u64, active: Vec<ActiveRange>, out: &mut Out) -> HashJob {
        let blocks = end.div_ceil(B) as usize;
        HashJob { target_fd, write: true, read, target: Some(frame.as_target(blocks)), ..job(source_fd, Algorithm::Xxh3_128, end, active, out) }
    }

    #[test]
    fn data_states_count_the_data_blocks_and_refuse_unknown_states() {
        let mut states: Vec<u8> = (0..10_000u32).map(|i| (i % 3) as u8).collect();
        assert_eq!(data_states(&states), Some(3333));
        assert_eq!(data_states(&[]), Some(0));
        for (at, bad) in [(0usize, 3u8), (4095, 255), (4096, 128), (9999, 4)] {
            let saved = states[at];
            states[at] = bad;
            assert_eq!(data_states(&states), None, "state {bad} at {at}");
            states[at] = saved;
        }
        let memory = (states.as_ptr() as usize, states.len());
        assert_eq!(count_data_states(memory, 3, 6).unwrap(), 2.0);
        assert!(matches!(count_data_states(memory, 9999, 2), Err(Failure::Invalid(_))));
    }

    #[test]
    fn frames_hold_each_block_state_and_the_packed_digests() {
        // 10 whole blocks and a last one of 1000 bytes; blocks 2 and 7 are zeros; blocks 3-4
        // are unallocated (not in a range); blocks 5-10 lie at file offset 512 + B (a dynamic
        // VHD's data after its bitmap), block 8 reads as zeros (no place in the file).
        let end = 10 * B + 1000;
        let mut disk = bytes(5, end as usize);
        for zero in [2, 7, 8] {
            disk[(zero * B) as usize..((zero + 1) * B) as usize].fill(0);
        }
        disk[(3 * B) as usize..(5 * B) as usize].fill(0);
        let mut file = disk[..(3 * B) as usize].to_vec();
        file.resize((5 * B) as usize + 512, 0xEE);
        file.extend_from_slice(&disk[(5 * B) as usize..(8 * B) as usize]);
        let tail_at = file.len() as u64;
        file.extend_from_slice(&disk[(9 * B) as usize..]);
        let source = TempFile::new("hash-frame", &file);
        for algorithm in [Algorithm::Xxh3_128, Algorithm::Xxh3_64, Algorithm::Xxh64, Algorithm::Sha256] {
            let size = algorithm.digest_bytes();
            let mut out = Out::new(11);
            let active = vec![
                range(0, 3 * B, Some(0)),
                range(5 * B, 8 * B, Some(5 * B + 512)),
                range(8 * B, 9 * B, None),
                range(9 * B, end, Some(tail_at)),
            ];
            let counts = hash_segment(&job(source.fd(), algorithm, end, active, &mut out)).unwrap();
            let expected = reference(algorithm, &disk);
            let states: Vec<u8> = (0..11)
                .map(|i| {
                    if i == 3 || i == 4 {
                        FRAME_UNALLOCATED
                    } else if expected[i].0 {
                        FRAME_ZERO
                    } else {
                        FRAME_DATA
                    }
                })
                .collect();
            assert_eq!(out.flags, states);
            let packed: Vec<u8> = (0..11).filter(|&i| states[i] == FRAME_DATA).flat_map(|i| expected[i].1.clone()).collect();
            assert_eq!(packed.len(), 6 * size);
            assert!(out.digests[..packed.len()] == packed[..], "packed digests differ from the per-block hasher's");
            assert_eq!(counts, HashCounts { data_blocks: 6, unallocated_blocks: 2, ..HashCounts::default() });
        }
    }

    #[test]
    fn a_target_frame_gives_the_changes_and_the_writes() {
        let end = 12 * B;
        let mut disk = bytes(21, end as usize);
        disk[(4 * B) as usize..(5 * B) as usize].fill(0);
        disk[(10 * B) as usize..].fill(0); // unallocated in the source: reads as zeros
        let source = TempFile::new("hash-changes-source", &disk);
        // The target: block 0 differs by a byte, block 4 has data where the source has zeros,
        // block 6 is zero where the source has data, blocks 9-11 are unallocated in the target
        // (but in the source, 10-11 are unallocated too, and 9 holds data).
        let mut target_disk = disk.clone();
        target_disk[100] ^= 1;
        target_disk[(4 * B) as usize + 7] = 3;
        target_disk[(6 * B) as usize..(7 * B) as usize].fill(0);
        target_disk[(9 * B) as usize..].fill(0);
        let target = TempFile::new("hash-changes-target", &target_disk);
        let algorithm = Algorithm::Xxh3_128;
        let mut frame = Out::new(12);
        hash_segment(&job(target.fd(), algorithm, end, vec![range(0, 9 * B, Some(0))], &mut frame)).unwrap();
        let mut out = Out::new(12);
        let flat = |from, to| ActiveRange { from, to, source_at: Some(from), target_at: Some(from) };
        let job = HashJob {
            target_fd: target.fd(),
            write: true,
            target: Some(frame.as_target(12)),
            ..job(source.fd(), algorithm, end, vec![flat(0, 10 * B)], &mut out)
        };
        let counts = hash_segment(&job).unwrap();
        assert_eq!(
            counts,
            HashCounts { data_blocks: 9, unallocated_blocks: 2, changed_blocks: 4, bytes_written: 3 * B, changes: 4 }
        );
        // Block 0 (data), block 4 (the source reads as zeros), block 6 (data), block 9 (data).
        let b = B as f64;
        assert_eq!(&out.changes[..12], &[0.0, b, 0.0, 4.0 * b, b, 1.0, 6.0 * b, b, 0.0, 9.0 * b, b, 0.0]);
        let mut now = std::fs::read(&target.0).unwrap();
        now[(4 * B) as usize..(5 * B) as usize].fill(0); // the caller's part: zero runs
        assert!(now == disk, "after the writes and the zero run the target equals the source");
        // The job only reads the target frame: run again, it finds the same blocks.
        let again = hash_segment(&HashJob { write: false, ..job });
        assert_eq!(again.ok().map(|counts| counts.changed_blocks), Some(4), "the lent target frame is left as it was");
    }

    #[test]
    fn small_ranges_read_together_give_the_frame_and_writes_of_ranges_taken_one_by_one() {
        // A source in lent memory takes its ranges one by one (spans.rs joins only file reads):
        // the reference for the file read and mapped, with close ranges read together.
        let size: u64 = (1 << 20) + 1000;
        let blocks = size.div_ceil(B) as usize;
        for seed in 1..5u64 {
            let shift = if seed % 2 == 0 { 512 } else { 0 };
            let mut source_file = vec![0xEEu8; shift as usize];
            source_file.extend_from_slice(&bytes(seed * 3, size as usize));
            source_file[(shift + 40 * B) as usize..(shift + 44 * B) as usize].fill(0);
            let mut target_disk = source_file[shift as usize..].to_vec();
            for at in (0..size as usize).step_by(9000) {
                target_disk[at] ^= 0x21; // differences in ranges and between them
            }
            target_disk[(60 * B) as usize..(70 * B) as usize].fill(0); // zero blocks in the target's frame
            let active = fragmented_ranges(seed, size, shift);
            let frame = frame_of(&format!("joined-hash-frame-{seed}"), &target_disk);
            let mut results = Vec::new();
            for (read, in_memory) in [(ReadMode::Read, true), (ReadMode::Read, false), (ReadMode::Map, false)] {
                let source = TempFile::new(&format!("joined-hash-source-{seed}-{read:?}-{in_memory}"), &source_file);
                let target = TempFile::new(&format!("joined-hash-target-{seed}-{read:?}-{in_memory}"), &target_disk);
                let mut out = Out::new(blocks);
                let job = HashJob {
                    source_memory: in_memory.then(|| (source_file.as_ptr() as usize, source_file.len())),
                    ..writing_job(source.fd(), target.fd(), read, &frame, size, active.clone(), &mut out)
                };
                let counts = hash_segment(&job).unwrap();
                let now = std::fs::read(&target.0).unwrap();
                // Only data blocks of the ranges are written: every byte outside them is as it was.
                let mut outside = target_disk.clone();
                let mut written = now.clone();
                for range in &active {
                    outside[range.from as usize..range.to as usize].fill(0);
                    written[range.from as usize..range.to as usize].fill(0);
                }
                assert!(written == outside, "seed {seed}, {read:?}: a byte between the ranges was written");
                let digests = out.digests[..counts.data_blocks as usize * 16].to_vec();
                let changes = out.changes[..counts.changes as usize * 3].to_vec();
                results.push((counts, out.flags.clone(), digests, changes, now));
            }
            assert!(results[0].0.changed_blocks > 0 && results[0].0.bytes_written > 0, "seed {seed}: the pair differs");
            assert!(results[1] == results[0], "seed {seed}: read with close ranges together, the file gives what memory gives");
            assert!(results[2] == results[0], "seed {seed}: mapped with close ranges together, likewise");
        }
    }

    #[test]
    fn a_source_in_memory_gives_the_frame_and_writes_of_the_same_bytes_in_a_file() {
        // Ten blocks of data, one zero block; the last range's source reads as zeros.
        let end = 12 * B;
        let mut disk = bytes(7, end as usize);
        disk[(3 * B) as usize..(4 * B) as usize].fill(0);
        let mut target_disk = disk.clone();
        target_disk[(2 * B) as usize + 5] ^= 1;
        target_disk[(8 * B) as usize] ^= 2;
        let source = TempFile::new("hash-memory-source", &disk);
        let target_frame_file = TempFile::new("hash-memory-target-frame", &target_disk);
        let mut frame = Out::new(12);
        hash_segment(&job(target_frame_file.fd(), Algorithm::Xxh3_128, end, vec![range(0, end, Some(0))], &mut frame)).unwrap();
        // The source's bytes from block 1 on, at offset 64 of the memory.
        let mut memory = vec![0x55u8; 64];
        memory.extend_from_slice(&disk[B as usize..]);
        let place = |memory: bool, at: u64| Some(if memory { at - B + 64 } else { at });
        let mut results = Vec::new();
        for in_memory in [false, true] {
            let target = TempFile::new(&format!("hash-memory-target-{in_memory}"), &target_disk);
            let ranges = vec![
                ActiveRange { from: B, to: 10 * B, source_at: place(in_memory, B), target_at: Some(B) },
                ActiveRange { from: 10 * B, to: 11 * B, source_at: None, target_at: Some(10 * B) },
            ];
            let mut out = Out::new(12);
            let job = HashJob {
                target_fd: target.fd(),
                write: true,
                target: Some(frame.as_target(12)),
                source_memory: in_memory.then(|| (memory.as_ptr() as usize, memory.len())),
                ..job(if in_memory { 0 } else { source.fd() }, Algorithm::Xxh3_128, end, ranges, &mut out)
            };
            let counts = hash_segment(&job).unwrap();
            results.push((counts, out.flags, out.digests, out.changes, std::fs::read(&target.0).unwrap()));
        }
        assert!(results[0].0.changed_blocks >= 2 && results[0].0.bytes_written > 0);
        assert!(results[0] == results[1], "the same frame, changes and target writes from memory as from the file");
        let mut out = Out::new(12);
        let past = HashJob {
            source_memory: Some((memory.as_ptr() as usize, memory.len())),
            ..job(0, Algorithm::Xxh3_128, end, vec![range(B, 12 * B, Some(64 + B))], &mut out)
        };
        assert!(past.validate().is_err(), "a range past the end of the source's memory");
    }

    #[test]
    fn reading_and_mapping_give_the_same_frames_changes_and_writes() {
        // 3 MiB + 1000 bytes of 4 KiB blocks: both modes' windows end inside it; a run of
        // differing blocks crosses the read window's edge; some blocks are zeros.
        let size = (3 << 20) + 1000;
        let mut disk = bytes(43, size);
        disk[(1 << 20)..(1 << 20) + 3 * B as usize].fill(0);
        let mut target_disk = disk.clone();
        for at in [0usize, (240 << 10), (250 << 10), (262 << 10), (1 << 20) + 5, size - 1] {
            target_disk[at] ^= 0x24;
        }
        let end = size as u64;
        let blocks = end.div_ceil(B) as usize;
        let frame = frame_of("modes-hash-frame", &target_disk);
        let mut results = Vec::new();
        for read in [ReadMode::Read, ReadMode::Map] {
            let source = TempFile::new(&format!("modes-hash-source-{read:?}"), &disk);
            let written = TempFile::new(&format!("modes-hash-target-{read:?}"), &target_disk);
            let mut out = Out::new(blocks);
            let active = vec![ActiveRange { target_at: Some(0), ..range(0, end, Some(0)) }];
            let job = writing_job(source.fd(), written.fd(), read, &frame, end, active, &mut out);
            let counts = hash_segment(&job).unwrap();
            let mut now = std::fs::read(&written.0).unwrap();
            for triple in out.changes[..counts.changes as usize * 3].chunks(3).filter(|triple| triple[2] == 1.0) {
                now[triple[0] as usize..(triple[0] + triple[1]) as usize].fill(0); // the caller's part: zero runs
            }
            assert!(now == disk, "{read:?}: the target equals the source after the writes and zero runs");
            assert_eq!(counts.changed_blocks, 6, "{read:?}");
            let (used, changes) = (counts.data_blocks as usize * 16, counts.changes as usize * 3);
            results.push((counts, out.flags.clone(), out.digests[..used].to_vec(), out.changes[..changes].to_vec()));
        }
        assert!(results[0] == results[1], "both modes give the same frame, changes and counts");
    }

    #[test]
    fn unallocated_runs_differ_only_at_the_targets_data_blocks() {
        // 16 blocks; the source has data in blocks 5-6 only. The target's frame has data in
        // blocks 0, 1, 3, 10 and 15, a zero block at 2, and is unallocated elsewhere.
        let end = 16 * B;
        let source = TempFile::new("hash-sparse-source", &bytes(5, end as usize));
        let mut states = vec![FRAME_UNALLOCATED; 16];
        for i in [0, 1, 3, 10, 15] {
            states[i] = FRAME_DATA;
        }
        states[2] = FRAME_ZERO;
        let digests = vec![7u8; 5 * 16];
        let mut out = Out::new(16);
        let with_changes = |out: &mut Out, triples: usize| HashJob {
            target: Some(TargetFrame { flags: (states.as_ptr() as usize, 16), digests: (digests.as_ptr() as usize, digests.len()) }),
            changes_out: (out.changes.as_mut_ptr() as usize, triples * 24),
            ..job(source.fd(), Algorithm::Xxh3_128, end, vec![range(5 * B, 7 * B, Some(5 * B))], out)
        };
        // At most 2 allocated blocks + 5 target data blocks can differ: 7 change slots.
        assert!(with_changes(&mut out, 6).validate().is_err(), "fewer change slots than blocks that can differ");
        let counts = hash_segment(&with_changes(&mut out, 7)).unwrap();
        let mut expected_states = vec![FRAME_UNALLOCATED; 16];
        expected_states[5] = FRAME_DATA;
        expected_states[6] = FRAME_DATA;
        assert_eq!(out.flags, expected_states);
        assert_eq!(counts, HashCounts { data_blocks: 2, unallocated_blocks: 14, changed_blocks: 7, bytes_written: 0, changes: 5 });
        let changes: Vec<f64> = [[0, 2, 1], [3, 1, 1], [5, 2, 0], [10, 1, 1], [15, 1, 1]]
            .iter()
            .flat_map(|&[block, count, zero]| [(block * B) as f64, (count * B) as f64, zero as f64])
            .collect();
        assert_eq!(out.changes[..15], changes[..]);
    }

    #[test]
    fn shapes_that_would_misread_are_refused() {
        let source = TempFile::new("hash-refusals", &bytes(3, 4 * B as usize));
        let mut out = Out::new(4);
        let fd = source.fd();
        let ok = |active| job(fd, Algorithm::Xxh3_64, 4 * B, active, &mut Out::new(4)).validate();
        assert!(ok(vec![range(0, 4 * B, Some(0))]).is_ok());
        assert!(ok(vec![range(B, 2 * B, Some(0)), range(0, B, Some(0))]).is_err(), "out of order");
        assert!(ok(vec![range(100, 4 * B, Some(0))]).is_err(), "not block-aligned");
        assert!(ok(vec![range(0, 5 * B, Some(0))]).is_err(), "past the segment");
        assert!(
            job(fd, Algorithm::Xxh3_64, 3 * B + 200, vec![], &mut out).validate().is_err(),
            "a last block of 240 bytes or less"
        );
        for algorithm in [Algorithm::Xxh64, Algorithm::Sha256] {
            assert!(job(fd, algorithm, 3 * B + 1, vec![], &mut out).validate().is_ok(), "{algorithm:?} takes a last block of any length");
        }
        let short = HashJob {
            digests_out: (out.digests.as_mut_ptr() as usize, 3 * 8),
            ..job(fd, Algorithm::Xxh3_64, 4 * B, vec![range(0, 4 * B, Some(0))], &mut out)
        };
        assert!(short.validate().is_err(), "digests buffer too small");
        // Digests are needed only for blocks with a place in the source.
        let mut sized = |active| HashJob { digests_out: (out.digests.as_mut_ptr() as usize, 8), ..job(fd, Algorithm::Xxh3_64, 4 * B, active, &mut out) };
        assert!(sized(vec![range(B, 2 * B, Some(B))]).validate().is_ok(), "one allocated block, one digest");
        assert!(sized(vec![range(0, 2 * B, Some(0))]).validate().is_err(), "two allocated blocks, one digest");
        assert!(sized(vec![range(0, 2 * B, None), range(2 * B, 3 * B, Some(0))]).validate().is_ok(), "zero ranges need no digest");
        let overlapping =
            HashJob { digests_out: (out.flags.as_mut_ptr() as usize, 64), ..job(fd, Algorithm::Xxh3_64, 4 * B, vec![], &mut out) };
        assert!(overlapping.validate().is_err(), "overlapping outputs");
        let unframed = HashJob {
            write: true,
            ..job(fd, Algorithm::Xxh3_64, 4 * B, vec![ActiveRange { target_at: Some(0), ..range(0, B, Some(0)) }], &mut out)
        };
        assert!(unframed.validate().is_err(), "writing without the target's frame");
        // A target frame with fewer digests than data blocks.
        let states = vec![FRAME_DATA; 4];
        let digests = vec![0u8; 3 * 8];
        let thin = HashJob {
            target: Some(TargetFrame {
                flags: (states.as_ptr() as usize, 4),
                digests: (digests.as_ptr() as usize, digests.len()),
            }),
            ..job(fd, Algorithm::Xxh3_64, 4 * B, vec![], &mut out)
        };
        assert!(matches!(thin.validate(), Err(Failure::Invalid(_))));
        // A range past the end of the file: refused, not faulted.
        let past = job(fd, Algorithm::Xxh3_64, 4 * B, vec![range(0, 4 * B, Some(B))], &mut out);
        assert!(matches!(hash_segment(&past), Err(Failure::Os { errno: sys::ENXIO, .. })));
    }
}
