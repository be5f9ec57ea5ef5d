// Chunked mode (viewport loading) against the single-process server: on a
// 65,536² board the page opens at a link far from the origin, loads only
// the chunks near the view (`/api/chunk/…`, never `canvas.bin`), subscribes
// to exactly those, follows their events and no others, places, and loads
// new chunks as it pans; on a small board `?chunked=1` draws exactly what
// the whole-board mode draws. What is drawn is read from the screen-sized
// `#chunks` canvas at the pixel's place on screen.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launchBrowser, openPage, waitLive, waitMatchesStored, WAIT_MS } from "./browser.mjs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startService, startSingleProcess } from "./stack.mjs";

const SIDE = 65_536;
const CHUNK = 256;
/** Where the link opens: far from the origin, in chunk (156, 117). */
const HOME = { x: 40_000, y: 30_000 };

/** Client coordinates of the centre of board pixel (x, y) in chunked mode. */
async function chunkedPixelCenter(page, x, y) {
  return page.evaluate(([x, y]) => {
    const v = window.__canvas.view();
    const r = document.getElementById("viewport").getBoundingClientRect();
    return { x: r.left + Math.round(v.tx) + (x + 0.5) * v.scale, y: r.top + Math.round(v.ty) + (y + 0.5) * v.scale, scale: v.scale };
  }, [x, y]);
}

/**
 * "#RRGGBB" the `#chunks` canvas shows at board pixel (x, y), or null off
 * screen; with `want`, whether it is that color. Runs in the page.
 */
function shownInPage([x, y, want]) {
  // Until main.js has read /api/config and made the board, nothing shows
  // (a predicate that threw would end the wait instead of polling on).
  if (!window.__canvas) return want === undefined ? null : false;
  const v = window.__canvas.view();
  const canvas = document.getElementById("chunks");
  const dpr = window.devicePixelRatio || 1;
  const sx = Math.floor((Math.round(v.tx) + (x + 0.5) * v.scale) * dpr);
  const sy = Math.floor((Math.round(v.ty) + (y + 0.5) * v.scale) * dpr);
  let hex = null;
  if (sx >= 0 && sy >= 0 && sx < canvas.width && sy < canvas.height) {
    const d = canvas.getContext("2d").getImageData(sx, sy, 1, 1).data;
    hex = "#" + [d[0], d[1], d[2]].map((c) => c.toString(16).padStart(2, "0")).join("").toUpperCase();
  }
  return want === undefined ? hex : hex === want;
}

async function shownPixel(page, x, y) {
  return page.evaluate(shownInPage, [x, y]);
}

async function waitShownPixel(page, x, y, color, timeout = WAIT_MS) {
  await page.waitForFunction(shownInPage, [x, y, color], { timeout, polling: 50 });
}

