//! The username rule, shared by the gateway and canvas-api.

/// The longest username accepted.
pub const MAX_USERNAME_LEN: usize = 32;

/// A username is 1–32 ASCII letters, digits, `_` or `-`. ASCII only, so two
/// names that look alike are alike.
pub fn is_valid_username(name: &str) -> bool {
    (1..=MAX_USERNAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(is_valid_username("a"));
        assert!(is_valid_username("Alice_42-x"));
        assert!(is_valid_username(&"z".repeat(32)));
    }

    #[test]
    fn rejects_the_rest() {
        for bad in [
            "",
            " ",
            "a b",
            "<b>",
            "名前",
            "a\u{0}",
            &"z".repeat(33),
            "a.b",
        ] {
            assert!(!is_valid_username(bad), "{bad:?}");
        }
    }
}
