// Keeps the page's board equal to the stored one: the WebSocket (protocol
// v2: pixel events and placements binary, see wire.js; the rest JSON as in
// v1), loading without gaps, catching up after a reconnect or a missing
// `seq`, and reconnecting with exponential backoff and jitter.
//
// Loading: the socket opens first and live events are buffered while
// `/api/canvas.bin` is fetched; then the board replaces everything and the
// buffered events newer than its `X-Canvas-Seq` are applied. Afterwards live
// events are applied as they come: the board keeps the highest `seq` per
// pixel, so order does not matter, and `knownSeq` (every write up to it is
// applied) tells where to catch up from.

import { decodePixels, encodePlace } from "./wire.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;
/** Failed attempts in a row after which the status says offline. */
const OFFLINE_AFTER = 4;
/** How long a missing seq may stay missing before we fetch it ourselves
 * (the gateway repairs its own gaps within about half a second). */
const GAP_GRACE_MS = 2000;
/** More out-of-order seqs than this waiting for a gap: refetch the board. */
const MAX_PENDING = 100000;
const PING_EVERY_MS = 15000;
/** No frame at all for this long: the connection is dead, drop it. */
const SILENCE_LIMIT_MS = 45000;
const UPDATES_PAGE = 1000;

export class Sync {
  /**
   * @param {import("./board.js").Board} board
   * @param {object} hooks  onStatus(status, detail), onConnected(message),
   *   onMessage(message) for everything but pixels, onLoadError(error),
   *   username() -> the name to connect with, or "" for a guest name,
   *   token() -> the session token to connect with, or "" (optional),
   *   beforeConnect() -> a promise to await before each connect (optional),
   *   onUnauthorized(reason) when the server refused the token (4001),
   *   onLivePixel(event) for each live pixel event as it arrives (optional)
   */
  constructor(board, hooks) {
    this.board = board;
    this.hooks = hooks;
    this.status = "connecting";
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = 0;
    this.pingTimer = 0;
    this.lastFrameAt = 0;
    this.knownSeq = -1; // every write with seq <= knownSeq is applied
    this.epoch = ""; // the board's epoch: seqs compare only within one
    this.pending = new Set(); // applied seqs above knownSeq + 1
    this.gapTimer = 0;
    this.loading = false; // a board fetch is running: buffer live events
    this.buffer = [];
    this.needBoard = true; // next connect loads the board instead of catching up
    this.afterLoad = ""; // what a running board fetch must be followed by
    this.catchingUp = null; // the running catch-up's promise
    this.catchUpAgain = false;
    this.ready = false; // connected and the board is current
    this.generation = 0; // bumped per socket, so stale callbacks do nothing
    this.nextId = 1;
    window.addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.connect();
    this.pingTimer = setInterval(() => this.heartbeat(), PING_EVERY_MS);
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const token = this.hooks.token ? this.hooks.token() : "";
    const name = this.hooks.username();
    // A token says who we are; the name alone is believed only with AUTH=open.
    // protocol=2: pixel events come as binary messages, several per message
    // under load, encoded once by the gateway for every such client.
    const who = token ? "&token=" + encodeURIComponent(token) : name ? "&username=" + encodeURIComponent(name) : "";
    return scheme + location.host + "/ws?protocol=2" + who;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    const generation = ++this.generation;
    const prepare = this.hooks.beforeConnect ? this.hooks.beforeConnect() : null;
    if (prepare) {
      const open = () => {
        if (generation === this.generation) this.open(generation);
      };
      prepare.then(open, open);
    } else {
      this.open(generation);
    }
  }

