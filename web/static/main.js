// Wires the board, the live connection, the view and the page together, and
// exposes a small read-only hook for tests (`window.__canvas`).

import { Board } from "./board.js";
import { ChunkedBoard } from "./chunked_board.js";
import { ChunkedSync } from "./chunk_sync.js";
import { Session } from "./session.js";
import { Sync } from "./sync.js";
import { View, hashOfPlace, placeOfHash } from "./view.js";
import { HistoryScrubber } from "./history.js";
import { Cooldown, Help, Inspector, NameField, Palette, People, Status, Toasts, errorText, formatWait, paletteIndexOfKey } from "./ui.js";
import { Template, hashOfTemplate, templateOfHash } from "./template.js";
import { TemplatePanel } from "./template_panel.js";
import { Heatmap } from "./heatmap.js";
import { Minimap } from "./minimap.js";

const $ = (id) => document.getElementById(id);

const toasts = new Toasts();
const status = new Status();
const people = new People();
const inspector = new Inspector();
const help = new Help();
const board = new Board($("board"));
/** Chunked mode's board (a board too large to hold whole, or `?chunked=1`), else null. */
let chunkedBoard = null;
const past = new HistoryScrubber(board, toasts);
const reticle = $("reticle");
const coords = $("coords");
const where = $("where");
const loading = $("loading");

let mode = "place";
let connectedOnce = false;
let cooldownMs = 0;
/** A placement sent and not yet answered: one at a time. */
let placing = null;
/** Milliseconds since navigation: when this script ran, when the board was first drawn. */
const timing = { scriptMs: performance.now(), boardShownMs: -1 };

const cooldown = new Cooldown((cooling) => {
  reticle.classList.toggle("cooling", cooling);
  // "You can place again in …" is untrue from now on.
  if (!cooling) toasts.dismiss("cooldown");
});
const palette = new Palette();
// The reticle is filled with the color a tap would place.
palette.onPick = (color) => { reticle.style.backgroundColor = color; };
/** Whether the "zoomed in: tap again" hint was shown (once a page load). */
let zoomHintShown = false;
const session = new Session();
/** The token this connection uses ("" without one), and whether the server
 * requires one (AUTH=required, from /api/config). */
let token = "";
let authRequired = false;
const names = new NameField((name) => {
  people.setMe(name);
  // With tokens, a name is proven at connect time: reconnect as the new one.
  if (authRequired) {
    sync.restart();
    return;
  }
  if (!sync.send({ type: "set_username", username: name })) {
    toasts.show(`You'll be ${name} once reconnected.`, "info");
  }
}, toasts);

const topBar = document.querySelector(".bar.top");
const bottomBar = document.querySelector(".bar.bottom");
const view = new View($("viewport"), $("board"), reticle, $("grid"), {
  insets: () => ({
    top: topBar.getBoundingClientRect().bottom,
    bottom: window.innerHeight - bottomBar.getBoundingClientRect().top,
  }),
  onHover() {
    showCoords();
  },
  onMove() {
    if (chunkedBoard) {
      chunkedBoard.draw();
      sync.viewMoved();
    }
    showCoords();
    linkSoon();
    template.place(view);
    templatePanel.placeHandle();
    heatmap.place(view);
    minimap.place();
  },
  onTap(x, y, { inspect, clientX, clientY }) {
    if (inspect || mode === "inspect") inspector.show(x, y, (chunkedBoard || board).getPixel(x, y));
    else if (!view.canPlace) {
      // Too far out to see the pixel: zoom in on it instead of placing blind.
      view.zoomToPlaceAt(clientX, clientY);
      if (!zoomHintShown) toasts.show("Zoomed in so you can see the pixel: tap again to place it.", "info");
      zoomHintShown = true;
    } else place(x, y);
  },
});

