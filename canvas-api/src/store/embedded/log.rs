//! The embedded store's write-ahead log, `pixels.log`: every accepted write,
//! appended before it is acknowledged.
//!
//! Layout: an 8-byte magic, then the `seq` of the snapshot the log follows
//! (u64 LE), then records `[payload length u16][payload][FNV-1a 64 of payload]`
//! where the payload is `seq u64, timestamp u64, x u32, y u32, r g b,
//! username` (integers little-endian). A crash can tear the last record; a
//! torn tail is cut off at start-up. Anything else that does not read back
//! is refused with the offset named: a length no record can have, or damage
//! with a whole valid record after it, since cutting there would drop
//! acknowledged writes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use protocol::{Color, PixelUpdated};

use crate::checksum::fnv1a64;

pub const MAGIC: &[u8; 8] = b"PXLOG001";
const HEADER_LEN: u64 = 16;
const FIXED_PAYLOAD: usize = 8 + 8 + 4 + 4 + 3;
/// The longest username a record may hold. Stored names are at most 32
/// bytes; the margin keeps logs of any older, laxer writer readable, while
/// a length past it can only be damage.
const MAX_USERNAME_BYTES: usize = 255;
/// The longest payload any record can have.
const MAX_PAYLOAD: usize = FIXED_PAYLOAD + MAX_USERNAME_BYTES;
/// The longest record any writer makes: length, payload, checksum.
const MAX_RECORD: usize = 2 + MAX_PAYLOAD + 8;

/// Encodes one record into `out`.
pub fn encode(event: &PixelUpdated, out: &mut Vec<u8>) {
    debug_assert!(event.username.len() <= MAX_USERNAME_BYTES);
    let payload_len = FIXED_PAYLOAD + event.username.len();
    out.clear();
    out.extend_from_slice(&(payload_len as u16).to_le_bytes());
    out.extend_from_slice(&event.seq.to_le_bytes());
    out.extend_from_slice(&event.timestamp.to_le_bytes());
    out.extend_from_slice(&event.x.to_le_bytes());
    out.extend_from_slice(&event.y.to_le_bytes());
    out.extend_from_slice(&event.color.rgb());
    out.extend_from_slice(event.username.as_bytes());
    let sum = fnv1a64(&out[2..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

fn decode_payload(p: &[u8]) -> Option<PixelUpdated> {
    if p.len() < FIXED_PAYLOAD {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap());
    let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().unwrap());
    Some(PixelUpdated {
        seq: u64_at(0),
        timestamp: u64_at(8),
        x: u32_at(16),
        y: u32_at(20),
        color: Color([p[24], p[25], p[26]]),
        username: String::from_utf8(p[FIXED_PAYLOAD..].to_vec()).ok()?,
    })
}

/// What reading a log found.
#[derive(Debug)]
pub struct Replay {
    pub base_seq: u64,
    pub events: Vec<PixelUpdated>,
    /// Bytes of a torn last record that were cut off.
    pub torn_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "{path}: {what} at byte {offset}; the file is kept as it is, move it away to start anew"
    )]
    Corrupt {
        path: String,
        what: String,
        offset: u64,
    },
}

