// The board as this page knows it: one ImageData the size of the canvas, the
// `seq` of the last write to each pixel (so an older event never paints over
// a newer one, whatever order they arrive in), and the canvas that shows it.
// Writes only touch memory; the canvas is updated at most once per animation
// frame with one putImageData of the rectangle that changed.

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Packs r, g, b into one opaque pixel of an ImageData's Uint32Array view. */
export function pack(r, g, b) {
  return LITTLE_ENDIAN
    ? (0xff000000 | (b << 16) | (g << 8) | r) >>> 0
    : ((r << 24) | (g << 16) | (b << 8) | 0xff) >>> 0;
}

function unpack(p) {
  return LITTLE_ENDIAN
    ? [p & 0xff, (p >>> 8) & 0xff, (p >>> 16) & 0xff]
    : [p >>> 24, (p >>> 16) & 0xff, (p >>> 8) & 0xff];
}

const HEX = /^#[0-9a-fA-F]{6}$/;

/** "#RRGGBB" → packed pixel, remembered for the first 4096 colors seen
 * (a board's palette, or the colors a page met): one parse per color. */
export class PackedColors {
  constructor() {
    this.known = new Map();
  }

  /** The packed pixel of `color`, or undefined when it is not "#RRGGBB". */
  get(color) {
    let p = this.known.get(color);
    if (p === undefined) {
      if (typeof color !== "string" || !HEX.test(color)) return undefined;
      const v = parseInt(color.slice(1), 16);
      p = pack(v >> 16, (v >> 8) & 0xff, v & 0xff);
      if (this.known.size < 4096) this.known.set(color, p);
    }
    return p;
  }
}

export function toHex(r, g, b) {
  return "#" + ((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1).toUpperCase();
}

export class Board {
  /** @param {HTMLCanvasElement} canvas */
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.width = 0;
    this.height = 0;
    this.image = null;
    this.pixels = null; // Uint32Array over image.data
    this.seqs = null; // Float64Array: seq of the last write per pixel
    this.colors = new PackedColors();
    this.dirty = false;
    this.x0 = 0; this.y0 = 0; this.x1 = -1; this.y1 = -1;
    this.frameRequested = false;
    this.onLoad = null; // called with (width, height) after each load
    this.onDraw = null; // called after each putImageData with the rectangle drawn (x, y, width, height)
    this.draws = 0;
    this.past = false; // a past moment is on the canvas; writes wait unseen
  }

  /** Puts a past board (an ImageBitmap of the whole board) on the canvas;
   * live writes go on in memory and show again with `showLive`. */
  showPast(image) {
    this.past = true;
    this.ctx.drawImage(image, 0, 0);
  }

  /** Shows the live board again, with every write that came meanwhile. */
  showLive() {
    if (!this.past) return;
    this.past = false;
    if (this.image) this.markDirty(0, 0, this.width - 1, this.height - 1);
  }

  get loaded() {
    return this.image !== null;
  }

  /** Replaces the whole board with `rgb` (row-major, 3 bytes a pixel), as of `seq`. */
  load(width, height, rgb, seq) {
    if (rgb.length < width * height * 3) {
      throw new Error(`the board has ${rgb.length} bytes, expected ${width * height * 3}`);
    }
    if (width !== this.width || height !== this.height || !this.image) {
      this.width = width;
      this.height = height;
      this.canvas.width = width;
      this.canvas.height = height;
      this.image = this.ctx.createImageData(width, height);
      this.pixels = new Uint32Array(this.image.data.buffer);
      this.seqs = new Float64Array(width * height);
    }
    const px = this.pixels;
    const n = width * height;
    if (LITTLE_ENDIAN) {
      for (let i = 0, j = 0; i < n; i++, j += 3) {
        px[i] = (0xff000000 | (rgb[j + 2] << 16) | (rgb[j + 1] << 8) | rgb[j]) >>> 0;
      }
    } else {
      for (let i = 0, j = 0; i < n; i++, j += 3) px[i] = pack(rgb[j], rgb[j + 1], rgb[j + 2]);
    }
    this.seqs.fill(seq);
    this.markDirty(0, 0, width - 1, height - 1);
    if (this.onLoad) this.onLoad(width, height);
  }

  /**
   * Applies one write unless the pixel already shows a newer one.
   * Returns true when the pixel changed.
   */
  apply(x, y, color, seq) {
    if (!this.image || !(x >= 0 && x < this.width && y >= 0 && y < this.height)) return false;
    const i = y * this.width + x;
    if (seq <= this.seqs[i]) return false;
    const packed = this.colors.get(color);
    if (packed === undefined) return false;
    this.seqs[i] = seq;
    this.pixels[i] = packed;
    this.markDirty(x, y, x, y);
    return true;
  }

  /** "#RRGGBB" of the pixel as this page holds it, or null off the board. */
  getPixel(x, y) {
    if (!this.image || x < 0 || y < 0 || x >= this.width || y >= this.height) return null;
    const [r, g, b] = unpack(this.pixels[y * this.width + x]);
    return toHex(r, g, b);
  }

  markDirty(x0, y0, x1, y1) {
    if (!this.dirty) {
      this.dirty = true;
      this.x0 = x0; this.y0 = y0; this.x1 = x1; this.y1 = y1;
    } else {
      if (x0 < this.x0) this.x0 = x0;
      if (y0 < this.y0) this.y0 = y0;
      if (x1 > this.x1) this.x1 = x1;
      if (y1 > this.y1) this.y1 = y1;
    }
    if (!this.frameRequested) {
      this.frameRequested = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  /** Draws what changed since the last frame: one putImageData. */
  flush() {
    this.frameRequested = false;
    if (!this.dirty || !this.image || this.past) return;
    this.dirty = false;
    const w = this.x1 - this.x0 + 1;
    const h = this.y1 - this.y0 + 1;
    this.ctx.putImageData(this.image, 0, 0, this.x0, this.y0, w, h);
    this.draws++;
    if (this.onDraw) this.onDraw(this.x0, this.y0, w, h);
  }
}
