//! The archive's folder: keyframes (the whole board as a PNG, named by
//! their ordinal, `seq` and time) and, beside each, the segment of writes
//! that follow it.
//!
//! ```text
//! key-00000003-00000000000000120000-1733300000000.png   board after seq 120000
//! seg-00000003.bin                                       writes after it
//! ```
//!
//! Ordinals order the keyframes even across a store that started over (its
//! `seq`s begin again, its epoch changed).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::Geometry;

/// A whole board at one moment of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyframe {
    /// Position in the archive; its segment is `seg-<n>.bin`.
    pub n: u64,
    /// The last write the board includes.
    pub seq: u64,
    /// Milliseconds since the Unix epoch: the time of that write (or of
    /// the snapshot, for a board taken from the store).
    pub ts: u64,
}

impl Keyframe {
    fn file_name(&self) -> String {
        format!("key-{:08}-{:020}-{:013}.png", self.n, self.seq, self.ts)
    }

    fn parse(name: &str) -> Option<Keyframe> {
        let rest = name.strip_prefix("key-")?.strip_suffix(".png")?;
        let mut parts = rest.split('-');
        let k = Keyframe {
            n: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            ts: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(k)
    }
}

pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:08}.bin"))
}

/// Every keyframe in the folder, oldest first.
pub fn list_keyframes(dir: &Path) -> std::io::Result<Vec<Keyframe>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Some(k) = entry?.file_name().to_str().and_then(Keyframe::parse) {
            out.push(k);
        }
    }
    out.sort_by_key(|k| k.n);
    Ok(out)
}

/// Writes a keyframe whole or not at all (a temporary file, synced, then
/// renamed), so a crash never leaves half a board under a keyframe's name.
pub fn write_keyframe(
    dir: &Path,
    k: Keyframe,
    geometry: Geometry,
    rgb: &[u8],
) -> std::io::Result<()> {
    let png = crate::render::png(geometry, rgb).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{}.tmp", k.file_name()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&png)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(k.file_name()))?;
    // The rename itself is durable once the folder is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Reads a keyframe's board; one of other dimensions is refused.
pub fn read_keyframe(dir: &Path, k: Keyframe, geometry: Geometry) -> std::io::Result<Vec<u8>> {
    let path = dir.join(k.file_name());
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let file = std::io::BufReader::new(std::fs::File::open(&path)?);
    let mut reader = png::Decoder::new(file)
        .read_info()
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad(format!("{}: too large", path.display())))?;
    let mut rgb = vec![0; size];
    let info = reader
        .next_frame(&mut rgb)
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if (info.width, info.height, info.color_type)
        != (geometry.width, geometry.height, png::ColorType::Rgb)
    {
        return Err(bad(format!(
            "{}: a {}x{} {:?} image, not this {}x{} board",
            path.display(),
            info.width,
            info.height,
            info.color_type,
            geometry.width,
            geometry.height
        )));
    }
    rgb.truncate(info.buffer_size());
    Ok(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_names_round_trip_and_others_are_ignored() {
        let k = Keyframe {
            n: 3,
            seq: 120_000,
            ts: 1_733_300_000_000,
        };
        assert_eq!(Keyframe::parse(&k.file_name()), Some(k));
        for other in ["seg-00000003.bin", "key-1-2.png", "key-a-1-2.png", "x.png"] {
            assert_eq!(Keyframe::parse(other), None, "{other}");
        }
    }
}
