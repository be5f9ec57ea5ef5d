// The template overlay: an image a player copies from, laid over the board
// at a board position with an opacity. It comes from a local file (kept in
// localStorage as a data URL, so it survives a reload, but never in a link)
// or from a URL of this site (kept and linked as the URL). The page loads
// no image from elsewhere: `ownOriginUrl` refuses other origins before any
// request, and the page's CSP (`img-src 'self' data:`) would block one
// anyway. "Only differences" hides the template pixels the board already
// matches: one canvas the size of the template, recomputed for the part of
// the board that changed, never per frame.

import { store } from "./ui.js";

const STORE_TEMPLATE = "canvas.template";
/**
 * Largest file kept across reloads. localStorage holds about 5 MB per
 * origin in Chromium and Firefox, and a data URL is 4/3 of the file: 1 MB
 * keeps well clear of that, and is a large template as PNGs go.
 */
export const MAX_STORED_FILE_BYTES = 1_000_000;
/** Longest side of a template: bounds the overlay canvas's memory (64 MB at most). */
export const MAX_TEMPLATE_SIDE = 4096;
const DEFAULT_OPACITY = 0.5;

/** "1.2 MB", "800 kB". */
function formatBytes(n) {
  return n >= 1_000_000 ? `${(n / 1_000_000).toFixed(1)} MB` : `${Math.ceil(n / 1000)} kB`;
}

const clampOpacity = (o) => (Number.isFinite(o) ? Math.min(1, Math.max(0, o)) : DEFAULT_OPACITY);

/**
 * The absolute URL of `text` when it names an http(s) resource of this
 * page's origin; otherwise throws an Error saying why.
 */
export function ownOriginUrl(text, base = location.href) {
  let url;
  try {
    url = new URL(String(text).trim(), base);
  } catch {
    throw new Error(`"${String(text).slice(0, 80)}" is not a URL.`);
  }
  const own = new URL(base).origin;
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== own) {
    throw new Error(`Only images from this site (${own}) can be templates: the page loads no images from elsewhere.`);
  }
  return url.href;
}

/**
 * The template a `#…&template=…&ox=…&oy=…&oo=…&od=1` hash names (the
 * parameters Pxls uses: offset x, y and opacity; `od` only differences), or
 * null. The URL is checked by `loadUrl`, not here.
 */
