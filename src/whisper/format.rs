//! The whisper 1.1 on-disk layout: big-endian, no padding.
//!
//! ```text
//! Metadata    16 B  aggregationType:u32 maxRetention:u32 xFilesFactor:f32 archiveCount:u32
//! ArchiveInfo 12 B  offset:u32 secondsPerPoint:u32 points:u32      (one per archive)
//! Point       12 B  timestamp:u32 value:f64                         (points per archive)
//! ```
//!
//! Parsing here is pure: bytes in, a validated [`Header`] or a reason out. A header that parses is
//! safe to do slot arithmetic with: every archive has a non-zero precision and point count and
//! lies wholly inside the file after the header.

use super::aggregate::AggregationMethod;
use super::retention::ArchiveSpec;

/// Bytes of the metadata block.
pub const METADATA_SIZE: usize = 16;
/// Bytes of one archive-info record.
pub const ARCHIVE_INFO_SIZE: usize = 12;
/// Bytes of one point.
pub const POINT_SIZE: usize = 12;
/// Most archives a header may declare; real files have 1 to 5. Bounds the header read of a
/// hostile file to 16 + 12 * 1024 bytes.
pub const MAX_ARCHIVES: u32 = 1024;

/// Size in bytes of a file with `n_archives` archives holding `total_points` points.
pub const fn file_size(n_archives: u64, total_points: u64) -> u64 {
    METADATA_SIZE as u64 + ARCHIVE_INFO_SIZE as u64 * n_archives + POINT_SIZE as u64 * total_points
}

/// One archive as the header describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Absolute byte offset of the archive's first slot.
    pub offset: u32,
    /// Resolution in seconds (> 0).
    pub seconds_per_point: u32,
    /// Number of slots (> 0).
    pub points: u32,
}

impl ArchiveInfo {
    /// Seconds covered: `seconds_per_point * points`.
    pub fn retention(&self) -> i64 {
        i64::from(self.seconds_per_point) * i64::from(self.points)
    }

    /// Bytes of the ring: `points * 12`.
    pub fn size_bytes(&self) -> u64 {
        u64::from(self.points) * POINT_SIZE as u64
    }

    /// Byte offset one past the last slot.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.size_bytes()
    }

    /// The interval containing `ts`: `ts - ts mod spp`, with Python's floor semantics.
    pub fn align(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(i64::from(self.seconds_per_point))
    }

    /// Absolute byte offset of the slot holding `interval`, given the interval stored in slot 0
    /// (`base`). Wrap-around uses euclidean division, as Python's `//` and `%` do.
    pub fn slot_offset(&self, base: i64, interval: i64) -> u64 {
        let distance = (interval - base).div_euclid(i64::from(self.seconds_per_point));
        let slot = distance.rem_euclid(i64::from(self.points));
        u64::from(self.offset) + slot as u64 * POINT_SIZE as u64
    }

    /// The configured shape of this archive.
    pub fn spec(&self) -> ArchiveSpec {
        ArchiveSpec { seconds_per_point: self.seconds_per_point, points: self.points }
    }
}

/// A parsed and validated whisper header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// How lower archives summarise higher ones.
    pub aggregation: AggregationMethod,
    /// Seconds of history of the whole file, as stored.
    pub max_retention: u32,
    /// Fraction of known points a propagation window needs, as the stored f32.
    pub x_files_factor: f32,
    /// Archives in file order (highest precision first in files whisper made).
    pub archives: Vec<ArchiveInfo>,
}

/// Why a header is rejected; the caller adds the path.
pub type HeaderError = String;

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

impl Header {
    /// Bytes of the header: metadata plus one record per archive.
    pub fn size_bytes(&self) -> usize {
        METADATA_SIZE + ARCHIVE_INFO_SIZE * self.archives.len()
    }

