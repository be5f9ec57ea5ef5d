// First-paint benchmark (not part of the test suite): how long the page
// takes, from navigation start, to draw the board's first pixels
// (`performance.mark("canvas:first-paint")`, set by main.js) on a 65,536²
// board (chunked mode) and on a 1000×1000 one (the whole board), each with
// pixels painted where the page opens. Every run is a fresh browser context
// (an empty HTTP cache). Prints JSON: per board the runs, median and max.
//
//   cargo build --release -p server
//   node tests/browser/bench_first_paint.mjs [--runs 5]
//
// CANVAS_BIN_DIR picks the binaries (default: target/release); CHROMIUM the
// browser, as for the tests.

import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const ROOT = join(fileURLToPath(import.meta.url), "../../..");
process.env.CANVAS_BIN_DIR ||= join(ROOT, "target/release");
// Imported after CANVAS_BIN_DIR is set: stack.mjs reads it once.
const { startSingleProcess } = await import("./stack.mjs");
const { launchBrowser, openPage } = await import("./browser.mjs");

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 100) {
  console.error(`--runs must be a whole number from 1 to 100, not ${values.runs}`);
  process.exit(2);
}
/** Longest a page may take to paint before the run counts as failed. */
const PAINT_TIMEOUT_MS = 30_000;
const PAINTED = 64;
const COLORS = ["#BE0039", "#2450A4", "#00A368", "#FFA800", "#000000", "#811E9F"];

const BOARDS = [
  { width: 65_536, height: 65_536, at: { x: 40_000, y: 30_000 } },
  { width: 1000, height: 1000, at: { x: 500, y: 500 } },
];

async function measure(browser, board) {
  const server = await startSingleProcess({
    CANVAS_WIDTH: String(board.width),
    CANVAS_HEIGHT: String(board.height),
  });
  try {
    const painted = [];
    for (let i = 0; i < PAINTED; i++) {
      const x = board.at.x - 32 + ((i * 37) % 64);
      const y = board.at.y - 32 + ((i * 23) % 64);
      const color = COLORS[i % COLORS.length];
      const r = await fetch(`${server.url}/api/pixel`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ x, y, color, username: `bench${i}` }),
      });
      if (!r.ok) throw new Error(`PUT /api/pixel: ${r.status} ${await r.text()}`);
      painted.push({ x, y, color });
    }
    const config = await (await fetch(`${server.url}/api/config`)).json();
    const url = `${server.url}/#x=${board.at.x}&y=${board.at.y}&z=8`;
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const page = await openPage(browser, null);
      await page.goto(url);
      await page.waitForFunction(() => performance.getEntriesByName("canvas:first-paint").length > 0, null, { timeout: PAINT_TIMEOUT_MS, polling: 10 });
      const ms = await page.evaluate(() => performance.getEntriesByName("canvas:first-paint")[0].startTime);
      // The pixels must really be there, not just a frame.
      const last = painted.at(-1);
      await page.waitForFunction(([x, y, c]) => window.__canvas.getPixel(x, y) === c, [last.x, last.y, last.color]);
      if (page.problems.length) throw new Error(`page problems: ${page.problems.join("; ")}`);
      runs.push(Math.round(ms * 10) / 10);
      await page.context().close();
    }
    const sorted = [...runs].sort((a, b) => a - b);
    return {
      width: board.width,
      height: board.height,
      mode: config.wholeBoard === false ? "chunked" : "whole board",
      runs,
      medianMs: sorted[Math.floor(sorted.length / 2)],
      maxMs: sorted.at(-1),
    };
  } finally {
    await server.stop();
  }
}

const browser = await launchBrowser();
try {
  const results = [];
  for (const board of BOARDS) results.push(await measure(browser, board));
  console.log(JSON.stringify({
    metric: "navigation start to canvas:first-paint (ms)",
    runsPerBoard: RUNS,
    browser: `chromium ${browser.version()}`,
    viewport: "1280x800",
    binaries: process.env.CANVAS_BIN_DIR.replace(ROOT + "/", ""),
    boards: results,
  }, null, 2));
} finally {
  await browser.close();
}
