//! The connections of a traffic run and their tasks.
//!
//! Each connection runs two tasks: a sender that owns the write half and
//! takes placement numbers from a queue, and a reader that owns the read
//! half. Splitting them means a writer never stops reading while a send is
//! blocked, which the gateway (which stops reading a client that has 32
//! placements in flight) would otherwise turn into a deadlock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use protocol::ClientMessage;
use protocol::binary::{PixelEvent, Place, encode_place};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::accounting::{Inbox, SharedInbox};
use crate::board::ForeignWrite;
use crate::client::{self, ConnectError, Hello, ReadBuffer, Ws};
use crate::frames::{self, Event, Framing};
use crate::ledger::{Ledger, lock};
use crate::target::Targets;

/// Connections opened at once while the fleet assembles.
pub const CONNECT_CONCURRENCY: usize = 64;
/// How long one connection may take to reach `connected`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Placements a writer may have queued before the pacer drops more.
const WRITER_QUEUE: usize = 1024;
/// How long closing handshakes may take at the end.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a client does.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    pub writes: bool,
    pub observes: bool,
}

/// One client of the run.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub username: String,
    pub role: Role,
}

/// Opens every client's connection; the first failure ends the run.
pub async fn connect_all(
    targets: &Targets,
    clients: &[ClientSpec],
) -> Result<Vec<(Ws, Hello)>, ConnectError> {
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = JoinSet::new();
    for (i, spec) in clients.iter().enumerate() {
        let endpoint = targets.endpoint(i).clone();
        let username = spec.username.clone();
        let permits = permits.clone();
        let buffer = if spec.role.observes {
            ReadBuffer::Large
        } else {
            ReadBuffer::Small
        };
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let conn = client::connect(&endpoint, &username, None, buffer, CONNECT_TIMEOUT).await;
            (i, conn)
        });
    }
    let mut conns: Vec<Option<(Ws, Hello)>> = (0..clients.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, conn) = joined.expect("connect tasks do not panic");
        // Returning drops the set, which aborts the other attempts.
        conns[i] = Some(conn?);
    }
    Ok(conns
        .into_iter()
        .map(|c| c.expect("every task reported"))
        .collect())
}

pub enum Command {
    Place(u32),
    Close,
}

/// Counters the reader tasks share.
struct FleetShared {
    /// Set when the run closes its connections: closes after this are ours.
    closing: AtomicBool,
    /// How every connection asked for its events.
    framing: Framing,
    decode_errors: AtomicU64,
    /// Payload bytes of every message observers received (WebSocket and
    /// TCP framing not counted): what a client's link carries.
    observer_bytes: AtomicU64,
    /// `batch` messages a [`Framing::Single`] client could not read.
    unread_batches: AtomicU64,
    ended_early: Mutex<BTreeMap<String, u64>>,
    /// Warnings printed about connections that ended early.
    warned: AtomicU64,
    /// Writing connections still up: answers can only come over these.
    writers_alive: AtomicUsize,
}

/// Connections named in warnings when they end early; the rest are only
/// counted, so a gateway crash does not print one line per client.
const MAX_WARNINGS: u64 = 5;

pub struct Fleet {
    /// One queue per client, in client order.
    queues: Vec<mpsc::Sender<Command>>,
    writes: Vec<bool>,
    pub inboxes: Vec<SharedInbox>,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    shared: Arc<FleetShared>,
}

pub struct FleetEnd {
    pub ended_early: BTreeMap<String, u64>,
    pub decode_errors: u64,
    pub observer_bytes: u64,
    pub unread_batches: u64,
}

impl Fleet {
    pub fn start(
        conns: Vec<(Ws, Hello)>,
        specs: &[ClientSpec],
        ledger: &Arc<Ledger>,
        rate: f64,
        framing: Framing,
    ) -> Fleet {
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(FleetShared {
            closing: AtomicBool::new(false),
            framing,
            decode_errors: AtomicU64::new(0),
            observer_bytes: AtomicU64::new(0),
            unread_batches: AtomicU64::new(0),
            ended_early: Mutex::default(),
            warned: AtomicU64::new(0),
            writers_alive: AtomicUsize::new(specs.iter().filter(|s| s.role.writes).count()),
        });
        let mut fleet = Fleet {
            queues: Vec::with_capacity(conns.len()),
            writes: Vec::with_capacity(conns.len()),
            inboxes: Vec::new(),
            tasks: JoinSet::new(),
            stop,
            shared,
        };
        // Sweeps take records once a second; two seconds' worth avoids
        // regrowing the vector on the hot path.
        let records = ((rate * 2.0) as usize).clamp(1024, 1 << 20);
        for ((ws, hello), spec) in conns.into_iter().zip(specs) {
            let (sink, stream) = ws.split();
            let (tx, rx) = mpsc::channel(WRITER_QUEUE);
            fleet
                .tasks
                .spawn(send_loop(sink, rx, ledger.clone(), framing));
            let inbox = spec.role.observes.then(|| {
                // The first observer also notes where every write landed,
                // for the board check.
                let witness = fleet.inboxes.is_empty();
                let inbox = Arc::new(Mutex::new(Inbox::new(hello.seq, witness, records)));
                fleet.inboxes.push(inbox.clone());
                inbox
            });
            let reader = Reader {
                ledger: ledger.clone(),
                writes: spec.role.writes,
                inbox,
                shared: fleet.shared.clone(),
                stop: fleet.stop.subscribe(),
                label: spec.username.clone(),
            };
            fleet.tasks.spawn(reader.run(stream));
            fleet.queues.push(tx);
            fleet.writes.push(spec.role.writes);
        }
        fleet
    }

