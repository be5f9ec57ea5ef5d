//! `GET /api/events`: the live board as Server-Sent Events, for viewers,
//! dashboards, bots and `curl -N`.
//!
//! Each `pixel_updated` goes out with `id: <seq>`, so a reconnecting
//! `EventSource` sends `Last-Event-ID` and gets everything after it from the
//! replay log, or a `resync` event when the log no longer reaches back.
//! `stats` and `user_list` go out as events of those names. The stream reads
//! the same hub as WebSockets; a stream that falls a whole ring behind is
//! ended, and its client's reconnect replays what it missed.
//!
//! A stream opened with `?username=` is also one of that user's connections:
//! events addressed to the user (`placed`, `placement_failed`,
//! `cooldown_over`, `notice`) come as events of those names, without an `id`
//! (they are not in the replay log, and must not move `Last-Event-ID`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use canvas_api::ApiError;
use protocol::username::is_valid_username;
use protocol::{ErrorCode, PixelUpdated, ServerMessage};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::Gateway;
use crate::hub::HubFrame;
use crate::mailbox::{Mailbox, user_key};

/// How often an idle stream sends a comment, so proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events queued per stream before the writer waits for the client.
const STREAM_QUEUE: usize = 256;
/// Events fetched per replay-log request when catching up.
const REPLAY_PAGE: usize = 1000;

/// The rectangle a stream is limited to, corners included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Region {
    /// Parses `x0,y0,x1,y1` (corners included, in either order).
    pub fn parse(raw: &str) -> Result<Region, String> {
        let bad = || format!("region must be x0,y0,x1,y1 (non-negative integers), got {raw:?}");
        let parts: Vec<u32> = raw
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let [xa, ya, xb, yb] = parts[..] else {
            return Err(bad());
        };
        Ok(Region {
            x0: xa.min(xb),
            y0: ya.min(yb),
            x1: xa.max(xb),
            y1: ya.max(yb),
        })
    }

    pub fn contains(&self, x: u32, y: u32) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }
}

pub async fn events(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // Counted with WebSockets, for as long as the response lives.
    let slots = match crate::admission::admit_stream(&gw, peer, &headers) {
        Ok(slots) => slots,
        Err(refused) => return refused.into_response(),
    };
    let region = match query.get("region").map(|r| Region::parse(r)).transpose() {
        Ok(r) => r,
        Err(msg) => return ApiError::BadRequest(msg).into_response(),
    };
    // A token names the stream's user (an `EventSource` cannot send
    // headers, hence `?token=`); with AUTH=required, nothing else does.
    let username = match (query.get("token"), query.get("username")) {
        (Some(token), _) => match gw.auth.verify(token) {
            Ok(session) => Some(session.username),
            Err(e) => return ApiError::from(e).into_response(),
        },
        (None, Some(_)) if gw.auth.required() => {
            return ApiError::Unauthorized(
                "AUTH=required: a user's events need ?token= (from POST /api/session)".into(),
            )
            .into_response();
        }
        (None, None) => None,
        (None, Some(name)) if is_valid_username(name) => Some(name.clone()),
        (None, Some(_)) => {
            return ApiError::InvalidUsername(
                "username must be 1-32 letters, digits, '_' or '-'".into(),
            )
            .into_response();
        }
    };
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("lastEventId").cloned());
    let last_id = match last_id.map(|v| v.trim().parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return ApiError::BadRequest(
                "Last-Event-ID must be a seq (a non-negative integer)".into(),
            )
            .into_response();
        }
    };
    // Subscribe before answering: nothing between the replay and the live
    // feed is lost, nor anything addressed to the user once the client has
    // the response.
    let live = gw.hub.subscribe();
    let log = crate::connection_log::SseStreamLog::open(&gw.metrics, username.as_deref());
    let mailbox = username.map(|name| StreamMailbox::open(&gw, name));
    let (tx, mut rx) = mpsc::channel::<Event>(STREAM_QUEUE);
    let stream_gw = gw.clone();
    gw.connections.spawn(async move {
        // Dropped, and so logged, when the stream ends.
        let _log = log;
        let shutdown = stream_gw.shutdown.clone();
        let close_delay = crate::drain::random_close_delay(stream_gw.shutdown_drain);
        // The client left: end now, not at the next event of a quiet board.
        let left = tx.clone();
        tokio::select! {
            () = pump(stream_gw, tx, last_id, region, live, mailbox) => {}
            () = left.closed() => {}
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(close_delay).await;
            } => {}
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        let _held = &slots;
        rx.poll_recv(cx).map(|e| e.map(Ok::<_, Infallible>))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response();
    // nginx (ingress-nginx too) buffers proxied responses unless told not to,
    // which would hold events back until a buffer fills.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn pixel_event(e: &PixelUpdated) -> Event {
    let json = serde_json::to_string(&ServerMessage::PixelUpdated(e.clone())).expect("encodes");
    Event::default()
        .id(e.seq.to_string())
        .event("pixel_updated")
        .data(json)
}

fn named(name: &str, m: &ServerMessage) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(m).expect("encodes"))
}

