// Real processes for the browser tests: a redis-server, a canvas-api and
// gateways (`server`), each on a free loopback port, found by the
// `listening on ADDR` line it logs and awaited on `/readyz`. Every process is
// killed when the stack stops, and when the test process exits.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Where `cargo build --workspace --bins` puts the binaries. */
export const BIN_DIR = process.env.CANVAS_BIN_DIR || join(ROOT, "target/debug");

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;

const children = new Set();
process.on("exit", () => {
  for (const child of children) {
    try { child.kill("SIGKILL"); } catch { /* gone */ }
  }
});

export function binary(name) {
  const path = join(BIN_DIR, name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build the binaries first with \`cargo build --workspace --bins\` (scripts/test.sh does)`);
  }
  return path;
}

/** A port nothing listens on right now. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const ANSI = /\x1b\[[0-9;]*m/g;

/** A child process whose output lines are kept and can be awaited. */
export class Proc {
  constructor(name, command, args, env) {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    this.exited = null; // {code, signal} once exited
    this.child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    children.add(this.child);
    this.exit = new Promise((resolveExit) => {
      this.child.on("exit", (code, signal) => {
        children.delete(this.child);
        this.exited = { code, signal };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${name} exited (${code ?? signal}) while waiting for ${w.what}:\n${this.log()}`));
        resolveExit(this.exited);
      });
    });
    this.child.on("error", (e) => {
      // Not started at all (e.g. the program is missing): no exit follows.
      this.lines.push(`cannot run ${command}: ${e.message}`);
      if (this.child.pid === undefined && !this.exited) {
        children.delete(this.child);
        this.exited = { code: null, signal: null, error: e.message };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${name} did not start: ${e.message}`));
      }
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      createInterface({ input: stream }).on("line", (raw) => this.line(raw.replace(ANSI, "")));
    }
  }

  line(text) {
    this.lines.push(text);
    if (this.lines.length > 2000) this.lines.splice(0, 1000);
    for (const w of [...this.waiters]) {
      const m = w.test(text);
      if (m) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }

  /** Resolves with the first output line (from now on, or already seen) matching `re`. */
  waitForLine(re, what, timeoutMs = START_TIMEOUT_MS) {
    for (const text of this.lines) {
      const m = text.match(re);
      if (m) return Promise.resolve(m);
    }
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited:\n${this.log()}`));
    return new Promise((resolveLine, reject) => {
      const w = { what, test: (t) => t.match(re), resolve: resolveLine, reject };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms:\n${this.log()}`));
        }
      }, timeoutMs).unref();
    });
  }

  log() {
    return this.lines.slice(-60).map((l) => `  [${this.name}] ${l}`).join("\n");
  }

  /** SIGTERM, then the exit (SIGKILL if it ignores the signal). */
  async stop(signal = "SIGTERM") {
    if (this.exited) return this.exited;
    if (this.child.pid === undefined) return { code: null, signal: null };
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    const result = await this.exit;
    clearTimeout(timer);
    return result;
  }
}

export async function startRedis() {
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = new Proc("redis", "redis-server", [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    ], { PATH: process.env.PATH });
    try {
      await proc.waitForLine(/Ready to accept connections/, "readiness");
      proc.url = `redis://127.0.0.1:${port}`;
      return proc;
    } catch (e) {
      lastError = e;
      await proc.stop("SIGKILL");
    }
  }
  throw lastError;
}

/** Starts a service binary and waits until it listens and is ready. */
export async function startService(name, bin, env) {
  const proc = new Proc(name, binary(bin), [], {
    PATH: process.env.PATH,
    RUST_LOG: "info",
    LISTEN_ADDR: "127.0.0.1:0",
    // The tests paint over HTTP in bulk from one address.
    HTTP_PLACEMENTS_PER_SEC_PER_IP: "0",
    ...env,
  });
  const m = await proc.waitForLine(/listening on (\S+)/, "`listening on` line");
  proc.addr = m[1];
  proc.url = `http://${proc.addr}`;
  await waitReady(proc);
  return proc;
}

/**
 * The single-process server on a fresh `DATA_DIR`, which goes when it
 * stops.
 */
export async function startSingleProcess(env = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "canvas-single-"));
  try {
    const server = await startService("server", "server", { DATA_DIR: dataDir, ...env });
    const stop = server.stop.bind(server);
    server.stop = async () => {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
    return server;
  } catch (e) {
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
}

async function waitReady(proc) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.name} exited before it was ready:\n${proc.log()}`);
    try {
      const r = await fetch(`${proc.url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) return;
      last = `readyz answered ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${proc.name} not ready within ${START_TIMEOUT_MS} ms (${last}):\n${proc.log()}`);
}

/** Redis, one canvas-api and `gateways` gateways calling it. */
export class Stack {
  static async start({ gateways = 2, env = {} } = {}) {
    const stack = new Stack();
    try {
      stack.redis = await startRedis();
      stack.env = { REDIS_URL: stack.redis.url, ...env };
      stack.api = await startService("canvas-api", "canvas-api", stack.env);
      for (let i = 0; i < gateways; i++) stack.gateways.push(await stack.startGateway(i));
      return stack;
    } catch (e) {
      await stack.stop();
      throw e;
    }
  }

  constructor() {
    this.gateways = [];
    this.all = [];
  }

  async startGateway(i, listen = "127.0.0.1:0") {
    const gw = await startService(`gw-${i}`, "server", {
      ...this.env,
      CANVAS_API_URL: this.api.url,
      POD_ID: `gw-${i}`,
      LISTEN_ADDR: listen,
    });
    this.all.push(gw);
    return gw;
  }

  /** SIGTERM gateway `i` and wait for it to exit. */
  async stopGateway(i) {
    const result = await this.gateways[i].stop();
    return result;
  }

  /** Starts gateway `i` again on the port it had. */
  async restartGateway(i) {
    const addr = this.gateways[i].addr;
    this.gateways[i] = await this.startGateway(i, addr);
    return this.gateways[i];
  }

  /** Places a pixel over HTTP, straight at canvas-api. */
  async put(x, y, color, username) {
    const r = await fetch(`${this.api.url}/api/pixel`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x, y, color, username }),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(`PUT /api/pixel (${x}, ${y}) by ${username}: ${r.status} ${JSON.stringify(body)}`);
    return body;
  }

  /** The stored board: {width, height, seq, rgb}. */
  async board() {
    const r = await fetch(`${this.api.url}/api/canvas.bin`);
    if (!r.ok) throw new Error(`canvas.bin: ${r.status}`);
    return {
      width: Number(r.headers.get("x-canvas-width")),
      height: Number(r.headers.get("x-canvas-height")),
      seq: Number(r.headers.get("x-canvas-seq")),
      rgb: new Uint8Array(await r.arrayBuffer()),
    };
  }

  logs() {
    return [this.redis, this.api, ...this.all].filter(Boolean).map((p) => p.log()).join("\n");
  }

  async stop() {
    const procs = [...this.all, this.api, this.redis].filter(Boolean);
    await Promise.all(procs.map((p) => p.stop().catch(() => {})));
  }
}
