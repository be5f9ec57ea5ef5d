// The minimap: the whole board, small, in a corner, with the part on screen
// outlined; a click or tap (or a drag) on it moves the view there. The
// picture is the board canvas scaled down by one drawImage, redrawn at most
// a few times a second while the board changes; the outline is one element
// moved with the view. It can be folded away (on phones it starts folded, so
// it never covers the board or the toolbar).

import { store } from "./ui.js";

const STORE_MINIMAP = "canvas.minimap";
/** Longest side of the minimap, in CSS px (phones: see style.css). */
const SIDE = 180;
/** The fewest milliseconds between two redraws of the picture. */
const REDRAW_MS = 250;

export class Minimap {
  /**
   * @param {HTMLElement} box  the minimap's frame (canvas and outline inside)
   * @param {HTMLCanvasElement} board  the board canvas, drawn from
   * @param {import("./view.js").View} view
   * @param {HTMLButtonElement} toggle  folds and unfolds it
   */
  constructor(box, board, view, toggle) {
    this.box = box;
    this.board = board;
    this.view = view;
    this.toggle = toggle;
    this.canvas = box.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.outline = box.querySelector(".minimap-view");
    this.timer = 0;
    this.lastDraw = 0;
    const saved = store.get(STORE_MINIMAP);
    const wide = window.matchMedia("(min-width: 721px)").matches;
    this.open = saved ? saved === "open" : wide;
    toggle.addEventListener("click", () => this.show(!this.open, true));
    this.canvas.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      try { this.canvas.setPointerCapture(e.pointerId); } catch { /* not capturable */ }
      this.goTo(e);
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (this.canvas.hasPointerCapture?.(e.pointerId)) this.goTo(e);
    });
    this.show(this.open, false);
  }

  show(open, remember) {
    this.open = open;
    this.box.hidden = !open || !this.view.width;
    this.toggle.setAttribute("aria-pressed", String(open));
    if (remember) store.set(STORE_MINIMAP, open ? "open" : "closed");
    if (open) {
      this.draw();
      this.place();
    }
  }

  /** The board's size: the minimap keeps its proportions. */
  setBoardSize(width, height) {
    const k = SIDE / Math.max(width, height);
    this.canvas.width = Math.max(1, Math.round(width * k));
    this.canvas.height = Math.max(1, Math.round(height * k));
    this.show(this.open, false);
  }

  /** The board changed: redraw soon, at most every `REDRAW_MS`. */
  boardChanged() {
    if (!this.open || this.timer) return;
    const wait = Math.max(0, this.lastDraw + REDRAW_MS - performance.now());
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.draw();
    }, wait);
  }

  draw() {
    if (!this.open || !this.view.width) return;
    this.lastDraw = performance.now();
    this.ctx.imageSmoothingEnabled = true;
    this.ctx.drawImage(this.board, 0, 0, this.canvas.width, this.canvas.height);
  }

  /** Outlines the part of the board on screen (called in the frame the view moves). */
  place() {
    const v = this.view;
    if (!this.open || !v.width) return;
    const r = v.rect();
    const k = this.canvas.clientWidth / v.width; // minimap CSS px per board pixel
    const clip = (a, lo, hi) => Math.min(hi, Math.max(lo, a));
    const x0 = clip(-Math.round(v.tx) / v.scale, 0, v.width);
    const y0 = clip(-Math.round(v.ty) / v.scale, 0, v.height);
    const x1 = clip((r.width - Math.round(v.tx)) / v.scale, 0, v.width);
    const y1 = clip((r.height - Math.round(v.ty)) / v.scale, 0, v.height);
    const o = this.outline.style;
    o.transform = `translate(${x0 * k}px, ${y0 * k}px)`;
    o.width = `${Math.max(2, (x1 - x0) * k)}px`;
    o.height = `${Math.max(2, (y1 - y0) * k)}px`;
  }

  /** Moves the view so the pixel under the pointer is in the middle, at the same zoom. */
  goTo(e) {
    const v = this.view;
    const r = this.canvas.getBoundingClientRect();
    const x = Math.floor(((e.clientX - r.left) / r.width) * v.width);
    const y = Math.floor(((e.clientY - r.top) / r.height) * v.height);
    v.goTo({ x, y, z: v.scale });
  }
}
