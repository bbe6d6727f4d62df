// The local gateway's chat page, built on the JavaScript client (/_local/switchboard.js).
// Conversations per room and per user, a members panel fed by presence, the connection's
// state always in view, recovered messages marked, and the raw frame log behind a toggle.
// Plain JavaScript, no build step.

import { Client, SwitchboardError } from "/_local/switchboard.js";

const $ = (id) => document.getElementById(id);
const EVERYONE = "all:";

const page = {
  client: null,
  user: null,
  socket: null, // the client's current socket, for raw frames
  conversations: new Map(), // key ("room:x", "user:x", "all:") -> conversation
  current: null,
  members: new Map(), // room -> Map(userId -> connections)
  countdown: null,
  config: null,
};

// -- the frame log ------------------------------------------------------------------------------

function log(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${kind.padEnd(5)} ${text}`;
  $("log").appendChild(item);
  if (!$("frames").hidden) item.scrollIntoView({ block: "nearest" });
}

const redact = (url) => url.replace(/token=[^&]*/, "token=…");

/** The page's WebSocket: the browser's, with every frame written to the log. */
class LoggedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    page.socket = this;
    log("info", `connecting to ${redact(url)}`);
    this.addEventListener("open", () => log("info", "socket open"));
    this.addEventListener("message", (event) => {
      let kind = "in";
      try {
        const frame = JSON.parse(event.data);
        if (frame.type === "error" || (!frame.type && frame.message)) kind = "error";
      } catch (error) {
        kind = "error";
      }
      log(kind, event.data);
    });
    this.addEventListener("close", (event) => {
      log("info", `socket closed: ${event.code}${event.reason ? ` (${event.reason})` : ""}`);
    });
  }

  send(data) {
    log("out", data);
    super.send(data);
  }
}

// -- status and notices ---------------------------------------------------------------------------

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
  if (text) log("error", text);
}

/** Say what a failure means: a stopped gateway is unreachable, not an authentication problem. */
function explain(reason) {
  if (!reason) return "";
  if (/unreachable|Failed to fetch|NetworkError/i.test(reason)) return "gateway unreachable";
  return reason.replace(/^the token function failed: (Error: )?/, "");
}

function showState(event) {
  clearInterval(page.countdown);
  const status = $("status");
  status.dataset.state = event.state;
  const connected = event.state !== "closed";
  $("connect").disabled = connected;
  $("disconnect").disabled = !connected;
  $("user").disabled = connected;
  $("roles").disabled = connected;
  const open = event.state === "open";
  $("text").disabled = !open || page.current === null;
  $("send").disabled = $("text").disabled;
  if (open) {
    status.textContent = `open as ${page.user}`;
    notice("");
    return;
  }
  if (event.state === "closed") {
    status.textContent = event.message ? `closed: ${event.message}` : "not connected";
    return;
  }
  if (event.delay === undefined) {
    status.textContent = `${event.state}…`;
    return;
  }
  const until = Date.now() + event.delay;
  const why = explain(event.reason);
  const tick = () => {
    const left = Math.max(0, (until - Date.now()) / 1000);
    status.textContent = `${event.state} in ${left.toFixed(1)} s (attempt ${event.attempt})${why ? ` — ${why}` : ""}`;
  };
  tick();
  page.countdown = setInterval(tick, 100);
}

// -- conversations ---------------------------------------------------------------------------------

function conversation(key, create = true) {
  let found = page.conversations.get(key);
  if (!found && create) {
    const [kind, name] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
    found = { key, kind, name, messages: [], unread: 0, joined: kind !== "room" };
    page.conversations.set(key, found);
    renderConversations();
  }
  return found;
}

function title(conv) {
  if (conv.kind === "room") return `# ${conv.name}`;
  if (conv.kind === "user") return `@ ${conv.name}`;
  return "everyone (broadcast)";
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren();
  for (const conv of page.conversations.values()) {
    const item = document.createElement("li");
    item.dataset.key = conv.key;
    if (conv === page.current) item.className = "current";
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = title(conv);
    button.addEventListener("click", () => open(conv));
    item.appendChild(button);
    if (conv.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(conv.unread);
      item.appendChild(badge);
    }
    list.appendChild(item);
  }
}

function open(conv) {
  page.current = conv;
  conv.unread = 0;
  $("conversation-title").textContent = title(conv);
  $("leave").hidden = conv.kind !== "room";
  const ready = page.client !== null && page.client.state === "open";
  $("text").disabled = !ready;
  $("send").disabled = !ready;
  $("text").placeholder = conv.kind === "all" ? "broadcast to everyone (admin role)" : `message ${title(conv)}`;
  renderConversations();
  renderMessages();
  renderMembers();
}

/** Add a message once (by seq when it has one), before any later seq already shown. */
function addMessage(conv, entry) {
  const seqs = conv.messages;
  if (entry.seq !== undefined && seqs.some((m) => m.seq === entry.seq && m.epoch === entry.epoch)) return;
  const later = entry.seq === undefined ? -1 : seqs.findIndex((m) => m.seq !== undefined && m.epoch === entry.epoch && m.seq > entry.seq);
  if (later < 0) seqs.push(entry);
  else seqs.splice(later, 0, entry);
  if (conv !== page.current) conv.unread += 1;
  if (conv === page.current) renderMessages();
  else renderConversations();
}

