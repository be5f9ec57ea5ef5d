//! The embedded store's moderation state, `moderation.json`: bans,
//! protected rectangles, the audit log and the last clear. Moderation
//! actions are rare, so the whole file is rewritten on each one (to a
//! temporary file, synced, renamed over the old one).

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::path::Path;

use protocol::http::{AuditEntry, BanInfo, Protection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ModerationState {
    pub bans: BTreeMap<String, BanInfo>,
    pub protections: Vec<Protection>,
    pub last_protection_id: u64,
    /// Newest first.
    pub audit: VecDeque<AuditEntry>,
    /// `(seq, timestamp)` of the last clear.
    pub cleared: Option<(u64, u64)>,
}

impl ModerationState {
    /// Reads the file, or the empty state when there is none.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{}: not a moderation state ({e}); the file is kept as it is",
                    path.display()
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// True when `username` is banned at `now` (ms).
    pub fn is_banned(&self, username: &str, now: u64) -> bool {
        self.bans
            .get(username)
            .is_some_and(|b| b.until.is_none_or(|until| until > now))
    }

    pub fn is_protected(&self, x: u32, y: u32) -> bool {
        self.protections.iter().any(|p| p.rect.contains(x, y))
    }
}
