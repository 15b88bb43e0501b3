// The Streamer console: everything goes through the JS SDK (./sdk/ is clients/js/dist/).
// It is loaded with import() so that a missing build says so on the page.
const $ = (id) => document.getElementById(id);
const MAX_ROWS = 500;
let client = null;
let StreamerClient = null;
let currentRequest = null;
// Force disconnect: getToken() (called before every reconnect) waits until this time.
let holdUntil = 0;
const subscriptions = new Map();

function stamp() { return new Date().toISOString().slice(11, 23); }
function show(value) {
  if (typeof value === "string") return value;
  try { return JSON.stringify(value); } catch { return String(value); }
}
function row(listId, text, cls, attrs = {}) {
  const list = $(listId);
  const li = document.createElement("li");
  li.textContent = `${stamp()} ${text}`;
  if (cls) li.className = cls;
  for (const [k, v] of Object.entries(attrs)) li.dataset[k] = v;
  list.appendChild(li);
  while (list.children.length > MAX_ROWS) list.removeChild(list.firstChild);
  li.scrollIntoView({ block: "nearest" });
  return li;
}
function event(kind, text, attrs = {}) { return row("events", `${kind}: ${text}`, kind, { kind, ...attrs }); }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setState(state) {
  const el = $("state");
  if (el.dataset.state === state) return;
  el.textContent = state;
  el.dataset.state = state;
  row("state-history", state, state, { state });
}
function stateOf(arg) {
  if (typeof arg === "string") return arg;
  if (arg && typeof arg === "object") return arg.state ?? arg.to ?? arg.current ?? client?.state;
  return client?.state;
}

async function mint() {
  const body = {
    user: $("user").value.trim(), tenant: $("tenant").value.trim(),
    permissions: $("permissions").value.split(",").map((p) => p.trim()).filter(Boolean),
    ttl: Number($("ttl").value) || 3600,
  };
  const response = await fetch("./token", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`mint: HTTP ${response.status} ${await response.text()}`);
  const { token } = await response.json();
  $("token").value = token;
  event("token", `minted for ${body.user}@${body.tenant} [${body.permissions}]`);
  return token;
}

function connect() {
  if (client) client.close();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
  client = new StreamerClient({
    url,
    // Called on every (re)connect: the textarea's token, or a fresh one if it is empty.
    getToken: async () => {
      const wait = holdUntil - Date.now();
      if (wait > 0) {
        event("offline", `staying offline for ${wait} ms before reconnecting`);
        await sleep(wait);
      }
      return $("token").value.trim() || mint();
    },
    protocols: ["streamer.v1"],
  });
  client.on("state", (arg) => { const s = stateOf(arg); if (s) setState(s); });
  client.on("connected", (arg) => { setState("connected"); event("connected", show(arg ?? "")); });
  client.on("reconnecting", (arg) => { setState("reconnecting"); event("reconnecting", show(arg ?? "")); });
  client.on("disconnected", (arg) => { event("disconnected", `code=${arg?.code} reason=${arg?.reason ?? ""}`); });
  client.on("closed", (arg) => { event("closed", show(arg ?? "")); });
  client.on("frame", ({ direction, frame }) => {
    const dir = direction === "out" ? "out" : "in";
    row("frames", `${dir === "out" ? "->" : "<-"} ${show(frame)}`, dir, { direction: dir });
  });
  client.on("recovery", ({ channel, recovered, offset, epoch }) => {
    event("recovery", `${channel} recovered=${recovered} offset=${offset} epoch=${epoch}`,
      { channel, recovered: String(recovered) });
  });
  client.on("token_expiring", (arg) => event("token_expiring", show(arg ?? "")));
  client.on("error", (arg) => event("error", show(arg instanceof Error ? arg.message : arg)));
  return client.connect();
}

