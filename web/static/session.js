// Session tokens: proof of the chosen name. With AUTH=required the server
// lets only a connection with a token place; the token for a name comes from
// `POST /api/session` and is kept in localStorage, one per name, until it
// expires or the server refuses it (close code 4001).

const STORE_SESSION = "canvas.session";
/** Renew this long before expiry, so a token never runs out mid-session. */
const RENEW_BEFORE_MS = 24 * 3600 * 1000;

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(STORE_SESSION) || "null");
    return s && typeof s.token === "string" && typeof s.username === "string" ? s : null;
  } catch {
    return null;
  }
}

function save(s) {
  try {
    if (s) localStorage.setItem(STORE_SESSION, JSON.stringify(s));
    else localStorage.removeItem(STORE_SESSION);
  } catch { /* not kept */ }
}

export class Session {
  constructor() {
    this.saved = load();
  }

  /** The stored token for `name`, if it has not expired. */
  tokenFor(name) {
    const s = this.saved;
    return s && s.username === name && Number(s.expiresAt) > Date.now() ? s.token : "";
  }

  /** Forgets the token (the server refused it). */
  drop() {
    this.saved = null;
    save(null);
  }

  /**
   * A token for `name`: the stored one, renewed when near its end, or a new
   * one. Resolves to {token} or {error: code, retryAfterMs}; "username_taken"
   * means another live session holds the name.
   */
  async ensure(name) {
    const current = this.tokenFor(name);
    if (current && Number(this.saved.expiresAt) - Date.now() > RENEW_BEFORE_MS) return { token: current };
    const headers = { "content-type": "application/json" };
    if (current) headers.authorization = `Bearer ${current}`;
    let r;
    try {
      r = await fetch("/api/session", { method: "POST", headers, body: JSON.stringify({ username: name }) });
    } catch {
      return current ? { token: current } : { error: "unavailable" };
    }
    const body = await r.json().catch(() => null);
    if (r.ok && body && typeof body.token === "string") {
      this.saved = { username: body.username, token: body.token, expiresAt: Number(body.expiresAt) };
      save(this.saved);
      return { token: body.token };
    }
    if (current) return { token: current };
    const error = body && body.error ? body.error : {};
    return { error: String(error.code || "unavailable"), retryAfterMs: Number(error.retryAfterMs) || 0 };
  }
}
