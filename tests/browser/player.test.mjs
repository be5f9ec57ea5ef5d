// Playing safely, in real headless chromium against the single-process
// server: a tap places only where the pixel can be seen (below that it zooms
// in), the reticle shows the chosen color, lines between pixels at high
// zoom, number keys for colors and the list of keys on screen, a cooldown
// message that goes when the cooldown does, and a page that keeps still and
// clear of its toolbar on a desktop and on a phone; a place on the board is a
// link (`#x=…&y=…&z=…`), and Space places at the reticle. What the player
// sees is read from screenshots; what was placed, from the server.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import {
  ARTIFACTS,
  canvasPixel,
  launchBrowser,
  openPage,
  pixelCenter,
  screenColors,
  waitCanvasPixel,
  waitLive,
  zoomTo,
} from "./browser.mjs";
import { startSingleProcess } from "./stack.mjs";

// Short, so a test can wait for the end of a cooldown; long next to the
// time a test takes between a placement and its next click.
const COOLDOWN_MS = 2000;
// The client's thresholds (web/static/view.js).
const MIN_PLACE_SCALE = 4;
const GRID_SCALE = 10;
const PHONE = { viewport: { width: 390, height: 844 }, mobile: true };

/** Resolves after two animation frames: the view applies its transform in the next one. */
const frames = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
const scaleOf = async (page) => (await page.evaluate(() => window.__canvas.view())).scale;

