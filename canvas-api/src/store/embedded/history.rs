//! The embedded store's pixel histories on disk, `history.bin`, written
//! beside every snapshot (same moment, same `seq`) so a restart keeps them.
//! Written to a temporary file, synced, then renamed, like the snapshot.
//!
//! Layout: magic, seq u64 (the snapshot's), number of pixels u64, each
//! `index u32, entries u8`, each entry `seq u64, timestamp u64, r g b,
//! username length u8, username` (oldest first), then FNV-1a 64 of
//! everything before it.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use protocol::Color;

use crate::checksum::fnv1a64;

pub const MAGIC: &[u8; 8] = b"PXHIST01";

/// One placement in a pixel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistEntry {
    pub seq: u64,
    pub timestamp: u64,
    pub color: Color,
    pub username: Arc<str>,
}

pub type Histories = HashMap<u32, VecDeque<HistEntry>>;

pub fn write(path: &Path, seq: u64, histories: &Histories) -> io::Result<()> {
    let mut out = Vec::with_capacity(histories.len() * 48 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(histories.len() as u64).to_le_bytes());
    for (index, entries) in histories {
        out.extend_from_slice(&index.to_le_bytes());
        // HISTORY_LEN is at most 1000: keep the newest 255 on disk.
        let skip = entries.len().saturating_sub(255);
        out.push((entries.len() - skip) as u8);
        for e in entries.iter().skip(skip) {
            out.extend_from_slice(&e.seq.to_le_bytes());
            out.extend_from_slice(&e.timestamp.to_le_bytes());
            out.extend_from_slice(&e.color.rgb());
            out.push(e.username.len() as u8);
            out.extend_from_slice(e.username.as_bytes());
        }
    }
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    let tmp = path.with_extension("bin.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&out)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Reads the file: `Ok(None)` when there is none; `Err` names what is wrong.
pub fn read(path: &Path, pixel_count: usize) -> Result<Option<(u64, Histories)>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |what: &str| format!("{}: {what}", path.display());
    if bytes.len() < 8 + 8 + 8 + 8 || &bytes[..8] != MAGIC {
        return Err(bad("not a history file (bad header)"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if fnv1a64(body) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return Err(bad("checksum mismatch (the file is damaged)"));
    }
    let u64_at = |i: usize| -> Result<u64, String> {
        body.get(i..i + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| bad("ends early"))
    };
    let seq = u64_at(8)?;
    let count = u64_at(16)?;
    let mut pos = 24;
    let mut histories = HashMap::with_capacity(count.min(pixel_count as u64) as usize);
    for _ in 0..count {
        let head = body.get(pos..pos + 5).ok_or_else(|| bad("ends early"))?;
        let index = u32::from_le_bytes(head[0..4].try_into().unwrap());
        if index as usize >= pixel_count {
            return Err(bad(&format!("pixel index {index} is outside the board")));
        }
        let n = head[4] as usize;
        pos += 5;
        let mut entries = VecDeque::with_capacity(n);
        for _ in 0..n {
            let e = body.get(pos..pos + 20).ok_or_else(|| bad("ends early"))?;
            let ulen = e[19] as usize;
            let username = body
                .get(pos + 20..pos + 20 + ulen)
                .ok_or_else(|| bad("ends early"))?;
            let username =
                std::str::from_utf8(username).map_err(|_| bad("a username that is not UTF-8"))?;
            entries.push_back(HistEntry {
                seq: u64::from_le_bytes(e[0..8].try_into().unwrap()),
                timestamp: u64::from_le_bytes(e[8..16].try_into().unwrap()),
                color: Color([e[16], e[17], e[18]]),
                username: Arc::from(username),
            });
            pos += 20 + ulen;
        }
        histories.insert(index, entries);
    }
    if pos != body.len() {
        return Err(bad("has bytes after its last entry"));
    }
    Ok(Some((seq, histories)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_read_back_and_damage_is_named() {
        let dir = std::env::temp_dir().join(format!("canvas-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.bin");
        assert_eq!(read(&path, 10).unwrap(), None);
        let mut h = Histories::new();
        h.insert(
            7,
            VecDeque::from([
                HistEntry {
                    seq: 1,
                    timestamp: 100,
                    color: Color([1, 2, 3]),
                    username: Arc::from("ann"),
                },
                HistEntry {
                    seq: 4,
                    timestamp: 400,
                    color: Color([4, 5, 6]),
                    username: Arc::from("~moderation"),
                },
            ]),
        );
        write(&path, 9, &h).unwrap();
        assert_eq!(read(&path, 10).unwrap(), Some((9, h)));
        assert!(read(&path, 5).unwrap_err().contains("outside the board"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path, 10).unwrap_err().contains("checksum"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