function renderMessages() {
  const list = $("messages");
  list.replaceChildren();
  if (page.current === null) return;
  for (const entry of page.current.messages) {
    const item = document.createElement("li");
    item.classList.add("message");
    if (entry.mine) item.classList.add("mine");
    if (entry.recovered) item.classList.add("recovered");
    if (entry.history) item.classList.add("history");
    if (entry.notice) item.classList.add("system");
    if (entry.seq !== undefined) item.dataset.seq = String(entry.seq);
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = entry.notice ? "·" : entry.from;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = entry.text;
    item.append(from, text);
    const tags = [];
    if (entry.recovered) tags.push("recovered");
    if (entry.history) tags.push("earlier");
    if (entry.pending) tags.push("sending…");
    if (entry.failed) tags.push(entry.failed);
    if (tags.length) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = tags.join(", ");
      item.appendChild(tag);
    }
    list.appendChild(item);
  }
  list.lastElementChild?.scrollIntoView({ block: "nearest" });
}

function onMessage(frame) {
  const key = typeof frame.room === "string" ? `room:${frame.room}` : `user:${frame.from}`;
  addMessage(conversation(key), {
    from: frame.from, text: frame.text, seq: frame.seq, epoch: frame.epoch,
    recovered: frame.replayed === true,
  });
}

// -- members (presence) -------------------------------------------------------------------------

async function refreshMembers(room) {
  try {
    const answer = await page.client.presence(room);
    page.members.set(room, new Map(answer.members.map((m) => [m.userId, m.connections])));
  } catch (error) {
    page.members.set(room, error instanceof SwitchboardError ? error.detail : String(error));
  }
  if (page.current && page.current.kind === "room" && page.current.name === room) renderMembers();
}

function renderMembers() {
  const list = $("members");
  list.replaceChildren();
  const conv = page.current;
  if (!conv || conv.kind !== "room") {
    $("members-note").textContent = "Open a room to see who is in it.";
    return;
  }
  const members = page.members.get(conv.name);
  if (!(members instanceof Map)) {
    $("members-note").textContent = members ? `presence unavailable: ${members}` : "loading…";
    return;
  }
  $("members-note").textContent = `${members.size} in ${conv.name}`;
  for (const [userId, connections] of [...members].sort()) {
    const item = document.createElement("li");
    item.dataset.user = userId;
    item.textContent = connections > 1 ? `${userId} (${connections} connections)` : userId;
    if (userId === page.user) item.classList.add("me");
    list.appendChild(item);
  }
}

function onPresence(event) {
  const members = page.members.get(event.room);
  if (members instanceof Map) {
    if (event.event === "join") members.set(event.userId, Math.max(1, members.get(event.userId) || 0));
    else members.delete(event.userId);
  }
  const conv = conversation(`room:${event.room}`, false);
  if (conv) addMessage(conv, { notice: true, text: `${event.userId} ${event.event === "join" ? "joined" : "left"}` });
  if (page.current && page.current.name === event.room) renderMembers();
  refreshMembers(event.room); // the connection counts
}

// -- history ------------------------------------------------------------------------------------

/** Load a room's messages up to `seq` (the join point, or where a recovery failed). */
async function loadHistory(room, seq) {
  if (!Number.isInteger(seq) || seq < 1) return;
  const conv = conversation(`room:${room}`);
  try {
    const page_ = await page.client.history({ room, beforeSeq: seq + 1, limit: 50 });
    for (const frame of page_.messages) {
      addMessage(conv, { from: frame.from, text: frame.text, seq: frame.seq, epoch: frame.epoch, history: true, mine: frame.from === page.user });
    }
  } catch (error) {
    log("info", `no history for ${room}: ${error.message}`);
  }
}

// -- actions --------------------------------------------------------------------------------------

async function fetchToken(user, roles) {
  const query = new URLSearchParams({ userId: user });
  if (roles) query.set("roles", roles);
  let response;
  try {
    response = await fetch(`/_local/token?${query}`, { cache: "no-store" });
  } catch (error) {
    throw new Error("gateway unreachable (the token endpoint did not answer)");
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok) return body.token;
  // A bad user name, or a gateway that cannot sign: another attempt will not help.
  throw new SwitchboardError("unauthorized", body.message || `the token endpoint answered ${response.status}`);
}

