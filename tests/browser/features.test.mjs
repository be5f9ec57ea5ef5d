// What players of other canvases expect, in real headless chromium against
// the single-process server: a template over the board (from a file or an
// image of this site; its pixels, opacity, reload, link, "only
// differences"), the minimap, the heatmap of recent placements, WASD and
// +/- keys, and a pinch that zooms around the fingers' midpoint on a phone.
// What is drawn is read from screenshots (what the player sees) or from the
// overlay's own canvas; what was placed, from the server.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  ARTIFACTS,
  canvasPixel,
  encodePng,
  launchBrowser,
  openPage,
  pixelCenter,
  screenColors,
  waitCanvasPixel,
  waitLive,
  zoomTo,
} from "./browser.mjs";
import { startSingleProcess } from "./stack.mjs";

const PHONE = { viewport: { width: 390, height: 844 }, mobile: true };
// The client's heatmap constants (web/static/heatmap.js).
const HEAT_HALF_LIFE_S = 4;
const HEAT_VISIBLE = 1 / 16;
// The client's limit on a template kept across reloads (web/static/template.js).
const MAX_STORED_FILE_BYTES = 1_000_000;

/** Resolves after two animation frames: the view applies its transform in the next one. */
const frames = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
const viewOf = (page) => page.evaluate(() => window.__canvas.view());
const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

/** The board pixel in the middle of the page's viewport, read from the canvas's on-screen box. */
const middlePixel = (page) => page.evaluate(() => {
  const c = document.getElementById("board").getBoundingClientRect();
  const s = c.width / 1000;
  return { x: Math.floor((innerWidth / 2 - c.left) / s), y: Math.floor((innerHeight / 2 - c.top) / s) };
});

/** Whether screen color `shown` is `color` at `opacity` over white, within `tolerance` per channel. */
function blendedOverWhite(shown, color, opacity, tolerance = 3) {
  const want = rgb(color).map((c) => Math.round(opacity * c + (1 - opacity) * 255));
  return rgb(shown).every((v, i) => Math.abs(v - want[i]) <= tolerance);
}

/** The template used from a file: four pixels in a row, the last one transparent. */
const TEMPLATE_COLORS = ["#FF4500", "#3690EA", "#000000"];
function templatePng() {
  const px = new Uint8Array(4 * 4);
  TEMPLATE_COLORS.forEach((c, i) => px.set([...rgb(c), 255], i * 4));
  return encodePng(4, 1, px); // pixel 3 stays transparent
}

/** A PNG larger than the client keeps across reloads: noise does not compress. */
function bigPng() {
  const side = 600;
  const px = new Uint8Array(randomBytes(side * side * 4));
  for (let i = 3; i < px.length; i += 4) px[i] = 255;
  const png = encodePng(side, side, px);
  assert.ok(png.length > MAX_STORED_FILE_BYTES, `${png.length} bytes`);
  return png;
}

