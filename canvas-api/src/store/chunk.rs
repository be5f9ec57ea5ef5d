//! Chunk geometry: the board seen as square chunks of [`CHUNK_SIZE`]²
//! pixels, the unit a client loads (`GET /api/chunk/{cx}/{cy}.bin`) and
//! follows (`subscribe`), and the unit a store may keep apart (the embedded
//! store allocates a chunk on its first write).
//!
//! The protocol's core types never mention chunks: a pixel event carries
//! `x`, `y`; which chunk it falls in is this module's arithmetic, so the
//! chunk size can change without touching the wire's pixel types.

use super::Geometry;

/// Pixels along one side of a chunk. 256² × 3 bytes = 192 KiB of RGB, the
/// size pixelplanet uses: small enough that a viewport loads a few dozen,
/// large enough that a 65,536² board is 65,536 chunks.
pub const CHUNK_SIZE: u32 = 256;

/// Bytes of one chunk's RGB (row-major, `CHUNK_SIZE` pixels a row; the
/// part of an edge chunk outside the board is white padding).
pub const CHUNK_BYTES: usize = (CHUNK_SIZE * CHUNK_SIZE * 3) as usize;

/// One chunk's position in chunk units: `(cx, cy)` covers the pixels
/// `cx*CHUNK_SIZE .. (cx+1)*CHUNK_SIZE` across and likewise down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    pub cx: u32,
    pub cy: u32,
}

impl Geometry {
    /// Chunks across the board (the last may be partly outside it).
    pub fn chunks_across(self) -> u32 {
        self.width.div_ceil(CHUNK_SIZE)
    }

    /// Chunks down the board.
    pub fn chunks_down(self) -> u32 {
        self.height.div_ceil(CHUNK_SIZE)
    }

    /// The chunk holding an in-bounds pixel.
    pub fn chunk_of(self, x: u32, y: u32) -> ChunkId {
        ChunkId {
            cx: x / CHUNK_SIZE,
            cy: y / CHUNK_SIZE,
        }
    }

    /// Whether a chunk covers any pixel of the board.
    pub fn has_chunk(self, id: ChunkId) -> bool {
        id.cx < self.chunks_across() && id.cy < self.chunks_down()
    }

    /// A dense number for a chunk of this board, row-major: what a store
    /// keys a chunk by.
    pub fn chunk_number(self, id: ChunkId) -> u32 {
        id.cy * self.chunks_across() + id.cx
    }

    /// The inverse of [`Geometry::chunk_number`].
    pub fn chunk_at(self, number: u32) -> ChunkId {
        ChunkId {
            cx: number % self.chunks_across(),
            cy: number / self.chunks_across(),
        }
    }

    /// The rows and columns of the board a chunk covers:
    /// `(x0, y0, width, height)`, clipped to the board.
    pub fn chunk_rect(self, id: ChunkId) -> (u32, u32, u32, u32) {
        let x0 = id.cx * CHUNK_SIZE;
        let y0 = id.cy * CHUNK_SIZE;
        (
            x0,
            y0,
            CHUNK_SIZE.min(self.width - x0),
            CHUNK_SIZE.min(self.height - y0),
        )
    }
}

/// Byte offset of pixel `(x, y)` inside its chunk's RGB.
pub fn offset_in_chunk(x: u32, y: u32) -> usize {
    ((y % CHUNK_SIZE) * CHUNK_SIZE + (x % CHUNK_SIZE)) as usize * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Geometry = Geometry {
        width: 1000,
        height: 300,
    };

    #[test]
    fn a_board_is_covered_by_whole_chunks_with_the_edges_clipped() {
        assert_eq!((G.chunks_across(), G.chunks_down()), (4, 2));
        assert_eq!(G.chunk_of(999, 299), ChunkId { cx: 3, cy: 1 });
        assert_eq!(G.chunk_rect(ChunkId { cx: 3, cy: 1 }), (768, 256, 232, 44));
        assert_eq!(G.chunk_rect(ChunkId { cx: 0, cy: 0 }), (0, 0, 256, 256));
        assert!(G.has_chunk(ChunkId { cx: 3, cy: 1 }));
        assert!(!G.has_chunk(ChunkId { cx: 4, cy: 0 }));
        assert!(!G.has_chunk(ChunkId { cx: 0, cy: 2 }));
    }

    #[test]
    fn chunk_numbers_round_trip_on_the_largest_board() {
        let g = Geometry {
            width: 65_536,
            height: 65_536,
        };
        assert_eq!(g.chunks_across() * g.chunks_down(), 65_536);
        for id in [
            ChunkId { cx: 0, cy: 0 },
            ChunkId { cx: 255, cy: 0 },
            ChunkId { cx: 17, cy: 200 },
            ChunkId { cx: 255, cy: 255 },
        ] {
            assert_eq!(g.chunk_at(g.chunk_number(id)), id);
        }
        assert_eq!(offset_in_chunk(65_535, 65_535), CHUNK_BYTES - 3);
        assert_eq!(offset_in_chunk(256, 257), 256 * 3);
    }
}
