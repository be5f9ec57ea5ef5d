//! One archived write on disk, and reading a segment of them back.
//!
//! A record is fixed-size, so a torn tail (a crash mid-append) is a length
//! that is not a multiple of [`RECORD_LEN`], or a last record whose
//! checksum fails; a record that fails anywhere else, or a `seq` that does
//! not rise, is damage.

use std::io::Read;
use std::path::Path;

/// `seq` u64, `ts` u64, `x` u32, `y` u32, RGB, FNV-1a u32 over the rest;
/// little-endian.
pub const RECORD_LEN: usize = 31;
const BODY_LEN: usize = RECORD_LEN - 4;

/// One write, as the archive keeps it: enough to redraw the board at any
/// moment (who placed it is in the per-pixel history, not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// Milliseconds since the Unix epoch, as stored with the write.
    pub ts: u64,
    pub x: u32,
    pub y: u32,
    pub rgb: [u8; 3],
}

impl Record {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.ts.to_le_bytes());
        out[16..20].copy_from_slice(&self.x.to_le_bytes());
        out[20..24].copy_from_slice(&self.y.to_le_bytes());
        out[24..27].copy_from_slice(&self.rgb);
        let sum = fnv1a(&out[..BODY_LEN]);
        out[BODY_LEN..].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// `None` when the checksum does not match.
    pub fn decode(bytes: &[u8; RECORD_LEN]) -> Option<Record> {
        let sum = u32::from_le_bytes(bytes[BODY_LEN..].try_into().expect("4 bytes"));
        if sum != fnv1a(&bytes[..BODY_LEN]) {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        Some(Record {
            seq: u64_at(0),
            ts: u64_at(8),
            x: u32_at(16),
            y: u32_at(20),
            rgb: [bytes[24], bytes[25], bytes[26]],
        })
    }
}

/// 32-bit FNV-1a: catches torn and flipped bytes; the archive needs no
/// defence against deliberate forgery (it is rebuilt from the store).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// How a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Every byte is part of a good record.
    Clean,
    /// The last record was cut short (or garbled) by a crash: the records
    /// before `valid_len` are good, nothing follows the cut.
    Torn { valid_len: u64 },
    /// A bad record with more data after it: the file was damaged at
    /// `offset`. The records before it are good.
    Damaged { offset: u64 },
}

/// Reads every good record of a segment, in order.
pub fn read_segment(path: &Path) -> std::io::Result<(Vec<Record>, Tail)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    Ok(parse(&bytes))
}

fn parse(bytes: &[u8]) -> (Vec<Record>, Tail) {
    let mut records = Vec::with_capacity(bytes.len() / RECORD_LEN);
    let whole = bytes.len() / RECORD_LEN;
    for i in 0..whole {
        let offset = i * RECORD_LEN;
        let chunk: &[u8; RECORD_LEN] = bytes[offset..offset + RECORD_LEN]
            .try_into()
            .expect("whole record");
        let good = Record::decode(chunk)
            .filter(|r| records.last().is_none_or(|prev: &Record| r.seq > prev.seq));
        match good {
            Some(r) => records.push(r),
            None if i + 1 == whole && bytes.len() == whole * RECORD_LEN => {
                return (
                    records,
                    Tail::Torn {
                        valid_len: offset as u64,
                    },
                );
            }
            None => {
                return (
                    records,
                    Tail::Damaged {
                        offset: offset as u64,
                    },
                );
            }
        }
    }
    if !bytes.len().is_multiple_of(RECORD_LEN) {
        let valid_len = (whole * RECORD_LEN) as u64;
        return (records, Tail::Torn { valid_len });
    }
    (records, Tail::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> Record {
        Record {
            seq,
            ts: 1_700_000_000_000 + seq,
            x: seq as u32 * 3,
            y: 65_535,
            rgb: [1, 2, seq as u8],
        }
    }

    fn file(seqs: &[u64]) -> Vec<u8> {
        seqs.iter().flat_map(|&s| record(s).encode()).collect()
    }

    #[test]
    fn a_record_round_trips_and_a_flipped_byte_is_caught() {
        let r = record(42);
        let mut bytes = r.encode();
        assert_eq!(Record::decode(&bytes), Some(r));
        bytes[17] ^= 1;
        assert_eq!(Record::decode(&bytes), None);
    }

    #[test]
    fn a_cut_last_record_is_a_torn_tail() {
        let mut bytes = file(&[1, 2, 3]);
        bytes.truncate(bytes.len() - 5);
        let (records, tail) = parse(&bytes);
        assert_eq!(records, vec![record(1), record(2)]);
        assert_eq!(
            tail,
            Tail::Torn {
                valid_len: 2 * RECORD_LEN as u64
            }
        );
        // A garbled last record of full length is torn too.
        let mut bytes = file(&[1, 2, 3]);
        let n = bytes.len();
        bytes[n - 1] ^= 0xFF;
        assert!(matches!(parse(&bytes), (r, Tail::Torn { .. }) if r.len() == 2));
    }

    #[test]
    fn a_bad_record_with_data_after_it_is_damage() {
        let mut bytes = file(&[1, 2, 3, 4]);
        bytes[RECORD_LEN + 3] ^= 0x10;
        let (records, tail) = parse(&bytes);
        assert_eq!(records, vec![record(1)]);
        assert_eq!(
            tail,
            Tail::Damaged {
                offset: RECORD_LEN as u64
            }
        );
        // So is a seq that goes back.
        let (records, tail) = parse(&file(&[5, 6, 2, 7]));
        assert_eq!(records.len(), 2);
        assert!(matches!(tail, Tail::Damaged { .. }));
        assert_eq!(parse(&file(&[1, 2])).1, Tail::Clean);
    }
}
