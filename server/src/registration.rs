//! [`Registration`]: what a connection is entered in for as long as it
//! lives — the connection gauge, this gateway's user counts (presence) and
//! its user's mailboxes — and leaves when dropped, however it ends.

use std::sync::Arc;

use crate::Gateway;
use crate::mailbox::{Mailbox, user_key};

pub struct Registration<'a> {
    gw: &'a Gateway,
    pub username: String,
    /// Events addressed to this connection's user.
    pub mailbox: Arc<Mailbox>,
    /// For the close's log line.
    opened: std::time::Instant,
}

impl<'a> Registration<'a> {
    pub fn new(gw: &'a Gateway, username: String) -> Self {
        gw.metrics.connections.add(1);
        gw.metrics.connections_total.inc();
        crate::connection_log::websocket_opened(&gw.metrics, &username);
        gw.users.join(&username);
        let mailbox = gw.mailboxes.open(user_key(&username));
        Registration {
            gw,
            username,
            mailbox,
            opened: std::time::Instant::now(),
        }
    }

    /// `set_username`: from now on the connection is `username`'s.
    pub fn rename(&mut self, username: String) {
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
        crate::connection_log::websocket_closed(
            &self.gw.metrics,
            &self.username,
            self.opened.elapsed(),
        );
    }
}