    pub fn writer_queues(&self) -> Vec<mpsc::Sender<Command>> {
        self.queues
            .iter()
            .zip(&self.writes)
            .filter(|(_, w)| **w)
            .map(|(q, _)| q.clone())
            .collect()
    }

    pub fn queues_empty(&self) -> bool {
        self.queues.iter().all(|q| q.capacity() == q.max_capacity())
    }

    /// True when some writing connection is still up, so placements still
    /// queued or unanswered may yet be answered.
    pub fn writers_alive(&self) -> bool {
        self.shared.writers_alive.load(Ordering::Relaxed) > 0
    }

    /// Closes every connection with a close handshake, waiting at most
    /// [`CLOSE_GRACE`] before cutting what is left.
    pub async fn close(mut self) -> FleetEnd {
        self.shared.closing.store(true, Ordering::Relaxed);
        for q in &self.queues {
            let _ = q.try_send(Command::Close);
        }
        // The readers end when the gateway answers the close.
        let all_closed = tokio::time::timeout(CLOSE_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !all_closed {
            let _ = self.stop.send(true);
            drop(self.queues);
            if tokio::time::timeout(Duration::from_millis(500), async {
                while self.tasks.join_next().await.is_some() {}
            })
            .await
            .is_err()
            {
                self.tasks.abort_all();
            }
        }
        FleetEnd {
            ended_early: lock(&self.shared.ended_early).clone(),
            decode_errors: self.shared.decode_errors.load(Ordering::Relaxed),
            observer_bytes: self.shared.observer_bytes.load(Ordering::Relaxed),
            unread_batches: self.shared.unread_batches.load(Ordering::Relaxed),
        }
    }
}

/// One connection's write half: sends queued placements, flushing once per
/// burst, and the closing frame.
async fn send_loop(
    mut sink: SplitSink<Ws, Message>,
    mut queue: mpsc::Receiver<Command>,
    ledger: Arc<Ledger>,
    framing: Framing,
) {
    while let Some(command) = queue.recv().await {
        let mut closing = matches!(command, Command::Close);
        if let Command::Place(n) = command {
            if feed_placement(&mut sink, &ledger, n, framing)
                .await
                .is_err()
            {
                return;
            }
            while let Ok(more) = queue.try_recv() {
                match more {
                    Command::Place(n) => {
                        if feed_placement(&mut sink, &ledger, n, framing)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Command::Close => {
                        closing = true;
                        break;
                    }
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        if closing {
            let _ = sink.send(Message::Close(None)).await;
            return;
        }
    }
}

async fn feed_placement(
    sink: &mut SplitSink<Ws, Message>,
    ledger: &Ledger,
    n: u32,
    framing: Framing,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let p = ledger.plan.placement(n);
    if framing == Framing::Binary {
        let place = Place {
            id: n,
            x: u16::try_from(p.x).expect("a board is at most 65536 pixels a side"),
            y: u16::try_from(p.y).expect("a board is at most 65536 pixels a side"),
            color: p.color,
        };
        ledger.mark_sent(n, Instant::now());
        return sink
            .feed(Message::Binary(encode_place(&place).to_vec().into()))
            .await;
    }
    let message = ClientMessage::PixelUpdate {
        x: i64::from(p.x),
        y: i64::from(p.y),
        color: p.color.to_string(),
        id: Some(u64::from(n)),
    };
    let text = serde_json::to_string(&message).expect("client messages encode");
    ledger.mark_sent(n, Instant::now());
    sink.feed(Message::text(text)).await
}

/// One connection's read half.
struct Reader {
    ledger: Arc<Ledger>,
    writes: bool,
    inbox: Option<SharedInbox>,
    shared: Arc<FleetShared>,
    stop: watch::Receiver<bool>,
    label: String,
}

impl Reader {
    async fn run(self, mut stream: SplitStream<Ws>) {
        let mut events = Vec::with_capacity(64);
        let mut scratch = Vec::new();
        // Made once: a fresh `changed()` per frame would register with the
        // watch's waiter list (a lock every reader shares) every time.
        let mut stop = self.stop.clone();
        let stopped = stop.changed();
        tokio::pin!(stopped);
        // Counted here and added once: readers share no counter per frame.
        let mut received = 0u64;
        let observes = self.inbox.is_some();
        let add_received = |received: u64| {
            if observes {
                self.shared
                    .observer_bytes
                    .fetch_add(received, Ordering::Relaxed);
            }
        };
        let ended = loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                _ = &mut stopped => return add_received(received),
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    received += text.len() as u64;
                    self.handle_text(text.as_str(), &mut events)
                }
                Some(Ok(Message::Binary(bytes))) => {
                    received += bytes.len() as u64;
                    self.handle_binary(&bytes, &mut scratch, &mut events)
                }
                Some(Ok(Message::Close(frame))) => {
                    break match frame {
                        Some(f) => (
                            format!("closed_{}", u16::from(f.code)),
                            f.reason.to_string(),
                        ),
                        None => ("closed".to_owned(), String::new()),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break (error_cause(&e), e.to_string()),
                None => break ("closed".to_owned(), String::new()),
            }
        };
        add_received(received);
        let (ended, detail) = ended;
        if !self.shared.closing.load(Ordering::Relaxed) {
            match self.shared.warned.fetch_add(1, Ordering::Relaxed) {
                n if n < MAX_WARNINGS => {
                    eprintln!("warning: {} ended early: {ended} {detail}", self.label)
                }
                MAX_WARNINGS => {
                    eprintln!("warning: more connections ended early (counted in the summary)")
                }
                _ => {}
            }
            *lock(&self.shared.ended_early)
                .entry(ended.clone())
                .or_default() += 1;
            if self.writes {
                self.shared.writers_alive.fetch_sub(1, Ordering::Relaxed);
            }
            if let Some(inbox) = &self.inbox {
                lock(inbox).ended_early = Some(ended);
            }
        }
    }

    fn handle_text(&self, text: &str, events: &mut Vec<Event>) {
        // One receive time per frame: a batch's events arrived together.
        let now = Instant::now();
        events.clear();
        if frames::decode(text, events, self.shared.framing).is_err() {
            self.shared.decode_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.handle(now, events);
    }

    /// A binary message: pixel events on a protocol v2 connection; on any
    /// other, or unreadable, a decode error.
    fn handle_binary(&self, bytes: &[u8], scratch: &mut Vec<PixelEvent>, events: &mut Vec<Event>) {
        let now = Instant::now();
        events.clear();
        if self.shared.framing != Framing::Binary
            || frames::decode_binary(bytes, scratch, events).is_err()
        {
            self.shared.decode_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.handle(now, events);
    }

    fn handle(&self, now: Instant, events: &mut Vec<Event>) {
        let at_us = self.ledger.micros(now);
        let mut inbox = self.inbox.as_ref().map(|i| lock(i));
        for event in events.drain(..) {
            match event {
                Event::Pixel { seq, x, y } => {
                    if let Some(inbox) = &mut inbox {
                        inbox.pixel(seq, x, y, at_us);
                    }
                }
                Event::Ack { id, seq } => self.ledger.ack(id, seq, now),
                Event::Error { id, code } => self.ledger.reject(id, &code),
                Event::Resync { .. } => {
                    if let Some(inbox) = &mut inbox {
                        inbox.resyncs += 1;
                    }
                }
                Event::UnreadBatch => {
                    self.shared.unread_batches.fetch_add(1, Ordering::Relaxed);
                }
                Event::WrongProtocol => {
                    self.shared.decode_errors.fetch_add(1, Ordering::Relaxed);
                }
                Event::Other => {}
            }
        }
    }
}

/// A short stable label for a read error, for tallies.
fn error_cause(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => "reset".into(),
        Error::Io(io) => format!("io_{:?}", io.kind()).to_lowercase(),
        Error::Capacity(_) => "frame_too_large".into(),
        Error::Protocol(_) => "protocol_error".into(),
        _ => "error".into(),
    }
}

/// The observers' counters, summed.
#[derive(Default)]
pub struct ObserverTotals {
    pub duplicates: u64,
    pub out_of_order: u64,
    pub late: u64,
    pub resyncs: u64,
    /// Every write the witness observer saw.
    pub witness: Vec<ForeignWrite>,
}

pub fn observer_totals(inboxes: &[SharedInbox]) -> ObserverTotals {
    let mut totals = ObserverTotals::default();
    for inbox in inboxes {
        let mut inbox = lock(inbox);
        totals.duplicates += inbox.tracker.duplicates;
        totals.out_of_order += inbox.tracker.out_of_order;
        totals.late += inbox.tracker.late;
        totals.resyncs += inbox.resyncs;
        if let Some(w) = inbox.witness.take() {
            totals.witness = w;
        }
    }
    totals
}
