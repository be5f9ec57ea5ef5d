//! A stretch of the archive as an animated PNG (APNG, which every current
//! browser plays in an `<img>`): frames at even steps of time, each the
//! board after every write up to its moment, scaled down by a whole factor.
//! Written with the `png` crate the service already uses for boards.

use super::files::{Keyframe, read_keyframe};
use super::{Archive, internal, paint, read_records};
use crate::error::ApiError;
use crate::store::Geometry;

/// The most frames one timelapse may have.
pub const MAX_FRAMES: u32 = 600;
/// The most pixels one frame may have (2048²).
pub const MAX_FRAME_PIXELS: u64 = 2048 * 2048;
/// The most pixels of all frames together: bounds the work and the memory
/// one request can ask for.
pub const MAX_TOTAL_PIXELS: u64 = 200_000_000;

/// What to render. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct TimelapseRequest {
    pub from: u64,
    pub to: u64,
    pub frames: u32,
    pub fps: u16,
    /// Every `scale`-th pixel of every `scale`-th row.
    pub scale: u32,
}

impl TimelapseRequest {
    /// Checks the request against the board and the bounds above.
    pub fn check(&self, geometry: Geometry) -> Result<(u32, u32), ApiError> {
        let bad = |m: String| Err(ApiError::BadRequest(m));
        if self.from >= self.to {
            return bad(format!(
                "from ({}) must be before to ({})",
                self.from, self.to
            ));
        }
        if !(2..=MAX_FRAMES).contains(&self.frames) {
            return bad(format!("frames must be 2 to {MAX_FRAMES}"));
        }
        if !(1..=60).contains(&self.fps) {
            return bad("fps must be 1 to 60".to_owned());
        }
        if self.scale == 0 {
            return bad("scale must be at least 1".to_owned());
        }
        let (w, h) = (
            geometry.width.div_ceil(self.scale),
            geometry.height.div_ceil(self.scale),
        );
        let frame = u64::from(w) * u64::from(h);
        if frame > MAX_FRAME_PIXELS {
            return bad(format!(
                "a {w}x{h} frame is over {MAX_FRAME_PIXELS} pixels; raise scale"
            ));
        }
        if frame * u64::from(self.frames) > MAX_TOTAL_PIXELS {
            return bad(format!(
                "{} frames of {w}x{h} are over {MAX_TOTAL_PIXELS} pixels; fewer frames or a larger scale",
                self.frames
            ));
        }
        Ok((w, h))
    }
}

impl Archive {
    /// Renders `request` as an APNG.
    pub async fn timelapse(&self, request: TimelapseRequest) -> Result<Vec<u8>, ApiError> {
        let (w, h) = request.check(self.shared.geometry)?;
        let keyframes = self.index().keyframes;
        let Some(first) = keyframes.first().copied() else {
            return Err(ApiError::NotFound("the archive holds nothing yet".into()));
        };
        if request.to < first.ts {
            return Err(ApiError::NotFound(format!(
                "the archive starts at {} (ms since the epoch); nothing earlier is kept",
                first.ts
            )));
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let geometry = shared.geometry;
            let mut out = Vec::new();
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            encoder
                .set_animated(request.frames, 0)
                .and_then(|()| encoder.set_frame_delay(1, request.fps))
                .map_err(internal)?;
            let mut writer = encoder.write_header().map_err(internal)?;

            // Frames before the archive begins show its first board.
            let from = request.from.max(first.ts);
            let mut at = keyframes.iter().rposition(|k| k.ts <= from).unwrap_or(0);
            let mut board =
                read_keyframe(&shared.dir, keyframes[at], geometry).map_err(internal)?;
            let mut records = read_records(&shared, keyframes[at].n)?;
            let mut next = 0;
            let mut frame = vec![0u8; w as usize * h as usize * 3];
            let span = request.to - request.from;
            for i in 0..u64::from(request.frames) {
                let t = request.from + span * i / u64::from(request.frames - 1);
                loop {
                    while next < records.len() && records[next].ts <= t {
                        paint(&mut board, geometry, &records[next]);
                        next += 1;
                    }
                    // A segment used up: the next keyframe takes over once
                    // its moment has come (it may follow a gap).
                    let following: Option<Keyframe> = keyframes.get(at + 1).copied();
                    match following {
                        Some(k) if next == records.len() && k.ts <= t => {
                            at += 1;
                            board = read_keyframe(&shared.dir, k, geometry).map_err(internal)?;
                            records = read_records(&shared, k.n)?;
                            next = 0;
                        }
                        _ => break,
                    }
                }
                scale_into(&board, geometry, request.scale, &mut frame);
                writer.write_image_data(&frame).map_err(internal)?;
            }
            writer.finish().map_err(internal)?;
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("timelapse task: {e}")))?
    }
}

/// Every `scale`-th pixel of every `scale`-th row of `board` into `out`.
fn scale_into(board: &[u8], geometry: Geometry, scale: u32, out: &mut [u8]) {
    let width = geometry.width as usize;
    let scale = scale as usize;
    let mut o = 0;
    for y in (0..geometry.height as usize).step_by(scale) {
        let row = &board[y * width * 3..(y + 1) * width * 3];
        for x in (0..width).step_by(scale) {
            out[o..o + 3].copy_from_slice(&row[x * 3..x * 3 + 3]);
            o += 3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_bounded_and_say_what_to_change() {
        let g = Geometry {
            width: 1000,
            height: 1000,
        };
        let ok = TimelapseRequest {
            from: 1,
            to: 2,
            frames: 60,
            fps: 15,
            scale: 1,
        };
        assert_eq!(ok.check(g).unwrap(), (1000, 1000));
        assert_eq!(
            TimelapseRequest { scale: 3, ..ok }.check(g).unwrap(),
            (334, 334)
        );
        for (bad, says) in [
            (TimelapseRequest { to: 1, ..ok }, "before"),
            (TimelapseRequest { frames: 1, ..ok }, "frames"),
            (TimelapseRequest { fps: 0, ..ok }, "fps"),
            (TimelapseRequest { frames: 600, ..ok }, "larger scale"),
        ] {
            let e = bad.check(g).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn scaling_takes_every_nth_pixel() {
        let g = Geometry {
            width: 3,
            height: 2,
        };
        let board: Vec<u8> = (0..18).collect();
        let mut out = vec![0; 2 * 3];
        scale_into(&board, g, 2, &mut out);
        assert_eq!(out, vec![0, 1, 2, 6, 7, 8]);
    }
}