const template = new Template($("template"), board, {
  onChange() {
    templatePanel.render();
    template.place(view);
    linkSoon();
  },
  message: (text, kind) => toasts.show(text, kind, "template"),
});
const templatePanel = new TemplatePanel(template, () => view.place(), view);
const heatmap = new Heatmap($("heatmap"));
const minimap = new Minimap($("minimap"), $("board"), view, $("minimap-toggle"));
const heatmapToggle = $("heatmap-toggle");
function showHeatmap(on) {
  heatmap.show(on);
  heatmapToggle.setAttribute("aria-pressed", String(on));
  heatmapToggle.classList.toggle("on", on);
  if (on) heatmap.place(view);
}
heatmapToggle.addEventListener("click", () => showHeatmap(!heatmap.on));

// The palette, cooldown and rules, shown before the socket is up;
// `connected` repeats the first two.
const configReady = fetch("/api/config", { cache: "no-store" })
  .then((r) => (r.ok ? r.json() : null))
  .catch(() => null);

// Chunked mode is chosen by /api/config before the socket opens (the
// connect awaits the config anyway).
const config = await configReady;
if (config && config.chunkSize > 0 && (config.wholeBoard === false || new URLSearchParams(location.search).get("chunked") === "1")) {
  chunkedBoard = new ChunkedBoard($("chunks"), config.chunkSize);
}
const sync = new (chunkedBoard ? ChunkedSync : Sync)(chunkedBoard || board, {
  username: () => names.remembered,
  token: () => token,
  async beforeConnect() {
    const c = await configReady;
    authRequired = !!(c && c.authRequired);
    token = "";
    const name = names.remembered;
    if (!authRequired || !name) return;
    const got = await session.ensure(name);
    if (got.token) token = got.token;
    else if (got.error === "username_taken") toasts.show(`The name ${name} is taken by another player: choose another to place pixels.`);
    else toasts.show(`Could not sign in as ${name} (${got.error}): you can watch, not place.`);
  },
  onUnauthorized() {
    session.drop();
    token = "";
  },
  onStatus(s, detail) {
    status.set(s, detail);
  },
  onConnected(m) {
    connectedOnce = true;
    status.pod = m.podId || "";
    cooldownMs = Number(m.cooldownMs) || 0;
    names.connectedAs(m.username);
    people.setMe(m.username);
    palette.render(m.palette || [], !!m.anyColor);
  },
  onLivePixel(e) {
    heatmap.add(e.x, e.y);
  },
  onLoadError(e) {
    loading.textContent = `Could not load the board (${e.message}); retrying…`;
  },
  onMessage(m) {
    switch (m.type) {
      case "stats": people.stats(m); break;
      case "user_list": people.userList(m); break;
      case "ack":
        if (placing && m.id === placing.id) placing = null;
        cooldown.start(cooldownMs);
        break;
      case "error":
        if (placing && m.id === placing.id) placing = null;
        if (m.code === "cooldown") cooldown.start(Number(m.retryAfterMs) || 0);
        toasts.show(errorText(m), "error", m.code === "cooldown" ? "cooldown" : "");
        break;
      // The same user placed elsewhere (a script over HTTP): the cooldown
      // holds here too.
      case "placed": cooldown.start(cooldownMs); break;
      case "placement_failed":
        if (m.code === "cooldown") cooldown.start(Number(m.retryAfterMs) || 0);
        break;
      case "notice": toasts.show(String(m.message || m.code || ""), m.code === "info" ? "info" : "error"); break;
      case "info": toasts.show(m.message, "info"); break;
      default: break; // pong, cooldown_over (the countdown ends by itself), and types this client does not know
    }
  },
});

configReady
  .then((c) => {
    if (!c || connectedOnce) return;
    cooldownMs = Number(c.cooldownMs) || 0;
    palette.render(c.palette || [], !!c.anyColor);
  })
  .catch(() => {});

/** Where a link opened the page, until the board's size is known. */
let linkedPlace = placeOfHash(location.hash);
board.onLoad = (width, height) => {
  view.setBoardSize(width, height);
  heatmap.setBoardSize(width, height);
  minimap.setBoardSize(width, height);
  if (linkedPlace) view.goTo(linkedPlace);
  linkedPlace = null;
};
// A template a link carries replaces the one this browser kept.
{
  const linked = templateOfHash(location.hash);
  if (linked) {
    template.loadUrl(linked.url, linked).then((ok) => {
      if (ok) toasts.show("Template from the link: T to move it or take it away.", "info", "template");
    });
  } else template.restore();
}

