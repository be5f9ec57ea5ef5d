//! Per-user delivery inside one gateway: a user's key → the mailboxes of that
//! user's open connections here (WebSocket or SSE).
//!
//! Events addressed to one user (`user:<key>` on Redis, or handed over in
//! process) are pushed into that user's mailboxes only, and wake only those
//! connections' tasks; every other connection is untouched. A user is in the
//! map only while it has a connection here; the first connection and the last
//! one are reported to the subscriber ([`Mailboxes::take_changes`]), which
//! subscribes to and unsubscribes from the user's channel, so a pod holding no
//! connection of a user never hears its events.
//!
//! Idle connections are the common case, so a mailbox is small: a waker, a
//! flag and an empty `Vec` (no queue is allocated until an event arrives, and
//! it is freed again when the connection takes it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

/// Frames a mailbox holds for a connection that has not taken them yet; past
/// this the connection is too slow and is closed (4008), like a connection a
/// whole hub ring behind.
pub const MAILBOX_CAPACITY: usize = 64;

/// The one place where a connection's username becomes the key its per-user
/// events are addressed to (`user:<key>`). When identities are signed, this
/// is the function to change.
pub fn user_key(username: &str) -> &str {
    username
}

/// One connection's inbox for events addressed to its user.
#[derive(Default)]
pub struct Mailbox {
    waker: AtomicWaker,
    /// True while frames (or an overflow) wait. Read without the lock, since
    /// the connection checks it on every wake-up.
    ready: AtomicBool,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    frames: Vec<Utf8Bytes>,
    overflowed: bool,
}

/// What a connection takes from its mailbox.
#[derive(Debug, Default)]
pub struct Taken {
    pub frames: Vec<Utf8Bytes>,
    /// Frames were dropped because the mailbox was full: the connection must
    /// be closed, never left silently short.
    pub overflowed: bool,
}

impl Mailbox {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, frame: Utf8Bytes) {
        let mut q = self.queue();
        if q.frames.len() < MAILBOX_CAPACITY {
            q.frames.push(frame);
        } else {
            q.overflowed = true;
        }
        self.ready.store(true, Ordering::Release);
        drop(q);
        self.waker.wake();
    }

    /// Ready when frames wait. Register first, then look: a push between the
    /// two wakes the task, so no wake-up is lost.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.ready.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.ready.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits until frames wait.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_ready(cx))
    }

    /// Takes every waiting frame. The queue's memory goes with them, so a
    /// mailbox that was used once costs no more than one never used.
    pub fn take(&self) -> Taken {
        let mut q = self.queue();
        self.ready.store(false, Ordering::Release);
        Taken {
            frames: std::mem::take(&mut q.frames),
            overflowed: std::mem::take(&mut q.overflowed),
        }
    }
}

/// The mailboxes of one user's connections. Most users have one.
enum Holders {
    One(Arc<Mailbox>),
    Many(Vec<Arc<Mailbox>>),
}

impl Holders {
    fn add(&mut self, mailbox: Arc<Mailbox>) {
        match self {
            Holders::One(first) => *self = Holders::Many(vec![first.clone(), mailbox]),
            Holders::Many(all) => all.push(mailbox),
        }
    }

    /// Removes `mailbox`; true when none is left.
    fn remove(&mut self, mailbox: &Arc<Mailbox>) -> bool {
        match self {
            Holders::One(only) => Arc::ptr_eq(only, mailbox),
            Holders::Many(all) => {
                all.retain(|m| !Arc::ptr_eq(m, mailbox));
                if all.len() == 1 {
                    let only = all.pop().expect("one left");
                    *self = Holders::One(only);
                }
                matches!(self, Holders::Many(all) if all.is_empty())
            }
        }
    }

    fn as_slice(&self) -> &[Arc<Mailbox>] {
        match self {
            Holders::One(only) => std::slice::from_ref(only),
            Holders::Many(all) => all,
        }
    }
}

/// Every mailbox of this gateway, by user key.
pub struct Mailboxes {
    users: Mutex<HashMap<Box<str>, Holders>>,
    /// Users who arrived or left since the subscriber last looked; `None`
    /// when nothing subscribes (no Redis: events are handed over in process).
    changes: Option<Changes>,
}

struct Changes {
    keys: Mutex<Vec<Box<str>>>,
    notify: Notify,
}

impl Mailboxes {
    /// `subscribed`: a subscriber follows the users here (Redis mode).
    pub fn new(subscribed: bool) -> Mailboxes {
        Mailboxes {
            users: Mutex::default(),
            changes: subscribed.then(|| Changes {
                keys: Mutex::default(),
                notify: Notify::new(),
            }),
        }
    }

