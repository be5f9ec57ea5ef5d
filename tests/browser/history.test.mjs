// The time scrubber, in real headless chromium against the single-process
// server and its history archive: a past moment is drawn on the board canvas
// while live writes wait unseen, placing is off meanwhile, "Back to live"
// shows every write that came, and the timelapse plays in the page.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { ARTIFACTS, canvasPixel, launchBrowser, openPage, pixelCenter, waitCanvasPixel, waitLive, zoomTo } from "./browser.mjs";
import { startSingleProcess } from "./stack.mjs";

describe("history in the client", { timeout: 120_000 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startSingleProcess({ COOLDOWN_MS: "0" });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  async function put(x, y, color) {
    const r = await fetch(`${server.url}/api/pixel`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x, y, color, username: "painter" }),
    });
    assert.equal(r.status, 200);
    return r.json();
  }

  /** Waits until the archive holds the write `seq`. */
  async function archived(seq) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const info = await (await fetch(`${server.url}/api/history`)).json();
      if (info.lastSeq >= seq) return info;
      assert.ok(Date.now() < deadline, `the archive reached ${info.lastSeq} of ${seq}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  test("the slider shows the board as it was, live writes show again on 'Back to live', and the timelapse plays", async () => {
    const red = await put(5, 5, "#FF4500");
    await new Promise((r) => setTimeout(r, 5)); // a later millisecond for the next write
    const blue = await put(5, 5, "#3690EA");
    await archived(blue.seq);

    const page = await openPage(browser, `${server.url}/`, { username: "viewer" });
    try {
      await waitLive(page);
      await waitCanvasPixel(page, 5, 5, "#3690EA");
      await page.click("#history-toggle");
      await page.locator("#history").waitFor();
      // The slider spans the archive; move it to the red write's moment.
      await page.evaluate((at) => {
        const s = document.getElementById("history-time");
        s.value = String(at);
        s.dispatchEvent(new Event("input", { bubbles: true }));
      }, red.timestamp);
      await page.waitForFunction((at) => window.__canvas.past() === at, red.timestamp);
      await waitCanvasPixel(page, 5, 5, "#FF4500");
      assert.match(await page.textContent("#history-when"), new RegExp(`write ${red.seq}\\b`));

      // A write while the past is shown waits unseen, and placing is off.
      const green = await put(6, 5, "#00A368");
      await page.waitForFunction((seq) => window.__canvas.seq() >= seq, green.seq);
      assert.equal(await canvasPixel(page, 6, 5), "#FFFFFF");
      await zoomTo(page, 8, 5);
      const at = await pixelCenter(page, 8, 5);
      await page.mouse.click(at.x, at.y);
      await page.locator(".toast", { hasText: "looking at the past" }).waitFor();
      // Nothing was placed: the next write anyone makes is the next seq.
      assert.equal((await put(7, 5, "#000000")).seq, green.seq + 1);
      await page.screenshot({ path: join(ARTIFACTS, "history-past.png") });

      await page.click("#history-live");
      await waitCanvasPixel(page, 5, 5, "#3690EA");
      await waitCanvasPixel(page, 6, 5, "#00A368");
      assert.equal(await page.evaluate(() => window.__canvas.past()), null);

      await page.click("#timelapse-play");
      await page.waitForFunction(() => {
        const img = document.getElementById("timelapse");
        return !img.hidden && img.complete && img.naturalWidth > 0;
      });
      assert.equal(await page.evaluate(() => document.getElementById("timelapse").naturalWidth), 1000);
      await page.screenshot({ path: join(ARTIFACTS, "history-timelapse.png") });
      assert.deepEqual(page.problems, []);
    } finally {
      await page.context().close();
    }
  });
});
