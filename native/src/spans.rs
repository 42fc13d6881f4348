//! How a scan job reads its ranges: one read (or mapping) per side for each span of the
//! virtual disk. A range longer than the job's window is cut into windows. Small ranges close
//! together are read together when both files hold them at the same distance apart as on the
//! virtual disk (flat images: always): a sparse file with data in 4 KiB pieces every 8 KiB
//! would otherwise cost two pread calls per 4 KiB compared, and the calls, not the copies, set
//! the time (docs/native.md "Reading small ranges together"). The bytes between the ranges
//! are read and never looked at.

use std::ops::Range;

use crate::scan::ActiveRange;

/// Largest distance between two ranges read together with pread. On the nineteenth session's
/// host a pread of a cached 4 KiB page took 0.66 us: ~0.4 us for the call and ~0.25 us per
/// 4 KiB copied (a C loop of preads over the cached fragmented bench file, docs/native.md).
/// Reading a 4 KiB gap (0.25 us) saves a call (0.4 us); an 8 KiB one no longer pays.
pub(crate) const READ_JOIN_GAP_BYTES: u64 = 4 << 10;
/// The same for mapped windows: a mapping costs ~8 us (mmap, SIGBUS guard, munmap) against
/// ~0.1 us per page of gap touched.
pub(crate) const MAP_JOIN_GAP_BYTES: u64 = 64 << 10;

/// A stretch of the virtual disk read at once for each side.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Span {
    pub(crate) from: u64,
    pub(crate) to: u64,
    /// File offset of `from` in the source, or None where the source reads as zeros.
    pub(crate) source_at: Option<u64>,
    /// File offset of `from` in the target, or None where the target reads as zeros.
    pub(crate) target_at: Option<u64>,
    /// The job's ranges inside this span (indices), each clipped to it by parts().
    ranges: Range<usize>,
}

impl Span {
    /// The parts of the job's ranges in this span, in order: [from, to) of the virtual disk.
    pub(crate) fn parts<'a>(&'a self, active: &'a [ActiveRange]) -> impl Iterator<Item = (u64, u64)> + 'a {
        active[self.ranges.clone()].iter().map(move |range| (range.from.max(self.from), range.to.min(self.to)))
    }
}

/// The spans covering `active` (in order, disjoint), none longer than `window`. Ranges at
/// most `gap` bytes apart join, where `joinable` allows it for each side that has data there
/// ([source, target]: a side read from its file; memory and gathered pieces are taken range
/// by range).
pub(crate) fn spans(active: &[ActiveRange], window: u64, gap: u64, joinable: [bool; 2]) -> Spans<'_> {
    Spans { active, window: window.max(1), gap, joinable, next: 0, at: 0 }
}

pub(crate) struct Spans<'a> {
    active: &'a [ActiveRange],
    window: u64,
    gap: u64,
    joinable: [bool; 2],
    /// The range the next span starts in, and where in it (a range cut into windows).
    next: usize,
    at: u64,
}

impl Spans<'_> {
    /// Whether `range` can join a span that starts at `from` in `first` and now ends at `end`.
    fn joins(&self, first: &ActiveRange, from: u64, end: u64, range: &ActiveRange) -> bool {
        range.to - from <= self.window
            && range.from - end <= self.gap
            && [(first.source_at, range.source_at), (first.target_at, range.target_at)].iter().zip(self.joinable).all(|(&places, joinable)| match places {
                (None, None) => true,
                // The same distance from the virtual offset in the file (wrapping: only equality matters).
                (Some(a), Some(b)) => joinable && a.wrapping_sub(first.from) == b.wrapping_sub(range.from),
                _ => false,
            })
    }
}

