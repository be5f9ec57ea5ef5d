//! [`UserNotices`]: events addressed to one user — the answer to a placement
//! made over HTTP, `cooldown_over` when a placement's cooldown ends, and
//! moderation notices. They go out on the user's channel (`user:<username>`)
//! through the [`Announcer`], so they reach that user's connections on
//! whichever gateway holds them, and no one else's.
//!
//! Whoever answers a placement schedules its `cooldown_over`: canvas-api for
//! `PUT /api/pixel`, the gateway for a WebSocket placement. Notices are live
//! only: one due while nothing listens, or while the process stops, is lost.

use std::collections::VecDeque;
use std::time::Duration;

use protocol::{NoticeCode, PixelUpdated, PlacementSource, ServerMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Announcer, ApiError};

/// Cheap to clone; every clone feeds the same `cooldown_over` task.
#[derive(Clone)]
pub struct UserNotices {
    announcer: Announcer,
    /// Into the task that sends `cooldown_over`; `None` when there is no
    /// cooldown.
    cooldowns: Option<mpsc::UnboundedSender<(Instant, String)>>,
}

impl UserNotices {
    /// Starts the `cooldown_over` task on `tracker` (it ends with `stop`)
    /// when there is a cooldown and someone to tell.
    pub fn start(
        announcer: Announcer,
        cooldown_ms: u64,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> UserNotices {
        // Nothing to schedule without a cooldown, or without anyone to tell
        // (a standalone canvas-api on the embedded store).
        let listened = !matches!(announcer, Announcer::Nobody);
        let cooldowns = (cooldown_ms > 0 && listened).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let cooldown = Duration::from_millis(cooldown_ms);
            tracker.spawn(send_cooldown_over(announcer.clone(), cooldown, rx, stop));
            tx
        });
        UserNotices {
            announcer,
            cooldowns,
        }
    }

    /// Sends `message` to every connection of `username`, on any gateway.
    /// Moderation calls this, e.g. with a `notice` coded `banned`.
    pub async fn send(&self, username: &str, message: &ServerMessage) -> Result<(), String> {
        self.announcer.tell_user(username, message).await
    }

    /// A `notice` for `username`.
    pub async fn notice(
        &self,
        username: &str,
        code: NoticeCode,
        message: impl Into<String>,
    ) -> Result<(), String> {
        let notice = ServerMessage::Notice {
            code,
            message: message.into(),
        };
        self.send(username, &notice).await
    }

    /// A placement made over HTTP was stored: its user's connections hear
    /// `placed`, and `cooldown_over` once its cooldown ends.
    pub async fn placed_over_http(&self, event: &PixelUpdated) {
        let placed = ServerMessage::Placed {
            source: PlacementSource::Http,
            seq: event.seq,
            x: event.x,
            y: event.y,
            color: event.color,
            timestamp: event.timestamp,
        };
        self.cooldown_started(&event.username);
        if let Err(cause) = self.send(&event.username, &placed).await {
            tracing::warn!(%cause, seq = event.seq, "cannot tell the user of their placement");
        }
    }

    /// A placement made over HTTP was refused: its user's connections hear
    /// `placement_failed`.
    pub async fn failed_over_http(&self, username: &str, x: i64, y: i64, error: &ApiError) {
        let failed = ServerMessage::PlacementFailed {
            source: PlacementSource::Http,
            x,
            y,
            code: error.code(),
            message: error.to_string(),
            retry_after_ms: error.retry_after_ms(),
        };
        if let Err(cause) = self.send(username, &failed).await {
            tracing::debug!(%cause, "cannot tell the user of their refused placement");
        }
    }

    /// An accepted placement's cooldown starts now; `cooldown_over` follows
    /// when it ends. Measured from now, after the store took the write, so
    /// the notice is never early.
    pub fn cooldown_started(&self, username: &str) {
        if let Some(tx) = &self.cooldowns {
            let _ = tx.send((Instant::now(), username.to_owned()));
        }
    }
}