describe("templates, minimap, heatmap, keys and pinch", { timeout: 300_000 }, () => {
  let server;
  let browser;
  const pages = [];

  before(async () => {
    server = await startSingleProcess({ COOLDOWN_MS: "0" });
    browser = await launchBrowser();
  });

  after(async () => {
    const problems = pages.flatMap((p) => p.problems.map((m) => `${p.url()}: ${m}`));
    await browser?.close().catch(() => {});
    await server?.stop();
    assert.deepEqual(problems, []);
  });

  async function open(username, options = {}, path = "/") {
    const page = await openPage(browser, `${server.url}${path}`, { username, ...options });
    pages.push(page);
    await waitLive(page);
    return page;
  }

  /** Places a pixel over HTTP, as a script would. */
  async function placeOverHttp(x, y, color, username) {
    const r = await fetch(`${server.url}/api/pixel`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x, y, color, username }),
    });
    assert.equal(r.status, 200, await r.text());
  }

  /** A test that leaves a screenshot of its page in tests/artifacts when it fails. */
  const check = (name, fn) => test(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 50);
      const page = pages.at(-1);
      if (page && !page.isClosed()) await page.screenshot({ path: join(ARTIFACTS, `failed-${slug}.png`) }).catch(() => {});
      e.message += `\n${server.log?.() ?? ""}`;
      throw e;
    }
  });

  /** The overlay's own alpha at template pixel (x, y): 0 where it shows nothing. */
  const templateAlpha = (page, x, y) => page.evaluate(([x, y]) =>
    document.getElementById("template").getContext("2d").getImageData(x, y, 1, 1).data[3], [x, y]);

  /** Sets the template panel's opacity slider as a player drags it. */
  const setOpacity = (page, value) => page.evaluate((v) => {
    const input = document.getElementById("template-opacity");
    input.value = String(v);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);

  /** Screen colors at the centres of board pixels (x0..x0+n-1, y). */
  async function rowOnScreen(page, x0, y, n) {
    const points = [];
    for (let i = 0; i < n; i++) points.push(await pixelCenter(page, x0 + i, y));
    return screenColors(page, points);
  }

  check("a template from a file is drawn on its board pixels with its opacity and survives a reload; only differences hides matching pixels", async () => {
    const page = await open("tia");
    await page.click("#template-toggle");
    assert.equal(await page.isVisible("#template-panel"), true);
    await page.setInputFiles("#template-file", { name: "plan.png", mimeType: "image/png", buffer: templatePng() });
    await page.locator(".toast.info", { hasText: "a file can't be shared by link" }).waitFor();
    await page.fill("#template-x", "100");
    await page.press("#template-x", "Enter");
    await page.fill("#template-y", "200");
    await page.press("#template-y", "Enter");
    await setOpacity(page, 0.6);
    await page.waitForFunction(() => {
      const t = window.__canvas.template();
      return t && t.x === 100 && t.y === 200 && t.opacity === 0.6;
    });
    assert.match(await page.textContent("#template-source"), /kept in this browser only; a link can't carry a file/);

    await page.locator("#viewport").focus();
    await page.keyboard.press("Escape");
    await zoomTo(page, 101, 200, 10);
    await page.mouse.move(5, 400); // no reticle over the pixels read
    await frames(page);
    const drawn = async () => {
      const shown = await rowOnScreen(page, 99, 200, 6);
      assert.equal(shown[0], "#FFFFFF", `left of the template: ${shown}`);
      TEMPLATE_COLORS.forEach((c, i) => assert.ok(blendedOverWhite(shown[i + 1], c, 0.6), `template pixel ${i}: ${shown[i + 1]} is not ${c} at 60% over white`));
      assert.equal(shown[4], "#FFFFFF", `the transparent template pixel: ${shown}`);
      assert.equal(shown[5], "#FFFFFF", `right of the template: ${shown}`);
      const below = await rowOnScreen(page, 100, 201, 1);
      assert.deepEqual(below, ["#FFFFFF"], "under the template");
    };
    await drawn();
    await page.screenshot({ path: join(ARTIFACTS, "template-desktop.png") });

    // A reload keeps it (the address keeps the place on the board).
    await page.waitForFunction(() => location.hash.startsWith("#x="));
    await page.reload();
    await waitLive(page);
    await page.waitForFunction(() => window.__canvas.template()?.x === 100);
    assert.deepEqual(
      await page.evaluate(() => window.__canvas.template()),
      { kind: "file", src: "(file)", name: "plan.png", x: 100, y: 200, opacity: 0.6, onlyDiff: false },
    );
    await page.mouse.move(5, 400);
    await frames(page);
    await drawn();

    // Only differences: a pixel the board already shows disappears from the
    // overlay, the others stay; when the board changes there, it is back.
    await placeOverHttp(100, 200, TEMPLATE_COLORS[0], "tia-helper");
    await waitCanvasPixel(page, 100, 200, TEMPLATE_COLORS[0]);
    assert.equal(await templateAlpha(page, 0, 0), 255);
    await page.click("#template-toggle");
    await page.check("#template-diff");
    await page.waitForFunction(() => window.__canvas.template().onlyDiff);
    assert.equal(await templateAlpha(page, 0, 0), 0, "the matching pixel is hidden");
    assert.equal(await templateAlpha(page, 1, 0), 255, "a differing pixel stays");
    assert.equal(await templateAlpha(page, 2, 0), 255, "a differing pixel stays");
    await placeOverHttp(101, 200, TEMPLATE_COLORS[1], "tia-helper");
    await page.waitForFunction(() => document.getElementById("template").getContext("2d").getImageData(1, 0, 1, 1).data[3] === 0);
    await placeOverHttp(100, 200, "#FFD635", "tia-helper");
    await page.waitForFunction(() => document.getElementById("template").getContext("2d").getImageData(0, 0, 1, 1).data[3] === 255);
    assert.equal(await templateAlpha(page, 1, 0), 0, "still matching");
    // Off again: every pixel shows.
    await page.uncheck("#template-diff");
    await page.waitForFunction(() => !window.__canvas.template().onlyDiff);
    assert.equal(await templateAlpha(page, 1, 0), 255);

    // A file too big to keep shows, says so, and is gone after a reload.
    await page.setInputFiles("#template-file", { name: "huge.png", mimeType: "image/png", buffer: bigPng() });
    await page.locator(".toast.error", { hasText: "too big to keep across reloads" }).waitFor();
    assert.equal((await page.evaluate(() => window.__canvas.template())).name, "huge.png");
    await page.reload();
    await waitLive(page);
    assert.equal(await page.evaluate(() => window.__canvas.template()), null);
    assert.equal(await page.evaluate(() => localStorage.getItem("canvas.template")), null);
  });

  check("a link carries a template of this site; a template from elsewhere is refused without a request", async () => {
    // The board as PNG, laid over itself 5 pixels to the right.
    await placeOverHttp(10, 30, "#811E9F", "tom-helper");
    const page = await open("tom", {}, "/#x=14&y=30&z=12&template=%2Fapi%2Fcanvas.png&ox=5&oy=0&oo=1");
    await page.waitForFunction(() => window.__canvas.template()?.kind === "url");
    const t = await page.evaluate(() => window.__canvas.template());
    assert.deepEqual({ ...t, src: new URL(t.src).pathname }, { kind: "url", src: "/api/canvas.png", name: t.name, x: 5, y: 0, opacity: 1, onlyDiff: false });
    await page.locator(".toast.info", { hasText: "Template from the link" }).waitFor();
    await page.mouse.move(5, 400);
    await frames(page);
    assert.equal(await page.evaluate(() => window.__canvas.view().scale), 12);
    // Opaque, it covers the board: the board's pixel under the template's
    // copy of (5, 30), and the copy of the board's pixel 5 to the right.
    assert.deepEqual(await rowOnScreen(page, 10, 30, 1), ["#FFFFFF"], "covered by the template");
    assert.equal(await canvasPixel(page, 10, 30), "#811E9F");
    assert.deepEqual(await rowOnScreen(page, 15, 30, 1), ["#811E9F"], "the template's copy of it, 5 to the right");
    assert.equal(await canvasPixel(page, 15, 30), "#FFFFFF");
    await page.screenshot({ path: join(ARTIFACTS, "template-link.png") });

    // Moving it rewrites the link; the panel says the link carries it.
    await page.click("#template-toggle");
    assert.match(await page.textContent("#template-source"), /From \/api\/canvas\.png: Copy link shares it/);
    await page.fill("#template-y", "25");
    await page.press("#template-y", "Enter");
    await page.waitForFunction(() => new URLSearchParams(location.hash.slice(1)).get("oy") === "25");
    const q = await page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.slice(1))));
    assert.deepEqual({ template: q.template, ox: q.ox, oy: q.oy, oo: q.oo }, { template: "/api/canvas.png", ox: "5", oy: "25", oo: "1" });
    // Its handle sits on its top-left corner; dragging it moves the template
    // by whole board pixels (12 CSS px each here).
    const corner = await pixelCenter(page, 5, 25);
    const handle = await page.locator("#template-handle").boundingBox();
    assert.ok(Math.abs(handle.x + handle.width / 2 - (corner.x - 6)) <= 1 && Math.abs(handle.y + handle.height / 2 - (corner.y - 6)) <= 1,
      JSON.stringify({ handle, corner }));
    await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
    await page.mouse.down();
    for (let k = 1; k <= 4; k++) await page.mouse.move(handle.x + handle.width / 2 + k * 9, handle.y + handle.height / 2 + k * 3);
    await page.mouse.up();
    await page.waitForFunction(() => new URLSearchParams(location.hash.slice(1)).get("ox") === "8");
    const moved = await page.evaluate(() => window.__canvas.template());
    assert.deepEqual([moved.x, moved.y], [8, 26]);
    assert.equal(await page.inputValue("#template-x"), "8");
    assert.equal((await viewOf(page)).scale, 12, "the drag moved the template, not the view");
    // Here: its corner on the pixel in the middle of the screen.
    await page.click("#template-here");
    const mid = await middlePixel(page);
    await page.waitForFunction(([x, y]) => window.__canvas.template().x === x && window.__canvas.template().y === y, [mid.x, mid.y]);
    assert.deepEqual(Object.keys(await page.evaluate(() => window.__canvas.template())).sort(), ["kind", "name", "onlyDiff", "opacity", "src", "x", "y"]);

    // Another origin: refused with a message, and never requested.
    const elsewhere = [];
    page.on("request", (r) => { if (!r.url().startsWith(server.url)) elsewhere.push(r.url()); });
    for (const url of ["http://127.0.0.2:9/plan.png", "data:image/png;base64,iVBORw0KGgo="]) {
      await page.fill("#template-url", url);
      await page.click("#template-url-load");
      await page.locator(".toast.error", { hasText: "Only images from this site" }).waitFor();
      await page.evaluate(() => document.getElementById("toasts").replaceChildren());
    }
    // Nor from a link.
    await page.evaluate(() => { location.hash = "#template=http%3A%2F%2F127.0.0.2%3A9%2Fx.png&ox=1&oy=1"; });
    await page.locator(".toast.error", { hasText: "Only images from this site" }).waitFor();
    assert.deepEqual(elsewhere, []);
    assert.equal(new URL((await page.evaluate(() => window.__canvas.template())).src).pathname, "/api/canvas.png");

    // A template from a file: Copy link says the link lacks it.
    await page.setInputFiles("#template-file", { name: "mine.png", mimeType: "image/png", buffer: templatePng() });
    await page.waitForFunction(() => window.__canvas.template()?.kind === "file");
    await page.waitForFunction(() => !location.hash.includes("template="));
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    await page.click("#copy-link");
    await page.locator(".toast.info", { hasText: "without the template" }).waitFor();
    assert.ok(!(await page.evaluate(() => navigator.clipboard.readText())).includes("template="));

    // Remove: gone from the page and from storage.
    await page.click("#template-remove");
    assert.equal(await page.evaluate(() => window.__canvas.template()), null);
    assert.equal(await page.isHidden("#template"), true);
    assert.equal(await page.evaluate(() => localStorage.getItem("canvas.template")), null);
  });

  check("the minimap outlines the view; a click on it goes there; on a phone it starts folded and stays clear of the toolbar", async () => {
    const page = await open("mia");
    assert.equal(await page.isVisible("#minimap"), true, "shown on a desktop");
    const map = await page.locator("#minimap canvas").boundingBox();
    const outline = () => page.locator(".minimap-view").boundingBox();
    // Fitted: the outline covers the whole board.
    await frames(page);
    let o = await outline();
    assert.ok(Math.abs(o.width - map.width) <= 3 && Math.abs(o.height - map.height) <= 3, JSON.stringify({ o, map }));

    await page.locator("#viewport").focus();
    for (let i = 0; i < 6; i++) await page.keyboard.press("+");
    const { scale } = await viewOf(page);
    await page.mouse.click(map.x + map.width * 0.25, map.y + map.height * 0.75);
    await frames(page);
    const middle = await middlePixel(page);
    // One minimap pixel spans 1000/180 board pixels.
    assert.ok(Math.abs(middle.x - 250) <= 6 && Math.abs(middle.y - 750) <= 6, JSON.stringify(middle));
    assert.equal((await viewOf(page)).scale, scale, "the zoom stays");
    // The outline is now small and centred where the click was.
    o = await outline();
    assert.ok(o.width < map.width / 2, JSON.stringify(o));
    assert.ok(Math.abs(o.x + o.width / 2 - (map.x + map.width * 0.25)) <= 3, JSON.stringify({ o, map }));
    assert.ok(Math.abs(o.y + o.height / 2 - (map.y + map.height * 0.75)) <= 3, JSON.stringify({ o, map }));
    await page.screenshot({ path: join(ARTIFACTS, "minimap-desktop.png") });
    // M folds it.
    await page.keyboard.press("m");
    assert.equal(await page.isHidden("#minimap"), true);

    const phone = await open("mia-phone", PHONE);
    assert.equal(await phone.isHidden("#minimap"), true, "folded on a phone");
    await phone.tap("#minimap-toggle");
    assert.equal(await phone.isVisible("#minimap"), true);
    const box = await phone.locator("#minimap").boundingBox();
    const bar = await phone.locator(".bar.bottom").boundingBox();
    assert.ok(box.y + box.height <= bar.y && box.x >= 0, JSON.stringify({ box, bar }));
    const small = await phone.locator("#minimap canvas").boundingBox();
    await phone.locator("#viewport").focus();
    for (let i = 0; i < 4; i++) await phone.keyboard.press("+");
    await phone.touchscreen.tap(small.x + small.width * 0.5, small.y + small.height * 0.1);
    await frames(phone);
    const there = await middlePixel(phone);
    // One minimap pixel spans 1000/120 board pixels on a phone.
    assert.ok(Math.abs(there.x - 500) <= 9 && Math.abs(there.y - 100) <= 9, JSON.stringify(there));
    // The map shows the (white) board there, untinted by the tap.
    assert.deepEqual(await screenColors(phone, [{ x: small.x + small.width * 0.5, y: small.y + small.height * 0.8 }]), ["#FFFFFF"]);
    await phone.screenshot({ path: join(ARTIFACTS, "minimap-phone.png") });
  });

  check("the heatmap lights up where pixels are placed and fades", async () => {
    const page = await open("hue");
    // Zoomed in enough to see single pixels: the heat is read beside the
    // placed pixels (white on the board), in the middle of their heat cell
    // (cells of 7 board pixels: 798–804, 119–125).
    await zoomTo(page, 801, 122, 4);
    await page.mouse.move(5, 400);
    await frames(page);
    const beside = await pixelCenter(page, 801, 122);
    const cold = await pixelCenter(page, 801, 150);
    await page.keyboard.press("h");
    assert.equal(await page.isVisible("#heatmap"), true);
    assert.equal(await page.getAttribute("#heatmap-toggle", "aria-pressed"), "true");
    const events = (await page.evaluate(() => window.__canvas.heatmap())).events;
    // Two placements in one cell.
    await placeOverHttp(800, 120, "#000000", "hue-helper");
    await placeOverHttp(801, 121, "#000000", "hue-helper");
    await page.waitForFunction((n) => window.__canvas.heatmap().events === n + 2, events);
    const placedAt = Date.now();
    let hot;
    for (;;) {
      [hot] = await screenColors(page, [beside]);
      if (hot !== "#FFFFFF" || Date.now() - placedAt > 2000) break;
      await frames(page);
    }
    const [r, g, b] = rgb(hot);
    assert.ok(r > 200 && r - b > 80 && g < 230, `warm where pixels were placed: ${hot}`);
    assert.deepEqual(await screenColors(page, [cold]), ["#FFFFFF"], "nothing where nobody placed");
    await page.screenshot({ path: join(ARTIFACTS, "heatmap-desktop.png") });

    // It fades: paler, then gone, within the time two events take to cool
    // below the visible heat (plus a margin).
    const coolS = HEAT_HALF_LIFE_S * Math.log2(2 / HEAT_VISIBLE);
    const first = rgb(hot);
    let paler = false;
    for (;;) {
      const [now] = await screenColors(page, [beside]);
      if (now === "#FFFFFF") break;
      if (rgb(now)[2] > first[2] + 20) paler = true;
      assert.ok(Date.now() - placedAt < (coolS + 5) * 1000, `still ${now} after ${Date.now() - placedAt} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(paler, "it grew paler before it went");
    assert.ok(Date.now() - placedAt > (coolS - 2) * 1000, "not gone before its time");
    await page.keyboard.press("h");
    assert.equal(await page.isHidden("#heatmap"), true);
  });

  check("the heatmap takes 1,000 events a second: counted without drawing each, hot where they land", async (t) => {
    // The test plays the socket (HTTP still goes to the server) so it can
    // send exactly this many events.
    const page = await openPage(browser, null, { username: "heat-flood" });
    pages.push(page);
    let opened;
    const socketOpened = new Promise((resolve) => { opened = resolve; });
    await page.routeWebSocket(/\/ws/, (ws) => opened(ws));
    await page.goto(`${server.url}/`);
    const socket = await Promise.race([
      socketOpened,
      new Promise((_, reject) => setTimeout(() => reject(new Error("the page opened no socket")), 15_000)),
    ]);
    const board = await fetch(`${server.url}/api/canvas.bin`);
    await board.arrayBuffer();
    const seq = Number(board.headers.get("x-canvas-seq"));
    socket.send(JSON.stringify({
      type: "connected", clientId: "c1", username: "heat-flood", podId: "mock", width: 1000, height: 1000,
      palette: ["#000000", "#FFFFFF"], anyColor: false, cooldownMs: 0, seq,
    }));
    await waitLive(page);
    await page.mouse.move(5, 400);
    await page.keyboard.press("h");
    const before = await page.evaluate(() => window.__canvas.heatmap());

    const RATE = 1000;
    const SECONDS = 3;
    const PER_BATCH = 50;
    const total = RATE * SECONDS;
    const started = Date.now();
    // Every event inside the 40×40 square at (600, 300), white on white (the heat shows plain).
    for (let sent = 0; sent < total;) {
      const events = [];
      for (let i = 0; i < PER_BATCH; i++, sent++) {
        events.push({ type: "pixel_updated", x: 600 + (sent % 40), y: 300 + (Math.floor(sent / 40) % 40), color: "#FFFFFF", username: "someone", timestamp: Date.now(), seq: seq + 1 + sent });
      }
      socket.send(JSON.stringify({ type: "batch", events }));
      const due = started + (sent / RATE) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    }
    await page.waitForFunction((n) => window.__canvas.heatmap().events === n, before.events + total);
    const elapsed = (Date.now() - started) / 1000;
    const after = await page.evaluate(() => window.__canvas.heatmap());
    t.diagnostic(`${total} events in ${elapsed.toFixed(2)} s; heat drawn ${after.draws - before.draws} times`);
    // Drawn on its timer (every 250 ms), not per event; memory is the fixed grid.
    assert.ok(after.draws - before.draws <= Math.ceil(elapsed / 0.25) + 4, JSON.stringify({ before, after, elapsed }));
    assert.equal(after.cells, before.cells);
    assert.ok(after.cells <= 160 * 160);
    const [hot, cold] = await screenColors(page, [await pixelCenter(page, 620, 320), await pixelCenter(page, 300, 700)]);
    assert.ok(rgb(hot)[0] > 200 && rgb(hot)[0] - rgb(hot)[2] > 80, `hot where the events land: ${hot}`);
    assert.equal(cold, "#FFFFFF");
    await page.screenshot({ path: join(ARTIFACTS, "heatmap-flood.png") });
  });

  check("W A S D and the arrows pan, + and - zoom around the middle", async () => {
    const page = await open("kai");
    await page.locator("#viewport").focus();
    const fitted = (await viewOf(page)).scale;
    await page.keyboard.press("+");
    await page.waitForFunction((s) => window.__canvas.view().scale > s, fitted);
    await frames(page);
    const start = await viewOf(page);
    const moves = [["d", -60, 0], ["a", 0, 0], ["s", 0, -60], ["w", 0, 0], ["ArrowRight", -60, 0], ["ArrowLeft", 0, 0], ["Shift+D", -240, 0]];
    for (const [key, dx, dy] of moves) {
      await page.keyboard.press(key);
      const v = await viewOf(page);
      assert.deepEqual([v.tx - start.tx, v.ty - start.ty], [dx, dy], key);
    }
    await page.keyboard.press("Shift+A");
    const before = await viewOf(page);
    const size = page.viewportSize();
    const under = (v) => [(size.width / 2 - v.tx) / v.scale, (size.height / 2 - v.ty) / v.scale];
    await page.keyboard.press("+");
    const zoomed = await viewOf(page);
    assert.ok(Math.abs(zoomed.scale - before.scale * 1.4) < 1e-9, JSON.stringify({ before, zoomed }));
    under(zoomed).forEach((v, i) => assert.ok(Math.abs(v - under(before)[i]) < 1e-6, "the middle stays put"));
    await page.keyboard.press("-");
    assert.ok(Math.abs((await viewOf(page)).scale - before.scale) < 1e-9);
  });

  check("a pinch on a phone zooms around the fingers' midpoint, and follows it when it moves", async () => {
    const phone = await open("pia", PHONE);
    const cdp = await phone.context().newCDPSession(phone);
    const touch = (type, points) => cdp.send("Input.dispatchTouchEvent", { type, touchPoints: points });
    /** The board point (fractional board pixels) under client point (x, y). */
    const boardPoint = (x, y) => phone.evaluate(([x, y]) => {
      const c = document.getElementById("board").getBoundingClientRect();
      return { x: ((x - c.left) * 1000) / c.width, y: ((y - c.top) * 1000) / c.height, scale: c.width / 1000 };
    }, [x, y]);

    // Fingers around (120, 500), off the middle of the screen, moving apart
    // from 60 to 240 px: four times the zoom.
    const mid = { x: 120, y: 500 };
    const before = await boardPoint(mid.x, mid.y);
    const scale0 = (await viewOf(phone)).scale;
    await touch("touchStart", [{ x: mid.x - 30, y: mid.y, id: 1 }, { x: mid.x + 30, y: mid.y, id: 2 }]);
    for (let k = 1; k <= 10; k++) await touch("touchMove", [{ x: mid.x - 30 - k * 9, y: mid.y, id: 1 }, { x: mid.x + 30 + k * 9, y: mid.y, id: 2 }]);
    await touch("touchEnd", []);
    await frames(phone);
    const after = await boardPoint(mid.x, mid.y);
    assert.ok(Math.abs((await viewOf(phone)).scale / scale0 - 4) < 0.01, `zoom ${scale0} -> ${(await viewOf(phone)).scale}`);
    // Within a CSS px (the transform's translation is rounded to whole px).
    const px = 1 / after.scale;
    assert.ok(Math.abs(after.x - before.x) <= px && Math.abs(after.y - before.y) <= px,
      `the board point under the midpoint stays: ${JSON.stringify({ before, after })}`);

    // Moving the midpoint while pinching: the point under the first midpoint
    // ends under the last.
    const from = { x: 200, y: 420 };
    const to = { x: 260, y: 330 };
    const grabbed = await boardPoint(from.x, from.y);
    await touch("touchStart", [{ x: from.x - 40, y: from.y, id: 3 }, { x: from.x + 40, y: from.y, id: 4 }]);
    for (let k = 1; k <= 10; k++) {
      const m = { x: from.x + ((to.x - from.x) * k) / 10, y: from.y + ((to.y - from.y) * k) / 10 };
      const half = 40 + k * 2; // 80 -> 120 px apart: 1.5 times the zoom
      await touch("touchMove", [{ x: m.x - half, y: m.y, id: 3 }, { x: m.x + half, y: m.y, id: 4 }]);
    }
    await touch("touchEnd", []);
    await frames(phone);
    const landed = await boardPoint(to.x, to.y);
    assert.ok(Math.abs(landed.x - grabbed.x) <= 1 / landed.scale && Math.abs(landed.y - grabbed.y) <= 1 / landed.scale,
      JSON.stringify({ grabbed, landed }));
    await phone.screenshot({ path: join(ARTIFACTS, "pinch-phone.png") });
  });

  check("on a phone the overlays' buttons and the template panel stay between the bars", async () => {
    const phone = await open("pat", PHONE);
    await phone.tap("#template-toggle");
    await phone.setInputFiles("#template-file", { name: "plan.png", mimeType: "image/png", buffer: templatePng() });
    await phone.waitForFunction(() => window.__canvas.template()?.kind === "file");
    await phone.tap("#heatmap-toggle");
    const top = await phone.locator(".bar.top").boundingBox();
    const bottom = await phone.locator(".bar.bottom").boundingBox();
    for (const sel of [".layers", "#template-panel", ".where"]) {
      const box = await phone.locator(sel).boundingBox();
      assert.ok(box.y >= top.y + top.height && box.y + box.height <= bottom.y && box.x >= 0 && box.x + box.width <= 390,
        `${sel}: ${JSON.stringify({ box, top, bottom })}`);
    }
    const layers = await phone.locator(".layers").boundingBox();
    const where = await phone.locator(".where").boundingBox();
    assert.ok(layers.y >= where.y + where.height, JSON.stringify({ layers, where }));
    await phone.screenshot({ path: join(ARTIFACTS, "template-panel-phone.png") });
  });
});
