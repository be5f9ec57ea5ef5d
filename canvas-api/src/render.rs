//! Board encodings other than raw RGB: PNG, and the prototype's JSON.

use std::collections::BTreeMap;

use protocol::Color;
use protocol::http::LegacyCanvas;

use crate::store::{Geometry, Snapshot};

pub fn png(geometry: Geometry, rgb: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut encoder = png::Encoder::new(&mut out, geometry.width, geometry.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// The prototype's `{width, height, seq, pixels: {"x,y": color}}`, listing the
/// pixels that are not the white background.
pub fn legacy(geometry: Geometry, snapshot: &Snapshot) -> LegacyCanvas {
    let mut pixels = BTreeMap::new();
    for (i, rgb) in snapshot.rgb.chunks_exact(3).enumerate() {
        if rgb != [0xFF, 0xFF, 0xFF] {
            let (x, y) = (i % geometry.width as usize, i / geometry.width as usize);
            pixels.insert(format!("{x},{y}"), Color([rgb[0], rgb[1], rgb[2]]));
        }
    }
    LegacyCanvas {
        width: geometry.width,
        height: geometry.height,
        seq: snapshot.seq,
        pixels,
    }
}
