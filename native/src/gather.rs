//! One side of a segment job whose bytes lie in runs of several files: a differencing disk,
//! whose sectors come from its own file where its block's bitmap says so and from its
//! parents' files elsewhere. The caller lists the pieces of the virtual disk (in order,
//! disjoint) with the file and offset of each (or that it reads as zeros), and the job
//! gathers each window it compares or hashes from them with pread, into its own small buffer:
//! no copy of the whole segment, no read hop per piece on the JS side. The ranges' offsets
//! on that side are then virtual offsets (each range's own `from`).

use std::os::raw::c_int;

use crate::failure::{Failure, Outcome};
use crate::map::size_of;
use crate::scan::{read_exact, ActiveRange};

/// Largest file offset or length accepted (2^53 - 1, as the JS numbers they come from).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// A piece of the virtual disk and where its bytes are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Piece {
    pub offset: u64,
    pub length: u64,
    /// Index into the gather's files, or None where the piece reads as zeros.
    pub file: Option<usize>,
    pub file_offset: u64,
}

/// The pieces of one side and the files they lie in.
#[derive(Debug, Default, PartialEq)]
pub struct Gather {
    pub fds: Vec<c_int>,
    pub pieces: Vec<Piece>,
}

impl Gather {
    /// Reads f64 values: the number of files, their descriptors, then (offset, length, file
    /// index or -1 for zeros, file offset) quadruples, in order of offset and disjoint.
    pub fn parse(values: &[f64]) -> Outcome<Gather> {
        let whole = |value: f64, what: &str| {
            if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX_SAFE {
                Ok(value as u64)
            } else {
                Err(Failure::Invalid(format!("gather: {what} must be a non-negative safe integer, got {value}")))
            }
        };
        let count = whole(*values.first().ok_or_else(|| Failure::Invalid("gather: empty".into()))?, "the file count")? as usize;
        if values.len() < 1 + count || (values.len() - 1 - count) % 4 != 0 {
            return Err(Failure::Invalid("gather: a file count, its descriptors, then quadruples".into()));
        }
        let fds = values[1..1 + count]
            .iter()
            .map(|&fd| whole(fd, "a descriptor").and_then(|fd| c_int::try_from(fd).map_err(|_| Failure::Invalid("gather: descriptor out of range".into()))))
            .collect::<Outcome<Vec<c_int>>>()?;
        let mut pieces = Vec::with_capacity((values.len() - 1 - count) / 4);
        let mut end = 0u64;
        for quad in values[1 + count..].chunks_exact(4) {
            let offset = whole(quad[0], "a piece's offset")?;
            let length = whole(quad[1], "a piece's length")?;
            let file = if quad[2] == -1.0 { None } else { Some(whole(quad[2], "a piece's file")? as usize) };
            let file_offset = if file.is_some() { whole(quad[3], "a piece's file offset")? } else { 0 };
            if length == 0 || offset < end || file.is_some_and(|index| index >= count) || file_offset.checked_add(length).is_none_or(|at| at as f64 > MAX_SAFE) {
                return Err(Failure::Invalid(format!("gather: piece {offset}+{length} is empty, out of order, overlapping or names no file")));
            }
            end = offset + length;
            pieces.push(Piece { offset, length, file, file_offset });
        }
        Ok(Gather { fds, pieces })
    }

    /// Checks that the pieces cover every range's bytes on `side` (0 source, 1 target) that
    /// has a place there, and that the place is the range's own virtual offset.
    pub fn check_covers(&self, active: &[ActiveRange], side: usize) -> Outcome<()> {
        for range in active {
            let Some(at) = [range.source_at, range.target_at][side] else { continue };
            if at != range.from {
                return Err(Failure::Invalid(format!("a gathered range's offset must be its own ({} != {})", at, range.from)));
            }
            let mut covered = range.from;
            let mut index = self.first_at(range.from);
            while covered < range.to {
                match self.pieces.get(index) {
                    Some(piece) if piece.offset <= covered => {
                        covered = piece.offset + piece.length;
                        index += 1;
                    }
                    _ => return Err(Failure::Invalid(format!("the gather's pieces leave {covered} uncovered"))),
                }
            }
        }
        Ok(())
    }

