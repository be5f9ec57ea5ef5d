//! Moderation on the board: rollback of a rectangle to its state at a time,
//! undo of a user's pixels since a time, and clearing — all planned from
//! the pixel history and written as ordinary seq'd writes (attributed to
//! [`MODERATION_USER`]), so every gateway fans them out and every client
//! converges exactly as it does for placements.
//!
//! A plan is made from a read of the histories and applied with a
//! compare-and-set on each pixel's last `seq` ([`Rewrite`]): a pixel placed
//! on between the read and the write keeps the newer placement.

use protocol::http::{ModerationResult, Rect};
use protocol::{Color, PixelUpdated};

use crate::canvas::Canvas;
use crate::error::ApiError;
use crate::store::{CanvasStore, PixelRecord, Rewrite};

/// Who moderation writes are attributed to; `~` is not allowed in a
/// username, so no player can pose as it.
pub const MODERATION_USER: &str = "~moderation";
/// Stands for a board clear in a pixel's history.
const CLEAR_USER: &str = "~clear";
/// The most pixels one rollback may cover.
pub const MAX_ROLLBACK_AREA: u64 = 256 * 256;
/// The background color every pixel starts with.
pub const BACKGROUND: Color = Color([0xFF, 0xFF, 0xFF]);

/// What to do with one pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Leave it.
    Keep,
    /// Set it to this color, if its last write is still `expected_seq`.
    /// `unknown`: the history did not reach back far enough, so the color
    /// is the background.
    Set {
        color: Color,
        expected_seq: u64,
        unknown: bool,
    },
}

/// A pixel's history with the last clear (if any) put in its place as a
/// white write, newest first.
fn with_clear(history: &[PixelRecord], cleared: Option<(u64, u64)>) -> Vec<PixelRecord> {
    let mut out = history.to_vec();
    if let Some((seq, timestamp)) = cleared {
        let at = out.iter().position(|e| e.seq < seq).unwrap_or(out.len());
        out.insert(
            at,
            PixelRecord {
                color: BACKGROUND,
                username: CLEAR_USER.into(),
                timestamp,
                seq,
            },
        );
    }
    out
}

/// The `seq` the pixel's metadata holds now: that of its newest write, or 0
/// when it was cleared since (or never placed).
fn current_seq(newest: &PixelRecord) -> u64 {
    if newest.username == CLEAR_USER {
        0
    } else {
        newest.seq
    }
}

/// Rolls one pixel back to what it showed at `at`. `full`: the stored
/// history is as long as it is kept, so older writes may be gone.
pub fn plan_rollback(
    history: &[PixelRecord],
    cleared: Option<(u64, u64)>,
    full: bool,
    at: u64,
) -> Step {
    let h = with_clear(history, cleared);
    let Some(newest) = h.first() else {
        return Step::Keep; // Never placed: white then and now.
    };
    if newest.timestamp <= at {
        return Step::Keep; // Nothing changed since.
    }
    restore(newest, h.iter().find(|e| e.timestamp <= at), full)
}

/// Undoes `username`'s placements on one pixel since `since`: it returns
/// to what it showed before them, unless someone else placed there later
/// (then the later pixel stays).
pub fn plan_undo(
    history: &[PixelRecord],
    cleared: Option<(u64, u64)>,
    full: bool,
    username: &str,
    since: u64,
) -> Step {
    let h = with_clear(history, cleared);
    let Some(newest) = h.first() else {
        return Step::Keep;
    };
    let theirs = |e: &PixelRecord| e.username == username && e.timestamp >= since;
    if !theirs(newest) {
        return Step::Keep; // Someone else placed (or cleared) later.
    }
    restore(newest, h.iter().find(|e| !theirs(e)), full)
}

/// Sets a pixel that shows `newest` back to `before` — the background when
/// the history does not reach back that far (unknown unless the history is
/// `full`) — unless it shows that color already.
fn restore(newest: &PixelRecord, before: Option<&PixelRecord>, full: bool) -> Step {
    let (color, unknown) = match before {
        Some(e) => (e.color, false),
        None => (BACKGROUND, full),
    };
    if color == newest.color {
        return Step::Keep;
    }
    Step::Set {
        color,
        expected_seq: current_seq(newest),
        unknown,
    }
}

