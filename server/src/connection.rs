//! One WebSocket connection: a single task that reads the client's frames,
//! runs its placements (a bounded number at once), and writes its replies and
//! the hub's frames. Nothing else writes to the socket, so nothing needs a
//! lock. [`Connection`] holds its state; each thing it waits for has one
//! method.

use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{FutureExt, SinkExt};
use protocol::{ErrorCode, ServerMessage, close};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::Gateway;
use crate::client_frame::{Action, handle_text};
use crate::hub::{Framing, HubFrame};
use crate::idle::{IdleClock, OnTick, on_tick};
use crate::ip_limits::{IpSlot, Verdict};
use crate::placement::Placements;
use crate::registration::Registration;
use crate::replies::{close_frame, encode, error, too_slow};
use crate::viewport::Viewport;

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

/// Hub frames written per flush.
const MAX_FRAMES_PER_FLUSH: usize = 256;
/// Messages written per flush, once reached: a client taking single events
/// gets up to `MAX_BATCH` messages from one hub frame.
const MAX_MESSAGES_PER_FLUSH: usize = 1024;
/// How long a closing connection waits for its placements in flight.
const IN_FLIGHT_ON_CLOSE: Duration = Duration::from_secs(2);
/// How long a connection closed for flooding reads on for the client's
/// close reply.
const DRAIN_ON_CLOSE: Duration = Duration::from_secs(1);

/// Guest names are `guest-` and four hex digits.
pub fn guest_name() -> String {
    format!("guest-{}", &uuid::Uuid::new_v4().simple().to_string()[..4])
}

/// Whether a connection goes on after one wake-up.
enum Flow {
    Continue,
    Stop,
}

/// Serves one upgraded WebSocket until either side ends it.
pub async fn serve(
    socket: WebSocket,
    gw: Gateway,
    username: String,
    identity: Identity,
    // Held for the connection's life: its place in its IP's count. Its IP
    // is also what the per-IP placement pool counts.
    ip_slot: IpSlot,
    framing: Framing,
) {
    let reg = Registration::new(&gw, username);
    // The shared idle clock (no timer of our own): the tick now, and the
    // tick the client was last heard on.
    let mut idle = gw.idle_clock.clone();
    let tick = idle.as_mut().map_or(0, |c| *c.borrow_and_update());
    let mut conn = Connection {
        gw: &gw,
        // Subscribed before `connected`, so no event between the two is
        // missed.
        events: gw.hub.subscribe(),
        socket,
        reg,
        identity,
        ip_slot,
        framing,
        idle,
        tick,
        heard: tick,
        placements: Placements::default(),
        hub_frames: Vec::new(),
        viewport: None,
    };
    if let Flow::Continue = conn.greet().await {
        conn.run().await;
    }
}

struct Connection<'a> {
    gw: &'a Gateway,
    socket: WebSocket,
    reg: Registration<'a>,
    identity: Identity,
    ip_slot: IpSlot,
    framing: Framing,
    events: broadcast::Receiver<HubFrame>,
    idle: Option<IdleClock>,
    /// The idle clock's tick now, and the one the client was last heard on.
    tick: u64,
    heard: u64,
    placements: Placements,
    /// Reused for every wake-up: the hot path allocates nothing of its own.
    hub_frames: Vec<HubFrame>,
    /// The chunks it follows after `subscribe`; `None`: the whole board.
    /// Boxed, so an idle connection that never subscribes pays a pointer.
    viewport: Option<Box<Viewport>>,
}

