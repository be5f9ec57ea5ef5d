//! The end-of-run board check: the board served by `/api/canvas.bin` must
//! show, for every pixel this run wrote, the color of its last acknowledged
//! write that the snapshot includes.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use protocol::Color;
use protocol::http::{HEADER_CANVAS_HEIGHT, HEADER_CANVAS_SEQ, HEADER_CANVAS_WIDTH};
use reqwest::Url;
use serde::Serialize;

/// A board as served, with the `seq` of the last write it includes.
pub struct Snapshot {
    pub width: u32,
    pub height: u32,
    pub seq: u64,
    pub rgb: Bytes,
}

pub async fn fetch(http: &reqwest::Client, url: Url) -> anyhow::Result<Snapshot> {
    let response = http
        .get(url.clone())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url}: HTTP {}", response.status());
    }
    let header = |name: &str| -> anyhow::Result<u64> {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("GET {url}: no numeric {name} header"))
    };
    let width = u32::try_from(header(HEADER_CANVAS_WIDTH)?)?;
    let height = u32::try_from(header(HEADER_CANVAS_HEIGHT)?)?;
    let seq = header(HEADER_CANVAS_SEQ)?;
    let rgb = response
        .bytes()
        .await
        .with_context(|| format!("GET {url}: reading the body"))?;
    let want = u64::from(width) * u64::from(height) * 3;
    if rgb.len() as u64 != want {
        bail!(
            "GET {url}: {} bytes for a {width}x{height} board, not {want}",
            rgb.len()
        );
    }
    Ok(Snapshot {
        width,
        height,
        seq,
        rgb,
    })
}

/// One acknowledged write of this run.
#[derive(Debug, Clone, Copy)]
pub struct OurWrite {
    pub seq: u64,
    pub x: u32,
    pub y: u32,
    pub color: Color,
}