impl Canvas {
    fn check_rect(&self, rect: Rect) -> Result<(), ApiError> {
        let g = self.geometry();
        if rect.x0 > rect.x1 || rect.y0 > rect.y1 {
            return Err(ApiError::BadRequest(
                "a rectangle needs x0 <= x1 and y0 <= y1".into(),
            ));
        }
        if rect.x1 >= g.width || rect.y1 >= g.height {
            return Err(ApiError::OutOfBounds {
                x: rect.x1.into(),
                y: rect.y1.into(),
                width: g.width,
                height: g.height,
            });
        }
        Ok(())
    }

    /// True when writes older than `history` (newest first) may exist but
    /// were not kept: it is as long as histories get, or it starts at the
    /// store's floor.
    fn truncated(&self, history: &[PixelRecord]) -> bool {
        let floor = self.store().history_floor();
        history.len() >= self.history_len() || history.last().is_some_and(|e| e.seq <= floor)
    }

    /// Applies a plan; returns the events written (publish them) and the
    /// tally.
    async fn apply_plan(
        &self,
        plan: Vec<((u32, u32), Step)>,
    ) -> Result<(Vec<PixelUpdated>, ModerationResult), ApiError> {
        let mut writes = Vec::new();
        let (mut kept, mut unknown) = (0u64, 0u64);
        for ((x, y), step) in plan {
            match step {
                Step::Keep => kept += 1,
                Step::Set {
                    color,
                    expected_seq,
                    unknown: u,
                } => {
                    unknown += u64::from(u);
                    writes.push(Rewrite {
                        x,
                        y,
                        color,
                        expected_seq,
                    });
                }
            }
        }
        let planned = writes.len() as u64;
        let events = self.store().rewrite(&writes, MODERATION_USER).await?;
        let seq = match self.store() {
            // `seq` is per chunk there; each event carries its chunk's.
            CanvasStore::Cluster(_) => 0,
            store => store.latest_seq().await?,
        };
        let changed = events.len() as u64;
        self.metrics().moderation_writes.add(changed);
        if let Some(last) = events.last() {
            self.metrics().seq.set(last.seq);
        }
        Ok((
            events,
            ModerationResult {
                changed,
                skipped: kept + (planned - changed),
                unknown,
                seq,
            },
        ))
    }

    /// Every pixel of `rect` back to what it showed at `at` (ms).
    pub async fn rollback(
        &self,
        rect: Rect,
        at: u64,
    ) -> Result<(Vec<PixelUpdated>, ModerationResult), ApiError> {
        self.check_rect(rect)?;
        if rect.area() > MAX_ROLLBACK_AREA {
            return Err(ApiError::BadRequest(format!(
                "the rectangle covers {} pixels; one rollback covers at most {MAX_ROLLBACK_AREA}",
                rect.area()
            )));
        }
        let cleared = self.store().cleared().await?;
        let plan = self
            .store()
            .histories(rect)
            .await?
            .into_iter()
            .map(|(p, h)| (p, plan_rollback(&h, cleared, self.truncated(&h), at)))
            .collect();
        self.apply_plan(plan).await
    }

    /// Every pixel `username` placed since `since` (ms) back to what it
    /// showed before, unless someone else placed there later.
    pub async fn undo(
        &self,
        username: &str,
        since: u64,
    ) -> Result<(Vec<PixelUpdated>, ModerationResult), ApiError> {
        let pixels = self.store().user_pixels_since(username, since).await?;
        let cleared = self.store().cleared().await?;
        let plan = self
            .store()
            .histories_of(&pixels)
            .await?
            .into_iter()
            .map(|(p, h)| {
                (
                    p,
                    plan_undo(&h, cleared, self.truncated(&h), username, since),
                )
            })
            .collect();
        self.apply_plan(plan).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, timestamp: u64, c: u8, user: &str) -> PixelRecord {
        PixelRecord {
            color: Color([c, c, c]),
            username: user.into(),
            timestamp,
            seq,
        }
    }