    /// Reads the archive count from the first 16 bytes, so a reader knows how much more to read.
    /// Fails on a short buffer or an archive count outside 1..=[`MAX_ARCHIVES`].
    pub fn archive_count(metadata: &[u8]) -> Result<u32, HeaderError> {
        if metadata.len() < METADATA_SIZE {
            return Err(format!("short header: {} of {METADATA_SIZE} bytes", metadata.len()));
        }
        let count = be_u32(metadata, 12);
        if count == 0 || count > MAX_ARCHIVES {
            return Err(format!("archive count {count} outside 1..={MAX_ARCHIVES}"));
        }
        Ok(count)
    }

    /// Parses a header from the start of a file of `file_len` bytes. `bytes` must hold at least
    /// the metadata and every archive record; a shorter buffer is a short (corrupt) header.
    pub fn parse(bytes: &[u8], file_len: u64) -> Result<Header, HeaderError> {
        let count = Self::archive_count(bytes)? as usize;
        let code = be_u32(bytes, 0);
        let aggregation =
            AggregationMethod::from_code(code).ok_or_else(|| format!("aggregation type {code} is not one of 1..=8"))?;
        let max_retention = be_u32(bytes, 4);
        let x_files_factor = f32::from_bits(be_u32(bytes, 8));
        if !(0.0..=1.0).contains(&x_files_factor) {
            return Err(format!("xFilesFactor {x_files_factor} outside [0, 1]"));
        }
        let header_len = METADATA_SIZE + ARCHIVE_INFO_SIZE * count;
        if bytes.len() < header_len {
            let whole = (bytes.len() - METADATA_SIZE) / ARCHIVE_INFO_SIZE;
            return Err(format!(
                "unable to read archive{whole} metadata: header of {count} archives needs {header_len} bytes"
            ));
        }
        let mut archives = Vec::with_capacity(count);
        for i in 0..count {
            let at = METADATA_SIZE + ARCHIVE_INFO_SIZE * i;
            let archive = ArchiveInfo {
                offset: be_u32(bytes, at),
                seconds_per_point: be_u32(bytes, at + 4),
                points: be_u32(bytes, at + 8),
            };
            check_archive(i, &archive, header_len as u64, file_len)?;
            archives.push(archive);
        }
        // Every file whisper makes stores the longest archive's retention here; a larger value
        // would let a fetch range outgrow every archive.
        let longest = archives.iter().map(ArchiveInfo::retention).max().unwrap_or(0);
        if i64::from(max_retention) > longest {
            return Err(format!("maxRetention {max_retention} exceeds the longest archive's retention {longest}"));
        }
        Ok(Header { aggregation, max_retention, x_files_factor, archives })
    }

    /// The 16 metadata bytes.
    pub fn encode_metadata(&self) -> [u8; METADATA_SIZE] {
        let mut out = [0u8; METADATA_SIZE];
        out[0..4].copy_from_slice(&self.aggregation.code().to_be_bytes());
        out[4..8].copy_from_slice(&self.max_retention.to_be_bytes());
        out[8..12].copy_from_slice(&self.x_files_factor.to_bits().to_be_bytes());
        out[12..16].copy_from_slice(&(self.archives.len() as u32).to_be_bytes());
        out
    }

    /// The whole header: metadata and archive records.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_bytes());
        out.extend_from_slice(&self.encode_metadata());
        for a in &self.archives {
            out.extend_from_slice(&a.offset.to_be_bytes());
            out.extend_from_slice(&a.seconds_per_point.to_be_bytes());
            out.extend_from_slice(&a.points.to_be_bytes());
        }
        out
    }

    /// Lays out a new file for validated `specs` (sorted, highest precision first).
    pub fn for_archives(specs: &[ArchiveSpec], aggregation: AggregationMethod, x_files_factor: f32) -> Header {
        let header_len = (METADATA_SIZE + ARCHIVE_INFO_SIZE * specs.len()) as u32;
        let mut offset = header_len;
        let archives = specs
            .iter()
            .map(|s| {
                let a = ArchiveInfo { offset, seconds_per_point: s.seconds_per_point, points: s.points };
                offset += s.points * POINT_SIZE as u32;
                a
            })
            .collect();
        let max_retention = specs.iter().map(ArchiveSpec::retention).max().unwrap_or(0) as u32;
        Header { aggregation, max_retention, x_files_factor, archives }
    }

    /// Size in bytes of the file this header describes.
    pub fn file_size(&self) -> u64 {
        self.archives.iter().map(ArchiveInfo::end).max().unwrap_or(self.size_bytes() as u64)
    }

    /// xFilesFactor widened to f64, the value every comparison uses.
    pub fn xff(&self) -> f64 {
        f64::from(self.x_files_factor)
    }
}

