// The time scrubber: the board as it was at any moment, from the server's
// history archive (`/api/history/board.png?at=`), and its timelapse
// (`/api/timelapse`, an animated PNG) played in the page. While a past
// moment is shown the live board keeps updating underneath, unseen, and
// placing is off; "Back to live" shows it again.

const $ = (id) => document.getElementById(id);

/** How long the slider must rest before the page asks for that moment. */
const SCRUB_DELAY_MS = 120;

export class HistoryScrubber {
  /**
   * @param {import("./board.js").Board} board
   * @param {{ show(text: string, kind?: string, key?: string): void }} toasts
   */
  constructor(board, toasts) {
    this.board = board;
    this.toasts = toasts;
    this.panel = $("history");
    this.toggle = $("history-toggle");
    this.slider = $("history-time");
    this.when = $("history-when");
    this.player = $("timelapse");
    /** The moment shown (ms since the epoch), or null while live. */
    this.at = null;
    this.timer = 0;
    /** Bumped per request, so a slow answer never replaces a newer one. */
    this.asked = 0;
    this.toggle.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close()));
    $("history-close").addEventListener("click", () => this.close());
    $("history-live").addEventListener("click", () => this.live());
    $("timelapse-play").addEventListener("click", () => this.play());
    this.slider.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.when.textContent = moment(Number(this.slider.value));
      this.timer = setTimeout(() => this.show(Number(this.slider.value)), SCRUB_DELAY_MS);
    });
  }

  /** True while a past moment is on screen. */
  get showingPast() {
    return this.at !== null;
  }

  async open() {
    let info;
    try {
      const r = await fetch("/api/history", { cache: "no-store" });
      if (r.status === 404) {
        this.toasts.show("This server keeps no history (HISTORY_ARCHIVE is off).", "info", "history");
        return;
      }
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      info = await r.json();
    } catch (e) {
      this.toasts.show(`Could not read the history (${e.message}).`, "error", "history");
      return;
    }
    if (info.from == null || info.to == null) {
      this.toasts.show("Nothing is archived yet: place a pixel first.", "info", "history");
      return;
    }
    this.slider.min = String(info.from);
    this.slider.max = String(Math.max(info.to, info.from + 1));
    this.slider.step = "1";
    this.slider.value = String(this.at ?? info.to);
    this.when.textContent = moment(Number(this.slider.value));
    this.panel.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    this.slider.focus();
  }

  close() {
    this.live();
    this.panel.hidden = true;
    this.toggle.setAttribute("aria-expanded", "false");
  }

  /** Shows the board as it was at `at`. */
  async show(at) {
    const asked = ++this.asked;
    try {
      const r = await fetch(`/api/history/board.png?at=${at}`);
      if (!r.ok) {
        const body = await r.json().catch(() => null);
        throw new Error(body?.error?.message || `HTTP ${r.status}`);
      }
      const image = await createImageBitmap(await r.blob());
      if (asked !== this.asked) return;
      this.at = at;
      document.body.classList.add("past");
      this.board.showPast(image);
      this.when.textContent = `${moment(at)} (write ${r.headers.get("x-canvas-seq")})`;
    } catch (e) {
      if (asked === this.asked) this.toasts.show(`Could not show that moment (${e.message}).`, "error", "history");
    }
  }

  /** Back to the live board. */
  live() {
    this.asked++;
    clearTimeout(this.timer);
    this.at = null;
    document.body.classList.remove("past");
    this.board.showLive();
    this.when.textContent = "Live: move the slider to look back";
    this.player.hidden = true;
    this.player.removeAttribute("src");
  }

  /** Plays the whole archive as a timelapse, in the panel. */
  play() {
    this.player.hidden = false;
    this.player.src = `/api/timelapse?frames=60&fps=15&t=${Date.now()}`;
  }
}

function moment(ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}