    fn set(c: u8, expected_seq: u64) -> Step {
        Step::Set {
            color: Color([c, c, c]),
            expected_seq,
            unknown: false,
        }
    }

    #[test]
    fn rollback_restores_the_last_write_at_or_before_the_time() {
        // Newest first: bob at 300, ann at 200, cid at 100.
        let h = [
            rec(3, 300, 3, "bob"),
            rec(2, 200, 2, "ann"),
            rec(1, 100, 1, "cid"),
        ];
        assert_eq!(plan_rollback(&h, None, false, 250), set(2, 3));
        assert_eq!(plan_rollback(&h, None, false, 200), set(2, 3));
        assert_eq!(plan_rollback(&h, None, false, 150), set(1, 3));
        // Before anything: the background.
        assert_eq!(
            plan_rollback(&h, None, false, 50),
            Step::Set {
                color: BACKGROUND,
                expected_seq: 3,
                unknown: false
            }
        );
        // Unchanged since the time, or never placed: nothing to do.
        assert_eq!(plan_rollback(&h, None, false, 300), Step::Keep);
        assert_eq!(plan_rollback(&[], None, false, 50), Step::Keep);
    }

    #[test]
    fn rollback_past_a_truncated_history_is_reported_unknown() {
        let h = [rec(9, 900, 9, "bob")];
        assert_eq!(
            plan_rollback(&h, None, true, 100),
            Step::Set {
                color: BACKGROUND,
                expected_seq: 9,
                unknown: true
            }
        );
    }

    #[test]
    fn rollback_sees_a_clear_as_a_white_write() {
        let h = [rec(5, 500, 5, "bob"), rec(2, 200, 2, "ann")];
        // Cleared at seq 3 (time 300): at 350 the pixel was white.
        let cleared = Some((3, 300));
        assert_eq!(
            plan_rollback(&h, cleared, false, 350),
            Step::Set {
                color: BACKGROUND,
                expected_seq: 5,
                unknown: false
            }
        );
        // A rollback to before the clear brings ann's pixel back; the pixel
        // shows white now (nobody placed after the clear), so it expects
        // seq 0.
        let h = [rec(2, 200, 2, "ann")];
        assert_eq!(plan_rollback(&h, cleared, false, 250), set(2, 0));
    }

    #[test]
    fn undo_restores_what_was_there_before_the_user() {
        let h = [
            rec(3, 300, 3, "eve"),
            rec(2, 200, 2, "eve"),
            rec(1, 100, 1, "ann"),
        ];
        assert_eq!(plan_undo(&h, None, false, "eve", 150), set(1, 3));
        // Only eve's placements since 250 are undone: back to her own at 200.
        assert_eq!(plan_undo(&h, None, false, "eve", 250), set(2, 3));
        // Nothing before eve: the background.
        let h = [rec(3, 300, 3, "eve")];
        assert_eq!(
            plan_undo(&h, None, false, "eve", 0),
            Step::Set {
                color: BACKGROUND,
                expected_seq: 3,
                unknown: false
            }
        );
    }

    #[test]
    fn undo_keeps_someone_elses_later_pixel() {
        let h = [
            rec(4, 400, 4, "bob"),
            rec(3, 300, 3, "eve"),
            rec(1, 100, 1, "ann"),
        ];
        assert_eq!(plan_undo(&h, None, false, "eve", 0), Step::Keep);
        // A moderation write or a clear after eve counts as someone else.
        let h = [rec(3, 300, 3, "eve")];
        assert_eq!(plan_undo(&h, Some((4, 400)), false, "eve", 0), Step::Keep);
        // Placements before `since` are not undone.
        assert_eq!(plan_undo(&h, None, false, "eve", 301), Step::Keep);
    }

    #[test]
    fn a_step_that_changes_nothing_is_skipped() {
        let h = [rec(3, 300, 7, "eve"), rec(1, 100, 7, "ann")];
        assert_eq!(plan_undo(&h, None, false, "eve", 0), Step::Keep);
        assert_eq!(plan_rollback(&h, None, false, 200), Step::Keep);
    }
}