fn check_archive(i: usize, a: &ArchiveInfo, header_len: u64, file_len: u64) -> Result<(), HeaderError> {
    if a.seconds_per_point == 0 || a.points == 0 {
        return Err(format!(
            "archive{i} has {} seconds per point and {} points (both must be positive)",
            a.seconds_per_point, a.points
        ));
    }
    if u64::from(a.offset) < header_len || a.end() > file_len {
        return Err(format!(
            "archive{i} spans bytes {}..{} but data must lie within {header_len}..{file_len}",
            a.offset,
            a.end()
        ));
    }
    Ok(())
}

/// Decodes one 12-byte point.
pub fn decode_point(bytes: &[u8]) -> (u32, f64) {
    let ts = be_u32(bytes, 0);
    let mut value = [0u8; 8];
    value.copy_from_slice(&bytes[4..12]);
    (ts, f64::from_be_bytes(value))
}

/// Encodes one point into 12 bytes.
pub fn encode_point(ts: u32, value: f64) -> [u8; POINT_SIZE] {
    let mut out = [0u8; POINT_SIZE];
    out[0..4].copy_from_slice(&ts.to_be_bytes());
    out[4..12].copy_from_slice(&value.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_archive_header() -> Header {
        let specs =
            [ArchiveSpec { seconds_per_point: 60, points: 10 }, ArchiveSpec { seconds_per_point: 300, points: 10 }];
        Header::for_archives(&specs, AggregationMethod::Average, 0.5)
    }

    #[test]
    fn layout_matches_whisper() {
        let h = two_archive_header();
        assert_eq!(h.file_size(), 280);
        assert_eq!(h.archives[0].offset, 40);
        assert_eq!(h.archives[1].offset, 160);
        assert_eq!(h.max_retention, 3000);
        assert_eq!(Header::parse(&h.encode(), 280).unwrap(), h);
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let good = two_archive_header().encode();
        let mutate = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        let cases: Vec<(Vec<u8>, u64, &str)> = vec![
            (good[..10].to_vec(), 280, "short header"),
            (good[..30].to_vec(), 280, "archive1 metadata"),
            (mutate(0, &9u32.to_be_bytes()), 280, "aggregation type 9"),
            (mutate(8, &1.5f32.to_bits().to_be_bytes()), 280, "xFilesFactor"),
            (mutate(8, &f32::NAN.to_bits().to_be_bytes()), 280, "xFilesFactor"),
            (mutate(12, &0u32.to_be_bytes()), 280, "archive count 0"),
            (mutate(12, &5000u32.to_be_bytes()), 280, "archive count 5000"),
            (good.clone(), 279, "archive1 spans"),
            (mutate(16, &4u32.to_be_bytes()), 280, "archive0 spans"),
            (mutate(20, &0u32.to_be_bytes()), 280, "seconds per point"),
            (mutate(4, &3001u32.to_be_bytes()), 280, "maxRetention 3001"),
        ];
        for (bytes, len, fragment) in cases {
            let err = Header::parse(&bytes, len).unwrap_err();
            assert!(err.contains(fragment), "{err:?} should mention {fragment:?}");
        }
    }

    #[test]
    fn slot_arithmetic_wraps_like_python() {
        let a = ArchiveInfo { offset: 28, seconds_per_point: 60, points: 10 };
        assert_eq!(a.align(125), 120);
        assert_eq!(a.align(-1), -60);
        assert_eq!(a.slot_offset(600, 600), 28);
        assert_eq!(a.slot_offset(600, 660), 40);
        assert_eq!(a.slot_offset(600, 540), 28 + 9 * 12);
        assert_eq!(a.slot_offset(600, 1200), 28);
    }
}
