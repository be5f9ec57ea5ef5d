// The page around the board: status, palette, cooldown, people, messages
// and the pixel inspector. Everything a server or another player wrote
// (usernames, messages) goes in as text (textContent), never as HTML.

const $ = (id) => document.getElementById(id);

export const USERNAME = /^[A-Za-z0-9_-]{1,32}$/;
const STORE_NAME = "canvas.username";
const STORE_COLOR = "canvas.color";
const TOAST_MS = 4500;
const MAX_TOASTS = 3;

/** localStorage that tolerates being unavailable (private modes, policies). */
export const store = {
  get(key) {
    try { return localStorage.getItem(key) || ""; } catch { return ""; }
  },
  /** Returns whether the value was kept (storage can be full or off). */
  set(key, value) {
    try {
      localStorage.setItem(key, value);
      return true;
    } catch {
      return false;
    }
  },
  remove(key) {
    try { localStorage.removeItem(key); } catch { /* nothing kept */ }
  },
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** "4.2 s", "45 s", "2:05". */
export function formatWait(ms) {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.ceil(s)} s`;
  const whole = Math.ceil(s);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.round(h / 24)} days ago`;
}

function clip(text, n = 140) {
  text = String(text ?? "");
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

/** A short sentence for an `error` frame (or an HTTP error body). */
export function errorText(m) {
  switch (m.code) {
    case "cooldown": return `Cooldown: you can place again in ${formatWait(m.retryAfterMs || 0)}.`;
    case "out_of_bounds": return "That spot is off the board.";
    case "invalid_color": return "That color can't be placed here.";
    case "invalid_username": return "A name is 1–32 letters, digits, _ or -.";
    case "rate_limited": return m.retryAfterMs
      ? `Too fast from your network: wait ${formatWait(m.retryAfterMs)}.`
      : "Too fast: slow down a little.";
    case "banned": return "You are banned from placing pixels.";
    case "protected": return "This area is protected by the moderators.";
    case "unauthorized": return "Choose a name (top right) to place pixels.";
    case "username_taken": return "That name is taken by another player.";
    case "unavailable": return "The board is busy; nothing was placed. Try again.";
    case "frame_too_large": return "That message was too large to send.";
    case "internal": return "Something went wrong on the server; nothing was placed.";
    default: return clip(m.message || m.code || "Something went wrong.");
  }
}

export class Toasts {
  constructor() {
    this.box = $("toasts");
  }

  /**
   * Shows `text` for a few seconds. A toast with a `topic` replaces the
   * last one of that topic, and `dismiss(topic)` takes it down as soon as
   * what it says is no longer true (a cooldown that ended).
   */
  show(text, kind = "error", topic = "") {
    const t = el("div", `toast ${kind}`, clip(text, 200));
    t.setAttribute("role", kind === "error" ? "alert" : "status");
    if (topic) {
      this.dismiss(topic);
      t.dataset.topic = topic;
    }
    this.box.append(t);
    while (this.box.children.length > MAX_TOASTS) this.box.firstElementChild.remove();
    setTimeout(() => t.remove(), TOAST_MS);
  }

  dismiss(topic) {
    for (const t of this.box.querySelectorAll(`[data-topic="${topic}"]`)) t.remove();
  }
}

export class Status {
  constructor() {
    this.box = $("status");
    this.text = $("status-text");
    this.pod = "";
  }

  set(status, detail) {
    const label = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "Offline" };
    this.box.className = `status ${status}`;
    this.box.dataset.status = status;
    this.text.textContent = label[status] || status;
    const parts = [];
    if (this.pod) parts.push(`gateway ${this.pod}`);
    if (detail) parts.push(clip(detail, 80));
    this.box.title = parts.join(" · ");
  }
}

/**
 * The key that picks the palette's `i`th color (from 0): 1–9 and 0 the
 * first ten, Shift with them the next ten, none past twenty ("[" and "]"
 * step through every color).
 */
export function paletteKey(i) {
  const digit = String((i + 1) % 10);
  if (i < 10) return digit;
  if (i < 20) return `Shift+${digit}`;
  return "";
}

/** The palette index a key press picks (see `paletteKey`), or -1. */
export function paletteIndexOfKey(e) {
  const m = /^(?:Digit|Numpad)(\d)$/.exec(e.code);
  if (!m) return -1;
  const n = (Number(m[1]) + 9) % 10; // "1" is the first color, "0" the tenth
  return e.shiftKey ? n + 10 : n;
}