/** The hovered pixel, else the one in the middle of the screen. */
function showCoords() {
  if (!view.width) return;
  const p = view.hover || view.place();
  coords.textContent = `(${p.x}, ${p.y})`;
  where.hidden = false;
}

// The address bar carries the place on the board (`#x=…&y=…&z=…`), kept
// current a moment after the board stops moving (browsers limit how often
// history may change); the automatic fit needs no place.
const LINK_DELAY_MS = 300;
let linkTimer = 0;
function linkSoon() {
  clearTimeout(linkTimer);
  linkTimer = setTimeout(writeLink, LINK_DELAY_MS);
}
/** The hash for the place (when `withPlace`) and the template (one from a URL). */
function linkHash(withPlace) {
  const parts = [];
  if (withPlace) parts.push(hashOfPlace(view.place()).slice(1));
  if (template.linkable) parts.push(hashOfTemplate(template.linkable));
  return parts.length ? `#${parts.join("&")}` : "";
}
function writeLink() {
  clearTimeout(linkTimer);
  const hash = linkHash(!view.untouched);
  if (hash !== location.hash) history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
}
// A place (or template) typed or pasted into the address bar of an open page.
window.addEventListener("hashchange", () => {
  const p = placeOfHash(location.hash);
  if (p) view.goTo(p);
  // Our own links name the template we show: load only another one.
  const t = templateOfHash(location.hash);
  if (t && !(template.linkable && hashOfTemplate(template.linkable) === hashOfTemplate(t))) template.loadUrl(t.url, t);
});
$("copy-link").addEventListener("click", async () => {
  writeLink();
  const url = `${location.origin}${location.pathname}${linkHash(true)}`;
  // A template from a file stays in this browser: say the link lacks it.
  const without = template.state && !template.linkable ? " (without the template: a file can't be shared by link)" : "";
  try {
    await navigator.clipboard.writeText(url);
    toasts.show(`Link copied${without}: ${url}`, "info", "link");
  } catch {
    // No clipboard here (a page not served over https, or no permission).
    toasts.show(`The link to this place${without}: ${url}`, "info", "link");
  }
});
board.onDraw = (x, y, width, height) => {
  template.boardChanged(x, y, width, height);
  minimap.boardChanged();
  boardShown();
};
/** The board's first pixels are on screen: measured (`canvas:first-paint`, for the benchmark). */
function boardShown() {
  if (timing.boardShownMs >= 0) return;
  timing.boardShownMs = performance.now();
  performance.mark("canvas:first-paint");
  loading.hidden = true;
}
if (chunkedBoard) {
  // The features that need the whole board (history, minimap, heatmap, the
  // template's "only differences") are hidden: see style.css.
  document.body.classList.add("chunked");
  $("board").hidden = true;
  $("chunks").hidden = false;
  chunkedBoard.attach(config.width, config.height, view);
  chunkedBoard.onDraw = boardShown;
  view.minZoom = () => chunkedBoard.minScale();
  view.setBoardSize(config.width, config.height);
  if (linkedPlace) view.goTo(linkedPlace);
  linkedPlace = null;
}

function place(x, y) {
  if (past.showingPast) {
    toasts.show("You are looking at the past: go back to live to place.", "info", "history");
    return;
  }
  if (!sync.ready) {
    toasts.show(sync.status === "live" ? "Still loading the board…" : "Not connected yet: wait a moment.");
    return;
  }
  if (cooldown.active) {
    toasts.show(`Cooldown: you can place again in ${formatWait(cooldown.remaining())}.`, "error", "cooldown");
    return;
  }
  if (placing && performance.now() - placing.at < 5000) return;
  const id = sync.place(x, y, palette.color);
  if (!id) {
    toasts.show("Not connected: nothing was placed.");
    return;
  }
  placing = { id, at: performance.now() };
}

function setMode(next) {
  mode = next;
  for (const [id, m] of [["mode-place", "place"], ["mode-inspect", "inspect"]]) {
    $(id).classList.toggle("on", mode === m);
    $(id).setAttribute("aria-pressed", String(mode === m));
  }
  $("viewport").classList.toggle("inspecting", mode === "inspect");
  if (mode === "place") inspector.hide();
}

