//! How this gateway is deployed, decided once from its configuration: how
//! events travel between processes ([`Transport`]) and where the board
//! lives ([`BoardSite`]). `Gateway::start` asks these instead of looking at
//! the configuration again for each part it builds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ws::Utf8Bytes;
use canvas_api::Announcer;
use redis::aio::ConnectionManager;

use crate::backend::RemoteCanvas;
use crate::config::Config;
use crate::mailbox::{Mailboxes, user_key};
use crate::presence::PresenceStore;

/// How stored pixels, presence and events for one user reach every
/// gateway.
pub enum Transport {
    /// Through Redis: `PUBLISH`/`SUBSCRIBE`, presence keys, the shared
    /// secret.
    Redis {
        // Boxed: the connection's credentials and TLS settings are large,
        // and this is made once.
        info: Box<redis::ConnectionInfo>,
        conn: ConnectionManager,
    },
    /// This process is the only one: events go through an in-process
    /// channel, and the secret is kept in `DATA_DIR`.
    InProcess,
}

impl Transport {
    /// Connects to Redis when the configuration names one.
    pub async fn connect(config: &Config) -> anyhow::Result<Transport> {
        match config.redis.connection_info().map_err(anyhow::Error::msg)? {
            Some(info) => {
                let conn = plumbing::redis::connect_manager(info.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("Redis: {e}"))?;
                Ok(Transport::Redis {
                    info: Box::new(info),
                    conn,
                })
            }
            None => Ok(Transport::InProcess),
        }
    }

    pub fn redis_info(&self) -> Option<&redis::ConnectionInfo> {
        match self {
            Transport::Redis { info, .. } => Some(info),
            Transport::InProcess => None,
        }
    }

    pub fn redis_conn(&self) -> Option<&ConnectionManager> {
        match self {
            Transport::Redis { conn, .. } => Some(conn),
            Transport::InProcess => None,
        }
    }

    /// How this process tells a user's connections about events
    /// addressed to that user.
    pub fn announcer(&self, mailboxes: &Arc<Mailboxes>) -> Announcer {
        match self {
            Transport::Redis { conn, .. } => {
                Announcer::Redis(plumbing::redis::Connection::Node(conn.clone()))
            }
            Transport::InProcess => local_announcer(mailboxes.clone()),
        }
    }

    pub fn presence_store(&self, pod_id: &str, ttl: Duration) -> PresenceStore {
        match self {
            Transport::Redis { conn, .. } => PresenceStore::Redis {
                conn: conn.clone(),
                pod_id: pod_id.to_owned(),
                ttl,
            },
            Transport::InProcess => PresenceStore::Local,
        }
    }
}

/// Where the board is kept.
pub enum BoardSite {
    /// A separate canvas-api (the Kubernetes shape).
    Remote(String),
    /// In this process: Redis, or the embedded store in `DATA_DIR`.
    InProcess,
}

impl BoardSite {
    pub fn of(config: &Config) -> BoardSite {
        match &config.canvas_api_url {
            Some(url) => BoardSite::Remote(url.clone()),
            None => BoardSite::InProcess,
        }
    }

    pub fn remote(&self, auth: canvas_api::Auth) -> Option<anyhow::Result<RemoteCanvas>> {
        match self {
            BoardSite::Remote(url) => Some(RemoteCanvas::new(url, auth).context("CANVAS_API_URL")),
            BoardSite::InProcess => None,
        }
    }
}

/// The mode's name in the start-up log.
pub fn name(transport: &Transport, site: &BoardSite) -> &'static str {
    match (site, transport) {
        (BoardSite::Remote(_), _) => "gateway with remote canvas-api",
        (BoardSite::InProcess, Transport::Redis { .. }) => "single process on Redis",
        (BoardSite::InProcess, Transport::InProcess) => "single process, embedded store",
    }
}

/// The single process without Redis: events for a user go straight to
/// that user's mailboxes. (Its pixels reach the fan-out from the embedded
/// store, which announces each write as it stores it.)
fn local_announcer(mailboxes: Arc<Mailboxes>) -> Announcer {
    Announcer::Local {
        users: Arc::new(move |username, json| {
            mailboxes.deliver(user_key(username), &Utf8Bytes::from(json));
        }),
    }
}
