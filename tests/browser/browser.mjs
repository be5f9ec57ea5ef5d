// Headless Debian chromium driven by playwright-core (which never downloads
// a browser of its own), and what the tests read from a page: the board
// canvas's own pixels, compared with the stored board.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { deflateSync, inflateSync } from "node:zlib";
import { chromium } from "playwright-core";
import { ROOT } from "./stack.mjs";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const ARTIFACTS = join(ROOT, "tests/artifacts");
export const WAIT_MS = 15_000;

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  // Playwright gives every launch a fresh temporary --user-data-dir and adds
  // --headless itself.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A page of its own context (own localStorage) at `url`, with `username`
 * remembered as if typed before. Page errors, console errors and failed
 * requests are kept in `page.problems` so a test can assert there were none.
 */
export async function openPage(browser, url, { username, viewport, mobile = false } = {}) {
  const context = await browser.newContext({
    viewport: viewport || { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    isMobile: mobile,
    hasTouch: mobile,
  });
  context.setDefaultTimeout(WAIT_MS);
  if (username) {
    await context.addInitScript((name) => {
      if (!localStorage.getItem("canvas.username")) localStorage.setItem("canvas.username", name);
    }, username);
  }
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Failed requests are judged by the response listener, which knows the URL.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) page.problems.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    // 404 is the answer for a pixel nobody placed.
    const expected = r.status() === 404 && new URL(r.url()).pathname.startsWith("/api/pixel/");
    if (r.status() >= 400 && !expected) page.problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  if (url) await page.goto(url);
  return page;
}

export async function waitLive(page, timeout = WAIT_MS) {
  await page.waitForFunction(() => window.__canvas?.status() === "live" && window.__canvas.ready(), null, { timeout });
}

/** "#RRGGBB" read from the board canvas itself. */
export async function canvasPixel(page, x, y) {
  return page.evaluate(([x, y]) => {
    const d = document.getElementById("board").getContext("2d").getImageData(x, y, 1, 1).data;
    return "#" + [d[0], d[1], d[2]].map((v) => v.toString(16).padStart(2, "0")).join("").toUpperCase();
  }, [x, y]);
}

/** Waits until the canvas shows `color` at (x, y). */
export async function waitCanvasPixel(page, x, y, color, timeout = WAIT_MS) {
  await page.waitForFunction(([x, y, color]) => {
    const d = document.getElementById("board").getContext("2d").getImageData(x, y, 1, 1).data;
    const hex = "#" + [d[0], d[1], d[2]].map((v) => v.toString(16).padStart(2, "0")).join("").toUpperCase();
    return hex === color;
  }, [x, y, color], { timeout, polling: 50 });
}

/**
 * Compares every pixel of the board canvas with `/api/canvas.bin` as the
 * page's origin serves it: {mismatches, first, seq, width, height}.
 */
export async function diffWithStored(page) {
  return page.evaluate(async () => {
    const r = await fetch("/api/canvas.bin", { cache: "no-store" });
    const rgb = new Uint8Array(await r.arrayBuffer());
    const width = Number(r.headers.get("x-canvas-width"));
    const height = Number(r.headers.get("x-canvas-height"));
    const canvas = document.getElementById("board");
    if (canvas.width !== width || canvas.height !== height) {
      return { mismatches: width * height, first: `canvas is ${canvas.width}x${canvas.height}`, width, height };
    }
    const shown = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let mismatches = 0;
    let first = null;
    for (let i = 0, j = 0; i < width * height; i++, j += 3) {
      const p = i * 4;
      if (shown[p] !== rgb[j] || shown[p + 1] !== rgb[j + 1] || shown[p + 2] !== rgb[j + 2] || shown[p + 3] !== 255) {
        mismatches++;
        if (!first) first = { x: i % width, y: Math.floor(i / width), shown: [shown[p], shown[p + 1], shown[p + 2]], stored: [rgb[j], rgb[j + 1], rgb[j + 2]] };
      }
    }
    return { mismatches, first, seq: Number(r.headers.get("x-canvas-seq")), width, height };
  });
}

/** Waits until the board canvas equals the stored board exactly. */
export async function waitMatchesStored(page, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await diffWithStored(page);
    if (last.mismatches === 0) return last;
    // Wait for the next drawn frame rather than a fixed delay.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  }
  throw new Error(`the canvas does not match /api/canvas.bin: ${JSON.stringify(last)}`);
}

/** Client coordinates of the centre of board pixel (x, y), from the canvas's on-screen box. */
export async function pixelCenter(page, x, y) {
  return page.evaluate(([x, y]) => {
    const c = document.getElementById("board");
    const r = c.getBoundingClientRect();
    return { x: r.left + ((x + 0.5) * r.width) / c.width, y: r.top + ((y + 0.5) * r.height) / c.height, scale: r.width / c.width };
  }, [x, y]);
}

/** Zooms (mouse wheel over the pixel) until a board pixel is at least `minScale` CSS px. */
export async function zoomTo(page, x, y, minScale = 8) {
  for (let i = 0; i < 40; i++) {
    const c = await pixelCenter(page, x, y);
    if (c.scale >= minScale) return c;
    await page.mouse.move(c.x, c.y);
    await page.mouse.wheel(0, -240);
    await page.waitForFunction((s) => window.__canvas.view().scale > s, c.scale);
    // The transform is applied in the next animation frame.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  }
  throw new Error("could not zoom in");
}

/**
 * An 8-bit RGB or RGBA PNG, as Chromium's screenshots are, decoded to
 * {width, height, channels, data}; anything else is refused.
 */
export function decodePng(png) {
  const SIGNATURE = "89504e470d0a1a0a";
  if (png.subarray(0, 8).toString("hex") !== SIGNATURE) throw new Error("not a PNG");
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat = [];
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at);
    const type = png.toString("latin1", at + 4, at + 8);
    const body = png.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const [depth, colorType, , , interlace] = body.subarray(8, 13);
      channels = { 2: 3, 6: 4 }[colorType];
      if (depth !== 8 || !channels || interlace !== 0) throw new Error(`unsupported PNG (depth ${depth}, color type ${colorType}, interlace ${interlace})`);
    } else if (type === "IDAT") idat.push(body);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const data = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? data[y * stride + i - channels] : 0;
      const b = y > 0 ? data[(y - 1) * stride + i] : 0;
      const c = y > 0 && i >= channels ? data[(y - 1) * stride + i - channels] : 0;
      let predictor = 0;
      if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`PNG filter ${filter}`);
      data[y * stride + i] = (line[i] + predictor) & 0xff;
    }
  }
  return { width, height, channels, data };
}

/**
 * "#RRGGBB" of what the screen shows at each client point (CSS px, with
 * deviceScaleFactor 1): from one screenshot, so it sees what a player sees —
 * the reticle and grid over the board included.
 */
export async function screenColors(page, points) {
  const shot = decodePng(await page.screenshot());
  return points.map(({ x, y }) => {
    const i = (Math.floor(y) * shot.width + Math.floor(x)) * shot.channels;
    return "#" + [...shot.data.subarray(i, i + 3)].map((v) => v.toString(16).padStart(2, "0")).join("").toUpperCase();
  });
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * An 8-bit RGBA PNG of `rgba` (row-major, 4 bytes a pixel): the images
 * tests hand the page as files.
 */
export function encodePng(width, height, rgba) {
  const chunk = (type, body) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, "latin1");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // depth 8, RGBA, no interlace
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    Buffer.from(rgba.buffer, rgba.byteOffset + y * width * 4, width * 4).copy(raw, y * (width * 4 + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from("89504e470d0a1a0a", "hex"),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
