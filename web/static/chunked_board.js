// The board in chunked mode (a board too large to hold whole, up to
// 65,536²): only the chunks near the view are held, each one 256² image
// with the `seq` of its bytes and of every live write since (so an older
// event never paints over a newer one), drawn with the view's transform on
// one screen-sized canvas. Events for a chunk whose bytes are still on
// their way wait in that chunk's buffer, as the whole board's do in sync.js.
// Which chunks are held, and when their bytes come, is chunk_sync.js's job.

import { PackedColors, pack, toHex } from "./board.js";

/**
 * Chunks held at most: each costs about 512 KB (its image and the canvas
 * drawn from it), so at most ~128 MB whatever the board's size. The least
 * zoom (`minScale`) keeps the chunks in view, with their margin, under it.
 */
export const MAX_HELD_CHUNKS = 256;
/** Chunks along the viewport's longest side at the least zoom. */
const MAX_CHUNKS_ACROSS = 12;
/** Rings of chunks beyond the view loaded ahead of a pan. */
const LOAD_MARGIN = 1;
/** Held chunks this many rings beyond the view are kept; farther ones go. */
const KEEP_MARGIN = 3;
/** Events buffered for one chunk still loading; past that it is loaded again. */
const MAX_BUFFERED = 20000;
/** What an area not loaded yet shows: the board's white, a shade darker. */
const UNLOADED = "#e4e4e4";

/** One held chunk: its pixels once loaded, and its place in the load cycle. */
class Chunk {
  constructor(cx, cy, size) {
    this.cx = cx;
    this.cy = cy;
    /**
     * "new": not in a subscribe sent yet; "subscribing": in one the server
     * has not confirmed; "loading": its bytes are being fetched; "loaded".
     * A chunk being reloaded keeps showing its old pixels meanwhile.
     */
    this.state = "new";
    this.request = 0; // the subscribe (numbered per socket) that asked for it
    this.epoch = 0; // bumped when it must be loaded again: stale fetches do nothing
    this.abort = null; // aborts its running fetch when it is dropped
    this.buffer = [];
    this.overflowed = false;
    this.image = null;
    this.pixels = null; // Uint32Array over image.data
    this.baseSeq = -1; // the seq its bytes are as of
    this.seqs = new Map(); // pixel index -> seq of a live write since
    this.canvas = null;
    this.ctx = null;
    this.dirty = null; // {x0, y0, x1, y1} of the image not yet on the canvas
    this.size = size;
  }

  get loaded() {
    return this.image !== null;
  }

  markDirty(x0, y0, x1, y1) {
    const d = this.dirty;
    if (!d) this.dirty = { x0, y0, x1, y1 };
    else {
      d.x0 = Math.min(d.x0, x0); d.y0 = Math.min(d.y0, y0);
      d.x1 = Math.max(d.x1, x1); d.y1 = Math.max(d.y1, y1);
    }
  }
}

export class ChunkedBoard {
  /**
   * @param {HTMLCanvasElement} screen  the canvas the size of the viewport
   * @param {number} size  pixels along one side of a chunk
   */
  constructor(screen, size) {
    this.screen = screen;
    this.ctx = screen.getContext("2d");
    this.size = size;
    this.width = 0;
    this.height = 0;
    this.view = null;
    /** Held chunks by `key(cx, cy)`. */
    this.chunks = new Map();
    this.colors = new PackedColors();
    this.frameRequested = false;
    this.draws = 0;
    this.onDraw = null; // called after each frame that showed a loaded chunk
    window.addEventListener("resize", () => this.redraw());
  }

  /** The board's size and the view it is drawn with. */
  attach(width, height, view) {
    this.width = width;
    this.height = height;
    this.view = view;
    this.across = Math.ceil(width / this.size);
    this.down = Math.ceil(height / this.size);
  }

  /** The least zoom: at most `MAX_CHUNKS_ACROSS` chunks along the longest side. */
  minScale() {
    const r = this.view.rect();
    return Math.max(1, Math.max(r.width, r.height) / (MAX_CHUNKS_ACROSS * this.size));
  }

  key(cx, cy) {
    return cy * this.across + cx;
  }

  get(cx, cy) {
    return this.chunks.get(this.key(cx, cy));
  }

