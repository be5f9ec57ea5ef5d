//! The embedded store's snapshot, `board.snap`: the board and every
//! pixel's metadata at one `seq`. Written to a temporary file, synced, then
//! renamed over the old one, so a crash leaves either snapshot whole.
//!
//! Layout (`PXSNAP02`): magic, width u32, height u32, seq u64, chunk side
//! u32, the number of written chunks u64, each `chunk number u32` and its
//! RGB (chunk side² × 3 bytes), the number of metadata entries u64, each
//! `index u32, seq u64, timestamp u64, username length u8, username`, then
//! FNV-1a 64 of everything before it. Only written chunks are stored, so a
//! 65,536² board costs what was painted.
//!
//! `PXSNAP01`, the first layout, held the whole RGB board where the chunks
//! are; it is still read (a board kept by an older build opens as it was),
//! and the next compaction rewrites it as `PXSNAP02`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::PixelMeta;
use super::board::Board;
use crate::checksum::fnv1a64;
use crate::store::Geometry;
use crate::store::chunk::{CHUNK_BYTES, CHUNK_SIZE};

/// The whole-board layout of older builds, read only.
pub const MAGIC_DENSE: &[u8; 8] = b"PXSNAP01";
/// The chunked layout, written by this build.
pub const MAGIC: &[u8; 8] = b"PXSNAP02";

pub struct Loaded {
    pub seq: u64,
    pub board: Board,
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
    board: &Board,
    meta: &HashMap<u32, PixelMeta>,
) -> io::Result<()> {
    let mut out =
        Vec::with_capacity(board.chunk_count() * (CHUNK_BYTES + 4) + meta.len() * 40 + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&geometry.width.to_le_bytes());
    out.extend_from_slice(&geometry.height.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&CHUNK_SIZE.to_le_bytes());
    out.extend_from_slice(&(board.chunk_count() as u64).to_le_bytes());
    for (number, rgb) in board.chunks() {
        out.extend_from_slice(&number.to_le_bytes());
        out.extend_from_slice(rgb);
    }
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
    if bytes.len() < 8 + 16 + 8 + 8 || (&bytes[..8] != MAGIC && &bytes[..8] != MAGIC_DENSE) {
        return Err(invalid("not a board snapshot (bad header)".into()));
    }
    let dense = &bytes[..8] == MAGIC_DENSE;
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
    let truncated = || invalid("ends early".into());
    let board = if dense {
        let board_len = geometry.byte_len();
        let rgb = body.get(pos..pos + board_len).ok_or_else(truncated)?;
        pos += board_len;
        Board::from_dense(geometry, rgb)
    } else {
        let side = body
            .get(pos..pos + 4)
            .map(|_| u32_at(pos))
            .ok_or_else(truncated)?;
        if side != CHUNK_SIZE {
            return Err(invalid(format!(
                "holds chunks of {side}² pixels; this build reads {CHUNK_SIZE}²"
            )));
        }
        let count = body
            .get(pos + 4..pos + 12)
            .map(|_| u64_at(pos + 4))
            .ok_or_else(truncated)?;
        pos += 12;
        let chunks = u64::from(geometry.chunks_across()) * u64::from(geometry.chunks_down());
        if count > chunks {
            return Err(invalid(format!(
                "claims {count} chunks; the board has {chunks}"
            )));
        }
        let mut board = Board::new(geometry);
        for _ in 0..count {
            let number = body
                .get(pos..pos + 4)
                .map(|_| u32_at(pos))
                .ok_or_else(truncated)?;
            if u64::from(number) >= chunks {
                return Err(invalid(format!(
                    "chunk number {number} is outside the board"
                )));
            }
            let rgb = body
                .get(pos + 4..pos + 4 + CHUNK_BYTES)
                .ok_or_else(truncated)?;
            board.insert_chunk(number, rgb.into());
            pos += 4 + CHUNK_BYTES;
        }
        board
    };
    let count = body
        .get(pos..pos + 8)
        .map(|_| u64_at(pos))
        .ok_or_else(truncated)?;
    pos += 8;
    let mut meta = HashMap::with_capacity(count.min(1 << 20) as usize);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("canvas-snap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A `PXSNAP01` file as the builds before chunks wrote it.
    fn write_dense(path: &Path, g: Geometry, seq: u64, rgb: &[u8], meta: &[(u32, PixelMeta)]) {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC_DENSE);
        out.extend_from_slice(&g.width.to_le_bytes());
        out.extend_from_slice(&g.height.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(rgb);
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
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn a_whole_board_snapshot_of_an_older_build_reads_as_the_same_board() {
        let g = Geometry {
            width: 300,
            height: 2,
        };
        let d = dir("dense");
        let path = d.join("board.snap");
        let mut rgb = vec![0xFF; g.byte_len()];
        let i = (300 + 299) * 3;
        rgb[i..i + 3].copy_from_slice(&[1, 2, 3]);
        let meta = PixelMeta {
            seq: 7,
            timestamp: 9,
            username: Arc::from("ann"),
        };
        write_dense(&path, g, 7, &rgb, &[(300 + 299, meta)]);

        let loaded = read(&path, g).unwrap();
        assert_eq!(loaded.seq, 7);
        assert_eq!(loaded.board.get(299, 1), [1, 2, 3]);
        assert_eq!(loaded.board.dense(), rgb);
        assert_eq!(&*loaded.meta[&(300 + 299)].username, "ann");

        // Written again in the chunked layout, it reads the same.
        write(&path, g, loaded.seq, &loaded.board, &loaded.meta).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..8], MAGIC);
        let again = read(&path, g).unwrap();
        assert_eq!(again.board.dense(), rgb);
        assert_eq!(again.meta[&(300 + 299)].seq, 7);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_chunk_outside_the_board_is_refused_with_the_file_named() {
        let g = Geometry {
            width: 10,
            height: 10,
        };
        let d = dir("outside");
        let path = d.join("board.snap");
        let mut board = Board::new(Geometry {
            width: 1000,
            height: 10,
        });
        board.set(999, 0, [0, 0, 0]);
        write(&path, g, 1, &board, &HashMap::new()).unwrap();
        let err = read(&path, g).err().unwrap().to_string();
        assert!(
            err.contains("board.snap") && err.contains("outside"),
            "{err}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