/// Reads the whole log, cutting a torn tail off the file.
pub fn replay(path: &Path) -> Result<Replay, LogError> {
    let name = path.display().to_string();
    let io_err = |source| LogError::Io {
        path: name.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err)?;
    let corrupt = |what: &str, offset: usize| LogError::Corrupt {
        path: name.clone(),
        what: what.to_owned(),
        offset: offset as u64,
    };
    if bytes.len() < HEADER_LEN as usize || &bytes[..8] != MAGIC {
        return Err(corrupt("not a pixel log (bad header)", 0));
    }
    let base_seq = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let mut events = Vec::new();
    let mut pos = HEADER_LEN as usize;
    let mut expected = base_seq + 1;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 2 {
            break; // Torn tail: the crash came mid-write.
        }
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        if !(FIXED_PAYLOAD..=MAX_PAYLOAD).contains(&len) {
            return Err(corrupt(
                &format!("record length {len}, which no record can have"),
                pos,
            ));
        }
        let whole = rest.len() >= 2 + len + 8;
        let sum_ok = whole && {
            let sum = u64::from_le_bytes(rest[2 + len..2 + len + 8].try_into().unwrap());
            fnv1a64(&rest[2..2 + len]) == sum
        };
        if !sum_ok {
            // A torn last record is shorter than a whole one and has nothing
            // valid after it; damage with valid records after it is not a
            // tear, and cutting there would drop acknowledged writes.
            if rest.len() <= MAX_RECORD && !holds_a_record(&rest[1..], expected) {
                break;
            }
            return Err(corrupt(
                if whole {
                    "checksum mismatch"
                } else {
                    "record cut short with valid records after it"
                },
                pos,
            ));
        }
        let payload = &rest[2..2 + len];
        let event = decode_payload(payload).ok_or_else(|| corrupt("unreadable record", pos))?;
        if event.seq != expected {
            return Err(corrupt(
                &format!("record seq {} where {expected} was expected", event.seq),
                pos,
            ));
        }
        expected += 1;
        events.push(event);
        pos += 2 + len + 8;
    }
    let torn_bytes = (bytes.len() - pos) as u64;
    if torn_bytes > 0 {
        file.set_len(pos as u64).map_err(io_err)?;
        file.sync_data().map_err(io_err)?;
    }
    Ok(Replay {
        base_seq,
        events,
        torn_bytes,
    })
}

/// Whether a whole, checksummed record of seq `expected` or later starts
/// anywhere in `tail`: proof that what came before it was damaged, not torn.
fn holds_a_record(tail: &[u8], expected: u64) -> bool {
    (0..tail.len()).any(|start| {
        let rest = &tail[start..];
        if rest.len() < 2 {
            return false;
        }
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        if !(FIXED_PAYLOAD..=MAX_PAYLOAD).contains(&len) || rest.len() < 2 + len + 8 {
            return false;
        }
        let payload = &rest[2..2 + len];
        let sum = u64::from_le_bytes(rest[2 + len..2 + len + 8].try_into().unwrap());
        fnv1a64(payload) == sum && decode_payload(payload).is_some_and(|e| e.seq >= expected)
    })
}

/// Appends records; each `append` is one `write` of a whole record.
pub struct LogWriter {
    file: File,
    buf: Vec<u8>,
}

