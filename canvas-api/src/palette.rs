//! Which colors may be placed (`PALETTE`).

use std::fmt;
use std::str::FromStr;

use protocol::Color;

/// The 32 colors of r/place 2022, the default palette.
pub const RPLACE_2022: [&str; 32] = [
    "#6D001A", "#BE0039", "#FF4500", "#FFA800", "#FFD635", "#FFF8B8", "#00A368", "#00CC78",
    "#7EED56", "#00756F", "#009EAA", "#00CCC0", "#2450A4", "#3690EA", "#51E9F4", "#493AC1",
    "#6A5CFF", "#94B3FF", "#811E9F", "#B44AC0", "#E4ABFF", "#DE107F", "#FF3881", "#FF99AA",
    "#6D482F", "#9C6926", "#FFB470", "#000000", "#515252", "#898D90", "#D4D7D9", "#FFFFFF",
];

/// The most colors a custom palette may list; a longer list is almost
/// certainly a mistake, and `any` exists for "everything".
pub const MAX_CUSTOM_COLORS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Palette {
    /// Only these colors, in this order (the order clients show them in).
    Fixed(Vec<Color>),
    /// Every 24-bit color.
    Any,
}

impl Palette {
    pub fn rplace_2022() -> Self {
        Palette::Fixed(
            RPLACE_2022
                .iter()
                .map(|c| c.parse().expect("valid"))
                .collect(),
        )
    }

    pub fn allows(&self, color: Color) -> bool {
        match self {
            Palette::Fixed(colors) => colors.contains(&color),
            Palette::Any => true,
        }
    }

    /// The colors to show a client; empty for [`Palette::Any`].
    pub fn colors(&self) -> &[Color] {
        match self {
            Palette::Fixed(colors) => colors,
            Palette::Any => &[],
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Palette::Any)
    }
}

impl Default for Palette {
    fn default() -> Self {
        Palette::rplace_2022()
    }
}

/// Why a `PALETTE` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePaletteError(String);

impl fmt::Display for ParsePaletteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParsePaletteError {}

impl FromStr for Palette {
    type Err = ParsePaletteError;

    /// `rplace-2022` (or `default`), `any`, or a comma-separated list of
    /// `#RRGGBB` colors.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "" | "default" | "rplace-2022" => return Ok(Palette::rplace_2022()),
            "any" => return Ok(Palette::Any),
            _ => {}
        }
        let mut colors: Vec<Color> = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            let color: Color = item.parse().map_err(|e| {
                ParsePaletteError(format!(
                    "{e}; PALETTE takes `rplace-2022`, `any`, or comma-separated #RRGGBB colors"
                ))
            })?;
            if !colors.contains(&color) {
                colors.push(color);
            }
        }
        if colors.len() > MAX_CUSTOM_COLORS {
            return Err(ParsePaletteError(format!(
                "a custom palette holds at most {MAX_CUSTOM_COLORS} colors (got {}); use PALETTE=any for every color",
                colors.len()
            )));
        }
        Ok(Palette::Fixed(colors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_32_rplace_colors_with_white() {
        let p: Palette = "".parse().unwrap();
        assert_eq!(p.colors().len(), 32);
        assert!(p.allows(Color::WHITE));
        assert!(p.allows("#ff4500".parse().unwrap()));
        assert!(!p.allows("#123456".parse().unwrap()));
    }

    #[test]
    fn any_allows_every_color() {
        let p: Palette = "ANY".parse().unwrap();
        assert!(p.allows("#123456".parse().unwrap()));
        assert!(p.colors().is_empty());
    }

    #[test]
    fn custom_list_is_deduplicated_and_ordered() {
        let p: Palette = "#000000, #ff0000,#000000".parse().unwrap();
        assert_eq!(
            p.colors(),
            &["#000000".parse().unwrap(), "#FF0000".parse().unwrap()]
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err = "#000000,blue".parse::<Palette>().unwrap_err().to_string();
        assert!(err.contains("\"blue\""), "{err}");
        assert!("#000000,".parse::<Palette>().is_err());
    }
}