    /// Refuses (ENXIO) pieces that lie past the end of their file.
    pub fn check_files_hold(&self) -> Outcome<()> {
        for (index, &fd) in self.fds.iter().enumerate() {
            let needed = self.pieces.iter().filter(|piece| piece.file == Some(index)).map(|piece| piece.file_offset + piece.length).max();
            if let Some(needed) = needed {
                if size_of(fd)? < needed {
                    return Err(Failure::Os { errno: crate::sys::ENXIO, syscall: "pread (a gathered piece past the end of its file)" });
                }
            }
        }
        Ok(())
    }

    /// Index of the first piece that ends after `offset`.
    fn first_at(&self, offset: u64) -> usize {
        self.pieces.partition_point(|piece| piece.offset + piece.length <= offset)
    }

    /// Fills `buffer` with the bytes of [at, at + buffer.len()) (check_covers has checked that
    /// pieces cover it).
    pub fn read(&self, at: u64, buffer: &mut [u8]) -> Outcome<()> {
        let end = at + buffer.len() as u64;
        let mut index = self.first_at(at);
        while let Some(piece) = self.pieces.get(index) {
            if piece.offset >= end {
                break;
            }
            let from = piece.offset.max(at);
            let to = (piece.offset + piece.length).min(end);
            let part = &mut buffer[(from - at) as usize..(to - at) as usize];
            match piece.file {
                Some(file) => read_exact(self.fds[file], piece.file_offset + (from - piece.offset), part)?,
                None => part.fill(0),
            }
            index += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bytes::{xorshift_bytes as bytes, TempFile};

    #[test]
    fn gathers_pieces_from_files_and_zeros() {
        let a = TempFile::new("gather-a", &bytes(1, 10000));
        let b = TempFile::new("gather-b", &bytes(2, 10000));
        // Virtual [0, 100) from a at 500, [100, 150) zeros, [150, 400) from b at 0.
        let values = [2.0, a.fd() as f64, b.fd() as f64, 0.0, 100.0, 0.0, 500.0, 100.0, 50.0, -1.0, 0.0, 150.0, 250.0, 1.0, 0.0];
        let gather = Gather::parse(&values).unwrap();
        let mut expected = bytes(1, 10000)[500..600].to_vec();
        expected.extend_from_slice(&[0u8; 50]);
        expected.extend_from_slice(&bytes(2, 10000)[..250]);
        let mut buffer = vec![0xEEu8; 400];
        gather.read(0, &mut buffer).unwrap();
        assert_eq!(buffer, expected);
        let mut middle = vec![0xEEu8; 120];
        gather.read(90, &mut middle).unwrap();
        assert_eq!(middle[..], expected[90..210], "a window that starts and ends inside pieces");
        let range = |from, to, at| ActiveRange { from, to, source_at: at, target_at: None };
        assert!(gather.check_covers(&[range(0, 400, Some(0))], 0).is_ok());
        assert!(gather.check_covers(&[range(0, 401, Some(0))], 0).is_err(), "past the last piece");
        assert!(gather.check_covers(&[range(100, 200, Some(0))], 0).is_err(), "a place other than the range's own offset");
        assert!(gather.check_covers(&[range(0, 500, None)], 0).is_ok(), "a side that reads as zeros needs no pieces");
        assert!(gather.check_files_hold().is_ok());
        let past = Gather::parse(&[1.0, a.fd() as f64, 0.0, 100.0, 0.0, 9950.0]).unwrap();
        assert!(past.check_files_hold().is_err(), "a piece past the end of its file");
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(Gather::parse(&[]).is_err());
        assert!(Gather::parse(&[1.0, 3.0, 0.0, 10.0, 0.0]).is_err(), "not whole quadruples");
        assert!(Gather::parse(&[1.0, 3.0, 10.0, 10.0, 0.0, 0.0, 0.0, 20.0, 0.0, 0.0]).is_err(), "out of order");
        assert!(Gather::parse(&[1.0, 3.0, 0.0, 10.0, 1.0, 0.0]).is_err(), "a file index past the files");
        assert!(Gather::parse(&[1.0, 3.0, 0.0, 0.0, 0.0, 0.0]).is_err(), "an empty piece");
        assert!(Gather::parse(&[1.0, 3.5, 0.0, 10.0, 0.0, 0.0]).is_err(), "a fractional descriptor");
        assert!(Gather::parse(&[0.0, 0.0, 10.0, -1.0, 0.0]).is_ok(), "zeros need no file");
    }
}
