//! Where the Redis store keeps a board's pixels: one string key for a board
//! of at most 300 MB ([`MAX_WHOLE_READ_BYTES`], what every board used
//! before chunks), one key per 256² chunk above it (a Redis string holds at
//! most 512 MiB, and a 65,536² board is 12 GiB).
//!
//! The layout follows from the board's size alone, so a board stored before
//! chunk keys existed is read exactly as it was written: no migration.

use protocol::names::canvas as keys;

use super::chunk::{ChunkId, offset_in_chunk};
use super::{Geometry, MAX_WHOLE_READ_BYTES};

/// How a board's pixels are keyed in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardLayout {
    /// One string, `canvas:board`, `index * 3` bytes into it.
    OneKey,
    /// One string per chunk, `canvas:{c:CX:CY}:board`, the pixel's offset
    /// in its chunk into it; only chunks someone wrote exist.
    Chunks,
}

impl BoardLayout {
    /// The layout of a board of this geometry.
    pub fn of(geometry: Geometry) -> BoardLayout {
        if geometry.byte_len() as u64 <= MAX_WHOLE_READ_BYTES {
            BoardLayout::OneKey
        } else {
            BoardLayout::Chunks
        }
    }

    /// The key holding pixel `(x, y)` and the byte offset of its three
    /// bytes in it: what `place.lua` and `rewrite.lua` `SETRANGE`.
    pub fn pixel_slot(self, geometry: Geometry, x: u32, y: u32) -> (String, usize) {
        match self {
            BoardLayout::OneKey => (keys::BOARD.to_owned(), geometry.index(x, y) * 3),
            BoardLayout::Chunks => {
                let id = geometry.chunk_of(x, y);
                (keys::board_chunk(id.cx, id.cy), offset_in_chunk(x, y))
            }
        }
    }

    /// Every key that may hold pixels of the board: what a clear deletes.
    pub fn board_keys(self, geometry: Geometry) -> Vec<String> {
        match self {
            BoardLayout::OneKey => vec![keys::BOARD.to_owned()],
            BoardLayout::Chunks => (0..geometry.chunks_across() * geometry.chunks_down())
                .map(|n| {
                    let ChunkId { cx, cy } = geometry.chunk_at(n);
                    keys::board_chunk(cx, cy)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_up_to_300_mb_keep_the_one_key_and_larger_ones_key_by_chunk() {
        let today = Geometry {
            width: 10_000,
            height: 10_000,
        };
        assert_eq!(BoardLayout::of(today), BoardLayout::OneKey);
        assert_eq!(
            BoardLayout::OneKey.pixel_slot(today, 3, 2),
            ("canvas:board".to_owned(), (2 * 10_000 + 3) * 3)
        );
        let big = Geometry {
            width: 65_536,
            height: 65_536,
        };
        assert_eq!(BoardLayout::of(big), BoardLayout::Chunks);
        assert_eq!(
            BoardLayout::Chunks.pixel_slot(big, 65_535, 257),
            ("canvas:{c:255:1}:board".to_owned(), (256 + 255) * 3)
        );
        let all = BoardLayout::Chunks.board_keys(big);
        assert_eq!(all.len(), 65_536);
        assert_eq!(all[0], "canvas:{c:0:0}:board");
        assert_eq!(all[65_535], "canvas:{c:255:255}:board");
        // The largest pixel index fits the index type.
        assert_eq!(big.index(65_535, 65_535) as u64, 65_536 * 65_536 - 1);
    }
}