impl LogWriter {
    /// Creates (truncating) a log that follows the snapshot at `base_seq`.
    pub fn create(path: &Path, base_seq: u64) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        file.write_all(MAGIC)?;
        file.write_all(&base_seq.to_le_bytes())?;
        file.sync_all()?;
        file.seek(SeekFrom::End(0))?;
        Ok(LogWriter {
            file,
            buf: Vec::with_capacity(128),
        })
    }

    pub fn append(&mut self, event: &PixelUpdated) -> io::Result<()> {
        encode(event, &mut self.buf);
        self.file.write_all(&self.buf)
    }

    /// Appends several records with one `write` call: a batch costs the
    /// log one system call, like a single write.
    pub fn append_all(&mut self, events: &[PixelUpdated]) -> io::Result<()> {
        let mut all = Vec::with_capacity(events.len() * 64);
        for event in events {
            encode(event, &mut self.buf);
            all.extend_from_slice(&self.buf);
        }
        self.file.write_all(&all)
    }

    /// A writer whose every append fails, as on a broken disk (tests).
    #[cfg(test)]
    pub fn failing(path: &Path) -> io::Result<Self> {
        Ok(LogWriter {
            file: File::open(path)?,
            buf: Vec::new(),
        })
    }

    /// A second handle, to fsync without holding the store's lock.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> PixelUpdated {
        PixelUpdated {
            x: seq as u32,
            y: 2,
            color: Color([1, 2, 3]),
            username: format!("user{seq}"),
            timestamp: 1000 + seq,
            seq,
        }
    }

    #[test]
    fn records_read_back_in_order() {
        let dir = tempdir();
        let path = dir.join("pixels.log");
        let mut w = LogWriter::create(&path, 10).unwrap();
        for seq in 11..=13 {
            w.append(&event(seq)).unwrap();
        }
        let r = replay(&path).unwrap();
        assert_eq!(r.base_seq, 10);
        assert_eq!(r.events, vec![event(11), event(12), event(13)]);
        assert_eq!(r.torn_bytes, 0);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempdir();
        let path = dir.join("pixels.log");
        let mut w = LogWriter::create(&path, 0).unwrap();
        w.append(&event(1)).unwrap();
        w.append(&event(2)).unwrap();
        drop(w);
        let full = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 5).unwrap();
        let r = replay(&path).unwrap();
        assert_eq!(r.events, vec![event(1)]);
        assert!(r.torn_bytes > 0);
        // The cut is persisted: a second read finds no tear.
        assert_eq!(replay(&path).unwrap().torn_bytes, 0);
    }

    #[test]
    fn corruption_in_the_middle_is_refused_with_its_offset() {
        let dir = tempdir();
        let path = dir.join("pixels.log");
        let mut w = LogWriter::create(&path, 0).unwrap();
        for seq in 1..=3 {
            w.append(&event(seq)).unwrap();
        }
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_LEN as usize + 5] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch at byte 16"), "{err}");
        // Nothing was cut.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    /// Writes `count` records and returns the log's path and each record's
    /// offset.
    fn log_of(count: u64) -> (std::path::PathBuf, Vec<usize>) {
        let path = tempdir().join("pixels.log");
        let mut w = LogWriter::create(&path, 0).unwrap();
        let mut offsets = Vec::new();
        let mut pos = HEADER_LEN as usize;
        let mut buf = Vec::new();
        for seq in 1..=count {
            offsets.push(pos);
            w.append(&event(seq)).unwrap();
            encode(&event(seq), &mut buf);
            pos += buf.len();
        }
        (path, offsets)
    }

    #[test]
    fn an_impossible_length_near_the_end_is_corruption_not_a_tear() {
        // The review's case: 0xFFFF as a length 1,000 records before the end
        // was taken for a torn tail and 1,000 acknowledged writes were cut.
        let (path, offsets) = log_of(1100);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = offsets[100];
        bytes[at..at + 2].copy_from_slice(&0xFFFFu16.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "record length 65535, which no record can have at byte {at}"
            )),
            "{err}"
        );
        assert!(err.contains("pixels.log"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
        // A zero length is as impossible.
        bytes[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            replay(&path)
                .unwrap_err()
                .to_string()
                .contains("record length 0")
        );
    }

    #[test]
    fn damage_to_the_last_but_one_record_is_refused() {
        // A plausible length, grown so the record seems to run past the end:
        // the last record, whole and valid, shows this is no tear.
        let (path, offsets) = log_of(5);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = offsets[3];
        let len = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        bytes[at..at + 2].copy_from_slice(&(len + 60).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("at byte {at}")), "{err}");
        // A flipped byte in it, its length intact: a checksum mismatch.
        let (path, offsets) = log_of(5);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offsets[3] + 7] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let err = replay(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("checksum mismatch at byte {}", offsets[3])),
            "{err}"
        );
    }

    #[test]
    fn a_last_record_torn_anywhere_is_cut() {
        let (path, offsets) = log_of(3);
        let full = std::fs::read(&path).unwrap();
        for end in offsets[2] + 1..full.len() {
            std::fs::write(&path, &full[..end]).unwrap();
            let r = replay(&path).unwrap_or_else(|e| panic!("cut at {end}: {e}"));
            assert_eq!(r.events, vec![event(1), event(2)], "cut at {end}");
        }
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let dir = tempdir();
        let path = dir.join("pixels.log");
        std::fs::write(&path, b"hello world, not a log").unwrap();
        assert!(
            replay(&path)
                .unwrap_err()
                .to_string()
                .contains("bad header")
        );
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "canvas-log-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