export function templateOfHash(hash) {
  const q = new URLSearchParams(String(hash).replace(/^#/, ""));
  const url = q.get("template");
  if (!url) return null;
  const int = (k) => (Number.isInteger(Number(q.get(k))) && q.get(k) !== "" ? Number(q.get(k)) : 0);
  return {
    url,
    x: int("ox"),
    y: int("oy"),
    opacity: q.has("oo") ? clampOpacity(Number(q.get("oo"))) : DEFAULT_OPACITY,
    onlyDiff: q.get("od") === "1",
  };
}

/** The hash parameters (without `#` or a leading `&`) that carry template `t` (one from a URL). */
export function hashOfTemplate(t) {
  const q = new URLSearchParams({ template: t.url, ox: String(t.x), oy: String(t.y), oo: String(Number(t.opacity.toFixed(2))) });
  if (t.onlyDiff) q.set("od", "1");
  return q.toString();
}

export class Template {
  /**
   * @param {HTMLCanvasElement} canvas  the overlay, inside the viewport
   * @param {import("./board.js").Board} board
   * @param {object} hooks  onChange(): what a link carries changed;
   *   message(text, kind): tell the player
   */
  constructor(canvas, board, hooks) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.board = board;
    this.hooks = hooks;
    /** {kind: "file" | "url", src, name, x, y, opacity, onlyDiff}, or null. */
    this.state = null;
    /** The template's own pixels (the only-differences view is drawn from them). */
    this.source = null;
    /** Bumped per load, so a slow image never replaces a newer one. */
    this.loads = 0;
    /** Whether the template may be kept in localStorage (a file too big may not). */
    this.keepable = true;
  }

  /** Loads the template remembered in this browser, if any. */
  restore() {
    let saved = null;
    try { saved = JSON.parse(store.get(STORE_TEMPLATE) || "null"); } catch { /* none kept */ }
    if (!saved || typeof saved.src !== "string") return Promise.resolve(false);
    const { kind, src, name, x, y, opacity, onlyDiff } = saved;
    // What was kept passes the same checks as what is loaded.
    if (kind === "url") return this.loadUrl(src, { x, y, opacity, onlyDiff }, { quiet: true });
    if (kind !== "file" || !src.startsWith("data:image/")) return Promise.resolve(false);
    return this.load({ kind, src, name: String(name ?? "a file"), x, y, opacity, onlyDiff }, { quiet: true });
  }

  /** A local image file: shown, and kept across reloads when small enough. */
  loadFile(file) {
    if (!file) return Promise.resolve(false);
    if (!/^image\//.test(file.type)) {
      this.hooks.message(`${file.name} is not an image (PNG, GIF, WebP or JPEG).`, "error");
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const reader = new FileReader();
      reader.onerror = () => {
        this.hooks.message(`Could not read ${file.name}.`, "error");
        resolve(false);
      };
      reader.onload = () => {
        const { x, y, opacity, onlyDiff } = this.state ?? { x: 0, y: 0, opacity: DEFAULT_OPACITY, onlyDiff: false };
        resolve(this.load({ kind: "file", src: String(reader.result), name: file.name, bytes: file.size, x, y, opacity, onlyDiff }));
      };
      reader.readAsDataURL(file);
    });
  }

  /** An image of this site, by URL; refused (with a message) for any other origin. */
  loadUrl(text, placement, options) {
    let src;
    try {
      src = ownOriginUrl(text);
    } catch (e) {
      this.hooks.message(e.message, "error");
      return Promise.resolve(false);
    }
    const { x, y, opacity, onlyDiff } = placement ?? this.state ?? { x: 0, y: 0, opacity: DEFAULT_OPACITY, onlyDiff: false };
    return this.load({ kind: "url", src, name: new URL(src).pathname, x, y, opacity, onlyDiff }, options);
  }

  async load(next, { quiet = false } = {}) {
    const load = ++this.loads;
    const img = new Image();
    img.src = next.src;
    try {
      await img.decode();
    } catch {
      if (load === this.loads) this.hooks.message(`Could not load the template image ${next.kind === "url" ? next.src : next.name}.`, "error");
      return false;
    }
    if (load !== this.loads) return false;
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    if (w > MAX_TEMPLATE_SIDE || h > MAX_TEMPLATE_SIDE || w === 0 || h === 0) {
      this.hooks.message(`The template is ${w}×${h} px: at most ${MAX_TEMPLATE_SIDE} px a side.`, "error");
      return false;
    }
    this.canvas.width = w;
    this.canvas.height = h;
    this.ctx.clearRect(0, 0, w, h);
    this.ctx.drawImage(img, 0, 0);
    this.source = this.ctx.getImageData(0, 0, w, h);
    const { bytes, ...state } = next;
    this.state = { ...state, x: Math.trunc(state.x) || 0, y: Math.trunc(state.y) || 0, opacity: clampOpacity(state.opacity), onlyDiff: !!state.onlyDiff };
    this.keepable = !(next.kind === "file" && bytes > MAX_STORED_FILE_BYTES);
    this.canvas.hidden = false;
    this.redraw();
    this.save();
    if (!this.keepable) {
      this.hooks.message(
        `${next.name} is too big to keep across reloads (${formatBytes(bytes)}; at most ${formatBytes(MAX_STORED_FILE_BYTES)}): it shows until you reload.`,
        "error",
      );
    } else if (!quiet && next.kind === "file") {
      this.hooks.message(`Template ${next.name} loaded. It stays in this browser; a file can't be shared by link.`, "info");
    }
    this.hooks.onChange();
    return true;
  }

  /**
   * Keeps the template in localStorage (or forgets it, when there is none
   * or it is a file too big to keep).
   */
  save() {
    const s = this.state;
    if (!s || !this.keepable) {
      store.remove(STORE_TEMPLATE);
      return;
    }
    if (!store.set(STORE_TEMPLATE, JSON.stringify(s))) {
      this.hooks.message("This browser did not keep the template (its storage is full or off): it shows until you reload.", "error");
    }
  }

  /** Moves the template (top-left corner on board pixel x, y) and sets its look. */
  set(changes) {
    if (!this.state) return;
    const s = { ...this.state, ...changes };
    s.x = Math.trunc(Number(s.x)) || 0;
    s.y = Math.trunc(Number(s.y)) || 0;
    s.opacity = clampOpacity(Number(s.opacity));
    s.onlyDiff = !!s.onlyDiff;
    const redraw = s.x !== this.state.x || s.y !== this.state.y || s.onlyDiff !== this.state.onlyDiff;
    this.state = s;
    if (redraw) this.redraw();
    else this.applyStyle();
    this.save();
    this.hooks.onChange();
  }

  /** Takes the template away, and out of this browser's storage. */
  clear() {
    this.loads++;
    this.state = null;
    this.source = null;
    this.canvas.hidden = true;
    this.canvas.width = 1;
    this.canvas.height = 1;
    this.save();
    this.hooks.onChange();
  }

  /**
   * What a link carries for this template ({url, x, y, opacity, onlyDiff},
   * the URL without the origin, so a link works under any of the site's
   * names), or null: only a template from a URL can be linked.
   */
  get linkable() {
    const s = this.state;
    if (s?.kind !== "url") return null;
    const u = new URL(s.src);
    return { url: u.pathname + u.search, x: s.x, y: s.y, opacity: s.opacity, onlyDiff: s.onlyDiff };
  }

  /** Redraws the whole overlay (a new template, position or mode). */
  redraw() {
    if (!this.source) return;
    this.applyStyle();
    this.boardChanged(this.state.x, this.state.y, this.canvas.width, this.canvas.height, true);
  }

  /**
   * The board changed in rectangle (x0, y0, w, h): with only differences
   * on, the template pixels over it are shown or hidden again. One
   * putImageData of the overlap; nothing when the overlap is empty.
   */
  boardChanged(x0, y0, w, h, force = false) {
    const s = this.state;
    if (!this.source || (!s.onlyDiff && !force)) return;
    // The overlap, in template pixels.
    const tw = this.canvas.width;
    const th = this.canvas.height;
    const left = Math.max(0, x0 - s.x);
    const top = Math.max(0, y0 - s.y);
    const right = Math.min(tw, x0 + w - s.x);
    const bottom = Math.min(th, y0 + h - s.y);
    if (right <= left || bottom <= top) return;
    const src = this.source.data;
    if (!s.onlyDiff) {
      this.ctx.putImageData(this.source, 0, 0, left, top, right - left, bottom - top);
      return;
    }
    const out = new ImageData(right - left, bottom - top);
    const o = out.data;
    const b = this.board.loaded ? new Uint8Array(this.board.image.data.buffer) : null;
    const bw = this.board.width;
    const bh = this.board.height;
    for (let ty = top, k = 0; ty < bottom; ty++) {
      const by = ty + s.y;
      for (let tx = left; tx < right; tx++, k += 4) {
        const i = (ty * tw + tx) * 4;
        const bx = tx + s.x;
        let same = false;
        if (b && bx >= 0 && by >= 0 && bx < bw && by < bh) {
          const j = (by * bw + bx) * 4;
          same = src[i] === b[j] && src[i + 1] === b[j + 1] && src[i + 2] === b[j + 2];
        }
        if (same) continue; // stays transparent
        o[k] = src[i]; o[k + 1] = src[i + 1]; o[k + 2] = src[i + 2]; o[k + 3] = src[i + 3];
      }
    }
    this.ctx.putImageData(out, left, top);
  }

  applyStyle() {
    this.canvas.style.opacity = String(this.state.opacity);
  }

  /** Puts the overlay over its board pixels (called in the frame the view moves). */
  place(view) {
    // Hidden until the view knows where the board is (as the board is).
    if (!this.state || !view.width) return;
    this.canvas.style.visibility = "visible";
    const s = view.scale;
    const left = Math.round(view.tx) + this.state.x * s;
    const top = Math.round(view.ty) + this.state.y * s;
    this.canvas.style.transform = `translate(${left}px, ${top}px) scale(${s})`;
  }
}