async function put(server, x, y, color, username = "painter") {
  const r = await fetch(`${server.url}/api/pixel`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ x, y, color, username }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(`PUT /api/pixel (${x}, ${y}): ${r.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * Opens `url` in a fresh page that records the chunks it requests, whether
 * it asked for the whole board, and every frame of its WebSocket.
 */
async function openRecorded(browser, url, options) {
  const page = await openPage(browser, null, options);
  page.chunkRequests = [];
  page.wholeBoardRequests = 0;
  page.framesIn = [];
  page.framesOut = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    const m = /^\/api\/chunk\/(\d+)\/(\d+)\.bin$/.exec(path);
    if (m) page.chunkRequests.push([Number(m[1]), Number(m[2])]);
    if (path === "/api/canvas.bin" || path === "/api/canvas.png") page.wholeBoardRequests++;
  });
  page.sockets = 0;
  page.frameWaiters = [];
  const record = (frames, payload) => {
    frames.push(payload);
    for (const w of [...page.frameWaiters]) {
      if (w.frames === frames && w.test(payload)) {
        page.frameWaiters.splice(page.frameWaiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  page.on("websocket", (ws) => {
    page.sockets++;
    ws.on("framereceived", (f) => record(page.framesIn, f.payload));
    ws.on("framesent", (f) => record(page.framesOut, f.payload));
  });
  await page.goto(url);
  return page;
}

/**
 * Resolves once `frames` (a page's `framesIn` or `framesOut`) holds a text
 * frame, from index `from` on, whose message passes `test`.
 */
function frameAfter(page, frames, from, test, timeout = WAIT_MS) {
  const passes = (p) => typeof p === "string" && test(JSON.parse(p));
  if (frames.slice(from).some(passes)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const w = { frames, test: passes, resolve };
    page.frameWaiters.push(w);
    setTimeout(() => {
      const i = page.frameWaiters.indexOf(w);
      if (i >= 0) {
        page.frameWaiters.splice(i, 1);
        reject(new Error(`no such frame within ${timeout} ms`));
      }
    }, timeout).unref();
  });
}

/** The pixel events in JSON frames, batches unpacked (binary frames, protocol v2, are not read). */
function pixelEvents(frames) {
  const events = [];
  for (const payload of frames) {
    if (typeof payload !== "string") continue;
    const m = JSON.parse(payload);
    for (const e of m.type === "batch" ? m.events : [m]) if (e.type === "pixel_updated") events.push(e);
  }
  return events;
}

/** The chunk sets the page subscribed to, in order. */
function subscriptions(frames) {
  return frames.filter((p) => typeof p === "string").map((p) => JSON.parse(p)).filter((m) => m.type === "subscribe").map((m) => m.chunks);
}

describe("chunked mode on a 65,536² board", { timeout: 180_000 }, () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startSingleProcess({ CANVAS_WIDTH: String(SIDE), CANVAS_HEIGHT: String(SIDE), COOLDOWN_MS: "0" });
    browser = await launchBrowser();
  });

  after(async () => {
    const problems = page ? page.problems : [];
    await browser?.close().catch(() => {});
    await server?.stop();
    assert.deepEqual(problems, []);
  });

  test("the config says the board is too large to read whole", async () => {
    const config = await (await fetch(`${server.url}/api/config`)).json();
    assert.equal(config.wholeBoard, false);
    assert.equal(config.chunkSize, CHUNK);
  });

  test("a link far from the origin opens there and paints the pixels already placed, loading only chunks near the view", async () => {
    const placed = [
      [HOME.x, HOME.y, "#BE0039"],
      [HOME.x + 3, HOME.y - 2, "#2450A4"],
      [HOME.x - 40, HOME.y + 20, "#00A368"],
    ];
    for (const [x, y, color] of placed) await put(server, x, y, color);
    page = await openRecorded(browser, `${server.url}/#x=${HOME.x}&y=${HOME.y}&z=8`, { username: "walker" });
    await waitLive(page);
    for (const [x, y, color] of placed) await waitShownPixel(page, x, y, color);
    // A pixel nobody placed is the board's white, drawn too.
    assert.equal(await shownPixel(page, HOME.x + 1, HOME.y + 1), "#FFFFFF");
    assert.equal(await page.evaluate(([x, y]) => window.__canvas.getPixel(x, y), [HOME.x, HOME.y]), "#BE0039");
    const view = await page.evaluate(() => window.__canvas.view());
    assert.equal(view.scale, 8);

    // At zoom 8 on 1280×800 the view spans under 3×2 chunks: with one ring
    // of margin that is at most 5×4.
    const home = [Math.floor(HOME.x / CHUNK), Math.floor(HOME.y / CHUNK)];
    assert.ok(page.chunkRequests.length > 0 && page.chunkRequests.length <= 20, JSON.stringify(page.chunkRequests));
    for (const [cx, cy] of page.chunkRequests) {
      assert.ok(Math.abs(cx - home[0]) <= 2 && Math.abs(cy - home[1]) <= 2, `chunk (${cx}, ${cy}) is far from ${home}`);
    }
    assert.equal(page.wholeBoardRequests, 0);
    // It subscribed to exactly the chunks it loaded.
    const subs = subscriptions(page.framesOut);
    assert.ok(subs.length >= 1);
    const last = subs.at(-1).map(([cx, cy]) => `${cx},${cy}`).sort();
    const loaded = (await page.evaluate(() => window.__canvas.chunks().loaded)).map(([cx, cy]) => `${cx},${cy}`).sort();
    assert.deepEqual(last, loaded);
    // The features that need the whole board are hidden.
    for (const id of ["#history-toggle", "#minimap-toggle", "#heatmap-toggle", "#minimap"]) {
      assert.equal(await page.isVisible(id), false, id);
    }
  });

  test("a pixel placed by another client in a visible chunk appears; one in a far chunk never reaches the page", async () => {
    assert.ok(page, "the page of the first test");
    const far = [1000, 1000];
    const near = [HOME.x + 5, HOME.y + 5];
    const heard = await page.evaluate(() => window.__canvas.chunks().heard);
    await put(server, far[0], far[1], "#811E9F", "other");
    await put(server, near[0], near[1], "#FFA800", "other");
    await waitShownPixel(page, near[0], near[1], "#FFA800");
    // Events reach a socket in seq order: the far one, placed first, would
    // have come before the near one. The page counts the pixel events its
    // socket carried, in any framing; JSON frames are also read here.
    assert.equal(await page.evaluate(() => window.__canvas.chunks().heard), heard + 1);
    assert.deepEqual(pixelEvents(page.framesIn).filter((e) => e.x === far[0] && e.y === far[1]), []);
  });

  test("a click places from the page", async () => {
    assert.ok(page, "the page of the first test");
    const [x, y] = [HOME.x + 10, HOME.y - 10];
    const color = "#000000";
    await page.click(`#palette [data-color="${color}"]`);
    const at = await chunkedPixelCenter(page, x, y);
    assert.ok(at.scale >= 4, "zoomed in far enough to place");
    await page.mouse.click(at.x, at.y);
    await waitShownPixel(page, x, y, color);
    const stored = await (await fetch(`${server.url}/api/pixel/${x}/${y}`)).json();
    assert.equal(stored.color, color);
    assert.equal(stored.username, "walker");
  });

  test("panning loads the chunks that come into view; a jump far away drops the old ones", async () => {
    assert.ok(page, "the page of the first test");
    const ahead = [HOME.x + 700, HOME.y];
    await put(server, ahead[0], ahead[1], "#00CCC0");
    const aheadChunk = [Math.floor(ahead[0] / CHUNK), Math.floor(ahead[1] / CHUNK)];
    assert.ok(!page.chunkRequests.some(([cx, cy]) => cx === aheadChunk[0] && cy === aheadChunk[1]), "not loaded before the pan");
    // Drag the board left until the pixel is on screen (1000 CSS px = 125 board pixels a drag).
    for (let i = 0; i < 10 && (await chunkedPixelCenter(page, ...ahead)).x > 1200; i++) {
      await page.mouse.move(1100, 400);
      await page.mouse.down();
      await page.mouse.move(100, 400, { steps: 8 });
      await page.mouse.up();
    }
    await waitShownPixel(page, ahead[0], ahead[1], "#00CCC0");
    assert.ok(page.chunkRequests.some(([cx, cy]) => cx === aheadChunk[0] && cy === aheadChunk[1]));

    // A link to the other end of the board: the chunks there are loaded,
    // the ones near HOME dropped, and the subscription follows.
    const there = [5000, 60_000];
    await put(server, there[0], there[1], "#6D482F");
    await page.evaluate(([x, y]) => { location.hash = `#x=${x}&y=${y}&z=8`; }, there);
    await waitShownPixel(page, there[0], there[1], "#6D482F");
    await page.waitForFunction(([cx, cy]) => {
      const c = window.__canvas.chunks();
      return c.loaded.length > 0 && c.loaded.every(([x, y]) => Math.abs(x - cx) <= 4 && Math.abs(y - cy) <= 4);
    }, [Math.floor(there[0] / CHUNK), Math.floor(there[1] / CHUNK)]);
    const state = await page.evaluate(() => window.__canvas.chunks());
    assert.ok(state.held <= 20, JSON.stringify(state));
    const last = subscriptions(page.framesOut).at(-1);
    assert.ok(last.every(([cx, cy]) => Math.abs(cx - there[0] / CHUNK) <= 5 && Math.abs(cy - there[1] / CHUNK) <= 5), JSON.stringify(last));
    // A write where the page was is no longer sent to it.
    const heard = await page.evaluate(() => window.__canvas.chunks().heard);
    await put(server, HOME.x, HOME.y, "#FFFFFF", "other");
    await put(server, there[0] + 1, there[1], "#FF3881", "other");
    await waitShownPixel(page, there[0] + 1, there[1], "#FF3881");
    assert.equal(await page.evaluate(() => window.__canvas.chunks().heard), heard + 1);
    assert.equal(page.wholeBoardRequests, 0);
  });

  test("a new socket hears the whole board until its first subscribed, so its first chunks load at once", async () => {
    const [qx, qy] = [HOME.x - 100, HOME.y + 50];
    await put(server, qx, qy, "#FFD635");
    const second = await openPage(browser, null);
    // The page's socket goes to the real server; its `subscribed` answers
    // are held back until released.
    const held = [];
    let released = false;
    let toPage = null;
    await second.routeWebSocket(/\/ws/, (ws) => {
      const upstream = ws.connectToServer();
      toPage = (m) => ws.send(m);
      ws.onMessage((m) => upstream.send(m));
      upstream.onMessage((m) => {
        if (!released && typeof m === "string" && JSON.parse(m).type === "subscribed") held.push(m);
        else ws.send(m);
      });
    });
    try {
      await second.goto(`${server.url}/#x=${qx}&y=${qy}&z=8`);
      await waitShownPixel(second, qx, qy, "#FFD635");
      // And live events reach it meanwhile, for every chunk.
      await put(server, qx + 1, qy, "#FF4500", "other");
      await waitShownPixel(second, qx + 1, qy, "#FF4500");
      assert.ok(held.length >= 1, "the answer was held");
      assert.equal(await second.evaluate(() => window.__canvas.ready()), false);
      released = true;
      for (const m of held.splice(0)) toPage(m);
      await waitLive(second);
      assert.deepEqual(second.problems, []);
    } finally {
      await second.context().close();
    }
  });

  test("zooming out stops at the least zoom chunked mode allows", async () => {
    assert.ok(page, "the page of the first test");
    await page.click("#zoom-fit");
    await page.waitForFunction(() => window.__canvas.view().scale <= 1);
    const { scale } = await page.evaluate(() => window.__canvas.view());
    const { minScale, held } = await page.evaluate(() => window.__canvas.chunks());
    assert.equal(scale, minScale);
    await page.waitForFunction(() => window.__canvas.chunks().held > 0);
    assert.ok(held <= 256, `${held} chunks held`);
  });
});

