//! [`Board`]: the embedded store's pixels, kept as chunks allocated on
//! their first write, so a 65,536² board that is mostly white costs only the
//! chunks someone painted (192 KiB each), and a whole-board read of a small
//! board is a copy of a few chunks' rows.

use std::collections::HashMap;

use crate::store::Geometry;
use crate::store::chunk::{CHUNK_BYTES, CHUNK_SIZE, ChunkId, offset_in_chunk};

pub struct Board {
    geometry: Geometry,
    /// Chunk number → its RGB; an absent chunk is white.
    chunks: HashMap<u32, Box<[u8]>>,
}

impl Board {
    /// An all-white board.
    pub fn new(geometry: Geometry) -> Self {
        Board {
            geometry,
            chunks: HashMap::new(),
        }
    }

    /// A board from whole-board row-major RGB (the first snapshot format),
    /// keeping only the chunks that are not all white.
    pub fn from_dense(geometry: Geometry, rgb: &[u8]) -> Self {
        debug_assert_eq!(rgb.len(), geometry.byte_len());
        let mut board = Board::new(geometry);
        let row_bytes = geometry.width as usize * 3;
        for number in 0..geometry.chunks_across() * geometry.chunks_down() {
            let id = geometry.chunk_at(number);
            let (x0, y0, w, h) = geometry.chunk_rect(id);
            let painted = (y0..y0 + h).any(|y| {
                let start = y as usize * row_bytes + x0 as usize * 3;
                rgb[start..start + w as usize * 3]
                    .iter()
                    .any(|&b| b != 0xFF)
            });
            if !painted {
                continue;
            }
            let chunk = board.chunk_mut(number);
            for dy in 0..h {
                let src = (y0 + dy) as usize * row_bytes + x0 as usize * 3;
                let dst = (dy * CHUNK_SIZE) as usize * 3;
                chunk[dst..dst + w as usize * 3].copy_from_slice(&rgb[src..src + w as usize * 3]);
            }
        }
        board
    }

    pub fn get(&self, x: u32, y: u32) -> [u8; 3] {
        let number = self.geometry.chunk_number(self.geometry.chunk_of(x, y));
        match self.chunks.get(&number) {
            Some(chunk) => {
                let i = offset_in_chunk(x, y);
                [chunk[i], chunk[i + 1], chunk[i + 2]]
            }
            None => [0xFF; 3],
        }
    }

    pub fn set(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        let number = self.geometry.chunk_number(self.geometry.chunk_of(x, y));
        let i = offset_in_chunk(x, y);
        self.chunk_mut(number)[i..i + 3].copy_from_slice(&rgb);
    }

    /// One chunk's RGB, `None` when it was never written (white).
    pub fn chunk(&self, id: ChunkId) -> Option<&[u8]> {
        self.chunks
            .get(&self.geometry.chunk_number(id))
            .map(|c| &c[..])
    }

    /// The written chunks, by number, in no order.
    pub fn chunks(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.chunks.iter().map(|(n, c)| (*n, &c[..]))
    }

    /// Puts a chunk's RGB in place (loading a snapshot).
    pub fn insert_chunk(&mut self, number: u32, rgb: Box<[u8]>) {
        debug_assert_eq!(rgb.len(), CHUNK_BYTES);
        self.chunks.insert(number, rgb);
    }

    /// How many chunks hold memory.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The whole board as row-major RGB; the caller checks the board is
    /// small enough to read whole.
    pub fn dense(&self) -> Vec<u8> {
        let g = self.geometry;
        let mut rgb = vec![0xFF; g.byte_len()];
        let row_bytes = g.width as usize * 3;
        for (&number, chunk) in &self.chunks {
            let (x0, y0, w, h) = g.chunk_rect(g.chunk_at(number));
            for dy in 0..h {
                let dst = (y0 + dy) as usize * row_bytes + x0 as usize * 3;
                let src = (dy * CHUNK_SIZE) as usize * 3;
                rgb[dst..dst + w as usize * 3].copy_from_slice(&chunk[src..src + w as usize * 3]);
            }
        }
        rgb
    }

    fn chunk_mut(&mut self, number: u32) -> &mut [u8] {
        self.chunks
            .entry(number)
            .or_insert_with(|| vec![0xFF; CHUNK_BYTES].into_boxed_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_land_in_their_chunk_and_the_rest_stays_white_and_unallocated() {
        let g = Geometry {
            width: 65_536,
            height: 65_536,
        };
        let mut board = Board::new(g);
        board.set(65_535, 65_535, [1, 2, 3]);
        board.set(300, 10, [4, 5, 6]);
        assert_eq!(board.get(65_535, 65_535), [1, 2, 3]);
        assert_eq!(board.get(300, 10), [4, 5, 6]);
        assert_eq!(board.get(301, 10), [0xFF; 3]);
        assert_eq!(board.get(0, 0), [0xFF; 3]);
        assert_eq!(board.chunk_count(), 2);
        let chunk = board.chunk(ChunkId { cx: 1, cy: 0 }).unwrap();
        assert_eq!(&chunk[offset_in_chunk(300, 10)..][..3], &[4, 5, 6]);
        assert!(board.chunk(ChunkId { cx: 0, cy: 0 }).is_none());
    }

    #[test]
    fn dense_and_from_dense_are_inverse_on_a_board_with_partial_edge_chunks() {
        let g = Geometry {
            width: 300,
            height: 260,
        };
        let mut board = Board::new(g);
        for (i, (x, y)) in [
            (0, 0),
            (299, 0),
            (0, 259),
            (299, 259),
            (256, 256),
            (17, 200),
        ]
        .into_iter()
        .enumerate()
        {
            board.set(x, y, [i as u8, 0, 0]);
        }
        let dense = board.dense();
        assert_eq!(dense.len(), g.byte_len());
        assert_eq!(&dense[(259 * 300 + 299) * 3..][..3], &[3, 0, 0]);
        let again = Board::from_dense(g, &dense);
        assert_eq!(again.dense(), dense);
        assert_eq!(again.chunk_count(), 4);
        // An all-white dense board allocates nothing.
        assert_eq!(
            Board::from_dense(g, &vec![0xFF; g.byte_len()]).chunk_count(),
            0
        );
    }
}
