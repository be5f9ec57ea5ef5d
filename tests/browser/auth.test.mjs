// Identity in the web client, in real chromium against a real stack with
// AUTH=required: the page gets a session token for its name, keeps it, and
// places with it; a refused token (4001) is dropped and replaced.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launchBrowser, openPage, waitCanvasPixel, waitLive, waitMatchesStored, zoomTo } from "./browser.mjs";
import { Stack } from "./stack.mjs";

describe("web client with AUTH=required", { timeout: 120_000 }, () => {
  let stack;
  let browser;

  before(async () => {
    stack = await Stack.start({ gateways: 1, env: { COOLDOWN_MS: "0", AUTH: "required" } });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stack?.stop();
  });

  test("a page gets a token for its name, replaces a forged one, and places a pixel as that name", async () => {
    const page = await openPage(browser, null, { username: "painter" });
    // A token the server will refuse (4001): signed by nobody.
    await page.context().addInitScript(() => {
      if (!sessionStorage.getItem("seeded")) {
        sessionStorage.setItem("seeded", "1");
        localStorage.setItem("canvas.session", JSON.stringify({
          username: "painter", token: "v1.cGFpbnRlcg.abc.99999999999999.Zm9yZ2Vk", expiresAt: 99999999999999,
        }));
      }
    });
    const closes = [];
    page.on("websocket", (ws) => ws.on("close", () => closes.push(ws.url())));
    await page.goto(`${stack.gateways[0].url}/`);
    await waitLive(page);
    assert.equal(await page.evaluate(() => window.__canvas.username()), "painter");
    const saved = await page.evaluate(() => JSON.parse(localStorage.getItem("canvas.session")));
    assert.equal(saved.username, "painter");
    assert.notEqual(saved.token, "v1.cGFpbnRlcg.abc.99999999999999.Zm9yZ2Vk", "the forged token was replaced");
    assert.ok(closes.length >= 1 && closes[0].includes("token="), `the forged token's socket was closed: ${closes}`);

    await page.click('#palette [data-color="#00A368"]');
    const at = await zoomTo(page, 77, 88, 6);
    await page.mouse.click(at.x, at.y);
    await waitCanvasPixel(page, 77, 88, "#00A368");
    const who = await (await fetch(`${stack.api.url}/api/pixel/77/88`)).json();
    assert.equal(who.username, "painter");
    assert.equal((await waitMatchesStored(page)).mismatches, 0);
    assert.deepEqual(page.problems, []);
  });

  test("a name another session holds is refused with a message, and the page only watches", async () => {
    const holder = await fetch(`${stack.api.url}/api/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "taken" }),
    });
    assert.equal(holder.status, 200);
    const page = await openPage(browser, null, { username: "taken" });
    const problems = page.problems;
    await page.goto(`${stack.gateways[0].url}/`);
    await page.locator(".toast", { hasText: "is taken by another player" }).waitFor();
    await waitLive(page);
    assert.match(await page.evaluate(() => window.__canvas.username()), /^guest-/);
    // The 409 is the expected answer here.
    assert.deepEqual(problems.filter((p) => !p.includes("/api/session")), []);
  });
});
