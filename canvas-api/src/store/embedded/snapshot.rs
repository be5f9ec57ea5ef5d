//! The embedded store's snapshot, `board.snap`: the whole board and every
//! pixel's metadata at one `seq`. Written to a temporary file, synced, then
//! renamed over the old one, so a crash leaves either snapshot whole.
//!
//! Layout: magic, width u32, height u32, seq u64, the RGB board, the number
//! of metadata entries u64, each `index u32, seq u64, timestamp u64,
//! username length u8, username`, then FNV-1a 64 of everything before it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::PixelMeta;
use super::checksum::fnv1a64;
use crate::store::Geometry;

pub const MAGIC: &[u8; 8] = b"PXSNAP01";

pub struct Loaded {
    pub seq: u64,
    pub board: Vec<u8>,
    pub meta: HashMap<u32, PixelMeta>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: {what}; the file is kept as it is")]
    Invalid { path: String, what: String },
}

pub fn write(
    path: &Path,
    geometry: Geometry,
    seq: u64,
    board: &[u8],
    meta: &HashMap<u32, PixelMeta>,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(board.len() + meta.len() * 40 + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&geometry.width.to_le_bytes());
    out.extend_from_slice(&geometry.height.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(board);
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    for (index, m) in meta {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&m.seq.to_le_bytes());
        out.extend_from_slice(&m.timestamp.to_le_bytes());
        out.push(m.username.len() as u8);
        out.extend_from_slice(m.username.as_bytes());
    }
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());

    let tmp = path.with_extension("snap.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&out)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

pub fn read(path: &Path, geometry: Geometry) -> Result<Loaded, SnapshotError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| SnapshotError::Io {
        path: name.clone(),
        source,
    })?;
    let invalid = |what: String| SnapshotError::Invalid {
        path: name.clone(),
        what,
    };
    if bytes.len() < 8 + 16 + 8 + 8 || &bytes[..8] != MAGIC {
        return Err(invalid("not a board snapshot (bad header)".into()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if fnv1a64(body) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return Err(invalid("checksum mismatch (the file is damaged)".into()));
    }
    let u32_at = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
    let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().unwrap());
    let (width, height) = (u32_at(8), u32_at(12));
    if (width, height) != (geometry.width, geometry.height) {
        return Err(invalid(format!(
            "holds a {width}x{height} board but CANVAS_WIDTH x CANVAS_HEIGHT is {}x{}; \
             refusing to start so the stored board is not misread",
            geometry.width, geometry.height
        )));
    }
    let seq = u64_at(16);
    let mut pos = 24;
    let board_len = geometry.byte_len();
    let truncated = || invalid("ends early".into());
    let board = body
        .get(pos..pos + board_len)
        .ok_or_else(truncated)?
        .to_vec();
    pos += board_len;
    let count = body
        .get(pos..pos + 8)
        .map(|_| u64_at(pos))
        .ok_or_else(truncated)?;
    pos += 8;
    let mut meta = HashMap::with_capacity(count.min(geometry.pixel_count() as u64) as usize);
    for _ in 0..count {
        let head = body.get(pos..pos + 21).ok_or_else(truncated)?;
        let index = u32::from_le_bytes(head[0..4].try_into().unwrap());
        let m_seq = u64::from_le_bytes(head[4..12].try_into().unwrap());
        let timestamp = u64::from_le_bytes(head[12..20].try_into().unwrap());
        let ulen = head[20] as usize;
        pos += 21;
        let username = body.get(pos..pos + ulen).ok_or_else(truncated)?;
        let username = std::str::from_utf8(username)
            .map_err(|_| invalid(format!("a username that is not UTF-8 at byte {pos}")))?;
        pos += ulen;
        if index as usize >= geometry.pixel_count() {
            return Err(invalid(format!("pixel index {index} is outside the board")));
        }
        meta.insert(
            index,
            PixelMeta {
                seq: m_seq,
                timestamp,
                username: Arc::from(username),
            },
        );
    }
    if pos != body.len() {
        return Err(invalid("has bytes after its last entry".into()));
    }
    Ok(Loaded { seq, board, meta })
}