  /** The chunks the view shows, grown by `margin` rings, kept on the board. */
  range(margin) {
    const v = this.view;
    const r = v.rect();
    const side = this.size * v.scale;
    const ox = Math.round(v.tx);
    const oy = Math.round(v.ty);
    const clampX = (c) => Math.min(this.across - 1, Math.max(0, c));
    const clampY = (c) => Math.min(this.down - 1, Math.max(0, c));
    return {
      cx0: clampX(Math.floor(-ox / side) - margin),
      cy0: clampY(Math.floor(-oy / side) - margin),
      cx1: clampX(Math.floor((r.width - 1 - ox) / side) + margin),
      cy1: clampY(Math.floor((r.height - 1 - oy) / side) + margin),
    };
  }

  /**
   * Holds every chunk near the view and drops the far ones (beyond
   * `KEEP_MARGIN`, and the farthest past `MAX_HELD_CHUNKS`). Returns
   * whether the held set changed.
   */
  retain() {
    if (!this.view || !this.width) return false;
    const want = this.range(LOAD_MARGIN);
    const keep = this.range(KEEP_MARGIN);
    const inside = (c, a) => c.cx >= a.cx0 && c.cx <= a.cx1 && c.cy >= a.cy0 && c.cy <= a.cy1;
    let changed = false;
    for (const [k, c] of this.chunks) {
      if (!inside(c, keep)) {
        this.drop(k, c);
        changed = true;
      }
    }
    for (let cy = want.cy0; cy <= want.cy1; cy++) {
      for (let cx = want.cx0; cx <= want.cx1; cx++) {
        const k = this.key(cx, cy);
        if (!this.chunks.has(k)) {
          this.chunks.set(k, new Chunk(cx, cy, this.size));
          changed = true;
        }
      }
    }
    if (this.chunks.size > MAX_HELD_CHUNKS) {
      const mx = (want.cx0 + want.cx1) / 2;
      const my = (want.cy0 + want.cy1) / 2;
      const far = [...this.chunks].filter(([, c]) => !inside(c, want))
        .sort(([, a], [, b]) => Math.hypot(b.cx - mx, b.cy - my) - Math.hypot(a.cx - mx, a.cy - my));
      for (const [k, c] of far.slice(0, this.chunks.size - MAX_HELD_CHUNKS)) this.drop(k, c);
    }
    if (changed) this.redraw();
    return changed;
  }

  drop(k, c) {
    c.epoch++;
    c.abort?.abort();
    if (c.canvas) c.canvas.width = 0; // frees its memory now, not at the next collection
    this.chunks.delete(k);
  }

  /** Every held chunk may have missed events (a new socket, a resync): load each again. */
  invalidateAll() {
    for (const c of this.chunks.values()) {
      c.epoch++;
      c.abort?.abort();
      c.abort = null;
      c.state = "new";
      c.buffer = [];
      c.overflowed = false;
    }
  }

  /** The held chunks, nearest to the middle of the view first. */
  held() {
    const r = this.view.rect();
    const side = this.size * this.view.scale;
    const mx = (r.width / 2 - this.view.tx) / side - 0.5;
    const my = (r.height / 2 - this.view.ty) / side - 0.5;
    return [...this.chunks.values()].sort((a, b) => Math.hypot(a.cx - mx, a.cy - my) - Math.hypot(b.cx - mx, b.cy - my));
  }

  /** Whether every chunk the view shows is loaded and current. */
  inViewLoaded() {
    const a = this.range(0);
    for (let cy = a.cy0; cy <= a.cy1; cy++) {
      for (let cx = a.cx0; cx <= a.cx1; cx++) {
        if (this.get(cx, cy)?.state !== "loaded") return false;
      }
    }
    return true;
  }

  /** Replaces chunk `c`'s pixels with `rgb` as of `seq`, then applies what it buffered. */
  load(c, rgb, seq) {
    const n = this.size * this.size;
    if (!c.image) {
      c.canvas = document.createElement("canvas");
      c.canvas.width = this.size;
      c.canvas.height = this.size;
      c.ctx = c.canvas.getContext("2d", { alpha: false });
      c.image = c.ctx.createImageData(this.size, this.size);
      c.pixels = new Uint32Array(c.image.data.buffer);
    }
    const px = c.pixels;
    for (let i = 0, j = 0; i < n; i++, j += 3) px[i] = pack(rgb[j], rgb[j + 1], rgb[j + 2]);
    c.baseSeq = seq;
    c.seqs.clear();
    c.state = "loaded";
    const buffered = c.buffer;
    c.buffer = [];
    for (const e of buffered) this.write(c, e.x, e.y, e.color, e.seq);
    c.markDirty(0, 0, this.size - 1, this.size - 1);
    this.redraw();
  }