/// A stream's mailbox, filed under its user while the stream lives.
struct StreamMailbox {
    gw: Gateway,
    username: String,
    mailbox: Arc<Mailbox>,
}

impl StreamMailbox {
    fn open(gw: &Gateway, username: String) -> Self {
        let mailbox = gw.mailboxes.open(user_key(&username));
        StreamMailbox {
            gw: gw.clone(),
            username,
            mailbox,
        }
    }
}

impl Drop for StreamMailbox {
    fn drop(&mut self) {
        self.gw
            .mailboxes
            .close(user_key(&self.username), &self.mailbox);
    }
}

/// Waits for the user's events; forever for an anonymous stream.
async fn mail(mailbox: &Option<StreamMailbox>) {
    match mailbox {
        Some(m) => m.mailbox.ready().await,
        None => std::future::pending().await,
    }
}

/// An event addressed to the stream's user, named by its `type`.
fn user_event(frame: &str) -> Option<Event> {
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let typed: Typed<'_> = serde_json::from_str(frame).ok()?;
    // A type from a newer server is passed on too, but only with a name
    // that is safe in an `event:` line.
    let safe = !typed.kind.is_empty()
        && typed.kind.len() <= 64
        && typed
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_');
    safe.then(|| Event::default().event(typed.kind.as_ref()).data(frame))
}