    fn users(&self) -> MutexGuard<'_, HashMap<Box<str>, Holders>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self, key: &str) {
        if let Some(c) = &self.changes {
            c.keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(key.into());
            c.notify.notify_one();
        }
    }

    /// Opens a mailbox for a new connection of `key`'s user.
    pub fn open(&self, key: &str) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::default());
        self.attach(key, mailbox.clone());
        mailbox
    }

    /// Files `mailbox` under `key` (a connection that changed its name keeps
    /// its mailbox).
    pub fn attach(&self, key: &str, mailbox: Arc<Mailbox>) {
        let mut users = self.users();
        match users.get_mut(key) {
            Some(holders) => holders.add(mailbox),
            None => {
                users.insert(key.into(), Holders::One(mailbox));
                drop(users);
                self.changed(key);
            }
        }
    }

    /// Removes a connection's mailbox; the user leaves with its last one.
    pub fn close(&self, key: &str, mailbox: &Arc<Mailbox>) {
        let mut users = self.users();
        let Some(holders) = users.get_mut(key) else {
            return;
        };
        if holders.remove(mailbox) {
            users.remove(key);
            drop(users);
            self.changed(key);
        }
    }

    /// Hands `frame` to every connection of `key`'s user here; returns how
    /// many. Other connections are not touched.
    pub fn deliver(&self, key: &str, frame: &Utf8Bytes) -> usize {
        let users = self.users();
        let Some(holders) = users.get(key) else {
            return 0;
        };
        let all = holders.as_slice();
        for mailbox in all {
            mailbox.push(frame.clone());
        }
        all.len()
    }

    /// True while `key`'s user has a connection here.
    pub fn contains(&self, key: &str) -> bool {
        self.users().contains_key(key)
    }

    /// Users with a connection here.
    pub fn user_count(&self) -> usize {
        self.users().len()
    }

    /// Every user with a connection here (after a resubscription).
    pub fn keys(&self) -> Vec<Box<str>> {
        self.users().keys().cloned().collect()
    }

    /// The users who arrived or left since the last call, each at most once.
    pub fn take_changes(&self) -> Vec<Box<str>> {
        let Some(c) = &self.changes else {
            return Vec::new();
        };
        let mut keys = std::mem::take(&mut *c.keys.lock().unwrap_or_else(|e| e.into_inner()));
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Waits until [`Mailboxes::take_changes`] has something (a stored
    /// permit: a change made before the wait still counts).
    pub async fn changes_waiting(&self) {
        match &self.changes {
            Some(c) => c.notify.notified().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn frame(s: &'static str) -> Utf8Bytes {
        Utf8Bytes::from_static(s)
    }

    #[test]
    fn an_event_reaches_every_connection_of_its_user_and_no_other() {
        let boxes = Mailboxes::new(true);
        let (u1, u2, v) = (boxes.open("u"), boxes.open("u"), boxes.open("v"));
        assert_eq!(boxes.deliver("u", &frame("hi")), 2);
        for m in [&u1, &u2] {
            let taken = m.take();
            assert_eq!(taken.frames, vec![frame("hi")]);
            assert!(!taken.overflowed);
        }
        assert!(v.take().frames.is_empty());
        assert_eq!(boxes.deliver("nobody", &frame("x")), 0);
    }

    #[test]
    fn the_first_and_last_connection_of_a_user_are_reported_once() {
        let boxes = Mailboxes::new(true);
        let a = boxes.open("u");
        let b = boxes.open("u");
        assert_eq!(boxes.take_changes(), vec![Box::<str>::from("u")]);
        boxes.close("u", &a);
        assert!(boxes.take_changes().is_empty(), "u still has a connection");
        assert!(boxes.contains("u"));
        boxes.close("u", &b);
        assert_eq!(boxes.take_changes(), vec![Box::<str>::from("u")]);
        assert!(!boxes.contains("u"));
        assert_eq!(boxes.user_count(), 0);
    }

    #[test]
    fn a_renamed_connection_moves_its_mailbox() {
        let boxes = Mailboxes::new(false);
        let m = boxes.open("old");
        boxes.close("old", &m);
        boxes.attach("new", m.clone());
        assert_eq!(boxes.deliver("old", &frame("x")), 0);
        assert_eq!(boxes.deliver("new", &frame("y")), 1);
        assert_eq!(m.take().frames, vec![frame("y")]);
        assert!(boxes.take_changes().is_empty(), "nothing subscribes");
    }

    #[test]
    fn a_full_mailbox_reports_the_overflow_instead_of_dropping_silently() {
        let boxes = Mailboxes::new(false);
        let m = boxes.open("u");
        for _ in 0..MAILBOX_CAPACITY + 1 {
            boxes.deliver("u", &frame("x"));
        }
        let taken = m.take();
        assert_eq!(taken.frames.len(), MAILBOX_CAPACITY);
        assert!(taken.overflowed);
        assert!(!m.take().overflowed, "reported once");
    }

    #[test]
    fn a_push_wakes_the_waiting_connection() {
        let m = Mailbox::default();
        let woken = Arc::new(Flag::default());
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(m.poll_ready(&mut cx).is_pending());
        m.push(frame("x"));
        assert!(woken.0.load(Ordering::SeqCst));
        assert!(m.poll_ready(&mut cx).is_ready());
        m.take();
        assert!(m.poll_ready(&mut cx).is_pending());
    }

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}
