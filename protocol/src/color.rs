//! `"#RRGGBB"` colors, the only color notation on every interface.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 24-bit RGB color. Serialized as `"#RRGGBB"` (upper case); parsed from
/// `#RRGGBB` in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Color(pub [u8; 3]);

impl Color {
    /// The board's background.
    pub const WHITE: Color = Color([0xFF, 0xFF, 0xFF]);
    pub const BLACK: Color = Color([0, 0, 0]);

    pub fn rgb(self) -> [u8; 3] {
        self.0
    }
}

/// Why a string is not a `#RRGGBB` color.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseColorError {
    input: String,
}

impl fmt::Display for ParseColorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Long inputs are cut so an error message never echoes a whole frame.
        let shown: String = self.input.chars().take(16).collect();
        write!(f, "{shown:?} is not a color of the form \"#RRGGBB\"")
    }
}

impl std::error::Error for ParseColorError {}

impl FromStr for Color {
    type Err = ParseColorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseColorError {
            input: s.to_owned(),
        };
        let hex = s.strip_prefix('#').ok_or_else(err)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| err());
        Ok(Color([byte(0)?, byte(2)?, byte(4)?]))
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02X}{g:02X}{b:02X}")
    }
}

impl fmt::Debug for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Color {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Color {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_either_case_and_prints_upper_case() {
        let c: Color = "#ff4500".parse().unwrap();
        assert_eq!(c, Color([0xFF, 0x45, 0x00]));
        assert_eq!(c.to_string(), "#FF4500");
        assert_eq!("#FF4500".parse::<Color>().unwrap(), c);
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "", "#", "FF4500", "#FF450", "#FF45000", "#GG4500", "#ff 500", "#+f4500", "red",
        ] {
            assert!(bad.parse::<Color>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn error_message_is_short_for_long_input() {
        let long = "x".repeat(5000);
        let msg = long.parse::<Color>().unwrap_err().to_string();
        assert!(msg.len() < 80, "{msg}");
    }

    #[test]
    fn round_trips_through_json() {
        let c = Color([1, 2, 3]);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"#010203\"");
        assert_eq!(serde_json::from_str::<Color>(&json).unwrap(), c);
    }
}