describe("chunked mode on a small board (?chunked=1)", { timeout: 120_000 }, () => {
  let server;
  let browser;
  let chunked;
  const pages = [];
  // Not a multiple of the chunk size: the last chunks reach past the board.
  const [W, H] = [600, 400];
  // Kept across the restart in the last test.
  const dataDir = mkdtempSync(join(tmpdir(), "canvas-chunked-"));
  const start = (listen = "127.0.0.1:0") => startService("server", "server", {
    DATA_DIR: dataDir, LISTEN_ADDR: listen, CANVAS_WIDTH: String(W), CANVAS_HEIGHT: String(H), COOLDOWN_MS: "0",
  });

  before(async () => {
    server = await start();
    browser = await launchBrowser();
  });

  after(async () => {
    // While the server restarts, the page's reconnect attempts are refused.
    const problems = pages.flatMap((p) => p.problems).filter((m) => !/WebSocket connection to .* failed/.test(m));
    await browser?.close().catch(() => {});
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    assert.deepEqual(problems, []);
  });

  test("draws the same pixels as the whole-board mode, live events included", async () => {
    const colors = ["#BE0039", "#2450A4", "#00A368", "#000000", "#FFA800"];
    for (let i = 0; i < 200; i++) {
      await put(server, (i * 97) % W, (i * 61 + Math.floor(i / 7)) % H, colors[i % colors.length]);
    }
    // The corners, the last chunk's edge included.
    await put(server, W - 1, H - 1, "#811E9F");
    await put(server, 0, 0, "#811E9F");
    const whole = await openRecorded(browser, `${server.url}/`);
    chunked = await openRecorded(browser, `${server.url}/?chunked=1`);
    pages.push(whole, chunked);
    await Promise.all([waitLive(whole), waitLive(chunked)]);
    await put(server, 300, 200, "#FF3881");
    await waitMatchesStored(whole);
    await waitShownPixel(chunked, 300, 200, "#FF3881");
    // Each page loaded the board its own way only.
    assert.equal(chunked.wholeBoardRequests, 0);
    assert.equal(whole.chunkRequests.length, 0);
    assert.deepEqual([...new Set(chunked.chunkRequests.map(String))].sort(), ["0,0", "0,1", "1,0", "1,1", "2,0", "2,1"]);
    // Every pixel the chunked page shows on screen equals the stored board.
    const diff = await chunked.evaluate(async ([W, H]) => {
      const r = await fetch("/api/canvas.bin", { cache: "no-store" });
      const rgb = new Uint8Array(await r.arrayBuffer());
      const v = window.__canvas.view();
      const canvas = document.getElementById("chunks");
      const shown = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let mismatches = 0;
      let offScreen = 0;
      let first = null;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const sx = Math.floor(Math.round(v.tx) + (x + 0.5) * v.scale);
          const sy = Math.floor(Math.round(v.ty) + (y + 0.5) * v.scale);
          if (sx < 0 || sy < 0 || sx >= canvas.width || sy >= canvas.height) { offScreen++; continue; }
          const p = (sy * canvas.width + sx) * 4;
          const j = (y * W + x) * 3;
          if (shown[p] !== rgb[j] || shown[p + 1] !== rgb[j + 1] || shown[p + 2] !== rgb[j + 2]) {
            mismatches++;
            first ||= { x, y, shown: [shown[p], shown[p + 1], shown[p + 2]], stored: [rgb[j], rgb[j + 1], rgb[j + 2]] };
          }
        }
      }
      return { mismatches, offScreen, first };
    }, [W, H]);
    assert.deepEqual(diff, { mismatches: 0, offScreen: 0, first: null });
    // Outside the board, nothing is drawn over the page's background.
    const outside = await chunked.evaluate(() => {
      const v = window.__canvas.view();
      const x = Math.round(v.tx) + 600 * v.scale + 5;
      const y = Math.round(v.ty) + 10;
      return [...document.getElementById("chunks").getContext("2d").getImageData(x, y, 1, 1).data];
    });
    assert.equal(outside[3], 0, "transparent beside the board");
  });

  test("after a reconnect the page subscribes again and reloads its chunks", async () => {
    assert.ok(chunked, "the chunked page of the test before");
    const subscribes = subscriptions(chunked.framesOut).length;
    const requests = chunked.chunkRequests.length;
    const wholeReads = chunked.wholeBoardRequests;
    const addr = server.addr;
    await server.stop();
    await chunked.waitForFunction(() => window.__canvas.status() !== "live");
    server = await start(addr);
    await waitLive(chunked);
    await put(server, 10, 390, "#2450A4");
    await waitShownPixel(chunked, 10, 390, "#2450A4");
    // The new socket carried a subscribe of every chunk again, and each
    // chunk was read again after it.
    const subs = subscriptions(chunked.framesOut);
    assert.ok(subs.length > subscribes, `${subs.length} subscribes`);
    assert.equal(subs.at(-1).length, 6);
    const again = chunked.chunkRequests.slice(requests).map(String);
    assert.deepEqual([...new Set(again)].sort(), ["0,0", "0,1", "1,0", "1,1", "2,0", "2,1"]);
    assert.equal(chunked.wholeBoardRequests, wholeReads);
  });
});