describe("playing safely", { timeout: 240_000 }, () => {
  let server;
  let browser;
  const pages = [];

  before(async () => {
    server = await startSingleProcess({ COOLDOWN_MS: String(COOLDOWN_MS) });
    browser = await launchBrowser();
  });

  after(async () => {
    const problems = pages.flatMap((p) => p.problems.map((m) => `${p.url()}: ${m}`));
    await browser?.close().catch(() => {});
    await server?.stop();
    assert.deepEqual(problems, []);
  });

  /** A live page as `username` (each test its own name, so cooldowns never cross). */
  async function open(username, options = {}) {
    const page = await openPage(browser, `${server.url}/`, { username, ...options });
    pages.push(page);
    await waitLive(page);
    return page;
  }

  /** The board's `seq` as the server stores it. */
  async function storedSeq() {
    const r = await fetch(`${server.url}/api/canvas.bin`);
    await r.arrayBuffer();
    return Number(r.headers.get("x-canvas-seq"));
  }

  /** A test that leaves a screenshot of its page in tests/artifacts when it fails. */
  const check = (name, fn) => test(name, async () => {
    try {
      await fn();
    } catch (e) {
      const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 50);
      const page = pages.at(-1);
      if (page && !page.isClosed()) await page.screenshot({ path: join(ARTIFACTS, `failed-${slug}.png`) }).catch(() => {});
      e.message += `\n${server.log?.() ?? ""}`;
      throw e;
    }
  });

  /** The board pixel under a client point, read from the canvas's on-screen box. */
  const pixelUnder = (page, at) => page.evaluate(({ x, y }) => {
    const c = document.getElementById("board");
    const r = c.getBoundingClientRect();
    return { x: Math.floor(((x - r.left) * c.width) / r.width), y: Math.floor(((y - r.top) * c.height) / r.height) };
  }, at);

  check("a click at the fitted zoom zooms in on that spot and places nothing; a click there then places", async () => {
    const page = await open("ann");
    assert.ok((await scaleOf(page)) < MIN_PLACE_SCALE, "the fitted board starts below the placing zoom");
    await page.click('#palette [data-color="#FF4500"]');
    const seq = await storedSeq();
    const at = await pixelCenter(page, 300, 200);
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction((min) => window.__canvas.view().scale >= min, MIN_PLACE_SCALE);
    await frames(page);
    // Zoomed in around the clicked point: the same pixel is under the pointer.
    assert.deepEqual(await pixelUnder(page, at), { x: 300, y: 200 });
    await page.locator(".toast.info", { hasText: "tap again to place" }).waitFor();
    assert.equal(await canvasPixel(page, 300, 200), "#FFFFFF");

    await page.mouse.click(at.x, at.y);
    await waitCanvasPixel(page, 300, 200, "#FF4500");
    // One write: the zooming click placed nothing (had it, this click would
    // have met the cooldown instead).
    assert.equal(await storedSeq(), seq + 1);
  });

  check("on a phone a tap at the fitted zoom zooms in and places nothing, the next one places; zoom buttons show; inspect stays clear of the toolbar", async () => {
    const phone = await open("bea", PHONE);
    assert.ok((await scaleOf(phone)) < 1);
    await phone.click('#palette [data-color="#00A368"]');
    const seq = await storedSeq();
    const at = await pixelCenter(phone, 500, 450);
    await phone.touchscreen.tap(at.x, at.y);
    await phone.waitForFunction((min) => window.__canvas.view().scale >= min, MIN_PLACE_SCALE);
    await frames(phone);
    assert.equal(await storedSeq(), seq, "the zooming tap placed nothing");
    assert.equal(await canvasPixel(phone, 500, 450), "#FFFFFF");
    // Once zoomed, a tap on the same pixel places it.
    const zoomed = await pixelCenter(phone, 500, 450);
    await phone.touchscreen.tap(zoomed.x, zoomed.y);
    await waitCanvasPixel(phone, 500, 450, "#00A368");
    assert.equal(await storedSeq(), seq + 1);
    await phone.screenshot({ path: join(ARTIFACTS, "phone-tap-zoomed.png") });

    // The zoom buttons are on screen and work.
    for (const id of ["#zoom-out", "#zoom-fit", "#zoom-in"]) {
      const box = await phone.locator(id).boundingBox();
      assert.ok(box && box.width >= 30 && box.x >= 0 && box.x + box.width <= 390 && box.y + box.height <= 844, `${id}: ${JSON.stringify(box)}`);
    }
    const before = await scaleOf(phone);
    await phone.tap("#zoom-in");
    await phone.waitForFunction((s) => window.__canvas.view().scale > s, before);
    await phone.tap("#zoom-fit");
    await phone.waitForFunction(() => window.__canvas.view().scale < 1);

    // The inspect panel sits between the bars, not under the toolbar.
    await phone.tap("#mode-inspect");
    const c = await pixelCenter(phone, 500, 450);
    await phone.touchscreen.tap(c.x, c.y);
    await phone.waitForSelector('#inspect:not([hidden])[data-state="placed"], #inspect:not([hidden])[data-state="never"]');
    const panel = await phone.locator("#inspect").boundingBox();
    const top = await phone.locator(".bar.top").boundingBox();
    const bottom = await phone.locator(".bar.bottom").boundingBox();
    assert.ok(panel.y + panel.height <= bottom.y && panel.y >= top.y + top.height, JSON.stringify({ panel, top, bottom }));
    await phone.screenshot({ path: join(ARTIFACTS, "phone-inspect.png") });
    await phone.tap("#mode-place");
  });

  check("the reticle shows the chosen color on the pixel; lines between pixels show only at high zoom", async () => {
    const page = await open("cid");
    await page.click('#palette [data-color="#3690EA"]');
    const fitted = await pixelCenter(page, 600, 600);
    await page.mouse.move(fitted.x, fitted.y);
    await frames(page);
    assert.equal(await page.isHidden("#grid"), true, "no grid at the fitted zoom");
    assert.equal(await page.isHidden("#reticle"), true, "no reticle where a click does not place");

    await zoomTo(page, 600, 600, 16);
    const c = await pixelCenter(page, 600, 600);
    await page.mouse.move(c.x, c.y);
    await frames(page);
    assert.equal(await page.isVisible("#grid"), true);
    const beside = await pixelCenter(page, 603, 600);
    // The line at the left edge of pixel 606 in row 603, away from the
    // reticle; a fractional zoom may put it across two screen columns.
    const edge = { x: (await pixelCenter(page, 606, 603)).x - c.scale / 2, y: (await pixelCenter(page, 606, 603)).y };
    const [under, white, lineA, lineB] = await screenColors(page, [c, beside, edge, { x: edge.x + 1, y: edge.y }]);
    assert.equal(under, "#3690EA", "the hovered pixel shows the chosen color");
    assert.equal(white, "#FFFFFF", "its neighbour shows the board");
    const darkest = Math.min(parseInt(lineA.slice(1, 3), 16), parseInt(lineB.slice(1, 3), 16));
    assert.ok(darkest < 235, `a grid line between pixels: ${lineA} ${lineB}`);
    assert.equal(await canvasPixel(page, 600, 600), "#FFFFFF", "nothing was placed");
    await page.screenshot({ path: join(ARTIFACTS, "reticle-grid.png") });

    // Another color: the reticle follows.
    await page.click('#palette [data-color="#FFD635"]');
    await page.mouse.move(c.x, c.y);
    await frames(page);
    assert.deepEqual(await screenColors(page, [c]), ["#FFD635"]);

    // Zoomed out below the grid's zoom (still placing): no lines.
    await page.locator("#viewport").focus();
    while ((await scaleOf(page)) >= GRID_SCALE) {
      const s = await scaleOf(page);
      await page.keyboard.press("-");
      await page.waitForFunction((s) => window.__canvas.view().scale < s, s);
    }
    await frames(page);
    assert.equal(await page.isHidden("#grid"), true);
  });

  check("number keys and [ ] pick colors, not while typing; the keys are listed on screen", async () => {
    const page = await open("dot");
    const colors = await page.evaluate(() => [...document.querySelectorAll("#palette .swatch-btn")].map((b) => b.dataset.color));
    assert.equal(colors.length, 32);
    const chosen = () => page.evaluate(() => document.querySelector('#palette [aria-checked="true"]')?.dataset.color);
    await page.locator("#viewport").focus();
    for (const [key, i] of [["1", 0], ["5", 4], ["9", 8], ["0", 9], ["Shift+1", 10], ["Shift+0", 19], ["]", 20], ["[", 19]]) {
      await page.keyboard.press(key);
      assert.equal(await chosen(), colors[i], `${key} picks color ${i + 1}`);
    }
    await page.keyboard.press("1");
    await page.keyboard.press("[");
    assert.equal(await chosen(), colors[31], "[ wraps around");
    assert.equal(await page.evaluate(() => getComputedStyle(document.getElementById("reticle")).backgroundColor), "rgb(255, 255, 255)",
      "the reticle carries the color (#FFFFFF, the last)");

    // Typing a name does not pick colors.
    await page.click("#username");
    await page.keyboard.press("7");
    assert.equal(await chosen(), colors[31]);
    await page.keyboard.press("Escape");

    // The list of keys: a button on screen, "?" and Escape.
    assert.equal(await page.isHidden("#help"), true);
    assert.equal(await page.isVisible("#help-toggle"), true);
    await page.click("#help-toggle");
    assert.equal(await page.isVisible("#help"), true);
    const text = await page.textContent("#help");
    for (const phrase of ["1–9", "colors 11–20", "fit the whole board", "who placed a pixel", "zoomed out, it zooms in"]) {
      assert.ok(text.includes(phrase), `${phrase} in ${text}`);
    }
    // The swatches show their keys meanwhile.
    const label = (i) => page.evaluate((i) => getComputedStyle(document.querySelectorAll("#palette .swatch-btn")[i], "::after").content, i);
    assert.equal(await label(0), '"1"');
    assert.equal(await label(10), '"⇧1"');
    await page.screenshot({ path: join(ARTIFACTS, "help-desktop.png") });
    await page.locator("#viewport").focus();
    await page.keyboard.press("Escape");
    assert.equal(await page.isHidden("#help"), true);
    assert.equal(await label(0), "none");
    await page.keyboard.press("?");
    assert.equal(await page.isVisible("#help"), true);
    await page.keyboard.press("?");
    assert.equal(await page.isHidden("#help"), true);
  });

  check("the cooldown message goes away when the cooldown ends", async () => {
    const page = await open("eli");
    await page.click('#palette [data-color="#811E9F"]');
    const at = await zoomTo(page, 20, 20, 8);
    await page.mouse.click(at.x, at.y);
    await waitCanvasPixel(page, 20, 20, "#811E9F");
    await page.waitForSelector("#cooldown.cooling");
    await page.mouse.click(at.x + at.scale, at.y);
    await page.locator(".toast", { hasText: "Cooldown" }).waitFor();
    // Checked in the frame the countdown says Ready: the toast (which alone
    // would stay 4.5 s) must already be gone.
    const atReady = await page.waitForFunction(
      () => document.getElementById("cooldown-text").textContent === "Ready"
        && { toasts: [...document.querySelectorAll(".toast")].map((t) => t.textContent) },
      null,
      { polling: "raf", timeout: COOLDOWN_MS + 10_000 },
    );
    assert.deepEqual((await atReady.jsonValue()).toasts.filter((t) => t.startsWith("Cooldown")), []);
    assert.equal(await canvasPixel(page, 21, 20), "#FFFFFF", "the refused click placed nothing");
  });

  /** The pixel in the middle of the page's viewport, read from the canvas's on-screen box. */
  const middlePixel = async (page) => {
    const size = page.viewportSize();
    return pixelUnder(page, { x: size.width / 2, y: size.height / 2 });
  };
  const hashPlace = (page) => page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.slice(1))));

  check("the address carries the place as the board moves; a link opens there; copy link copies it", async () => {
    const page = await open("gus");
    assert.equal(await page.evaluate(() => location.hash), "", "the fitted board needs no place");
    await zoomTo(page, 250, 750, 8);
    await page.waitForFunction(() => /^#x=\d+&y=\d+&z=[\d.]+$/.test(location.hash));
    // Written a moment after the board stops: wait for the one that names
    // what is in the middle now.
    await page.waitForFunction(() => {
      const q = new URLSearchParams(location.hash.slice(1));
      const c = document.getElementById("board").getBoundingClientRect();
      const s = c.width / 1000;
      return Number(q.get("x")) === Math.floor((innerWidth / 2 - c.left) / s)
        && Number(q.get("y")) === Math.floor((innerHeight / 2 - c.top) / s);
    });
    const here = await hashPlace(page);
    assert.ok(Number(here.z) >= 8, JSON.stringify(here));
    // The pointer off the board (on the top bar): the readout shows the middle pixel.
    await page.hover(".brand");
    await page.waitForFunction((t) => document.getElementById("coords").textContent === t, `(${here.x}, ${here.y})`);

    // Copy link: the clipboard holds this place's address.
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    await page.click("#copy-link");
    await page.locator(".toast.info", { hasText: "Link copied" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, `${server.url}/#x=${here.x}&y=${here.y}&z=${here.z}`);

    // Opened elsewhere, the link shows the same pixel in the middle at the same zoom.
    const other = await openPage(browser, copied, { username: "gus-friend" });
    pages.push(other);
    await waitLive(other);
    await frames(other);
    assert.deepEqual(await middlePixel(other), { x: Number(here.x), y: Number(here.y) });
    assert.ok(Math.abs((await scaleOf(other)) - Number(here.z)) < 0.01);

    // A place typed into the address bar of the open page goes there.
    await other.evaluate(() => { location.hash = "#x=10&y=990&z=16"; });
    await other.waitForFunction(() => window.__canvas.view().scale === 16);
    await frames(other);
    assert.deepEqual(await middlePixel(other), { x: 10, y: 990 });

    // A link naming no place opens the fitted board, without complaint.
    const broken = await openPage(browser, `${server.url}/#x=abc&z=-1`, { username: "gus-broken" });
    pages.push(broken);
    await waitLive(broken);
    assert.ok((await scaleOf(broken)) < 1);
  });

  check("Space places the chosen color at the reticle, and only where the reticle shows", async () => {
    const page = await open("hal");
    await page.locator("#viewport").focus();
    await page.keyboard.press("3");
    const color = await page.evaluate(() => document.querySelector('#palette [aria-checked="true"]').dataset.color);
    const seq = await storedSeq();
    // Fitted: no reticle, so Space places nothing.
    const far = await pixelCenter(page, 700, 300);
    await page.mouse.move(far.x, far.y);
    await page.keyboard.press("Space");
    const at = await zoomTo(page, 700, 300, 8);
    await page.mouse.move(at.x, at.y);
    await frames(page);
    assert.equal(await page.isVisible("#reticle"), true);
    await page.keyboard.press("Space");
    await waitCanvasPixel(page, 700, 300, color);
    // One write: the first Space placed nothing (else this one had met the cooldown).
    assert.equal(await storedSeq(), seq + 1);
  });

  for (const [device, options] of [["a desktop", {}], ["a phone", PHONE]]) {
    check(`the toolbars keep their place when their text changes, on ${device}`, async () => {
      const page = await open(device === "a phone" ? "fay-phone" : "fay", options);
      const boxes = () => page.evaluate(() => Object.fromEntries(
        [".bar.top", ".bar.bottom", "#palette", ".mode", ".zoom", "#cooldown", "#status", "#people-toggle", "#help-toggle", "#username"]
          .map((s) => {
            const r = document.querySelector(s)?.getBoundingClientRect();
            return [s, r ? [r.x, r.y, r.width, r.height].map((v) => v.toFixed(2)).join(" ") : "missing"];
          })));
      await page.waitForFunction(() => /^\d+ online$/.test(document.getElementById("online").textContent));
      const ready = await boxes();

      // A real countdown…
      const at = await zoomTo(page, options.mobile ? 41 : 40, 60, 8);
      if (options.mobile) await page.touchscreen.tap(at.x, at.y);
      else await page.mouse.click(at.x, at.y);
      await page.waitForFunction(() => /^Wait \d/.test(document.getElementById("cooldown-text").textContent));
      assert.deepEqual(await boxes(), ready, "during the countdown");
      // …and every shape of text these places take.
      const texts = [
        ["cooldown-text", "Wait 9.9 s"], ["cooldown-text", "Wait 45 s"], ["cooldown-text", "Wait 10:00"],
        ["cooldown-text", "Wait 125:05"], ["cooldown-text", "Ready"],
        ["status-text", "Reconnecting…"], ["status-text", "Connecting…"], ["status-text", "Offline"], ["status-text", "Live"],
        ["online", "– online"], ["online", "9999 online"],
      ];
      for (const [id, text] of texts) {
        await page.evaluate(([id, text]) => { document.getElementById(id).textContent = text; }, [id, text]);
        assert.deepEqual(await boxes(), ready, `with ${id} "${text}"`);
      }
    });
  }
});
