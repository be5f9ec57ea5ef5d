// Keeps a chunked board (chunked_board.js) equal to the stored one for the
// chunks near the view: the same socket, reconnects and heartbeat as the
// whole board's Sync, with loading done chunk by chunk.
//
// The order that leaves no gap: subscribe to the held chunks
// (`{"type":"subscribe","chunks":[[cx,cy],…]}`), wait for `subscribed` (from
// then on the socket carries every event of those chunks), THEN fetch each
// chunk new to the set (a new socket hears the whole board until its first
// `subscribed`, so the first set is fetched at once); a chunk applies only the events after its
// `X-Canvas-Seq`, and buffers them while its bytes are on their way. Seqs
// are canvas-wide, so a subset of chunks sees gaps by design: there is no
// gap repair here. A new socket or a `resync` (events may have been missed)
// subscribes again and reloads every held chunk; the HTTP cache makes an
// unchanged chunk a 304.

import { Sync } from "./sync.js";
import { fetchChunk } from "./chunk_loader.js";

/** How long a moving view waits before its chunk set is sent (at most one subscribe per interval). */
const FOLLOW_EVERY_MS = 100;
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 15000;
/** The error codes a refused `subscribe` is answered with. */
const REFUSED_SUBSCRIBE = new Set(["rate_limited", "bad_request", "out_of_bounds", "frame_too_large"]);

export class ChunkedSync extends Sync {
  /**
   * @param {import("./chunked_board.js").ChunkedBoard} chunks
   * @param {object} hooks  as Sync's
   */
  constructor(chunks, hooks) {
    super(chunks, hooks);
    this.chunks = chunks;
    this.requested = 0; // subscribes sent on this socket
    this.confirmed = 0; // `subscribed` answers to them (they come in order)
    this.followTimer = 0;
    this.retryDelay = RETRY_BASE_MS;
    this.boardEpoch = ""; // the epoch of the chunks loaded: another one means the board was reset
    this.chunksLoaded = 0; // chunk fetches that arrived (for tests)
    this.heard = 0; // pixel events the socket carried, whatever their framing (for tests)
  }

  dispatch(m) {
    switch (m.type) {
      case "connected":
        this.attempt = 0;
        this.hooks.onConnected(m);
        this.requested = 0;
        this.confirmed = 0;
        this.reload();
        return;
      case "resync":
        this.hooks.onMessage({ type: "info", message: "Catching up with the board…" });
        this.reload();
        return;
      case "subscribed":
        this.subscribed(m);
        return;
      case "error":
        // A subscribe refused (too fast from this IP, say) is never
        // answered `subscribed`, so the answers would no longer match the
        // requests: start over on a new socket, once the limit allows.
        if (m.id == null && this.confirmed < this.requested && REFUSED_SUBSCRIBE.has(m.code)) {
          this.generation++; // this socket's answers no longer count
          setTimeout(() => this.restart(), Number(m.retryAfterMs) || RETRY_BASE_MS);
        }
        super.dispatch(m);
        return;
      default:
        super.dispatch(m);
    }
  }

  onPixel(e) {
    this.heard++;
    this.hooks.onLivePixel?.(e);
    if (typeof e.seq !== "number") return;
    this.chunks.apply(e.x, e.y, e.color, e.seq);
    if (e.seq > this.knownSeq) this.knownSeq = e.seq;
  }

  // The whole board's ways of catching up: here, reloading the held chunks.
  loadBoard() {
    this.reload();
  }

  catchUp() {
    this.reload();
    return Promise.resolve();
  }

  /** Every held chunk may have missed events: subscribe again and load each one again. */
  reload() {
    this.setReady(false);
    this.chunks.invalidateAll();
    this.follow(true);
  }

  /** The view moved: follow it soon (one subscribe per `FOLLOW_EVERY_MS` at most). */
  viewMoved() {
    if (this.followTimer) return;
    this.followTimer = setTimeout(() => {
      this.followTimer = 0;
      this.follow(false);
    }, FOLLOW_EVERY_MS);
  }

  /**
   * Holds the chunks near the view, drops far ones, and subscribes to
   * exactly the held ones when that set changed (or `force`).
   */
  follow(force) {
    if (!this.isOpen()) return;
    const changed = this.chunks.retain();
    const held = this.chunks.held();
    if (!changed && !force && !held.some((c) => c.state === "new")) return;
    // Until its first `subscribed`, a socket hears the whole board (since
    // before `connected`): the chunks of its first subscribe miss nothing
    // if read now, a round trip before the answer.
    const hearsAll = this.requested === 0;
    const n = ++this.requested;
    for (const c of held) {
      if (c.state === "new") {
        c.state = "subscribing";
        c.request = n;
      }
    }
    this.send({ type: "subscribe", chunks: held.map((c) => [c.cx, c.cy]) });
    if (hearsAll) for (const c of held) if (c.state === "subscribing") this.load(c);
  }

  /** The set of subscribe number `confirmed` is in force: load its chunks. */
  subscribed(m) {
    this.confirmed++;
    if (Number(m.seq) > this.knownSeq) this.knownSeq = Number(m.seq);
    for (const c of this.chunks.held()) {
      if (c.state === "subscribing" && c.request <= this.confirmed) this.load(c);
    }
    this.settle();
  }

  async load(c) {
    c.state = "loading";
    const epoch = c.epoch;
    c.abort = new AbortController();
    let got;
    try {
      got = await fetchChunk(c.cx, c.cy, this.chunks.size, c.abort.signal);
    } catch (e) {
      if (epoch !== c.epoch) return; // dropped, or to be loaded again anyway
      this.hooks.onLoadError?.(e);
      const delay = this.retryDelay * (0.5 + Math.random() / 2);
      this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
      setTimeout(() => {
        if (epoch === c.epoch && this.isOpen()) this.load(c);
      }, delay);
      return;
    }
    if (epoch !== c.epoch) return;
    c.abort = null;
    this.retryDelay = RETRY_BASE_MS;
    this.chunksLoaded++;
    if (this.boardEpoch && got.epoch && got.epoch !== this.boardEpoch) {
      // The board was reset since the other chunks were read: read them all again.
      this.boardEpoch = got.epoch;
      this.epoch = got.epoch;
      this.reload();
      return;
    }
    if (got.epoch) this.boardEpoch = this.epoch = got.epoch;
    const overflowed = c.overflowed;
    this.chunks.load(c, got.rgb, got.seq);
    if (overflowed) {
      // Events were dropped while it loaded: read it again (its
      // subscription is in force).
      c.overflowed = false;
      c.epoch++;
      this.load(c);
      return;
    }
    this.settle();
  }

  /** Ready (placing allowed) once the view's chunks are loaded after a (re)subscribe. */
  settle() {
    if (!this.ready && this.isOpen() && this.confirmed === this.requested && this.chunks.inViewLoaded()) {
      this.setReady(true);
    }
  }
}