  /**
   * One live write: painted when its chunk is loaded and the pixel holds
   * nothing newer, buffered while the chunk's bytes are on their way, and
   * ignored for a chunk not held (an event sent before a narrower
   * subscription was in force).
   */
  apply(x, y, color, seq) {
    if (!(x >= 0 && x < this.width && y >= 0 && y < this.height)) return false;
    const c = this.get(Math.floor(x / this.size), Math.floor(y / this.size));
    if (!c) return false;
    if (c.state !== "loaded") {
      if (c.buffer.length < MAX_BUFFERED) c.buffer.push({ x, y, color, seq });
      else c.overflowed = true;
      return false;
    }
    const changed = this.write(c, x, y, color, seq);
    if (changed) this.redraw();
    return changed;
  }

  write(c, x, y, color, seq) {
    const lx = x - c.cx * this.size;
    const ly = y - c.cy * this.size;
    const i = ly * this.size + lx;
    if (seq <= (c.seqs.get(i) ?? c.baseSeq)) return false;
    const p = this.colors.get(color);
    if (p === undefined) return false;
    c.seqs.set(i, seq);
    c.pixels[i] = p;
    c.markDirty(lx, ly, lx, ly);
    return true;
  }

  /** "#RRGGBB" of the pixel as this page holds it, or null (off the board, or not loaded). */
  getPixel(x, y) {
    if (!(x >= 0 && y >= 0 && x < this.width && y < this.height)) return null;
    const c = this.get(Math.floor(x / this.size), Math.floor(y / this.size));
    if (!c || !c.image) return null;
    const i = ((y - c.cy * this.size) * this.size + (x - c.cx * this.size)) * 4;
    const d = c.image.data;
    return toHex(d[i], d[i + 1], d[i + 2]);
  }

  /** Draws in the next animation frame (the view moved, or pixels changed). */
  redraw() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.draw();
    });
  }

  /** Puts the chunks in view on the screen canvas with the view's transform. */
  draw() {
    const v = this.view;
    if (!v || !this.width) return;
    const r = v.rect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(r.width * dpr);
    const h = Math.round(r.height * dpr);
    if (this.screen.width !== w || this.screen.height !== h) {
      this.screen.width = w;
      this.screen.height = h;
    }
    const ctx = this.ctx;
    ctx.clearRect(0, 0, w, h);
    ctx.imageSmoothingEnabled = false;
    const s = v.scale;
    const ox = Math.round(v.tx);
    const oy = Math.round(v.ty);
    // A chunk's edges on whole device pixels, shared with its neighbours:
    // at a fractional zoom, edges between pixels would be blended into
    // faint seams.
    const px = (boardX, origin) => Math.round((origin + boardX * s) * dpr);
    const a = this.range(0);
    let shown = 0;
    for (let cy = a.cy0; cy <= a.cy1; cy++) {
      for (let cx = a.cx0; cx <= a.cx1; cx++) {
        // The last column and row of chunks reach past the board: draw only its part.
        const sw = Math.min(this.size, this.width - cx * this.size);
        const sh = Math.min(this.size, this.height - cy * this.size);
        const x = px(cx * this.size, ox);
        const y = px(cy * this.size, oy);
        const dw = px(cx * this.size + sw, ox) - x;
        const dh = px(cy * this.size + sh, oy) - y;
        const c = this.get(cx, cy);
        if (!c || !c.image) {
          ctx.fillStyle = UNLOADED;
          ctx.fillRect(x, y, dw, dh);
          continue;
        }
        if (c.dirty) {
          const d = c.dirty;
          c.ctx.putImageData(c.image, 0, 0, d.x0, d.y0, d.x1 - d.x0 + 1, d.y1 - d.y0 + 1);
          c.dirty = null;
        }
        ctx.drawImage(c.canvas, 0, 0, sw, sh, x, y, dw, dh);
        shown++;
      }
    }
    this.draws++;
    if (shown && this.onDraw) this.onDraw();
  }
}