/// Sends each `cooldown_over` when its cooldown ends. The cooldown is the
/// same for every placement, so the notices fall due in the order they were
/// scheduled: a FIFO queue, one timer.
async fn send_cooldown_over(
    announcer: Announcer,
    cooldown: Duration,
    mut rx: mpsc::UnboundedReceiver<(Instant, String)>,
    stop: CancellationToken,
) {
    let mut due: VecDeque<(Instant, String)> = VecDeque::new();
    loop {
        let next = due.front().map(|(started, _)| *started + cooldown);
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => due.push_back(item),
                None => return,
            },
            () = sleep_until(next) => {
                let now = Instant::now();
                while let Some((started, _)) = due.front() {
                    if *started + cooldown > now {
                        break;
                    }
                    let (_, username) = due.pop_front().expect("front exists");
                    if let Err(cause) = announcer.tell_user(&username, &ServerMessage::CooldownOver).await {
                        tracing::debug!(%cause, "cannot send cooldown_over");
                    }
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use protocol::Color;

    use super::*;

    type Sent = Arc<Mutex<Vec<(String, ServerMessage)>>>;

    /// Notices handed over in process, kept for the test to read.
    fn capture() -> (Sent, Announcer) {
        let sent: Sent = Arc::default();
        let sink = sent.clone();
        let announcer = Announcer::Local {
            users: Arc::new(move |user, json| {
                let message = serde_json::from_str(&json).expect("valid JSON");
                sink.lock().unwrap().push((user.to_owned(), message));
            }),
        };
        (sent, announcer)
    }

    fn taken(sent: &Sent) -> Vec<(String, ServerMessage)> {
        std::mem::take(&mut *sent.lock().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_over_follows_each_placement_when_its_cooldown_ends() {
        let (sent, announcer) = capture();
        let tracker = TaskTracker::new();
        let notices = UserNotices::start(announcer, 1000, &tracker, CancellationToken::new());
        notices.cooldown_started("ann");
        tokio::time::sleep(Duration::from_millis(400)).await;
        notices.cooldown_started("bob");
        tokio::time::sleep(Duration::from_millis(599)).await;
        assert!(taken(&sent).is_empty(), "early");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(
            taken(&sent),
            [("ann".to_owned(), ServerMessage::CooldownOver)]
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            taken(&sent),
            [("bob".to_owned(), ServerMessage::CooldownOver)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_cooldown_or_a_listener_nothing_is_scheduled() {
        let (sent, announcer) = capture();
        let tracker = TaskTracker::new();
        let notices = UserNotices::start(announcer, 0, &tracker, CancellationToken::new());
        notices.cooldown_started("ann");
        let unheard =
            UserNotices::start(Announcer::Nobody, 1000, &tracker, CancellationToken::new());
        unheard.cooldown_started("ann");
        assert!(tracker.is_empty());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(taken(&sent).is_empty());
    }

    #[tokio::test]
    async fn an_http_placement_is_answered_to_its_user() {
        let (sent, announcer) = capture();
        let notices =
            UserNotices::start(announcer, 0, &TaskTracker::new(), CancellationToken::new());
        let event = PixelUpdated {
            x: 1,
            y: 2,
            color: Color([0, 0, 0]),
            username: "ann".into(),
            timestamp: 7,
            seq: 9,
        };
        notices.placed_over_http(&event).await;
        let refused = ApiError::Cooldown {
            retry_after_ms: 1500,
        };
        notices.failed_over_http("ann", 3, 4, &refused).await;
        notices
            .notice("bob", NoticeCode::Banned, "bye")
            .await
            .unwrap();
        let sent = taken(&sent);
        assert_eq!(
            sent[0],
            (
                "ann".to_owned(),
                ServerMessage::Placed {
                    source: PlacementSource::Http,
                    seq: 9,
                    x: 1,
                    y: 2,
                    color: Color([0, 0, 0]),
                    timestamp: 7
                }
            )
        );
        match &sent[1] {
            (
                user,
                ServerMessage::PlacementFailed {
                    code,
                    retry_after_ms,
                    x: 3,
                    y: 4,
                    ..
                },
            ) => {
                assert_eq!(user, "ann");
                assert_eq!(*code, protocol::ErrorCode::Cooldown);
                assert_eq!(*retry_after_ms, Some(1500));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &sent[2],
            (user, ServerMessage::Notice { code: NoticeCode::Banned, .. }) if user == "bob"
        ));
    }
}
