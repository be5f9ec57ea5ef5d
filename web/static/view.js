// Where the board sits on screen: pan and zoom by mouse, wheel, touch
// (pinch) and keyboard, the hovered pixel, and telling a tap (place) from a
// drag (pan). The board canvas keeps one canvas pixel per board pixel and
// is scaled by a CSS transform with `image-rendering: pixelated`, so pixels
// stay crisp at every zoom. A tap places only where a board pixel is big
// enough to see; below that it zooms in on the tapped point. A place on the
// board (the pixel in the middle, and the zoom) is also a link:
// `#x=…&y=…&z=…`.

const MAX_SCALE = 64;
/**
 * CSS px a board pixel must span before a tap places it. At the fitted zoom
 * of a 1000-pixel board a pixel is under one CSS px (a third of one on a
 * phone): a tap there places a dot nobody can see, somewhere the player did
 * not mean. Four px is the smallest size at which the pixel under a mouse is
 * plain to see, and where the reticle shows which one it is.
 */
export const MIN_PLACE_SCALE = 4;
/** The zoom a tap below `MIN_PLACE_SCALE` goes to: a fingertip (~40 CSS px) covers about three pixels. */
const TAP_ZOOM_SCALE = 12;
/** From this zoom on, lines between pixels show where one ends. */
export const GRID_SCALE = 10;
/** Decimals of the zoom kept in a link: enough to land on the same pixels. */
const LINK_ZOOM_DECIMALS = 2;

/** `#x=…&y=…&z=…` for a place ({x, y} the middle pixel, z the zoom). */
export function hashOfPlace({ x, y, z }) {
  return `#x=${x}&y=${y}&z=${Number(z.toFixed(LINK_ZOOM_DECIMALS))}`;
}