impl Connection<'_> {
    /// `connected`, then the latest presence.
    async fn greet(&mut self) -> Flow {
        let gw = self.gw;
        let config = &gw.canvas_config;
        let hello = encode(&ServerMessage::Connected {
            client_id: uuid::Uuid::new_v4().simple().to_string(),
            username: self.reg.username.clone(),
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
        self.write(greeting).await
    }

    // By reference: a `run(self)` future would hold a second copy of the
    // whole connection (socket included) beside the one `serve` keeps, about
    // a kilobyte more for every idle connection.
    async fn run(&mut self) {
        // Made once: a fresh `cancelled()` per wake-up would register with
        // the token's waiter list (a shared lock) every time, for every
        // connection. Until its moment of the drain comes, a stopping
        // gateway's connection goes on serving as usual.
        let gw = self.gw;
        let close_delay = crate::drain::random_close_delay(gw.shutdown_drain);
        let shutdown = async {
            gw.shutdown.cancelled().await;
            tokio::time::sleep(close_delay).await;
        };
        tokio::pin!(shutdown);
        loop {
            // Unbiased: under a flood of hub frames the client's own frames
            // still get read, and the other way round.
            let flow = tokio::select! {
                () = &mut shutdown => self.on_shutdown().await,
                now = next_tick(&mut self.idle) => self.on_idle_tick(now).await,
                reply = self.placements.next() => self.write([reply]).await,
                frame = self.events.recv() => self.on_hub_frame(frame).await,
                () = self.reg.mailbox.ready() => self.on_mail().await,
                msg = self.socket.recv(), if self.placements.has_room() => self.on_client(msg).await,
            };
            if let Flow::Stop = flow {
                break;
            }
        }
    }

    /// Placements already sent get their answer before the close, so a
    /// client knows which of them were stored.
    async fn on_shutdown(&mut self) -> Flow {
        let mut last = self.placements.finish(IN_FLIGHT_ON_CLOSE).await;
        last.push(close_frame(
            close::GOING_AWAY,
            "gateway shutting down; reconnect",
        ));
        let _ = self.write(last).await;
        Flow::Stop
    }

    async fn on_idle_tick(&mut self, now: u64) -> Flow {
        self.tick = now;
        match on_tick(self.tick, self.heard) {
            OnTick::Nothing => Flow::Continue,
            // Never waits: a socket that cannot take a ping now is backed
            // up, and its other writes are already bounded by
            // `WRITE_TIMEOUT_SECS`. A ping left half sent stays in the
            // write buffer for the next flush.
            OnTick::Ping => match self
                .socket
                .send(Message::Ping(Default::default()))
                .now_or_never()
            {
                Some(Err(_)) => Flow::Stop,
                _ => Flow::Continue,
            },
            OnTick::Close => {
                self.gw.metrics.idle_closes.inc();
                let _ = self
                    .write([close_frame(
                        close::IDLE_TIMEOUT,
                        "idle: nothing heard within IDLE_TIMEOUT_SECS",
                    )])
                    .await;
                Flow::Stop
            }
        }
    }

    /// Everything waiting in the hub goes out with one flush, bounded in
    /// ring frames and in messages (a frame of events is one message
    /// batched, up to `MAX_BATCH` single).
    async fn on_hub_frame(&mut self, frame: Result<HubFrame, RecvError>) -> Flow {
        let first = match frame {
            Ok(frame) => frame,
            Err(RecvError::Lagged(_)) => {
                self.gw.metrics.slow_client_closes.inc();
                let _ = self.write([too_slow()]).await;
                return Flow::Stop;
            }
            Err(RecvError::Closed) => return Flow::Stop,
        };
        let framing = self.framing;
        let mut messages = first.message_count(framing);
        self.hub_frames.push(first);
        let mut lagged = false;
        while self.hub_frames.len() < MAX_FRAMES_PER_FLUSH && messages < MAX_MESSAGES_PER_FLUSH {
            match self.events.try_recv() {
                Ok(frame) => {
                    messages += frame.message_count(framing);
                    self.hub_frames.push(frame);
                }
                Err(TryRecvError::Lagged(_)) => {
                    lagged = true;
                    break;
                }
                Err(_) => break,
            }
        }
        match &self.viewport {
            None => {
                let out = self
                    .hub_frames
                    .drain(..)
                    .flat_map(|f| f.into_messages(framing))
                    .map(Message::Text);
                send_hub_messages(&mut self.socket, self.gw, out, lagged).await
            }
            Some(viewport) => {
                let mut kept = Vec::new();
                for frame in self.hub_frames.drain(..) {
                    frame.messages_within(framing, viewport, &mut kept);
                }
                let out = kept.into_iter().map(Message::Text);
                send_hub_messages(&mut self.socket, self.gw, out, lagged).await
            }
        }
    }

    /// `subscribe`: the new set is in force before the answer leaves, so
    /// every event the client hears of after `subscribed` passed it.
    fn subscribe(&mut self, chunks: Option<Vec<[u32; 2]>>) -> Message {
        let config = &self.gw.canvas_config;
        let viewport = match chunks {
            None => None,
            Some(chunks) => match Viewport::new(&chunks, config.width, config.height) {
                Ok(viewport) => Some(Box::new(viewport)),
                Err((code, message)) => return error(None, code, message),
            },
        };
        let chunks = viewport.as_ref().map_or(0, |v| v.len() as u32);
        self.viewport = viewport;
        encode(&ServerMessage::Subscribed {
            chunks,
            seq: self.gw.hub.delivered_seq(),
        })
    }

    /// Events addressed to this connection's user.
    async fn on_mail(&mut self) -> Flow {
        let taken = self.reg.mailbox.take();
        let out = taken.frames.into_iter().map(Message::Text);
        if taken.overflowed {
            self.gw.metrics.slow_client_closes.inc();
            let _ = write_all(&mut self.socket, out.chain([too_slow()]), self.gw).await;
            return Flow::Stop;
        }
        flow(write_all(&mut self.socket, out, self.gw).await)
    }

    /// One message from the client, or the end of its stream.
    async fn on_client(&mut self, msg: Option<Result<Message, axum::Error>>) -> Flow {
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "WebSocket read failed");
                if is_capacity_error(&e) {
                    let _ = self
                        .write([close_frame(close::MESSAGE_TOO_BIG, "frame too large")])
                        .await;
                } else if crate::decode::is_invalid_utf8(&e) {
                    let _ = self
                        .write([close_frame(
                            close::INVALID_PAYLOAD,
                            "a text frame must be UTF-8",
                        )])
                        .await;
                }
                return Flow::Stop;
            }
            None => return Flow::Stop,
        };
        let gw = self.gw;
        gw.metrics.messages_in.inc();
        self.heard = self.tick;
        // Every frame but the close counts: a flood of pings costs the
        // gateway as much as one of messages.
        if !matches!(msg, Message::Close(_)) {
            match self.ip_slot.message() {
                Verdict::Allow => {}
                Verdict::Limited { retry_after_ms } => {
                    gw.metrics.messages_rate_limited.inc();
                    return self
                        .write([encode(&ServerMessage::Error {
                            id: None,
                            code: ErrorCode::RateLimited,
                            message: "too many messages from your address; slow down".into(),
                            retry_after_ms: Some(retry_after_ms),
                        })])
                        .await;
                }
                Verdict::Flood => {
                    gw.metrics.flood_closes.inc();
                    self.close_and_drain(close_frame(
                        close::RATE_LIMITED,
                        "message flood; reconnect later and slower",
                    ))
                    .await;
                    return Flow::Stop;
                }
            }
        }
        let reply = match msg {
            Message::Text(text) => match handle_text(&text, self.identity) {
                Action::Reply(reply) => Some(reply),
                Action::Rename(username) => {
                    self.reg.rename(username);
                    None
                }
                Action::Place { x, y, color, id } => self.placements.start(
                    gw,
                    (x, y, color),
                    self.reg.username.clone(),
                    self.ip_slot.ip(),
                    id,
                ),
                Action::Subscribe(chunks) => Some(self.subscribe(chunks)),
            },
            Message::Binary(_) => Some(error(
                None,
                ErrorCode::BinaryNotSupported,
                "protocol v1 takes JSON text frames only",
            )),
            Message::Close(_) => return Flow::Stop,
            Message::Ping(_) | Message::Pong(_) => None,
        };
        match reply {
            Some(reply) => self.write([reply]).await,
            None => Flow::Continue,
        }
    }

    async fn write(&mut self, messages: impl IntoIterator<Item = Message>) -> Flow {
        flow(write_all(&mut self.socket, messages, self.gw).await)
    }

    /// Closes a connection whose client may still be sending: reads (and
    /// drops) what it sent until its close reply, for a second at most.
    /// Were the socket dropped with unread bytes, the kernel would answer
    /// with a reset that can destroy the close frame before the client
    /// reads it.
    async fn close_and_drain(&mut self, close: Message) {
        if let Flow::Stop = self.write([close]).await {
            return;
        }
        let _ = tokio::time::timeout(DRAIN_ON_CLOSE, async {
            while let Some(Ok(msg)) = self.socket.recv().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Writes hub messages, then the "too slow" close when the ring lapped
/// the connection meanwhile.
async fn send_hub_messages(
    socket: &mut WebSocket,
    gw: &Gateway,
    out: impl Iterator<Item = Message>,
    lagged: bool,
) -> Flow {
    if lagged {
        gw.metrics.slow_client_closes.inc();
        let _ = write_all(socket, out.chain([too_slow()]), gw).await;
        return Flow::Stop;
    }
    flow(write_all(socket, out, gw).await)
}

fn flow(written: Result<(), ()>) -> Flow {
    match written {
        Ok(()) => Flow::Continue,
        Err(()) => Flow::Stop,
    }
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

fn is_capacity_error(e: &axum::Error) -> bool {
    e.to_string()
        .to_ascii_lowercase()
        .contains("space limit exceeded")
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
