//! [`Viewport`]: the chunks one connection follows after `subscribe`, and
//! the test every pixel event passes before it is written to it.
//!
//! A connection without one follows the whole board (every client before
//! chunks, and every prototype client). The chunk size is the board
//! owner's ([`canvas_api::store::chunk::CHUNK_SIZE`]), the one
//! `/api/chunk/{cx}/{cy}.bin` serves.

use canvas_api::store::chunk::CHUNK_SIZE;
use protocol::ErrorCode;
use protocol::messages::MAX_SUBSCRIBED_CHUNKS;

/// A set of chunks: sorted `cx << 16 | cy` keys (chunk numbers fit 16 bits
/// each: a 65,536² board is 256 chunks a side), 4 bytes a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewport {
    keys: Box<[u32]>,
}

impl Viewport {
    /// The chunks a `subscribe` names, checked against the board.
    pub fn new(
        chunks: &[[u32; 2]],
        width: u32,
        height: u32,
    ) -> Result<Viewport, (ErrorCode, String)> {
        if chunks.len() > MAX_SUBSCRIBED_CHUNKS {
            return Err((
                ErrorCode::BadRequest,
                format!(
                    "subscribe names {} chunks; a connection follows at most {MAX_SUBSCRIBED_CHUNKS}",
                    chunks.len()
                ),
            ));
        }
        let (across, down) = (width.div_ceil(CHUNK_SIZE), height.div_ceil(CHUNK_SIZE));
        let mut keys = Vec::with_capacity(chunks.len());
        for &[cx, cy] in chunks {
            if cx >= across || cy >= down {
                return Err((
                    ErrorCode::OutOfBounds,
                    format!(
                        "chunk [{cx}, {cy}] is outside the board: it has {across}x{down} chunks of {CHUNK_SIZE}x{CHUNK_SIZE} pixels"
                    ),
                ));
            }
            keys.push(key(cx, cy));
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(Viewport {
            keys: keys.into_boxed_slice(),
        })
    }

    /// How many chunks it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether pixel `(x, y)` lies in one of its chunks.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        self.keys
            .binary_search(&key(x / CHUNK_SIZE, y / CHUNK_SIZE))
            .is_ok()
    }
}

fn key(cx: u32, cy: u32) -> u32 {
    (cx << 16) | cy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewport_holds_the_pixels_of_its_chunks_only() {
        let v = Viewport::new(&[[1, 0], [255, 255], [1, 0]], 65_536, 65_536).unwrap();
        assert_eq!(v.len(), 2);
        assert!(v.contains(256, 0) && v.contains(511, 255));
        assert!(v.contains(65_535, 65_535));
        assert!(!v.contains(255, 0) && !v.contains(512, 0) && !v.contains(256, 256));
        assert!(Viewport::new(&[], 10, 10).unwrap().is_empty());
    }

    #[test]
    fn chunks_off_the_board_or_too_many_are_refused() {
        let (code, message) = Viewport::new(&[[4, 0]], 1000, 1000).unwrap_err();
        assert_eq!(code, ErrorCode::OutOfBounds);
        assert!(message.contains("4x4 chunks"), "{message}");
        assert!(Viewport::new(&[[3, 3]], 1000, 1000).is_ok());
        let many = vec![[0, 0]; MAX_SUBSCRIBED_CHUNKS + 1];
        assert_eq!(
            Viewport::new(&many, 1000, 1000).unwrap_err().0,
            ErrorCode::BadRequest
        );
    }
}
