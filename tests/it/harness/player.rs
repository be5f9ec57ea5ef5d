//! A test player that behaves like the web client under faults: it places
//! pixels, keeps its own view of the board from the events it is sent,
//! reconnects when its socket ends (to the next of its gateway URLs),
//! catches up from `/api/updates` by the highest `seq` it holds every event
//! up to, and refetches the board on `resync` or 410. Retries placements
//! refused as `unavailable`, never counting them as stored.
//!
//! [`verify`] then asserts the fault suite's three promises: every
//! acknowledged pixel is on the board, every player's view equals the board,
//! and no player was left with a gap it did not know of.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use protocol::http::UpdatesPage;
use protocol::{ErrorCode, ServerMessage};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::WsClient;
use super::client::Ended;
use super::http::{canvas_bin, canvas_bin_with_epoch, client, pixel_at};

/// How long a player keeps retrying one placement through an outage.
pub const OUTAGE_LIMIT: Duration = Duration::from_secs(30);

pub fn pod_of(c: &WsClient) -> String {
    match &c.hello {
        ServerMessage::Connected { pod_id, .. } => pod_id.clone(),
        _ => unreachable!(),
    }
}

fn connected_seq(c: &WsClient) -> u64 {
    match &c.hello {
        ServerMessage::Connected { seq, .. } => *seq,
        _ => unreachable!(),
    }
}

/// A color for placement `i`, spread over the 24-bit space.
pub fn color_for(i: u32) -> String {
    format!("#{:06X}", (i.wrapping_mul(2_654_435_761)) & 0xFF_FFFF)
}

pub struct Player {
    pub index: u32,
    /// Gateway WebSocket URLs, tried in turn on reconnect.
    urls: Vec<String>,
    next_url: usize,
    /// Where `/api/updates` and `/api/canvas.bin` are read.
    api_url: String,
    pub ws: WsClient,
    /// Pods connected to, in order.
    pub pods: Vec<String>,
    /// Close codes of the connections that ended (`None`: no close frame).
    pub closes: Vec<Option<u16>>,
    /// Highest seq per pixel, and its color.
    view: HashMap<(u32, u32), (u64, String)>,
    /// Every seq up to this one has been applied. Events arrive in any
    /// order (gateways pass them on at once), so the highest seq seen is
    /// not a safe place to catch up from; this is, as in the web client.
    pub seen_upto: u64,
    /// The board's epoch `seen_upto` belongs to (empty until learnt).
    epoch: String,
    /// Seqs applied above `seen_upto + 1`.
    ahead: BTreeSet<u64>,
    /// The last `stats` count.
    pub active_users: Option<u64>,
    /// `resync`s received and 410s met: each one refetched the board.
    pub refetches: u32,
    /// Placements refused as `unavailable` (then retried).
    pub refused: u32,
    /// The longest wait between two advances of `seen_upto` while playing:
    /// under steady traffic, how long the player's board stood still.
    pub longest_silence: Duration,
    last_advance: Option<Instant>,
    /// What each reconnect did, for failure messages.
    catch_ups: Vec<String>,
    /// (x, y) -> (seq, color) of each acknowledged placement.
    pub acked: BTreeMap<(u32, u32), (u64, String)>,
}

