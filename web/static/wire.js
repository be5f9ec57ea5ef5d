// Protocol v2's binary messages (protocol/PROTOCOL.md), the twin of the
// protocol crate's `binary.rs`: pixel events arrive as binary `PIXELS`
// messages, and a placement goes out as a 12-byte `PLACE`. Everything else
// on the socket stays JSON text, as in protocol v1.

import { toHex } from "./board.js";

/** Gateway → client: pixel events. */
export const PIXELS = 0x01;
/** Client → gateway: place one pixel. */
export const PLACE = 0x81;

const HEX = /^#[0-9a-fA-F]{6}$/;

/**
 * Reads a binary message from the gateway: the pixel events of a `PIXELS`
 * message as `pixel_updated`-shaped objects (without username and
 * timestamp, which v2 leaves out), or null for a message this client does
 * not know or cannot read (a newer gateway's type, or a broken one).
 * @param {ArrayBuffer} buffer
 */
export function decodePixels(buffer) {
  const view = new DataView(buffer);
  if (view.byteLength < 1 || view.getUint8(0) !== PIXELS) return null;
  let p = 1;
  // LEB128, as a Number: exact up to 2^53, which no count or seq reaches.
  const varint = () => {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (p >= view.byteLength) throw new RangeError("truncated");
      const byte = view.getUint8(p++);
      value += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) return value;
    }
    throw new RangeError("varint too long");
  };
  try {
    const count = varint();
    if (count < 1) return null;
    let seq = Number(view.getBigUint64(p, true));
    p += 8;
    const events = [];
    for (let n = 0; n < count; n++) {
      if (n > 0) {
        const z = varint();
        seq += z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      }
      const x = view.getUint16(p, true);
      const y = view.getUint16(p + 2, true);
      const color = toHex(view.getUint8(p + 4), view.getUint8(p + 5), view.getUint8(p + 6));
      p += 7;
      events.push({ type: "pixel_updated", x, y, color, seq });
    }
    return p === view.byteLength ? events : null;
  } catch {
    // DataView reads past the end throw RangeError: a truncated message.
    return null;
  }
}

/**
 * A `PLACE` message for (x, y) in `color` ("#RRGGBB") as request `id`, or
 * null when the values do not fit it (the caller then sends JSON, which
 * the gateway answers with the exact error).
 */
export function encodePlace(id, x, y, color) {
  if (!(Number.isInteger(x) && x >= 0 && x <= 0xffff && Number.isInteger(y) && y >= 0 && y <= 0xffff)) return null;
  if (!(Number.isInteger(id) && id >= 0 && id <= 0xffffffff) || typeof color !== "string" || !HEX.test(color)) return null;
  const buffer = new ArrayBuffer(12);
  const view = new DataView(buffer);
  const rgb = parseInt(color.slice(1), 16);
  view.setUint8(0, PLACE);
  view.setUint32(1, id, true);
  view.setUint16(5, x, true);
  view.setUint16(7, y, true);
  view.setUint8(9, rgb >> 16);
  view.setUint8(10, (rgb >> 8) & 0xff);
  view.setUint8(11, rgb & 0xff);
  return buffer;
}
