//! One WebSocket connection: a single task that reads the client's frames,
//! runs its placements (a bounded number at once), and writes its replies and
//! the hub's frames. Nothing else writes to the socket, so nothing needs a
//! lock.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use protocol::messages::MAX_CLIENT_FRAME_BYTES;
use protocol::username::is_valid_username;
use protocol::{ClientMessage, ErrorCode, ServerMessage, close};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::Gateway;
use crate::decode::decode;
use crate::idle::{IdleClock, OnTick, on_tick};
use crate::ip_limits::{IpSlot, Verdict};
use crate::mailbox::{Mailbox, user_key};

/// How a connection came by its username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// From a valid session token: fixed for the connection's life.
    Verified,
    /// Said by the client (`?username=`, `set_username`), with `AUTH=open`.
    Claimed,
    /// No token with `AUTH=required`: may watch, not place.
    Watcher,
}

/// Placements of one connection in flight at once; past it the gateway stops
/// reading from that client until one finishes (backpressure, not a queue).
pub const MAX_IN_FLIGHT: usize = 32;
/// Hub frames written per flush.
const MAX_FRAMES_PER_FLUSH: usize = 256;
/// What a shed placement tells the client to wait before retrying.
const SHED_RETRY_AFTER_MS: u64 = 200;
/// How long a closing connection waits for its placements in flight.
const IN_FLIGHT_ON_CLOSE: Duration = Duration::from_secs(2);
/// How long a connection closed for flooding reads on for the client's
/// close reply.
const DRAIN_ON_CLOSE: Duration = Duration::from_secs(1);

/// Guest names are `guest-` and four hex digits.
pub fn guest_name() -> String {
    format!("guest-{}", &uuid::Uuid::new_v4().simple().to_string()[..4])
}

fn encode(message: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(message).expect("server messages encode"),
    ))
}

fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Message {
    encode(&ServerMessage::Error {
        id,
        code,
        message: message.into(),
        retry_after_ms: None,
    })
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Tracks the connection in metrics, presence and its user's mailboxes for
/// as long as it lives.
struct Registration<'a> {
    gw: &'a Gateway,
    username: String,
    /// Events addressed to this connection's user.
    mailbox: Arc<Mailbox>,
}

impl<'a> Registration<'a> {
    fn new(gw: &'a Gateway, username: String) -> Self {
        gw.metrics.connections.add(1);
        gw.metrics.connections_total.inc();
        gw.users.join(&username);
        let mailbox = gw.mailboxes.open(user_key(&username));
        Registration {
            gw,
            username,
            mailbox,
        }
    }

    /// `set_username`: from now on the connection is `username`'s.
    fn rename(&mut self, username: String) {
        self.gw.users.rename(&self.username, &username);
        let mailboxes = &self.gw.mailboxes;
        mailboxes.close(user_key(&self.username), &self.mailbox);
        mailboxes.attach(user_key(&username), self.mailbox.clone());
        self.username = username;
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.gw.users.leave(&self.username);
        self.gw
            .mailboxes
            .close(user_key(&self.username), &self.mailbox);
        self.gw.metrics.connections.sub(1);
    }
}