describe("chunked mode when a subscribe is refused", { timeout: 120_000 }, () => {
  let server;
  let browser;
  let page;

  before(async () => {
    // One message a second from this IP: a second subscribe within the
    // second is answered `rate_limited`, never `subscribed`.
    server = await startSingleProcess({ CANVAS_WIDTH: "3000", CANVAS_HEIGHT: "3000", COOLDOWN_MS: "0", MESSAGES_PER_SEC_PER_IP: "1" });
    browser = await launchBrowser();
  });

  after(async () => {
    const problems = page ? page.problems : [];
    await browser?.close().catch(() => {});
    await server?.stop();
    assert.deepEqual(problems, []);
  });

  test("the page starts over on a new socket and follows the view again", async () => {
    page = await openRecorded(browser, `${server.url}/?chunked=1#x=100&y=100&z=8`);
    await waitLive(page);
    const received = page.framesIn.length;
    for (const [x, y] of [[1500, 1500], [2800, 2800]]) {
      const sent = page.framesOut.length;
      await page.evaluate(([x, y]) => { location.hash = `#x=${x}&y=${y}&z=8`; }, [x, y]);
      await frameAfter(page, page.framesOut, sent, (m) => m.type === "subscribe");
    }
    await frameAfter(page, page.framesIn, received, (m) => m.type === "error" && m.code === "rate_limited");
    await put(server, 2800, 2800, "#00A368");
    await waitShownPixel(page, 2800, 2800, "#00A368");
    assert.ok(page.sockets >= 2, `${page.sockets} sockets`);
  });
});