/** The place a `#x=…&y=…&z=…` hash names, or null when it names none. */
export function placeOfHash(hash) {
  const q = new URLSearchParams(String(hash).replace(/^#/, ""));
  const [x, y, z] = ["x", "y", "z"].map((k) => (q.has(k) && q.get(k).trim() !== "" ? Number(q.get(k)) : NaN));
  if (!Number.isInteger(x) || !Number.isInteger(y) || !(z > 0) || !Number.isFinite(z)) return null;
  return { x, y, z };
}

/** Movement (CSS px) past which a press is a drag, not a tap. */
const DRAG_SLOP = { mouse: 4, pen: 6, touch: 10 };
/** Pixels of the board kept on screen when panning away. */
const KEEP_VISIBLE = 48;
const KEY_PAN = 60;
const KEY_ZOOM = 1.4;

export class View {
  /**
   * @param {HTMLElement} viewport  the element that takes the input
   * @param {HTMLCanvasElement} canvas  the board canvas inside it
   * @param {HTMLElement} reticle  outline of the hovered pixel
   * @param {HTMLElement} grid  lines between pixels, shown at high zoom
   * @param {object} hooks  onHover({x, y} | null),
   *   onTap(x, y, {inspect, clientX, clientY}),
   *   onMove(): the board moved (drawn in this frame),
   *   insets() -> {top, bottom}: CSS px the bars cover at the top and bottom
   */
  constructor(viewport, canvas, reticle, grid, hooks) {
    this.viewport = viewport;
    this.canvas = canvas;
    this.reticle = reticle;
    this.grid = grid;
    this.hooks = hooks;
    this.width = 0;
    this.height = 0;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.fitted = false;
    /** Whether the view is still the automatic fit (nothing to link to). */
    this.untouched = true;
    this.hover = null;
    this.pointers = new Map(); // pointerId -> {x, y}
    this.gesture = null; // {startX, startY, moved, pinched, type, button, shift}
    this.pinch = null; // {dist, midX, midY}
    this.frame = 0;
    /** () -> the least zoom allowed, or null (chunked mode bounds the chunks in view). */
    this.minZoom = null;
    this.listen();
  }

  /** Called when the board's size is known (and on every reload). */
  setBoardSize(width, height) {
    const changed = width !== this.width || height !== this.height;
    this.width = width;
    this.height = height;
    if (changed || !this.fitted) this.fit();
  }

  rect() {
    return this.viewport.getBoundingClientRect();
  }

  /** The free area between the bars above and below the board. */
  area() {
    const r = this.rect();
    const { top, bottom } = this.hooks.insets?.() ?? { top: 0, bottom: 0 };
    const y0 = Math.min(top + 8, r.height / 3);
    const y1 = Math.max(r.height - bottom - 8, (2 * r.height) / 3);
    return { x0: 12, y0, width: Math.max(1, r.width - 24), height: Math.max(1, y1 - y0) };
  }

  fitScale() {
    const a = this.area();
    return Math.max(0.05, Math.min(a.width / this.width, a.height / this.height));
  }

  minScale() {
    return Math.max(this.minZoom ? this.minZoom() : 0, Math.min(1, this.fitScale() / 2));
  }

  fit() {
    if (!this.width) return;
    const a = this.area();
    let s = Math.max(this.fitScale(), this.minScale());
    // Whole pixels look best: snap to an integer zoom when one fits.
    if (s >= 1) s = Math.floor(s);
    this.scale = s;
    this.tx = a.x0 + (a.width - this.width * s) / 2;
    this.ty = a.y0 + (a.height - this.height * s) / 2;
    this.fitted = true;
    this.untouched = true;
    this.update();
  }

  /** The place in the middle of the viewport: {x, y} its pixel, z the zoom. */
  place() {
    const r = this.rect();
    const clampTo = (v, n) => Math.min(n - 1, Math.max(0, v));
    return {
      x: clampTo(Math.floor((r.width / 2 - Math.round(this.tx)) / this.scale), this.width),
      y: clampTo(Math.floor((r.height / 2 - Math.round(this.ty)) / this.scale), this.height),
      z: this.scale,
    };
  }

  /** Shows pixel (x, y) in the middle of the viewport at zoom z (both kept on the board). */
  goTo({ x, y, z }) {
    if (!this.width) return;
    const r = this.rect();
    const s = Math.min(MAX_SCALE, Math.max(this.minScale(), z));
    const px = Math.min(this.width - 1, Math.max(0, x)) + 0.5;
    const py = Math.min(this.height - 1, Math.max(0, y)) + 0.5;
    this.scale = s;
    this.tx = r.width / 2 - px * s;
    this.ty = r.height / 2 - py * s;
    this.fitted = true;
    this.untouched = false;
    this.update();
  }

  /** Zooms by `factor` keeping the board point under (sx, sy) in place. */
  zoomAt(factor, sx, sy) {
    const s = Math.min(MAX_SCALE, Math.max(this.minScale(), this.scale * factor));
    const k = s / this.scale;
    this.tx = sx - (sx - this.tx) * k;
    this.ty = sy - (sy - this.ty) * k;
    this.scale = s;
    this.untouched = false;
    this.update();
  }

  /** Whether a tap may place: a board pixel is big enough to see. */
  get canPlace() {
    return this.scale >= MIN_PLACE_SCALE;
  }

  /** Zooms in on a client point far enough that a tap there may place. */
  zoomToPlaceAt(clientX, clientY) {
    const r = this.rect();
    this.zoomAt(Math.max(1, TAP_ZOOM_SCALE / this.scale), clientX - r.left, clientY - r.top);
  }

  zoomCenter(factor) {
    const r = this.rect();
    this.zoomAt(factor, r.width / 2, r.height / 2);
  }

  panBy(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.untouched = false;
    this.update();
  }

  clamp() {
    const r = this.rect();
    const w = this.width * this.scale;
    const h = this.height * this.scale;
    this.tx = Math.min(r.width - KEEP_VISIBLE, Math.max(KEEP_VISIBLE - w, this.tx));
    this.ty = Math.min(r.height - KEEP_VISIBLE, Math.max(KEEP_VISIBLE - h, this.ty));
  }

  /** Applies the transform in the next animation frame. */
  update() {
    this.clamp();
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.canvas.style.transform = `translate(${Math.round(this.tx)}px, ${Math.round(this.ty)}px) scale(${this.scale})`;
      this.canvas.style.visibility = "visible";
      this.drawReticle();
      this.drawGrid();
      this.hooks.onMove?.();
    });
  }

  /**
   * Lines between pixels over the part of the board on screen: one element
   * the size of that part, its background a 1 px line every `scale` px, so
   * no zoom costs more than one rectangle.
   */
  drawGrid() {
    const s = this.scale;
    const r = this.rect();
    const x = Math.round(this.tx);
    const y = Math.round(this.ty);
    const left = Math.max(0, x);
    const top = Math.max(0, y);
    const right = Math.min(r.width, x + this.width * s);
    const bottom = Math.min(r.height, y + this.height * s);
    if (!this.width || s < GRID_SCALE || right <= left || bottom <= top) {
      this.grid.hidden = true;
      return;
    }
    const g = this.grid.style;
    g.transform = `translate(${left}px, ${top}px)`;
    g.width = `${right - left}px`;
    g.height = `${bottom - top}px`;
    g.backgroundSize = `${s}px ${s}px`;
    // The first line's offset, kept under one cell: a far offset (the board's
    // origin thousands of px off screen) puts Chromium's lines beside the
    // pixels' edges.
    const first = (origin) => ((origin % s) + s) % s;
    g.backgroundPosition = `${first(x - left)}px ${first(y - top)}px`;
    this.grid.hidden = false;
  }

  /** The board pixel under a client point, or null off the board. */
  pixelAt(clientX, clientY) {
    const r = this.rect();
    const x = Math.floor((clientX - r.left - Math.round(this.tx)) / this.scale);
    const y = Math.floor((clientY - r.top - Math.round(this.ty)) / this.scale);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return null;
    return { x, y };
  }

  setHover(p) {
    const same = p && this.hover && p.x === this.hover.x && p.y === this.hover.y;
    if (same || (!p && !this.hover)) return;
    this.hover = p;
    this.drawReticle();
    this.hooks.onHover(p);
  }

  drawReticle() {
    const p = this.hover;
    // Shown only where a tap places, so it always means "a tap puts the
    // chosen color here".
    if (!p || this.scale < MIN_PLACE_SCALE) {
      this.reticle.hidden = true;
      return;
    }
    const s = this.scale;
    const left = Math.round(this.tx) + p.x * s;
    const top = Math.round(this.ty) + p.y * s;
    const pad = 2;
    this.reticle.hidden = false;
    this.reticle.style.width = `${s + pad * 2}px`;
    this.reticle.style.height = `${s + pad * 2}px`;
    this.reticle.style.transform = `translate(${left - pad}px, ${top - pad}px)`;
  }

  listen() {
    const v = this.viewport;
    v.addEventListener("pointerdown", (e) => this.down(e));
    v.addEventListener("pointermove", (e) => this.move(e));
    v.addEventListener("pointerup", (e) => this.up(e, false));
    v.addEventListener("pointercancel", (e) => this.up(e, true));
    v.addEventListener("pointerleave", (e) => {
      if (e.pointerType === "mouse" && this.pointers.size === 0) this.setHover(null);
    });
    v.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    v.addEventListener("contextmenu", (e) => {
      e.preventDefault();
      const p = this.pixelAt(e.clientX, e.clientY);
      if (p) this.hooks.onTap(p.x, p.y, { inspect: true, clientX: e.clientX, clientY: e.clientY });
    });
    // Safari's own pinch gestures would zoom the page instead of the board.
    v.addEventListener("gesturestart", (e) => e.preventDefault());
    window.addEventListener("keydown", (e) => this.key(e));
    window.addEventListener("resize", () => {
      if (this.fitted && this.width) this.update();
    });
  }

  down(e) {
    if (e.pointerType === "mouse" && e.button !== 0 && e.button !== 1) return;
    this.viewport.focus({ preventScroll: true });
    try { this.viewport.setPointerCapture(e.pointerId); } catch { /* not capturable */ }
    this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (this.pointers.size === 1) {
      this.gesture = {
        startX: e.clientX,
        startY: e.clientY,
        moved: e.button === 1, // a middle-button press only pans
        pinched: false,
        type: e.pointerType,
        shift: e.shiftKey || e.altKey,
      };
    } else if (this.pointers.size === 2) {
      this.gesture.pinched = true;
      this.pinch = this.pinchState();
    }
    if (e.pointerType !== "mouse") this.setHover(this.pixelAt(e.clientX, e.clientY));
  }

  pinchState() {
    const [a, b] = [...this.pointers.values()];
    return {
      dist: Math.hypot(a.x - b.x, a.y - b.y) || 1,
      midX: (a.x + b.x) / 2,
      midY: (a.y + b.y) / 2,
    };
  }

  move(e) {
    const p = this.pointers.get(e.pointerId);
    if (!p) {
      if (e.pointerType === "mouse") this.setHover(this.pixelAt(e.clientX, e.clientY));
      return;
    }
    const dx = e.clientX - p.x;
    const dy = e.clientY - p.y;
    p.x = e.clientX;
    p.y = e.clientY;
    const g = this.gesture;
    if (this.pointers.size >= 2 && this.pinch) {
      const next = this.pinchState();
      const r = this.rect();
      this.tx += next.midX - this.pinch.midX;
      this.ty += next.midY - this.pinch.midY;
      this.zoomAt(next.dist / this.pinch.dist, next.midX - r.left, next.midY - r.top);
      this.pinch = next;
      return;
    }
    if (!g.moved) {
      const slop = DRAG_SLOP[g.type] ?? DRAG_SLOP.mouse;
      if (Math.hypot(e.clientX - g.startX, e.clientY - g.startY) <= slop) return;
      g.moved = true;
      this.viewport.classList.add("dragging");
      // Pan by the whole distance moved since the press.
      this.panBy(e.clientX - g.startX - dx, e.clientY - g.startY - dy);
    }
    this.panBy(dx, dy);
    if (e.pointerType === "mouse") this.setHover(this.pixelAt(e.clientX, e.clientY));
  }

  up(e, cancelled) {
    if (!this.pointers.has(e.pointerId)) return;
    this.pointers.delete(e.pointerId);
    const g = this.gesture;
    if (this.pointers.size === 1) {
      // One finger of a pinch lifted: the other pans from where it is, and
      // never taps.
      this.pinch = null;
      if (g) g.moved = true;
      return;
    }
    if (this.pointers.size > 0) {
      this.pinch = this.pinchState();
      return;
    }
    this.viewport.classList.remove("dragging");
    this.gesture = null;
    this.pinch = null;
    if (!g || cancelled || g.moved || g.pinched) return;
    const p = this.pixelAt(e.clientX, e.clientY);
    if (p) this.hooks.onTap(p.x, p.y, { inspect: g.shift, clientX: e.clientX, clientY: e.clientY });
  }

  wheel(e) {
    e.preventDefault();
    const r = this.rect();
    // Lines and pages to pixels, then a smooth exponential zoom; trackpad
    // pinches arrive as wheel events with ctrlKey and small deltas.
    const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? r.height : 1;
    const dy = Math.max(-300, Math.min(300, e.deltaY * unit));
    const factor = Math.exp(-dy * (e.ctrlKey ? 0.01 : 0.0025));
    this.zoomAt(factor, e.clientX - r.left, e.clientY - r.top);
    this.setHover(this.pixelAt(e.clientX, e.clientY));
  }

  key(e) {
    const t = e.target;
    if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.defaultPrevented) return; // taken by a control (the palette's arrows)
    const step = e.shiftKey ? KEY_PAN * 4 : KEY_PAN;
    switch (e.key) {
      case "ArrowLeft": case "a": case "A": this.panBy(step, 0); break;
      case "ArrowRight": case "d": case "D": this.panBy(-step, 0); break;
      case "ArrowUp": case "w": case "W": this.panBy(0, step); break;
      case "ArrowDown": case "s": case "S": this.panBy(0, -step); break;
      case "+": case "=": this.zoomCenter(KEY_ZOOM); break;
      case "-": case "_": this.zoomCenter(1 / KEY_ZOOM); break;
      // Digits pick colors (main.js).
      case "f": case "F": this.fit(); break;
      default: return;
    }
    e.preventDefault();
  }
}