/** The colors to pick from: the palette's swatches, or a color picker. */
export class Palette {
  constructor() {
    this.box = $("palette");
    this.current = $("current-color");
    this.colors = [];
    this.any = false;
    this.color = store.get(STORE_COLOR).toUpperCase() || "#000000";
    /** Called with each picked color (the reticle shows it). */
    this.onPick = null;
    // Arrow keys move between swatches (one tab stop for the whole group).
    this.box.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
      if (!step || !this.pickStep(step)) return;
      e.preventDefault();
      this.box.querySelector(`[data-color="${this.color}"]`)?.focus();
    });
  }

  render(palette, anyColor) {
    const key = JSON.stringify([palette, anyColor]);
    if (key === this.key) return;
    this.key = key;
    this.colors = palette.map((c) => c.toUpperCase());
    this.any = anyColor;
    this.box.textContent = "";
    if (anyColor) {
      this.box.className = "palette single-row";
      const label = el("label", "picker");
      const input = el("input");
      input.type = "color";
      input.id = "color-picker";
      input.value = this.color.toLowerCase();
      input.addEventListener("input", () => this.pick(input.value.toUpperCase()));
      label.append(input, el("span", "", "Any color"));
      this.box.append(label);
    } else {
      this.box.className = this.colors.length > 16 ? "palette" : "palette single-row";
      this.colors.forEach((c, i) => {
        const b = el("button", "swatch-btn");
        b.type = "button";
        b.setAttribute("role", "radio");
        const key = paletteKey(i);
        b.setAttribute("aria-label", c);
        b.title = key ? `${c} (key ${key})` : c;
        // Shown on the swatch while the list of keys is open.
        if (key) b.dataset.key = key.replace("Shift+", "⇧");
        b.dataset.color = c;
        b.style.background = c;
        b.addEventListener("click", () => this.pick(c));
        this.box.append(b);
      });
      if (!this.colors.includes(this.color)) this.color = this.colors.includes("#000000") ? "#000000" : this.colors[0];
    }
    this.pick(this.color);
  }

  /** Picks the palette's `i`th color (from 0), if it has one. */
  pickIndex(i) {
    if (this.any || i < 0 || i >= this.colors.length) return false;
    this.pick(this.colors[i]);
    return true;
  }

  /** Picks the next (`step` 1) or previous (-1) color, wrapping around. */
  pickStep(step) {
    if (this.any || this.colors.length === 0) return false;
    const i = (this.colors.indexOf(this.color) + step + this.colors.length) % this.colors.length;
    return this.pickIndex(i);
  }

  pick(color) {
    this.color = color;
    store.set(STORE_COLOR, color);
    this.current.style.background = color;
    this.onPick?.(color);
    for (const b of this.box.querySelectorAll(".swatch-btn")) {
      const on = b.dataset.color === color;
      b.setAttribute("aria-checked", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
    }
  }
}

/** The wait between placements, counted down where the player can see it. */
export class Cooldown {
  constructor(onChange) {
    this.box = $("cooldown");
    this.text = $("cooldown-text");
    this.bar = $("cooldown-bar");
    this.until = 0;
    this.total = 0;
    this.timer = 0;
    this.onChange = onChange;
  }

  get active() {
    return Date.now() < this.until;
  }

  remaining() {
    return Math.max(0, this.until - Date.now());
  }

  start(ms) {
    if (!(ms > 0)) return;
    const until = Date.now() + ms;
    if (until <= this.until) return;
    this.until = until;
    this.total = ms;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 100);
    this.tick();
  }

  tick() {
    const left = this.remaining();
    if (left <= 0) {
      clearInterval(this.timer);
      this.timer = 0;
      this.box.className = "cooldown ready";
      this.text.textContent = "Ready";
      this.bar.style.width = "0";
      this.onChange?.(false);
      return;
    }
    this.box.className = "cooldown cooling";
    this.text.textContent = `Wait ${formatWait(left)}`;
    this.bar.style.width = `${(100 * left) / this.total}%`;
    this.onChange?.(true);
  }
}

/** Online count and the list of names. */
export class People {
  constructor() {
    this.online = $("online");
    this.count = $("people-count");
    this.list = $("user-list");
    this.more = $("user-more");
    this.panel = $("people");
    this.toggle = $("people-toggle");
    this.me = "";
    this.users = [];
    this.toggle.addEventListener("click", () => this.show(this.panel.hidden));
    // Open by default where there is room for it.
    if (window.matchMedia("(min-width: 900px)").matches) this.show(true);
  }