impl Iterator for Spans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        let first = *self.active.get(self.next)?;
        let from = self.at.max(first.from);
        let place = |at: Option<u64>| at.map(|at| at + (from - first.from));
        let (source_at, target_at) = (place(first.source_at), place(first.target_at));
        if first.to - from > self.window {
            // A window of a long range: the rest of it starts the next span.
            self.at = from + self.window;
            return Some(Span { from, to: self.at, source_at, target_at, ranges: self.next..self.next + 1 });
        }
        let start = self.next;
        let mut end = first.to;
        self.next += 1;
        while let Some(range) = self.active.get(self.next) {
            if !self.joins(&first, from, end, range) {
                break;
            }
            end = range.to;
            self.next += 1;
        }
        self.at = 0;
        Some(Span { from, to: end, source_at, target_at, ranges: start..self.next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gap the tests join across.
    const G: u64 = 16 << 10;

    fn flat(from: u64, to: u64) -> ActiveRange {
        ActiveRange { from, to, source_at: Some(from), target_at: Some(from) }
    }

    fn parts(active: &[ActiveRange], window: u64, joinable: [bool; 2]) -> Vec<(u64, u64, Vec<(u64, u64)>)> {
        spans(active, window, G, joinable).map(|span| (span.from, span.to, span.parts(active).collect())).collect()
    }

    #[test]
    fn long_ranges_are_cut_in_windows_and_their_places_follow() {
        let active = [ActiveRange { from: 0, to: 10, source_at: Some(100), target_at: None }];
        let found: Vec<Span> = spans(&active, 4, G, [true, true]).collect();
        assert_eq!(found.iter().map(|s| (s.from, s.to, s.source_at, s.target_at)).collect::<Vec<_>>(), vec![
            (0, 4, Some(100), None),
            (4, 8, Some(104), None),
            (8, 10, Some(108), None)
        ]);
    }

    #[test]
    fn close_ranges_of_flat_files_are_read_together_up_to_a_window() {
        let g = G;
        let active = [flat(0, 4096), flat(8192, 12288), flat(12288 + g, 16384 + g), flat(16384 + 2 * g + 1, 20480 + 2 * g + 1)];
        assert_eq!(parts(&active, 1 << 20, [true, true]), vec![
            (0, 16384 + g, vec![(0, 4096), (8192, 12288), (12288 + g, 16384 + g)]),
            (16384 + 2 * g + 1, 20480 + 2 * g + 1, vec![(16384 + 2 * g + 1, 20480 + 2 * g + 1)]),
        ]);
        // The window bounds a span: [0, 12288) is 12 KiB.
        assert_eq!(parts(&active[..2], 12287, [true, true]).len(), 2);
        assert_eq!(parts(&active[..2], 12288, [true, true]).len(), 1);
        // A side that is not read from its file (memory, gathered) takes its ranges one by one.
        assert_eq!(parts(&active[..2], 1 << 20, [true, false]).len(), 2);
        assert_eq!(parts(&active[..2], 1 << 20, [false, true]).len(), 2);
    }

    #[test]
    fn ranges_join_only_at_the_same_distance_in_both_files() {
        let moved = ActiveRange { from: 8192, to: 12288, source_at: Some(8192 + 512), target_at: Some(8192) };
        assert_eq!(parts(&[flat(0, 4096), moved], 1 << 20, [true, true]).len(), 2);
        // Zeros on a side (None) join only zeros.
        let zeros = ActiveRange { from: 8192, to: 12288, source_at: Some(8192), target_at: None };
        assert_eq!(parts(&[flat(0, 4096), zeros], 1 << 20, [true, true]).len(), 2);
        let both_zeros = [zeros, ActiveRange { from: 16384, to: 20480, source_at: Some(16384), target_at: None }];
        assert_eq!(parts(&both_zeros, 1 << 20, [true, false]), vec![(8192, 20480, vec![(8192, 12288), (16384, 20480)])]);
        // Another file run at the same distance joins (a dynamic VHD block's pieces).
        let run = [
            ActiveRange { from: 0, to: 4096, source_at: Some(1 << 30), target_at: Some(0) },
            ActiveRange { from: 8192, to: 12288, source_at: Some((1 << 30) + 8192), target_at: Some(8192) },
        ];
        assert_eq!(parts(&run, 1 << 20, [true, true]).len(), 1);
    }

    #[test]
    fn the_tail_of_a_long_range_joins_the_ranges_after_it() {
        let active = [flat(0, 10000), flat(12288, 16384)];
        let found: Vec<Span> = spans(&active, 8192, G, [true, true]).collect();
        assert_eq!(found.iter().map(|s| (s.from, s.to, s.source_at)).collect::<Vec<_>>(), vec![(0, 8192, Some(0)), (8192, 16384, Some(8192))]);
        assert_eq!(found[1].parts(&active).collect::<Vec<_>>(), vec![(8192, 10000), (12288, 16384)]);
    }

    #[test]
    fn every_byte_of_every_range_is_in_exactly_one_part() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let mut active = Vec::new();
            let mut at = next() % 3 * 4096;
            for _ in 0..(next() % 40) {
                let length = (1 + next() % 12) * 4096;
                let shift = if next() % 5 == 0 { 512 } else { 0 };
                let source_at = if next() % 7 == 0 { None } else { Some(at + shift) };
                active.push(ActiveRange { from: at, to: at + length, source_at, target_at: Some(at) });
                at += length + next() % 8 * 4096;
            }
            let window = (1 + next() % 16) * 4096;
            let mut covered = Vec::new();
            for span in spans(&active, window, [0, 4096, G][(next() % 3) as usize], [next() % 2 == 0, true]) {
                assert!(span.to - span.from <= window, "round {round}: span over the window");
                for (from, to) in span.parts(&active) {
                    assert!(span.from <= from && to <= span.to && from < to, "round {round}: part outside its span");
                    // Each part lies in its file where the span's place says.
                    let range = active.iter().find(|range| range.from <= from && to <= range.to).expect("part inside a range");
                    assert_eq!(range.source_at.map(|at| at + (from - range.from)), span.source_at.map(|at| at + (from - span.from)), "round {round}");
                    assert_eq!(range.target_at.map(|at| at + (from - range.from)), span.target_at.map(|at| at + (from - span.from)), "round {round}");
                    covered.push((from, to));
                }
            }
            let mut joined: Vec<(u64, u64)> = Vec::new();
            for (from, to) in covered {
                match joined.last_mut() {
                    Some(last) if last.1 == from => last.1 = to,
                    _ => joined.push((from, to)),
                }
            }
            let mut expected: Vec<(u64, u64)> = Vec::new();
            for range in &active {
                match expected.last_mut() {
                    Some(last) if last.1 == range.from => last.1 = range.to,
                    _ => expected.push((range.from, range.to)),
                }
            }
            assert_eq!(joined, expected, "round {round}: parts and ranges differ");
        }
    }
}