async function subscribe() {
  const channel = $("channel").value.trim();
  const sub = await client.subscribe(channel, (message) => {
    const data = message && typeof message === "object" && "data" in message ? message.data : message;
    const offset = message?.offset;
    row("messages", `[${channel}${offset !== undefined ? " #" + offset : ""}] ${show(data)}`, "in",
      { channel, data: show(data), offset: String(offset) });
  });
  subscriptions.get(channel)?.li.remove();
  const li = document.createElement("li");
  li.dataset.channel = channel;
  li.textContent = `${channel} (offset ${sub.offset}, epoch ${sub.epoch}) `;
  const off = document.createElement("button");
  off.textContent = "unsubscribe";
  off.onclick = async () => { await sub.unsubscribe(); li.remove(); subscriptions.delete(channel); };
  li.appendChild(off);
  $("subscriptions").appendChild(li);
  subscriptions.set(channel, { sub, li });
  event("subscribed", `${channel} offset=${sub.offset} epoch=${sub.epoch}`);
}

async function publish() {
  const channel = $("channel").value.trim();
  let data;
  try { data = JSON.parse($("publish-data").value); } catch { data = $("publish-data").value; }
  const ack = await client.publish(channel, data);
  $("publish-result").textContent = `published ${ack.messageId} offset=${ack.offset} epoch=${ack.epoch}`;
}

async function startCount() {
  const steps = Number($("count-steps").value) || 1;
  const interval = Number($("count-interval").value) || 0;
  $("progress").value = 0;
  $("progress-text").textContent = "";
  $("result").textContent = "";
  $("result").dataset.done = "false";
  $("request-id").textContent = "";
  const req = client.request("count", { steps, interval_ms: interval }, {
    onProgress: (p) => {
      const value = typeof p === "number" ? p : p?.progress;
      if (typeof value === "number") $("progress").value = value;
      $("progress-text").textContent = typeof value === "number"
        ? `${Math.round(value * 100)}% ${p?.detail !== undefined ? show(p.detail) : ""}` : show(p);
      $("progress-text").dataset.progress = String(value);
    },
  });
  currentRequest = req;
  req.requestId.then((id) => { $("request-id").textContent = id; }, () => {});
  try {
    const result = await req.result;
    $("progress").value = 1;
    $("result").textContent = show(result);
    $("result").dataset.done = "true";
  } catch (err) {
    $("result").textContent = `failed: ${err?.message ?? show(err)}`;
    $("result").dataset.done = "error";
  }
}

async function forceDisconnect() {
  const offline = Math.max(0, Math.min(60000, Number($("offline-ms").value) || 0));
  holdUntil = Date.now() + offline;
  const response = await fetch("./disconnect", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
  });
  if (!response.ok) throw new Error(`disconnect: HTTP ${response.status} ${await response.text()}`);
  const { deleted } = await response.json();
  $("disconnect-result").textContent = `deleted ${deleted.length} connection(s)`;
  event("force-disconnect", `deleted ${deleted.join(", ") || "nothing"}; offline ${offline} ms`);
}

function guard(fn) {
  return async () => {
    try { await fn(); } catch (err) { event("error", err?.message ?? show(err)); }
  };
}

try {
  ({ StreamerClient } = await import("./sdk/index.js"));
  $("sdk-status").textContent = "SDK loaded";
  $("sdk-status").dataset.ready = "true";
} catch (err) {
  $("sdk-status").textContent = `the JS SDK did not load (${err.message}); build clients/js: npm ci && npm run build`;
  $("sdk-status").dataset.ready = "false";
}
$("mint").onclick = guard(mint);
$("connect").onclick = guard(connect);
$("disconnect").onclick = guard(async () => { client?.close(); });
$("force-disconnect").onclick = guard(forceDisconnect);
$("subscribe").onclick = guard(subscribe);
$("publish").onclick = guard(publish);
$("start-count").onclick = guard(startCount);
$("cancel-count").onclick = guard(async () => currentRequest?.cancel());
$("clear-frames").onclick = () => { $("frames").textContent = ""; };
document.body.dataset.ready = "true";
