// The moderation page (/admin.html) in headless chromium against real
// processes: Redis, canvas-api and two gateways. The page is loaded from a
// gateway, whose /api pass-through carries the token to canvas-api; every
// effect is checked on the API, not only on the page.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ARTIFACTS, launchBrowser, openPage, waitLive } from "./browser.mjs";
import { Stack, startService } from "./stack.mjs";

const TOKEN = "browser-admin-token-0123456789";

describe("moderation page", { timeout: 120_000 }, () => {
  let stack;
  let browser;
  let page;

  before(async () => {
    stack = await Stack.start({
      gateways: 2,
      env: { COOLDOWN_MS: "0", PALETTE: "any", CANVAS_WIDTH: "64", CANVAS_HEIGHT: "64", ADMIN_TOKEN: TOKEN },
    });
    browser = await launchBrowser();
    page = await openPage(browser, `${stack.gateways[0].url}/admin.html`);
  });

  after(async () => {
    const problems = (page?.problems || []).filter((m) => !/HTTP 401 for .*\/api\/admin\//.test(m));
    await browser?.close().catch(() => {});
    await stack?.stop();
    assert.deepEqual(problems, []);
  });

  const put = (x, y, color, username) => fetch(`${stack.gateways[1].url}/api/pixel`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ x, y, color, username }),
  });
  const result = () => page.locator("#result").textContent();
  const waitResult = (re) => page.waitForFunction(
    (src) => new RegExp(src).test(document.getElementById("result").textContent), re.source);
  const auditRows = () => page.locator("#audit tr").allTextContents();

  async function fill(formId, values) {
    for (const [name, value] of Object.entries(values)) {
      await page.locator(`#${formId} [name="${name}"]`).fill(String(value));
    }
    await page.locator(`#${formId} button[type="submit"]`).click();
  }

  test("a wrong token is refused and shown; the right one is kept for the tab", async () => {
    // Moderation is on here: no "off" notice, and the way back to the board.
    await page.waitForFunction(() => document.body.dataset.moderation === "on");
    assert.equal(await page.isHidden("#moderation-off"), true);
    assert.equal(await page.getAttribute("#back", "href"), "/");
    await page.fill("#token", "wrong-token");
    await page.click("#login button[type=submit]");
    await waitResult(/401 unauthorized/);
    await page.fill("#token", TOKEN);
    await page.fill("#by", "mod_ann");
    await page.click("#login button[type=submit]");
    await waitResult(/Token accepted/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("canvas.adminToken")), TOKEN);
    assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing kept beyond the tab");
  });

  test("undo a user restores what was there before them", async () => {
    assert.equal((await put(5, 5, "#111111", "bob")).status, 200);
    assert.equal((await put(5, 5, "#EE00EE", "eve")).status, 200);
    await fill("undo", { username: "eve", minutes: 1 });
    await waitResult(/"changed": 1/);
    const info = await (await fetch(`${stack.api.url}/api/pixel/5/5`)).json();
    assert.equal(info.color, "#111111");
    assert.equal(info.username, "~moderation");
  });

  test("ban refuses the user's placements; unban restores them", async () => {
    await fill("ban", { username: "eve", reason: "griefing" });
    await waitResult(/"username": "eve"/);
    await page.locator("#bans li").first().waitFor();
    assert.match(await page.locator("#bans li").first().textContent(), /eve \(griefing; until unbanned; by mod_ann\)/);
    const refused = await put(7, 7, "#000000", "eve");
    assert.equal(refused.status, 403);
    assert.equal((await refused.json()).error.code, "banned");
    await page.locator("#bans li button").first().click();
    await waitResult(/"wasBanned": true/);
    await page.locator("#bans li").waitFor({ state: "detached" });
    assert.equal((await put(7, 7, "#000000", "eve")).status, 200);
  });

  test("protect lists the rectangle and refuses inside it; unprotect lifts it", async () => {
    await fill("protect", { x0: 0, y0: 0, x1: 3, y1: 3 });
    await page.locator("#protections li").first().waitFor();
    assert.match(await page.locator("#protections li").first().textContent(), /\(0, 0\).\(3, 3\) by mod_ann/);
    assert.equal((await put(2, 2, "#000000", "bob")).status, 403);
    await page.locator("#protections li button").first().click();
    await page.locator("#protections li").waitFor({ state: "detached" });
    assert.equal((await put(2, 2, "#000000", "bob")).status, 200);
  });

  test("rollback and clear change the board; the audit log lists every action", async () => {
    await fill("rollback", { x0: 0, y0: 0, x1: 63, y1: 63, minutes: 10 });
    await waitResult(/"changed": \d+/);
    const board = new Uint8Array(await (await fetch(`${stack.api.url}/api/canvas.bin`)).arrayBuffer());
    assert.ok(board.every((b) => b === 255), "ten minutes ago the board was white");
    assert.equal((await put(9, 9, "#000000", "bob")).status, 200);
    await page.check("#clear [name=sure]");
    await page.click("#clear button[type=submit]");
    await waitResult(/"seq": \d+/);
    const cleared = new Uint8Array(await (await fetch(`${stack.api.url}/api/canvas.bin`)).arrayBuffer());
    assert.ok(cleared.every((b) => b === 255));
    await page.waitForFunction(() => document.querySelectorAll("#audit tr").length >= 7);
    const rows = await auditRows();
    for (const action of ["clear", "rollback", "unprotect", "protect", "unban", "ban", "undo"]) {
      assert.ok(rows.some((r) => r.includes(action) && r.includes("mod_ann")), `${action} in ${rows.join(" | ")}`);
    }
    assert.ok(rows[0].includes("clear"), "newest first");
    assert.equal(typeof (await result()), "string");
  });
});

describe("moderation page without ADMIN_TOKEN", { timeout: 60_000 }, () => {
  test("says moderation is off, offers no action, and links back to the board", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "canvas-admin-off-"));
    const server = await startService("server", "server", { DATA_DIR: dataDir });
    const browser = await launchBrowser();
    try {
      const page = await openPage(browser, `${server.url}/admin.html`);
      await page.waitForFunction(() => document.body.dataset.moderation === "off");
      assert.equal(await page.isVisible("#moderation-off"), true);
      assert.match(await page.textContent("#moderation-off"), /Moderation is off on this server: it has no\s+ADMIN_TOKEN/);
      for (const id of ["#login button[type=submit]", "#ban button[type=submit]", "#clear button[type=submit]"]) {
        assert.equal(await page.isDisabled(id), true, `${id} is disabled`);
      }
      await page.screenshot({ path: join(ARTIFACTS, "admin-moderation-off.png") });

      await page.click("#back");
      await page.waitForURL(`${server.url}/`);
      await waitLive(page);
      // The one expected refusal: the page's question whether moderation is on.
      assert.deepEqual(page.problems.filter((m) => !/HTTP 404 for .*\/api\/admin\/audit/.test(m)), []);
    } finally {
      await browser.close().catch(() => {});
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