$("mode-place").addEventListener("click", () => setMode("place"));
$("mode-inspect").addEventListener("click", () => setMode("inspect"));
$("zoom-in").addEventListener("click", () => view.zoomCenter(1.5));
$("zoom-out").addEventListener("click", () => view.zoomCenter(1 / 1.5));
$("zoom-fit").addEventListener("click", () => view.fit());
window.addEventListener("keydown", (e) => {
  const t = e.target;
  if (t instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.defaultPrevented) return; // taken by the view or a control
  const color = paletteIndexOfKey(e);
  if (e.key === " " && !(t instanceof HTMLButtonElement)) {
    // Places at the reticle, which shows only where a tap would place.
    e.preventDefault();
    if (view.hover && view.canPlace && mode === "place") place(view.hover.x, view.hover.y);
  } else if (color >= 0) {
    if (palette.pickIndex(color)) e.preventDefault();
  } else if (e.key === "[" || e.key === "]") {
    if (palette.pickStep(e.key === "]" ? 1 : -1)) e.preventDefault();
  } else if (e.key === "?") help.show(help.panel.hidden);
  else if (e.key === "i" || e.key === "I") setMode(mode === "inspect" ? "place" : "inspect");
  else if (e.key === "p" || e.key === "P") setMode("place");
  else if (e.key === "t" || e.key === "T") templatePanel.show(templatePanel.panel.hidden);
  else if (chunkedBoard && "mMhHlL".includes(e.key)) return; // whole-board features, off
  else if (e.key === "m" || e.key === "M") minimap.show(!minimap.open, true);
  else if (e.key === "h" || e.key === "H") showHeatmap(!heatmap.on);
  else if (e.key === "l" || e.key === "L") {
    if (past.panel.hidden) past.open();
    else past.close();
  } else if (e.key === "Escape") {
    inspector.hide();
    help.show(false);
    templatePanel.show(false);
    if (!past.panel.hidden) past.close();
  }
});

// Panels above the toolbar keep clear of it, however tall it wraps (on a
// phone the palette takes several rows).
const toolbarSpace = () => document.documentElement.style.setProperty(
  "--toolbar-space", `${Math.max(0, window.innerHeight - bottomBar.getBoundingClientRect().top)}px`);
new ResizeObserver(toolbarSpace).observe(bottomBar);
window.addEventListener("resize", toolbarSpace);
toolbarSpace();

// Read-only state for tests and curious players; the canvas itself is the
// real proof of what is drawn.
window.__canvas = Object.freeze({
  getPixel: (x, y) => (chunkedBoard || board).getPixel(x, y),
  status: () => sync.status,
  ready: () => sync.ready,
  seq: () => sync.knownSeq,
  username: () => names.current,
  size: () => (chunkedBoard ? { width: chunkedBoard.width, height: chunkedBoard.height } : { width: board.width, height: board.height }),
  view: () => ({ scale: view.scale, tx: view.tx, ty: view.ty }),
  draws: () => (chunkedBoard || board).draws,
  past: () => past.at,
  timing: () => ({ ...timing }),
  sync: () => ({ loading: sync.loading, buffered: sync.buffer.length, pending: sync.pending.size }),
  chunks: () => (chunkedBoard ? {
    held: chunkedBoard.chunks.size,
    loaded: [...chunkedBoard.chunks.values()].filter((c) => c.state === "loaded").map((c) => [c.cx, c.cy]),
    subscribes: sync.requested,
    confirmed: sync.confirmed,
    fetched: sync.chunksLoaded,
    heard: sync.heard,
    minScale: chunkedBoard.minScale(),
  } : null),
  template: () => (template.state ? { ...template.state, src: template.state.kind === "url" ? template.state.src : "(file)" } : null),
  heatmap: () => ({ on: heatmap.on, events: heatmap.events, draws: heatmap.draws, cells: heatmap.heat.length, cell: heatmap.cell }),
});

sync.start();