function connect() {
  const user = $("user").value.trim();
  if (!user || (page.client && page.client.state !== "closed")) return;
  const roles = $("roles").value.trim();
  page.user = user;
  const url = page.config.websocketUrl.replace(/^ws:\/\/[^/]+/, `ws://${location.host}`);
  const client = new Client(url, {
    token: () => fetchToken(user, roles),
    WebSocket: LoggedWebSocket,
    ...options(),
  });
  page.client = client;
  window.switchboard = client; // for the console
  client.on("state", (event) => {
    if (client !== page.client) return;
    showState(event);
    if (event.state === "open" && page.current && page.current.kind === "room") refreshMembers(page.current.name);
  });
  client.on("message", onMessage);
  client.on("presence", onPresence);
  client.on("broadcast", (frame) => addMessage(conversation(EVERYONE), { from: frame.from, text: frame.text }));
  client.on("push", (frame) => addMessage(conversation(EVERYONE), { from: "push", text: JSON.stringify(frame.data) }));
  client.on("recovery_failed", (event) => {
    const key = event.room ? `room:${event.room}` : null;
    notice(`some messages${event.room ? ` in ${event.room}` : " sent to you"} could not be recovered; reloading what history has`);
    if (key) {
      addMessage(conversation(key), { notice: true, text: "some messages could not be recovered" });
      loadHistory(event.room, event.seq);
    }
  });
  client.on("error", (event) => notice(`${event.code}: ${event.message}${event.room ? ` (room ${event.room})` : ""}`));
  client.connect().catch((error) => notice(error.code === "unauthorized" || error.code === "not_connected" ? error.detail : error.message));
}

/** Options from the page's query string (?backoffBase=50&...), for testing reconnects. */
function options() {
  const chosen = {};
  for (const [name, value] of new URLSearchParams(location.search)) {
    if (/^[a-zA-Z]+$/.test(name) && value !== "" && !Number.isNaN(Number(value))) chosen[name] = Number(value);
  }
  return chosen;
}

async function disconnect() {
  const client = page.client;
  if (client) await client.close();
}

async function joinRoom() {
  const room = $("room").value.trim();
  if (!room || !page.client) return;
  const conv = conversation(`room:${room}`);
  open(conv);
  $("room").value = "";
  try {
    const ack = await page.client.joinRoom(room);
    conv.joined = true;
    await loadHistory(room, ack.seq);
    refreshMembers(room);
  } catch (error) {
    notice(`could not join ${room}: ${error.detail || error.message}`);
  }
}

async function leaveRoom() {
  const conv = page.current;
  if (!conv || conv.kind !== "room" || !page.client) return;
  page.conversations.delete(conv.key);
  page.members.delete(conv.name);
  page.current = null;
  $("conversation-title").textContent = "No conversation open";
  $("leave").hidden = true;
  renderConversations();
  renderMessages();
  renderMembers();
  try {
    await page.client.leaveRoom(conv.name);
  } catch (error) {
    notice(`could not leave ${conv.name}: ${error.detail || error.message}`);
  }
}

function openDirect() {
  const user = $("dm-user").value.trim();
  if (!user) return;
  $("dm-user").value = "";
  open(conversation(`user:${user}`));
  $("text").focus();
}

async function send() {
  const conv = page.current;
  const text = $("text").value;
  if (!conv || !text || !page.client) return;
  $("text").value = "";
  const entry = { from: page.user, text, mine: true, pending: true };
  addMessage(conv, entry);
  try {
    let ack;
    if (conv.kind === "room") ack = await page.client.sendToRoom(conv.name, text);
    else if (conv.kind === "user") ack = await page.client.sendMessage(conv.name, text);
    else ack = await page.client.broadcast(text);
    entry.pending = false;
    if (Number.isInteger(ack.seq)) Object.assign(entry, { seq: ack.seq, epoch: ack.epoch });
  } catch (error) {
    entry.pending = false;
    entry.failed = `not sent: ${error.detail || error.message}`;
  }
  if (conv === page.current) renderMessages();
}

function sendRaw() {
  const text = $("raw").value;
  if (!text) return;
  if (!page.socket || page.socket.readyState !== WebSocket.OPEN) {
    notice("not connected: the raw frame was not sent");
    return;
  }
  page.socket.send(text);
  $("raw").value = "";
}

function toggleFrames() {
  const frames = $("frames");
  frames.hidden = !frames.hidden;
  $("toggle-frames").setAttribute("aria-expanded", String(!frames.hidden));
  $("toggle-frames").textContent = frames.hidden ? "Show frame log" : "Hide frame log";
}

/** Every form: Enter does what its button does, and never reloads the page. */
function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    action();
  });
}

async function main() {
  page.config = await (await fetch("/_local/config")).json();
  $("endpoint").textContent = `WebSocket ${page.config.websocketUrl} · management ${page.config.managementUrl}/@connections/{id}`;
  onSubmit("connect-form", connect);
  onSubmit("room-form", joinRoom);
  onSubmit("dm-form", openDirect);
  onSubmit("send-form", send);
  onSubmit("raw-form", sendRaw);
  $("disconnect").addEventListener("click", disconnect);
  $("leave").addEventListener("click", leaveRoom);
  $("toggle-frames").addEventListener("click", toggleFrames);
  $("clear-log").addEventListener("click", () => $("log").replaceChildren());
  conversation(EVERYONE);
  document.body.dataset.ready = "true";
}

main().catch((error) => notice(`the page failed to start: ${error.message}`));
