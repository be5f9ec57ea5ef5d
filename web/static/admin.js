// The moderation page: calls /api/admin/* with the token kept in this tab's
// sessionStorage. Everything the server or a user wrote goes in as text
// (textContent), never as HTML.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "canvas.adminToken";
const BY_KEY = "canvas.adminName";

const session = {
  get(key) {
    try { return sessionStorage.getItem(key) || ""; } catch { return ""; }
  },
  set(key, value) {
    try {
      if (value) sessionStorage.setItem(key, value); else sessionStorage.removeItem(key);
    } catch { /* not kept */ }
  },
};

/**
 * Asks the server, without a token, whether moderation is on: every admin
 * route answers 404 `moderation_disabled` when no `ADMIN_TOKEN` is set,
 * before it looks at the token (401 `unauthorized` means it is on).
 * `document.body.dataset.moderation` says what was found: "on", "off" or
 * "unknown" (the server could not be asked).
 */
async function checkModeration() {
  let state = "unknown";
  try {
    const response = await fetch("/api/admin/audit?limit=1", { cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (response.status === 404 && body?.error?.code === "moderation_disabled") state = "off";
    else if (response.status === 401 || response.ok) state = "on";
  } catch { /* unreachable: say nothing */ }
  setModeration(state);
}

function setModeration(state) {
  document.body.dataset.moderation = state;
  $("moderation-off").hidden = state !== "off";
  for (const button of document.querySelectorAll("main button, #login button[type=submit]")) {
    button.disabled = state === "off";
  }
}

function show(text, isError = false) {
  const out = $("result");
  out.textContent = text;
  out.className = isError ? "error" : "";
}

/** Calls an admin route; shows and throws a typed error. */
async function call(method, path, body) {
  const token = session.get(TOKEN_KEY);
  if (!token) {
    show("Enter the admin token first.", true);
    throw new Error("no token");
  }
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const by = session.get(BY_KEY);
  if (by) headers["x-admin-name"] = by;
  const response = await fetch(`/api/admin/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  if (!response.ok) {
    const e = json?.error;
    if (e?.code === "moderation_disabled") setModeration("off");
    show(e ? `${response.status} ${e.code}: ${e.message}` : `${response.status}: ${text}`, true);
    throw new Error(e?.code || String(response.status));
  }
  return json;
}

const minutesAgo = (m) => Math.round(Date.now() - Number(m) * 60_000);
const num = (form, name) => Number(form.elements[name].value);
const rect = (form) => ({ x0: num(form, "x0"), y0: num(form, "y0"), x1: num(form, "x1"), y1: num(form, "y1") });

async function refreshAudit() {
  const page = await call("GET", "audit?limit=100");
  const body = $("audit");
  body.replaceChildren();
  for (const e of page.entries) {
    const row = document.createElement("tr");
    for (const text of [new Date(e.at).toLocaleString(), e.by, e.action, e.detail]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    body.append(row);
  }
}

async function refreshBans() {
  const list = await call("GET", "bans");
  const ul = $("bans");
  ul.replaceChildren();
  for (const b of list) {
    const li = document.createElement("li");
    const until = b.until ? `until ${new Date(b.until).toLocaleString()}` : "until unbanned";
    li.textContent = `${b.username} (${b.reason || "no reason"}; ${until}; by ${b.by}) `;
    const lift = document.createElement("button");
    lift.type = "button";
    lift.textContent = "Unban";
    lift.addEventListener("click", () => act(async () => {
      const r = await call("POST", "unban", { username: b.username });
      await refreshBans();
      return r;
    }));
    li.append(lift);
    ul.append(li);
  }
}

async function refreshProtections() {
  const list = await call("GET", "protections");
  const ul = $("protections");
  ul.replaceChildren();
  for (const p of list) {
    const li = document.createElement("li");
    li.textContent = `#${p.id} (${p.x0}, ${p.y0})–(${p.x1}, ${p.y1}) by ${p.by} `;
    const lift = document.createElement("button");
    lift.type = "button";
    lift.textContent = "Unprotect";
    lift.addEventListener("click", () => act(async () => {
      await call("POST", "unprotect", { id: p.id });
      await refreshProtections();
      return `protection #${p.id} lifted`;
    }));
    li.append(lift);
    ul.append(li);
  }
}

/** Runs one action, then shows its outcome and the fresh audit log. */
async function act(fn) {
  try {
    const outcome = await fn();
    show(typeof outcome === "string" ? outcome : JSON.stringify(outcome, null, 2));
    await refreshAudit();
  } catch { /* already shown */ }
}

function onSubmit(id, fn) {
  const form = $(id);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(() => fn(form));
  });
}

function showWho() {
  const token = session.get(TOKEN_KEY);
  $("who").textContent = token
    ? `Acting as ${session.get(BY_KEY) || "admin"}; the token is kept in this tab only.`
    : "No token yet: it is kept in this tab only (sessionStorage).";
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  session.set(TOKEN_KEY, $("token").value.trim());
  session.set(BY_KEY, $("by").value.trim());
  $("token").value = "";
  showWho();
  try {
    await refreshAudit();
    await refreshProtections();
    await refreshBans();
    show("Token accepted.");
  } catch { /* shown */ }
});
$("forget").addEventListener("click", () => {
  session.set(TOKEN_KEY, "");
  showWho();
  show("Token forgotten.");
});
$("refresh").addEventListener("click", () => act(async () => "audit log refreshed"));

onSubmit("ban", async (f) => {
  const minutes = f.elements.minutes.value;
  const ban = await call("POST", "ban", {
    username: f.elements.username.value,
    reason: f.elements.reason.value || undefined,
    durationMs: minutes ? Number(minutes) * 60_000 : undefined,
  });
  await refreshBans();
  return ban;
});
onSubmit("unban", async (f) => {
  const r = await call("POST", "unban", { username: f.elements.username.value });
  await refreshBans();
  return r;
});
onSubmit("rollback", (f) => call("POST", "rollback", { ...rect(f), at: minutesAgo(f.elements.minutes.value) }));
onSubmit("undo", (f) => call("POST", "undo", {
  username: f.elements.username.value,
  since: minutesAgo(f.elements.minutes.value),
}));
onSubmit("protect", async (f) => {
  const p = await call("POST", "protect", rect(f));
  await refreshProtections();
  return p;
});
onSubmit("clear", (f) => {
  f.elements.sure.checked = false;
  return call("POST", "clear", {});
});

showWho();
checkModeration();
if (session.get(TOKEN_KEY)) {
  refreshAudit().then(refreshProtections).then(refreshBans).catch(() => {});
}