/// Feeds one stream until its client goes away.
async fn pump(
    gw: Gateway,
    tx: mpsc::Sender<Event>,
    last_id: Option<u64>,
    region: Option<Region>,
    mut live: broadcast::Receiver<HubFrame>,
    mailbox: Option<StreamMailbox>,
) {
    let in_region = |e: &PixelUpdated| region.is_none_or(|r| r.contains(e.x, e.y));
    let mut replayed_upto = 0;
    if let Some(mut from) = last_id {
        let asked = from;
        loop {
            match gw.backend.updates_since(from, REPLAY_PAGE).await {
                Ok(page) if page.latest_seq.saturating_sub(asked) > gw.sse_max_replay => {
                    let resync = ServerMessage::Resync {
                        seq: gw.hub.delivered_seq(),
                        reason: "Last-Event-ID is further behind than SSE_MAX_REPLAY events; refetch the board".into(),
                    };
                    if tx.send(named("resync", &resync)).await.is_err() {
                        return;
                    }
                    from = page.latest_seq;
                    break;
                }
                Ok(page) => {
                    for e in page.events.iter().filter(|e| in_region(e)) {
                        if tx.send(pixel_event(e)).await.is_err() {
                            return;
                        }
                    }
                    from = page
                        .events
                        .last()
                        .map_or(page.latest_seq.max(from), |e| e.seq);
                    if !page.has_more {
                        break;
                    }
                }
                Err(e) if e.code() == ErrorCode::Gone => {
                    let resync = ServerMessage::Resync {
                        seq: gw.hub.delivered_seq(),
                        reason: "the replay log no longer reaches back to Last-Event-ID; refetch the board".into(),
                    };
                    if tx.send(named("resync", &resync)).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SSE replay failed; ending the stream so the client retries");
                    return;
                }
            }
        }
        replayed_upto = from;
    }
    if let Some(p) = gw.hub.presence() {
        for frame in [p.stats, p.user_list] {
            if let Some(event) = frame_events(frame.as_str(), replayed_upto, &in_region)
                .into_iter()
                .next()
                && tx.send(event).await.is_err()
            {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            frame = live.recv() => {
                let frame = match frame {
                    Ok(frame) => frame,
                    // Too far behind: end the stream; the reconnect replays
                    // the gap.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                };
                for event in hub_frame_events(frame, replayed_upto, &in_region) {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            () = mail(&mailbox) => {
                let Some(m) = &mailbox else { return };
                let taken = m.mailbox.take();
                for frame in &taken.frames {
                    if let Some(event) = user_event(frame.as_str())
                        && tx.send(event).await.is_err()
                    {
                        return;
                    }
                }
                if taken.overflowed {
                    // Never silently short: the client reconnects.
                    gw.metrics.slow_client_closes.inc();
                    return;
                }
            }
        }
    }
}

/// The SSE events of one hub frame (one per event of a run), skipping
/// pixels already replayed or outside the region.
fn hub_frame_events(
    frame: HubFrame,
    replayed_upto: u64,
    in_region: &impl Fn(&PixelUpdated) -> bool,
) -> Vec<Event> {
    match frame {
        HubFrame::Message(message) => frame_events(message.as_str(), replayed_upto, in_region),
        HubFrame::Events(run) => run
            .events()
            .iter()
            .flat_map(|e| frame_events(e.as_str(), replayed_upto, in_region))
            .collect(),
    }
}

/// The SSE events of one message (a batch is flattened), skipping pixels
/// already replayed or outside the region.
fn frame_events(
    frame: &str,
    replayed_upto: u64,
    in_region: &impl Fn(&PixelUpdated) -> bool,
) -> Vec<Event> {
    let Ok(message) = serde_json::from_str::<ServerMessage>(frame) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |m: ServerMessage| match m {
        ServerMessage::PixelUpdated(e) if e.seq > replayed_upto && in_region(&e) => {
            out.push(pixel_event(&e))
        }
        ServerMessage::Stats { .. } => out.push(named("stats", &m)),
        ServerMessage::UserList { .. } => out.push(named("user_list", &m)),
        ServerMessage::Resync { .. } => out.push(named("resync", &m)),
        _ => {}
    };
    match message {
        ServerMessage::Batch { events } => events.into_iter().for_each(&mut push),
        other => push(other),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_parse_in_either_corner_order() {
        let r = Region::parse("10,20,0,5").unwrap();
        assert_eq!(
            r,
            Region {
                x0: 0,
                y0: 5,
                x1: 10,
                y1: 20
            }
        );
        assert!(r.contains(0, 5) && r.contains(10, 20) && !r.contains(11, 20));
        for bad in ["", "1,2,3", "1,2,3,4,5", "a,1,2,3", "-1,0,1,1"] {
            assert!(Region::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_events_are_named_by_type_only_when_the_name_is_safe() {
        assert!(user_event(r#"{"type":"cooldown_over"}"#).is_some());
        assert!(user_event(r#"{"type":"brand_new","x":1}"#).is_some());
        assert!(user_event("{\"type\":\"bad\\nname\"}").is_none());
        assert!(user_event(r#"{"type":"Upper"}"#).is_none());
        assert!(user_event(r#"{"type":""}"#).is_none());
        assert!(user_event("not json").is_none());
    }
}
