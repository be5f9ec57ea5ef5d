//! Presence records: what a gateway stores under `pod:<id>:users` and
//! announces on `user-events`.

use serde::{Deserialize, Serialize};

/// The value of `pod:<id>:users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodUsers {
    /// Connected clients on the pod (a user with two tabs counts twice).
    pub count: u64,
    /// Distinct usernames on the pod, sorted, at most a bounded number.
    pub usernames: Vec<String>,
    /// Distinct usernames on the pod, including those cut from `usernames`.
    #[serde(default)]
    pub distinct: u64,
    /// Milliseconds since the Unix epoch when the record was written.
    pub timestamp: u64,
}

/// A message on `user-events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum UserEvent {
    /// The named pod's user list changed (or the pod left).
    UserUpdate { pod_id: String },
}