  /** Opens the socket of connection attempt `generation`. */
  open(generation) {
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.closed(generation, 0, String(e));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.lastFrameAt = performance.now();
    ws.onmessage = (ev) => {
      if (generation !== this.generation) return;
      this.lastFrameAt = performance.now();
      if (typeof ev.data !== "string") {
        // A type this client does not know (a newer gateway's) is skipped.
        const events = decodePixels(ev.data);
        if (events) for (const e of events) this.onPixel(e);
        return;
      }
      let message;
      try {
        message = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.dispatch(message);
    };
    ws.onclose = (ev) => this.closed(generation, ev.code, ev.reason);
    ws.onerror = () => {}; // onclose follows with the code
  }

  /** Sends a message if the socket is open; returns whether it was sent. */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Places a pixel (a binary `PLACE`; JSON when it does not fit one);
   * returns the request id, or 0 when not connected. */
  place(x, y, color) {
    const id = this.nextId++;
    const place = encodePlace(id, x, y, color);
    if (!place) return this.send({ type: "pixel_update", x, y, color, id }) ? id : 0;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return 0;
    this.ws.send(place);
    return id;
  }

  dispatch(m) {
    switch (m.type) {
      case "batch":
        if (Array.isArray(m.events)) for (const e of m.events) this.dispatch(e);
        return;
      case "pixel_updated":
        this.onPixel(m);
        return;
      case "connected":
        this.attempt = 0;
        this.hooks.onConnected(m);
        if (this.loading) this.afterLoad ||= "catchup";
        else if (this.needBoard || !this.board.loaded) this.loadBoard();
        else this.catchUp();
        return;
      case "resync":
        this.hooks.onMessage({ type: "info", message: "Catching up with the board…" });
        if (this.loading) this.afterLoad = "reload";
        else this.loadBoard();
        return;
      default:
        this.hooks.onMessage(m);
    }
  }

  onPixel(e) {
    this.hooks.onLivePixel?.(e);
    if (this.loading) {
      if (this.buffer.length < MAX_PENDING) this.buffer.push(e);
      else this.buffer.overflowed = true;
      return;
    }
    this.applyEvent(e);
  }

  /** Paints one event (when newer than the pixel) and tracks its seq. */
  applyEvent(e) {
    if (typeof e.seq !== "number") return;
    this.board.apply(e.x, e.y, e.color, e.seq);
    if (e.seq <= this.knownSeq) return;
    if (e.seq === this.knownSeq + 1) {
      this.knownSeq = e.seq;
      this.advance();
    } else {
      this.pending.add(e.seq);
      if (this.pending.size > MAX_PENDING) {
        this.loadBoard();
        return;
      }
      if (!this.gapTimer) this.gapTimer = setTimeout(() => this.gapExpired(), GAP_GRACE_MS);
    }
  }

  advance() {
    while (this.pending.has(this.knownSeq + 1)) {
      this.pending.delete(this.knownSeq + 1);
      this.knownSeq++;
    }
    if (this.pending.size === 0 && this.gapTimer) {
      clearTimeout(this.gapTimer);
      this.gapTimer = 0;
    }
  }

  gapExpired() {
    this.gapTimer = 0;
    if (this.pending.size > 0 && !this.loading) this.catchUp();
  }

  /** Everything up to `seq` is applied (a catch-up read that far). */
  settleTo(seq) {
    if (seq > this.knownSeq) this.knownSeq = seq;
    for (const s of this.pending) if (s <= this.knownSeq) this.pending.delete(s);
    this.advance();
    if (this.pending.size > 0 && !this.gapTimer) {
      this.gapTimer = setTimeout(() => this.gapExpired(), GAP_GRACE_MS);
    }
  }

  /** Fetches the whole board; live events wait in the buffer meanwhile. */
  async loadBoard() {
    if (this.loading) return;
    this.loading = true;
    this.afterLoad = "";
    this.buffer = [];
    this.setReady(false);
    let delay = BACKOFF_BASE_MS;
    for (;;) {
      try {
        const r = await fetch("/api/canvas.bin", { cache: "no-store" });
        if (!r.ok) throw new Error(`the board answered ${r.status}`);
        const width = Number(r.headers.get("x-canvas-width"));
        const height = Number(r.headers.get("x-canvas-height"));
        const seq = Number(r.headers.get("x-canvas-seq"));
        if (!(width > 0 && height > 0 && seq >= 0)) throw new Error("the board came without its size or seq");
        const bytes = new Uint8Array(await r.arrayBuffer());
        this.board.load(width, height, bytes, seq);
        this.knownSeq = seq;
        this.epoch = r.headers.get("x-canvas-epoch") || "";
        this.pending.clear();
        clearTimeout(this.gapTimer);
        this.gapTimer = 0;
        break;
      } catch (e) {
        this.hooks.onLoadError?.(e);
        await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      }
    }
    const buffered = this.buffer;
    this.buffer = [];
    this.loading = false;
    this.needBoard = false;
    for (const e of buffered) this.applyEvent(e);
    const next = this.afterLoad;
    this.afterLoad = "";
    if (next === "reload") {
      this.loadBoard();
    } else if (next === "catchup" || buffered.overflowed) {
      // A new socket opened, or events were dropped, while the board was on
      // its way: fetch whatever came after it.
      this.catchUp();
    } else {
      this.setReady(this.isOpen());
    }
  }

  /** Applies every write after `knownSeq` from `/api/updates`, page by page. */
  catchUp() {
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return this.catchingUp;
    }
    this.catchingUp = (async () => {
      do {
        this.catchUpAgain = false;
        await this.catchUpOnce();
      } while (this.catchUpAgain && !this.loading);
    })().finally(() => {
      this.catchingUp = null;
      if (!this.loading) this.setReady(this.isOpen());
    });
    return this.catchingUp;
  }