pub async fn serve(
    mut socket: WebSocket,
    gw: Gateway,
    username: String,
    identity: Identity,
    // Held for the connection's life: its place in its IP's count. Its IP
    // is also what the per-IP placement pool counts.
    ip_slot: IpSlot,
) {
    let ip = ip_slot.ip();
    let mut reg = Registration::new(&gw, username);
    // The shared idle clock (no timer of our own): the tick now, and the
    // tick the client was last heard on.
    let mut idle = gw.idle_clock.clone();
    let mut tick = idle.as_mut().map_or(0, |c| *c.borrow_and_update());
    let mut heard = tick;
    // Subscribe before `connected`, so no event between the two is missed.
    let mut events = gw.hub.subscribe();
    let client_id = uuid::Uuid::new_v4().simple().to_string();
    let config = &gw.canvas_config;
    let hello = encode(&ServerMessage::Connected {
        client_id,
        username: reg.username.clone(),
        pod_id: gw.pod_id.clone(),
        width: config.width,
        height: config.height,
        palette: config.palette.clone(),
        any_color: config.any_color,
        cooldown_ms: config.cooldown_ms,
        seq: gw.hub.delivered_seq(),
    });
    let mut greeting = vec![hello];
    if let Some(p) = gw.hub.presence() {
        greeting.push(Message::Text(p.stats));
        greeting.push(Message::Text(p.user_list));
    }
    if write_all(&mut socket, greeting, &gw).await.is_err() {
        return;
    }

    // Made on the first placement: an empty `FuturesUnordered` already
    // holds a stub task sized for a whole placement future, which most
    // connections, idle viewers, would carry for nothing.
    let mut in_flight: Option<FuturesUnordered<_>> = None;
    // Reused for every wake-up: the hot path allocates nothing of its own.
    let mut frames: Vec<Message> = Vec::new();
    // Made once: a fresh `cancelled()` per wake-up would register with the
    // token's waiter list (a shared lock) every time, for every connection.
    // Until its moment of the drain comes, a stopping gateway's connection
    // goes on serving as usual.
    let close_delay = crate::drain::random_close_delay(gw.shutdown_drain);
    let shutdown = async {
        gw.shutdown.cancelled().await;
        tokio::time::sleep(close_delay).await;
    };
    tokio::pin!(shutdown);
    loop {
        // Unbiased: under a flood of hub frames the client's own frames
        // still get read, and the other way round.
        tokio::select! {
            () = &mut shutdown => {
                // Placements already sent get their answer before the close,
                // so a client knows which of them were stored.
                let mut last = Vec::with_capacity(placing(&in_flight) + 1);
                if let Some(in_flight) = &mut in_flight {
                    let _ = tokio::time::timeout(IN_FLIGHT_ON_CLOSE, async {
                        while let Some(reply) = in_flight.next().await {
                            last.push(reply);
                        }
                    })
                    .await;
                }
                last.push(close_frame(close::GOING_AWAY, "gateway shutting down; reconnect"));
                let _ = write_all(&mut socket, last, &gw).await;
                break;
            }
            now = next_tick(&mut idle) => {
                tick = now;
                match on_tick(tick, heard) {
                    OnTick::Nothing => {}
                    OnTick::Ping => {
                        // Never waits: a socket that cannot take a ping now
                        // is backed up, and its other writes are already
                        // bounded by `WRITE_TIMEOUT_SECS`. A ping left half sent
                        // stays in the write buffer for the next flush.
                        if let Some(Err(_)) = socket.send(Message::Ping(Default::default())).now_or_never() {
                            break;
                        }
                    }
                    OnTick::Close => {
                        gw.metrics.idle_closes.inc();
                        let _ = write_all(&mut socket, vec![close_frame(close::IDLE_TIMEOUT, "idle: nothing heard within IDLE_TIMEOUT_SECS")], &gw).await;
                        break;
                    }
                }
            }
            Some(reply) = next_reply(&mut in_flight), if placing(&in_flight) > 0 => {
                if write_all(&mut socket, vec![reply], &gw).await.is_err() {
                    break;
                }
            }
            frame = events.recv() => {
                let first = match frame {
                    Ok(frame) => frame,
                    Err(RecvError::Lagged(_)) => {
                        gw.metrics.slow_client_closes.inc();
                        let _ = write_all(&mut socket, vec![close_frame(close::TOO_SLOW_RESYNC, "too slow; reconnect and refetch the board")], &gw).await;
                        break;
                    }
                    Err(RecvError::Closed) => break,
                };
                frames.push(Message::Text(first));
                while frames.len() < MAX_FRAMES_PER_FLUSH {
                    match events.try_recv() {
                        Ok(frame) => frames.push(Message::Text(frame)),
                        Err(TryRecvError::Lagged(_)) => {
                            gw.metrics.slow_client_closes.inc();
                            frames.push(close_frame(close::TOO_SLOW_RESYNC, "too slow; reconnect and refetch the board"));
                            let _ = write_all(&mut socket, frames.drain(..), &gw).await;
                            return;
                        }
                        Err(_) => break,
                    }
                }
                if write_all(&mut socket, frames.drain(..), &gw).await.is_err() {
                    break;
                }
            }
            () = reg.mailbox.ready() => {
                let taken = reg.mailbox.take();
                frames.extend(taken.frames.into_iter().map(Message::Text));
                if taken.overflowed {
                    gw.metrics.slow_client_closes.inc();
                    frames.push(close_frame(close::TOO_SLOW_RESYNC, "too slow; reconnect and refetch the board"));
                    let _ = write_all(&mut socket, frames.drain(..), &gw).await;
                    break;
                }
                if write_all(&mut socket, frames.drain(..), &gw).await.is_err() {
                    break;
                }
            }
            msg = socket.recv(), if placing(&in_flight) < MAX_IN_FLIGHT => {
                let Some(Ok(msg)) = msg else {
                    if let Some(Err(e)) = msg {
                        tracing::debug!(error = %e, "WebSocket read failed");
                        if is_capacity_error(&e) {
                            let _ = write_all(&mut socket, vec![close_frame(close::MESSAGE_TOO_BIG, "frame too large")], &gw).await;
                        } else if crate::decode::is_invalid_utf8(&e) {
                            let _ = write_all(&mut socket, vec![close_frame(close::INVALID_PAYLOAD, "a text frame must be UTF-8")], &gw).await;
                        }
                    }
                    break;
                };
                gw.metrics.messages_in.inc();
                heard = tick;
                // Every frame but the close counts: a flood of pings costs
                // the gateway as much as one of messages.
                if !matches!(msg, Message::Close(_)) {
                    match ip_slot.message() {
                        Verdict::Allow => {}
                        Verdict::Limited { retry_after_ms } => {
                            gw.metrics.messages_rate_limited.inc();
                            let reply = encode(&ServerMessage::Error {
                                id: None,
                                code: ErrorCode::RateLimited,
                                message: "too many messages from your address; slow down".into(),
                                retry_after_ms: Some(retry_after_ms),
                            });
                            if write_all(&mut socket, vec![reply], &gw).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Verdict::Flood => {
                            gw.metrics.flood_closes.inc();
                            close_and_drain(&mut socket, close_frame(close::RATE_LIMITED, "message flood; reconnect later and slower"), &gw).await;
                            break;
                        }
                    }
                }
                let reply = match msg {
                    Message::Text(text) => match handle_text(&text, &mut reg, identity) {
                        Action::Reply(reply) => Some(reply),
                        Action::Place { x, y, color, id } => match gw.placement_slots.clone().try_acquire_owned() {
                            Ok(slot) => {
                                in_flight
                                    .get_or_insert_with(FuturesUnordered::new)
                                    .push(place(gw.clone(), (x, y), color, reg.username.clone(), ip, id, slot));
                                None
                            }
                            Err(_) => {
                                gw.metrics.placements_shed.inc();
                                Some(encode(&ServerMessage::Error {
                                    id,
                                    code: ErrorCode::Unavailable,
                                    message: "the gateway is at capacity; nothing was stored, retry shortly".into(),
                                    retry_after_ms: Some(SHED_RETRY_AFTER_MS),
                                }))
                            }
                        },
                        Action::Nothing => None,
                    },
                    Message::Binary(_) => Some(error(None, ErrorCode::BinaryNotSupported, "protocol v1 takes JSON text frames only")),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(reply) = reply
                    && write_all(&mut socket, vec![reply], &gw).await.is_err() {
                        break;
                    }
            }
        }
    }
}

/// Closes a connection whose client may still be sending: reads (and
/// drops) what it sent until its close reply, for a second at most. Were
/// the socket dropped with unread bytes, the kernel would answer with a
/// reset that can destroy the close frame before the client reads it.
async fn close_and_drain(socket: &mut WebSocket, close: Message, gw: &Gateway) {
    if write_all(socket, vec![close], gw).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(DRAIN_ON_CLOSE, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The idle clock's next tick (pending forever without one).
async fn next_tick(idle: &mut Option<IdleClock>) -> u64 {
    match idle {
        Some(clock) => {
            if clock.changed().await.is_err() {
                // The clock stopped with the gateway.
                std::future::pending::<()>().await;
            }
            *clock.borrow_and_update()
        }
        None => std::future::pending().await,
    }
}

/// Placements in flight.
fn placing<F>(in_flight: &Option<FuturesUnordered<F>>) -> usize {
    in_flight.as_ref().map_or(0, FuturesUnordered::len)
}

/// The next answer to a placement in flight (pending while there is none).
async fn next_reply<F: Future>(in_flight: &mut Option<FuturesUnordered<F>>) -> Option<F::Output> {
    match in_flight {
        Some(in_flight) => in_flight.next().await,
        None => std::future::pending().await,
    }
}

fn is_capacity_error(e: &axum::Error) -> bool {
    e.to_string()
        .to_ascii_lowercase()
        .contains("space limit exceeded")
}

/// What a client frame asks of the connection.
enum Action {
    Reply(Message),
    Place {
        x: i64,
        y: i64,
        color: String,
        id: Option<u64>,
    },
    Nothing,
}

/// Handles one text frame.
fn handle_text(text: &str, reg: &mut Registration<'_>, identity: Identity) -> Action {
    if text.len() > MAX_CLIENT_FRAME_BYTES {
        return Action::Reply(error(
            None,
            ErrorCode::FrameTooLarge,
            format!(
                "frames are at most {MAX_CLIENT_FRAME_BYTES} bytes; this one is {}",
                text.len()
            ),
        ));
    }
    let message = match decode(text) {
        Ok(m) => m,
        Err(e) => return Action::Reply(error(e.id, e.code, e.message)),
    };
    match message {
        ClientMessage::Ping => Action::Reply(encode(&ServerMessage::Pong)),
        ClientMessage::SetUsername { .. } if identity != Identity::Claimed => Action::Reply(error(
            None,
            ErrorCode::Unauthorized,
            match identity {
                Identity::Verified => "this connection's name comes from its session token",
                _ => {
                    "AUTH=required: get a session token (POST /api/session) and connect with ?token="
                }
            },
        )),
        ClientMessage::SetUsername { username } => {
            if !is_valid_username(&username) {
                return Action::Reply(error(
                    None,
                    ErrorCode::InvalidUsername,
                    "a username is 1-32 letters, digits, '_' or '-'",
                ));
            }
            reg.rename(username);
            Action::Nothing
        }
        ClientMessage::PixelUpdate { id, .. } if identity == Identity::Watcher => {
            Action::Reply(error(
                id,
                ErrorCode::Unauthorized,
                "AUTH=required: placing needs a session token (POST /api/session, then ?token=)",
            ))
        }
        // A `username` in the frame, if any, is ignored: the connection's
        // identity places.
        ClientMessage::PixelUpdate { x, y, color, id } => Action::Place { x, y, color, id },
    }
}

// One placement: store, then publish, then acknowledge. A pixel is never
// published before it is stored, and never acknowledged before it is
// published (or found unpublishable, in which case receivers repair the gap
// from the replay log).
async fn place(
    gw: Gateway,
    (x, y): (i64, i64),
    color: String,
    username: String,
    ip: IpAddr,
    id: Option<u64>,
    // Held until the answer is ready: one of the gateway's placement slots.
    _slot: OwnedSemaphorePermit,
) -> Message {
    match gw.backend.place(x, y, &color, &username, Some(ip)).await {
        Ok(event) => {
            let seq = event.seq;
            let started = std::time::Instant::now();
            if let Err(cause) = gw.bus.publish(&event).await {
                gw.metrics.publish_failures.inc();
                tracing::warn!(%cause, seq, "publishing a stored pixel failed; receivers will repair the gap");
            }
            gw.metrics.publish_latency.observe(started.elapsed());
            gw.metrics.placements_acked.inc();
            gw.notices.cooldown_started(&username);
            encode(&ServerMessage::Ack { id, seq })
        }
        Err(e) => {
            gw.metrics.placements_rejected.inc();
            if let canvas_api::ApiError::Unavailable(cause)
            | canvas_api::ApiError::Internal(cause) = &e
            {
                tracing::warn!(%cause, "placement failed");
            }
            encode(&ServerMessage::Error {
                id,
                code: e.code(),
                message: e.to_string(),
                retry_after_ms: e.retry_after_ms(),
            })
        }
    }
}

/// Writes frames with one flush, giving up after `WRITE_TIMEOUT_SECS`. Most
/// writes complete at once; the timer is armed only for one that waits, so
/// the common path costs no timer-wheel traffic.
async fn write_all(
    socket: &mut WebSocket,
    frames: impl IntoIterator<Item = Message>,
    gw: &Gateway,
) -> Result<(), ()> {
    let write = async {
        let mut n = 0u64;
        for frame in frames {
            socket.feed(frame).await?;
            n += 1;
        }
        socket.flush().await.map(|()| n)
    };
    let mut write = std::pin::pin!(write);
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    let result = match first {
        Poll::Ready(result) => result,
        Poll::Pending => match tokio::time::timeout(gw.write_timeout, write).await {
            Ok(result) => result,
            Err(_) => return Err(()),
        },
    };
    match result {
        Ok(n) => {
            gw.metrics.frames_out.add(n);
            Ok(())
        }
        Err(_) => Err(()),
    }
}