/// A write seen on the wire that was not ours.
#[derive(Debug, Clone, Copy)]
pub struct ForeignWrite {
    pub seq: u64,
    pub x: u32,
    pub y: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BoardCheck {
    /// The snapshot's `x-canvas-seq`.
    pub snapshot_seq: u64,
    /// Pixels whose color was compared.
    pub pixels_compared: u64,
    pub mismatches: u64,
    /// Pixels skipped because a later write by someone else covers ours.
    pub skipped_foreign: u64,
    /// Acknowledged writes the snapshot does not include yet.
    pub writes_after_snapshot: u64,
    /// The first few mismatches, for a human to look at.
    pub examples: Vec<String>,
}

const MAX_EXAMPLES: usize = 5;

/// Compares the board with what was acknowledged.
///
/// A pixel's expected color is its acknowledged write with the highest
/// `seq` at or below the snapshot's. Another client's write can land on the
/// same pixel later; such a pixel is skipped when that write was seen on the
/// wire (`foreign`, from one observer), but a foreign write the observer did
/// not see (it was lost, or landed before the observer connected and is
/// invisible to us) cannot be told from a wrong board and is reported as a
/// mismatch: run against a gateway nobody else writes to.
pub fn check(snapshot: &Snapshot, ours: &[OurWrite], foreign: &[ForeignWrite]) -> BoardCheck {
    let mut report = BoardCheck {
        snapshot_seq: snapshot.seq,
        ..Default::default()
    };
    let index = |x: u32, y: u32| u64::from(y) * u64::from(snapshot.width) + u64::from(x);
    let mut expected: HashMap<u64, (u64, Color)> = HashMap::with_capacity(ours.len());
    for w in ours {
        if w.x >= snapshot.width || w.y >= snapshot.height {
            // The served board is smaller than the one `connected` described.
            report.mismatches += 1;
            if report.examples.len() < MAX_EXAMPLES {
                report.examples.push(format!(
                    "({},{}) is outside the served {}x{} board",
                    w.x, w.y, snapshot.width, snapshot.height
                ));
            }
            continue;
        }
        if w.seq > snapshot.seq {
            report.writes_after_snapshot += 1;
            continue;
        }
        let slot = expected.entry(index(w.x, w.y)).or_insert((w.seq, w.color));
        if w.seq > slot.0 {
            *slot = (w.seq, w.color);
        }
    }
    let mut covered: HashMap<u64, u64> = HashMap::new();
    for f in foreign.iter().filter(|f| f.seq <= snapshot.seq) {
        let slot = covered.entry(index(f.x, f.y)).or_insert(f.seq);
        *slot = (*slot).max(f.seq);
    }
    let mut pixels: Vec<_> = expected.into_iter().collect();
    // In board order, so the examples are the same from run to run.
    pixels.sort_unstable_by_key(|&(i, _)| i);
    for (i, (seq, color)) in pixels {
        if covered.get(&i).is_some_and(|&f| f > seq) {
            report.skipped_foreign += 1;
            continue;
        }
        report.pixels_compared += 1;
        let at = (i * 3) as usize;
        let shown = Color([snapshot.rgb[at], snapshot.rgb[at + 1], snapshot.rgb[at + 2]]);
        if shown != color {
            report.mismatches += 1;
            if report.examples.len() < MAX_EXAMPLES {
                let (x, y) = (i % u64::from(snapshot.width), i / u64::from(snapshot.width));
                report
                    .examples
                    .push(format!("({x},{y}) is {shown}, seq {seq} set {color}"));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Color = Color([255, 0, 0]);
    const BLUE: Color = Color([0, 0, 255]);

    fn board(width: u32, height: u32, seq: u64, paint: &[(u32, u32, Color)]) -> Snapshot {
        let mut rgb = vec![255u8; (width * height * 3) as usize];
        for &(x, y, c) in paint {
            let at = ((y * width + x) * 3) as usize;
            rgb[at..at + 3].copy_from_slice(&c.0);
        }
        Snapshot {
            width,
            height,
            seq,
            rgb: Bytes::from(rgb),
        }
    }

    fn ours(seq: u64, x: u32, y: u32, color: Color) -> OurWrite {
        OurWrite { seq, x, y, color }
    }

    #[test]
    fn the_highest_acked_seq_decides_a_pixel() {
        let snap = board(4, 4, 10, &[(1, 1, BLUE)]);
        let check = check(&snap, &[ours(3, 1, 1, RED), ours(5, 1, 1, BLUE)], &[]);
        assert_eq!((check.pixels_compared, check.mismatches), (1, 0));
    }

    #[test]
    fn a_wrong_color_is_a_mismatch() {
        let snap = board(4, 4, 10, &[(1, 1, RED)]);
        let check = check(&snap, &[ours(3, 1, 1, RED), ours(5, 1, 1, BLUE)], &[]);
        assert_eq!(check.mismatches, 1);
        assert_eq!(check.examples, vec!["(1,1) is #FF0000, seq 5 set #0000FF"]);
    }

    #[test]
    fn writes_after_the_snapshot_are_not_expected_yet() {
        let snap = board(4, 4, 4, &[(1, 1, RED)]);
        let check = check(&snap, &[ours(3, 1, 1, RED), ours(5, 1, 1, BLUE)], &[]);
        assert_eq!((check.mismatches, check.writes_after_snapshot), (0, 1));
    }

    #[test]
    fn a_later_foreign_write_skips_the_pixel() {
        let snap = board(4, 4, 10, &[(2, 3, BLUE)]);
        let foreign = [ForeignWrite { seq: 6, x: 2, y: 3 }];
        let check = check(&snap, &[ours(5, 2, 3, RED)], &foreign);
        assert_eq!(
            (
                check.pixels_compared,
                check.skipped_foreign,
                check.mismatches
            ),
            (0, 1, 0)
        );
    }

    #[test]
    fn a_write_outside_the_served_board_is_a_mismatch() {
        let snap = board(2, 2, 10, &[]);
        let check = check(&snap, &[ours(1, 3, 0, RED)], &[]);
        assert_eq!((check.pixels_compared, check.mismatches), (0, 1));
    }

    #[test]
    fn an_earlier_foreign_write_does_not_excuse_a_mismatch() {
        let snap = board(4, 4, 10, &[(2, 3, BLUE)]);
        let foreign = [ForeignWrite { seq: 4, x: 2, y: 3 }];
        let check = check(&snap, &[ours(5, 2, 3, RED)], &foreign);
        assert_eq!((check.skipped_foreign, check.mismatches), (0, 1));
    }
}