  async catchUpOnce() {
    let since = this.knownSeq;
    let delay = BACKOFF_BASE_MS;
    for (;;) {
      if (this.loading) return;
      let r;
      try {
        // With the epoch, a store that lost its data since our board was
        // read answers 410 even once its new seqs have passed ours.
        const epoch = this.epoch ? `&epoch=${encodeURIComponent(this.epoch)}` : "";
        r = await fetch(`/api/updates?since=${since}&limit=${UPDATES_PAGE}${epoch}`, { cache: "no-store" });
      } catch (e) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
        continue;
      }
      if (r.status === 410) {
        // The replay log no longer reaches back that far, or the board was
        // reset (another epoch).
        await this.loadBoard();
        return;
      }
      if (!r.ok) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
        continue;
      }
      const page = await r.json();
      if (this.loading) return;
      let last = since;
      for (const e of page.events || []) {
        this.applyEvent(e);
        if (e.seq > last) last = e.seq;
      }
      if (page.hasMore && last > since) {
        since = last;
        continue;
      }
      // Every write up to latestSeq is now applied.
      this.settleTo(Math.max(last, page.latestSeq || 0));
      return;
    }
  }

  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  setReady(ready) {
    this.ready = ready;
    if (ready) this.setStatus("live");
    else if (this.status === "live") this.setStatus("reconnecting");
  }

  setStatus(status, detail = "") {
    if (status === this.status && !detail) return;
    this.status = status;
    this.hooks.onStatus(status, detail);
  }

  /** Drops the socket (if any) and connects again at once: a new name. */
  restart() {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      ws.onclose = null;
      ws.close(1000);
    }
    this.attempt = 0;
    this.connect();
  }

  closed(generation, code, reason) {
    if (generation !== this.generation) return;
    // The token was refused (forged, expired, another secret): forget it;
    // the reconnect gets a new one.
    if (code === 4001 && this.hooks.onUnauthorized) this.hooks.onUnauthorized(reason);
    this.ws = null;
    this.ready = false;
    // A client too slow for the gateway missed events: refetch the board.
    if (code === 4008) this.needBoard = true;
    this.attempt++;
    const quick = code === 1001 && this.attempt === 1;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.attempt - 1));
    const delay = quick ? 100 + Math.random() * 400 : ceiling * (0.5 + Math.random() / 2);
    const offline = this.attempt > OFFLINE_AFTER || navigator.onLine === false;
    this.setStatus(offline ? "offline" : "reconnecting", reason || "");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** The network is back: retry now instead of waiting out the backoff. */
  reconnectNow() {
    if (this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  heartbeat() {
    if (!this.ws) return;
    if (performance.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
      // No pong and no events: the connection died without a close.
      const generation = this.generation;
      try { this.ws.close(); } catch { /* ignore */ }
      this.closed(generation, 0, "no answer");
      this.generation++;
      return;
    }
    this.send({ type: "ping" });
  }
}
