//! Wall-clock time as the wire and the stores carry it: milliseconds since
//! the Unix epoch. Durations are measured with `Instant`; this is only for
//! timestamps another process (or a restart) will read.

/// Milliseconds since the Unix epoch on this machine's clock (0 for a clock
/// set before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