  show(open) {
    this.panel.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  stats(m) {
    // Stats only come over a live socket, so this page is one of them even
    // when the figure predates it.
    const n = Math.max(1, Number(m.activeUsers) || 0);
    this.online.textContent = `${n} online`;
    this.count.textContent = `· ${n}`;
  }

  userList(m) {
    this.users = Array.isArray(m.users) ? m.users.map(String) : [];
    const total = Math.max(Number(m.total) || 0, this.users.length);
    this.list.textContent = "";
    for (const name of this.users) {
      const li = el("li", name === this.me ? "me" : "", name);
      li.title = name;
      this.list.append(li);
    }
    const extra = total - this.users.length;
    this.more.hidden = extra <= 0;
    this.more.textContent = extra > 0 ? `+${extra} more` : "";
  }

  setMe(name) {
    this.me = name;
    for (const li of this.list.children) li.classList.toggle("me", li.textContent === name);
  }
}

/** Who placed a pixel, and when. */
export class Inspector {
  constructor() {
    this.panel = $("inspect");
    this.request = 0;
    $("inspect-close").addEventListener("click", () => this.hide());
  }

  hide() {
    this.panel.hidden = true;
    this.request++;
  }

  async show(x, y, shownColor) {
    const request = ++this.request;
    this.panel.hidden = false;
    this.panel.dataset.x = x;
    this.panel.dataset.y = y;
    $("inspect-coords").textContent = `(${x}, ${y})`;
    $("inspect-color").textContent = shownColor || "";
    $("inspect-swatch").style.background = shownColor || "transparent";
    const who = $("inspect-who");
    const when = $("inspect-when");
    who.textContent = "Looking…";
    when.textContent = "";
    this.panel.dataset.state = "loading";
    let text = "";
    let time = "";
    let state = "error";
    try {
      const r = await fetch(`/api/pixel/${x}/${y}`, { cache: "no-store" });
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        text = `Placed by ${body.username}`;
        const t = new Date(body.timestamp);
        time = `${ago(body.timestamp)} · ${t.toLocaleString()}`;
        $("inspect-color").textContent = body.color;
        $("inspect-swatch").style.background = body.color;
        state = "placed";
      } else if (body?.error?.code === "never_placed") {
        text = "Nobody yet: this pixel was never placed.";
        state = "never";
      } else {
        text = errorText(body?.error || { message: `error ${r.status}` });
      }
    } catch {
      text = "Could not reach the server.";
    }
    if (request !== this.request) return;
    who.textContent = text;
    when.textContent = time;
    this.panel.dataset.state = state;
  }
}

/** The name field: remembered in localStorage, applied on change. */
export class NameField {
  constructor(onChange, toasts) {
    this.input = $("username");
    this.onChange = onChange;
    this.toasts = toasts;
    this.saved = store.get(STORE_NAME);
    if (!USERNAME.test(this.saved)) this.saved = "";
    this.input.value = this.saved;
    this.input.addEventListener("change", () => this.commit());
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        this.input.blur();
      } else if (e.key === "Escape") {
        this.input.value = this.current;
        this.input.blur();
      }
    });
    this.current = this.saved;
  }

  /** The name to connect with: the remembered one, or "" for a guest name. */
  get remembered() {
    return this.saved;
  }

  /** The server's name for us (a guest name when we asked for none). */
  connectedAs(name) {
    this.current = name;
    if (document.activeElement !== this.input) this.input.value = name;
  }

  commit() {
    const name = this.input.value.trim();
    if (name === this.current) return;
    if (!USERNAME.test(name)) {
      this.toasts.show("A name is 1–32 letters, digits, _ or -.");
      this.input.value = this.current;
      return;
    }
    this.saved = name;
    this.current = name;
    store.set(STORE_NAME, name);
    this.onChange(name);
  }
}

/** The list of keys and gestures: the "?" button or key opens it. */
export class Help {
  constructor() {
    this.panel = $("help");
    this.toggle = $("help-toggle");
    this.toggle.addEventListener("click", () => this.show(this.panel.hidden));
    $("help-close").addEventListener("click", () => this.show(false));
  }

  show(open) {
    this.panel.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    // The swatches show their keys while the list is open.
    document.body.classList.toggle("show-keys", open);
  }
}