impl Player {
    /// Connects to the first of `urls`; `api_url` serves `/api`. Join before
    /// the first placement on a fresh board: the view starts empty.
    pub async fn join(index: u32, urls: &[String], api_url: &str) -> Player {
        let ws = WsClient::connect(&urls[0], Some(&format!("player-{index}"))).await;
        let seen_upto = connected_seq(&ws);
        // The epoch that seq belongs to (players join before any fault).
        let page: UpdatesPage = client()
            .get(format!("{api_url}/api/updates?since={seen_upto}"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("GET /api/updates")
            .json()
            .await
            .expect("updates JSON");
        assert!(!page.epoch.is_empty(), "/api/updates names the epoch");
        Player {
            index,
            urls: urls.to_vec(),
            next_url: 1 % urls.len(),
            api_url: api_url.to_owned(),
            pods: vec![pod_of(&ws)],
            seen_upto,
            epoch: page.epoch,
            ws,
            closes: Vec::new(),
            view: HashMap::new(),
            ahead: BTreeSet::new(),
            active_users: None,
            refetches: 0,
            refused: 0,
            longest_silence: Duration::ZERO,
            last_advance: None,
            catch_ups: Vec::new(),
            acked: BTreeMap::new(),
        }
    }

    fn apply(&mut self, e: &protocol::PixelUpdated) {
        let slot = self.view.entry((e.x, e.y)).or_insert((0, String::new()));
        if e.seq > slot.0 {
            *slot = (e.seq, e.color.to_string());
        }
        if e.seq > self.seen_upto {
            self.ahead.insert(e.seq);
        }
        let before = self.seen_upto;
        while self.ahead.remove(&(self.seen_upto + 1)) {
            self.seen_upto += 1;
        }
        if self.seen_upto > before {
            self.advanced();
        }
    }

    fn advanced(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_advance {
            self.longest_silence = self.longest_silence.max(now - last);
        }
        self.last_advance = Some(now);
    }

    fn on_message(&mut self, m: &ServerMessage) {
        match m {
            ServerMessage::PixelUpdated(e) => self.apply(e),
            ServerMessage::Stats { active_users, .. } => self.active_users = Some(*active_users),
            _ => {}
        }
    }

    /// Replaces the view with the board as stored now.
    async fn refetch(&mut self) {
        self.refetches += 1;
        let (width, height, seq, rgb, epoch) = canvas_bin_with_epoch(&self.api_url).await;
        self.epoch = epoch;
        self.view.clear();
        for y in 0..height {
            for x in 0..width {
                let [r, g, b] = pixel_at(&rgb, width, x, y);
                if [r, g, b] != [0xFF; 3] {
                    self.view
                        .insert((x, y), (seq, format!("#{r:02X}{g:02X}{b:02X}")));
                }
            }
        }
        self.seen_upto = seq;
        self.ahead.retain(|&s| s > seq);
        while self.ahead.remove(&(self.seen_upto + 1)) {
            self.seen_upto += 1;
        }
        self.advanced();
    }

    /// Reconnects (trying each URL in turn for up to [`OUTAGE_LIMIT`]),
    /// then fetches what happened since the last contiguous `seq`. The
    /// socket comes first, so nothing between the two is missed.
    async fn reconnect(&mut self) {
        let deadline = Instant::now() + OUTAGE_LIMIT;
        let name = format!("player-{}", self.index);
        self.ws = loop {
            let url = &self.urls[self.next_url];
            self.next_url = (self.next_url + 1) % self.urls.len();
            match WsClient::try_connect(url, Some(&name)).await {
                Ok(ws) => break ws,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "player {} could not reconnect within {OUTAGE_LIMIT:?}: {e}",
                        self.index
                    );
                    // Backoff between attempts, like the web client's.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.pods.push(pod_of(&self.ws));
        let from = self.seen_upto;
        let http = client();
        loop {
            // With the epoch, a store that lost its data meanwhile answers
            // 410 even when its new seqs have passed ours.
            let epoch = if self.epoch.is_empty() {
                String::new()
            } else {
                format!("&epoch={}", self.epoch)
            };
            let r = http
                .get(format!(
                    "{}/api/updates?since={}{epoch}",
                    self.api_url, self.seen_upto
                ))
                .send()
                .await
                .expect("GET /api/updates");
            if r.status() == reqwest::StatusCode::GONE {
                self.refetch().await;
                break;
            }
            let page: UpdatesPage = r
                .error_for_status()
                .expect("updates page")
                .json()
                .await
                .expect("updates JSON");
            for m in &page.events {
                if let ServerMessage::PixelUpdated(e) = m {
                    self.apply(e);
                }
            }
            if !page.has_more {
                break;
            }
        }
        self.catch_ups.push(format!(
            "from seq {from} to {} on {}",
            self.seen_upto,
            self.pods.last().expect("connected")
        ));
    }

    /// The next message, applied; `None` on a timeout or after a
    /// reconnect.
    pub async fn step(&mut self, limit: Duration) -> Option<ServerMessage> {
        match self.ws.try_next_within(limit).await {
            Ok(Some(ServerMessage::Resync { .. })) => {
                self.refetch().await;
                None
            }
            Ok(Some(m)) => {
                self.on_message(&m);
                Some(m)
            }
            Ok(None) => None,
            Err(Ended(frame)) => {
                self.closes.push(frame.map(|f| u16::from(f.code)));
                self.reconnect().await;
                None
            }
        }
    }

    /// Places `count` pixels in its own column, one every `every`, each
    /// retried until acknowledged; `answered` counts the acknowledged ones
    /// over every player and `tick` wakes whoever waits on it.
    pub async fn play(
        &mut self,
        count: u32,
        every: Duration,
        answered: &AtomicUsize,
        tick: &Notify,
    ) {
        let mut pace = tokio::time::interval(every);
        for k in 0..count {
            pace.tick().await;
            let (x, y) = (self.index, k);
            let color = color_for(self.index * 10_000 + k);
            let seq = self.place_until_acked(x, y, &color, u64::from(k)).await;
            self.acked.insert((x, y), (seq, color));
            answered.fetch_add(1, Ordering::SeqCst);
            tick.notify_waiters();
        }
    }

    async fn place_until_acked(&mut self, x: u32, y: u32, color: &str, id: u64) -> u64 {
        let give_up = Instant::now() + OUTAGE_LIMIT;
        loop {
            assert!(
                Instant::now() < give_up,
                "player {}: placement {id} not acknowledged within {OUTAGE_LIMIT:?} (refused {} times)",
                self.index,
                self.refused
            );
            let frame = serde_json::json!({"type": "pixel_update", "x": x, "y": y, "color": color, "id": id});
            if !self.ws.try_send_text(frame.to_string()).await {
                self.step(Duration::from_secs(1)).await;
                continue;
            }
            let connection = self.pods.len();
            let deadline = Instant::now() + super::WAIT;
            loop {
                if self.pods.len() != connection {
                    // The socket ended before the answer: place again on
                    // the new one (same pixel, same color).
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    !left.is_zero(),
                    "player {}: no answer to placement {id} within {:?}",
                    self.index,
                    super::WAIT
                );
                match self.step(left).await {
                    Some(ServerMessage::Ack {
                        id: Some(i), seq, ..
                    }) if i == id => return seq,
                    Some(ServerMessage::Error {
                        id: Some(i),
                        code: ErrorCode::Unavailable | ErrorCode::RateLimited,
                        retry_after_ms,
                        ..
                    }) if i == id => {
                        self.refused += 1;
                        let wait = retry_after_ms.unwrap_or(100).clamp(10, 1_000);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        break;
                    }
                    Some(ServerMessage::Error {
                        id: Some(i),
                        code,
                        message,
                        ..
                    }) if i == id => {
                        panic!(
                            "placement {id} of player {} refused: {code:?} {message}",
                            self.index
                        )
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reads until every event up to `seq` is applied.
    pub async fn catch_up_to(&mut self, seq: u64) {
        let deadline = Instant::now() + super::WAIT;
        while self.seen_upto < seq {
            assert!(
                Instant::now() < deadline,
                "player {} holds every event only up to {} of {seq} (pods {:?}, closes {:?}, catch-ups {:?})",
                self.index,
                self.seen_upto,
                self.pods,
                self.closes,
                self.catch_ups
            );
            self.step(Duration::from_millis(200)).await;
        }
    }

    /// The view's color at (x, y): white where nothing was seen.
    fn color_at(&self, x: u32, y: u32) -> &str {
        self.view.get(&(x, y)).map_or("#FFFFFF", |(_, c)| c)
    }
}

/// Joins `count` players, spread over `urls` round robin (each player
/// starts on its own URL and reconnects to the next ones).
pub async fn join_players(count: u32, urls: &[String], api_url: &str) -> Vec<Player> {
    let mut players = Vec::new();
    for i in 0..count {
        let mut mine = urls.to_vec();
        mine.rotate_left(i as usize % urls.len());
        players.push(Player::join(i, &mine, api_url).await);
    }
    players
}

/// Players placing in the background; see [`Traffic::start`].
pub struct Traffic {
    answered: std::sync::Arc<AtomicUsize>,
    tick: std::sync::Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<Player>>,
    pub total: usize,
}

impl Traffic {
    /// Each player places `count` pixels, one every `every`.
    pub fn start(players: Vec<Player>, count: u32, every: Duration) -> Traffic {
        let answered = std::sync::Arc::new(AtomicUsize::new(0));
        let tick = std::sync::Arc::new(Notify::new());
        let total = players.len() * count as usize;
        let tasks = players
            .into_iter()
            .map(|mut p| {
                let (answered, tick) = (answered.clone(), tick.clone());
                tokio::spawn(async move {
                    p.play(count, every, &answered, &tick).await;
                    p
                })
            })
            .collect();
        Traffic {
            answered,
            tick,
            tasks,
            total,
        }
    }

    /// Waits until `n` placements over all players were acknowledged.
    pub async fn acked_at_least(&self, n: usize) {
        loop {
            let notified = self.tick.notified();
            if self.answered.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::timeout(OUTAGE_LIMIT, notified)
                .await
                .expect("placements go on");
        }
    }

    /// Waits for every player to finish, and returns them.
    pub async fn finish(self) -> Vec<Player> {
        let mut players = Vec::new();
        for t in self.tasks {
            players.push(t.await.expect("player task"));
        }
        players
    }
}

/// Prints how long the fault interrupted the players (the longest time any
/// player's board stood still), for BENCHMARKS.md: run the fault suite with
/// `--nocapture` and look for `recovery:` lines.
pub fn report_recovery(fault: &str, players: &[Player]) -> Duration {
    let worst = players
        .iter()
        .map(|p| p.longest_silence)
        .max()
        .unwrap_or_default();
    let refused: u32 = players.iter().map(|p| p.refused).sum();
    eprintln!(
        "recovery: {fault}: board still for at most {worst:?}; {refused} placements refused meanwhile"
    );
    worst
}

/// The fault suite's promises, once the traffic is over: (1) every
/// acknowledged pixel is on `/api/canvas.bin`; (2) every player's view
/// equals it, pixel for pixel; (3) so none was left with a gap it did not
/// detect. Returns the acknowledged pixels.
pub async fn verify(players: &mut [Player], api_url: &str) -> BTreeMap<(u32, u32), (u64, String)> {
    let (width, _, board_seq, rgb) = canvas_bin(api_url).await;
    let mut acked = BTreeMap::new();
    for p in players.iter() {
        acked.extend(p.acked.iter().map(|(k, v)| (*k, v.clone())));
    }
    for ((x, y), (seq, color)) in &acked {
        assert!(
            *seq <= board_seq,
            "ack seq {seq} above the board's {board_seq}"
        );
        let [r, g, b] = pixel_at(&rgb, width, *x, *y);
        assert_eq!(
            &format!("#{r:02X}{g:02X}{b:02X}"),
            color,
            "acknowledged pixel ({x}, {y}) seq {seq} is not on the board"
        );
    }
    verify_views(players, api_url).await;
    acked
}

/// Promise (2) alone, for faults that lose stored writes on purpose (an
/// emptied Redis): every player's view equals the board as it is now.
pub async fn verify_views(players: &mut [Player], api_url: &str) {
    let (width, height, board_seq, rgb) = canvas_bin(api_url).await;
    for p in players.iter_mut() {
        p.catch_up_to(board_seq).await;
        let mut wrong = Vec::new();
        for y in 0..height {
            for x in 0..width {
                let [r, g, b] = pixel_at(&rgb, width, x, y);
                let board = format!("#{r:02X}{g:02X}{b:02X}");
                if p.color_at(x, y) != board {
                    wrong.push(((x, y), board, p.color_at(x, y).to_owned()));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "player {}'s view differs from the board at {} pixels, e.g. (pixel, board, view) {:?}; pods {:?}, closes {:?}, catch-ups {:?}",
            p.index,
            wrong.len(),
            &wrong[..wrong.len().min(5)],
            p.pods,
            p.closes,
            p.catch_ups
        );
    }
}
