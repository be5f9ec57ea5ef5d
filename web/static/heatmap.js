// Where people are placing now: every live pixel event this page receives
// warms one cell of a coarse grid over the board, and the heat halves every
// few seconds. Counting an event is one addition into a fixed array (no DOM
// work, no allocation), so 1,000 events a second cost nothing; the grid is
// drawn, a few times a second while shown, as one small canvas scaled over
// the board.

/** Most cells along the board's longer side: bounds memory and drawing (at most 160×160 cells). */
export const HEAT_CELLS = 160;
/** Seconds for the heat of a cell to halve. */
export const HEAT_HALF_LIFE_S = 4;
/** Heat below which a cell shows nothing: one event shows for about 16 s (four half-lives). */
export const HEAT_VISIBLE = 1 / 16;
/** How often the heat decays and is drawn while shown. */
const TICK_MS = 250;

export class Heatmap {
  /** @param {HTMLCanvasElement} canvas  the overlay, inside the viewport */
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.on = false;
    this.cell = 1;
    this.cols = 0;
    this.rows = 0;
    this.heat = new Float32Array(0);
    this.image = null;
    this.timer = 0;
    this.last = performance.now();
    /** Events counted, and heat grids drawn, since the page loaded (for tests). */
    this.events = 0;
    this.draws = 0;
  }

  /** The board's size: one cell covers `cell` × `cell` board pixels. */
  setBoardSize(width, height) {
    const cell = Math.max(1, Math.ceil(Math.max(width, height) / HEAT_CELLS));
    const cols = Math.ceil(width / cell);
    const rows = Math.ceil(height / cell);
    if (cell === this.cell && cols === this.cols && rows === this.rows) return;
    this.cell = cell;
    this.cols = cols;
    this.rows = rows;
    this.heat = new Float32Array(cols * rows);
    this.canvas.width = cols;
    this.canvas.height = rows;
    this.image = this.ctx.createImageData(cols, rows);
  }

  /** One live pixel event at board pixel (x, y). */
  add(x, y) {
    const c = Math.floor(x / this.cell);
    const r = Math.floor(y / this.cell);
    if (c < 0 || r < 0 || c >= this.cols || r >= this.rows) return;
    this.heat[r * this.cols + c] += 1;
    this.events++;
    if (!this.timer) this.start();
  }

  /** Shows or hides the heat; it is counted either way, so it is there at once when shown. */
  show(on) {
    this.on = on;
    this.canvas.hidden = !on;
    if (on) {
      if (!this.timer) this.start();
      this.tick();
    }
  }

  /** Decays the heat on a timer while any is left or while it is shown. */
  start() {
    this.last = performance.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Decays the heat to now and, when shown, draws it; stops the timer once all is cold and hidden. */
  tick() {
    const now = performance.now();
    const k = Math.pow(0.5, (now - this.last) / 1000 / HEAT_HALF_LIFE_S);
    this.last = now;
    const heat = this.heat;
    let hottest = 0;
    for (let i = 0; i < heat.length; i++) {
      const h = heat[i] * k;
      heat[i] = h;
      if (h > hottest) hottest = h;
    }
    if (this.on && this.image) this.draw();
    else if (hottest < HEAT_VISIBLE) {
      heat.fill(0);
      clearInterval(this.timer);
      this.timer = 0;
    }
  }

  /**
   * Warm colors over the board: yellow for a little heat to red for a lot,
   * more opaque the hotter; below `HEAT_VISIBLE`, nothing.
   */
  draw() {
    const d = this.image.data;
    const heat = this.heat;
    for (let i = 0, j = 0; i < heat.length; i++, j += 4) {
      const h = heat[i];
      if (h < HEAT_VISIBLE) {
        d[j + 3] = 0;
        continue;
      }
      const t = 1 - Math.exp(-h / 3); // 0 (cold) .. 1 (hot)
      d[j] = 255;
      d[j + 1] = Math.round(220 * (1 - t));
      d[j + 2] = 0;
      d[j + 3] = Math.round(255 * (0.45 + 0.5 * t));
    }
    this.ctx.putImageData(this.image, 0, 0);
    this.draws++;
  }

  /** Puts the overlay over the board (called in the frame the view moves). */
  place(view) {
    const s = view.scale * this.cell;
    this.canvas.style.transform = `translate(${Math.round(view.tx)}px, ${Math.round(view.ty)}px) scale(${s})`;
  }
}
